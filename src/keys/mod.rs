//! Keys: JWK/JWKS parsing with the algorithm bound to each key, remote key
//! sets refreshed in the background, and the verified-token cache.

pub mod algorithm;
pub mod cache;
pub mod ecdsa;
pub mod jwk;
pub mod material;
pub mod remote;
pub mod rsa_ring;
pub mod schedule;
pub mod shared_cache;

pub use algorithm::Algorithm;
pub use jwk::{parse_jwks, Jwk, JwkError, KeySet};

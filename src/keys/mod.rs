//! Keys: JWK/JWKS parsing with the algorithm bound to each key, and remote
//! key sets refreshed in the background.

pub mod algorithm;
pub mod ecdsa;
pub mod jwk;
pub mod material;
pub mod remote;
pub mod rsa_ring;
pub mod schedule;

pub use algorithm::Algorithm;
pub use jwk::{parse_jwks, Jwk, JwkError, KeySet};

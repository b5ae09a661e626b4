//! Tokens: issuing RFC 9068 access tokens, finding the tokens in a request,
//! and verifying them. Parsing, signing and signature checks are
//! `jwt-compact`'s; the policy above it (algorithm bound to the key, refused
//! headers, duplicate claims, size, `typ`, issuer, audiences, times,
//! identity) is ours.

pub mod bearer;
pub mod error;
pub mod extract;
pub mod issue;
pub mod jwt;
pub mod policy;
pub mod verify;

pub use error::TokenError;
pub use issue::issue_access_token;
pub use verify::verify_gateway_token;

/// `typ` of the access tokens this gateway issues (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "application/at+jwt";
/// `aud` of gateway tokens issued where `global_credentials` is true; a
/// route-scoped token carries its route's name instead.
pub const GLOBAL_AUDIENCE: &str = "default";

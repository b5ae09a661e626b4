//! Tokens: compact JWS encoding, issuing RFC 9068 access tokens, finding the
//! bearer token in a request, and verifying the gateway's own tokens.

pub mod bearer;
pub mod extract;
pub mod issue;
pub mod jws;
pub mod jwt;
pub mod verify;

pub use issue::issue_access_token;
pub use verify::{verify_gateway_token, VerifyError};

/// `typ` of the access tokens this gateway issues (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "application/at+jwt";
/// Upper bound on a token we are willing to parse (Envoy's jwt_authn and
/// Higress use similar limits); bigger ones are rejected before decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

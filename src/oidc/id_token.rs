//! ID token validation (OpenID Connect Core §3.1.3.7): signature by the
//! provider's keys with the algorithm bound to the key, issuer, audience,
//! authorized party, time with skew, and nonce.

use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::config::oidc::OidcConfig;
use crate::keys::KeySet;
use crate::token::jwt::{self, audience_matches, check_signature, check_times, JwtError};

pub fn validate(
    token: &str,
    config: &OidcConfig,
    keys: &KeySet,
    nonce: Option<&str>,
    now: u64,
) -> Result<Map<String, Value>, &'static str> {
    let parsed = jwt::parse(token, config.max_token_size).map_err(JwtError::description)?;
    check_signature(&parsed, keys).map_err(JwtError::description)?;
    if parsed.issuer() != Some(config.issuer.as_str()) {
        return Err("ID token issuer mismatch");
    }
    if !audience_matches(
        parsed.claims.get("aud"),
        std::slice::from_ref(&config.client_id),
    ) {
        return Err("ID token audience is not this client");
    }
    if let Some(azp) = parsed.claims.get("azp") {
        if azp.as_str() != Some(config.client_id.as_str()) {
            return Err("ID token authorized party is not this client");
        }
    }
    check_times(&parsed, config.clock_skew, true, now).map_err(JwtError::description)?;
    if let Some(expected) = nonce {
        let got = parsed
            .claims
            .get("nonce")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !bool::from(got.as_bytes().ct_eq(expected.as_bytes())) {
            return Err("ID token nonce mismatch");
        }
    }
    Ok(parsed.claims)
}

/// The claims of an ID token already validated (it came out of a sealed
/// session), without checking again.
pub fn claims_of(token: &str, max_bytes: usize) -> Option<Map<String, Value>> {
    jwt::parse(token, max_bytes).ok().map(|p| p.claims)
}

//! ID tokens (OpenID Connect Core §3.1.3.7): the provider's policy
//! ([`Policy::oidc`]: signature by the provider's keys with the algorithm
//! bound to the key, issuer, audience + authorized party, time with skew,
//! an identity), then the nonce; refreshed ID tokens must name the same
//! user (§12.2).

use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::config::oidc::OidcConfig;
use crate::keys::KeySet;
use crate::token::jwt;
use crate::token::policy::{self, OidcToken, Policy};
use crate::token::TokenError;

pub fn validate(
    token: &str,
    config: &OidcConfig,
    keys: &KeySet,
    nonce: Option<&str>,
    now: u64,
) -> Result<Map<String, Value>, TokenError> {
    let policy = Policy::oidc(config, OidcToken::IdToken, config.max_token_size);
    let claims = policy::verify(token, &policy, keys, now)?.claims;
    if let Some(expected) = nonce {
        let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !bool::from(got.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(TokenError::NonceMismatch);
        }
    }
    Ok(claims)
}

/// OpenID Connect Core §12.2: a refreshed ID token keeps `iss`, `sub` and
/// `aud` of the one the session started with; anything else is another
/// user (or client) and ends the session.
pub fn same_subject(previous: &Map<String, Value>, refreshed: &Map<String, Value>) -> bool {
    ["iss", "sub", "aud"].iter().all(|claim| {
        previous
            .get(*claim)
            .is_some_and(|v| refreshed.get(*claim) == Some(v))
    })
}

/// The claims of an ID token already validated (it came out of a sealed
/// session), without checking again.
pub fn claims_of(token: &str, max_bytes: usize) -> Option<Map<String, Value>> {
    jwt::parse(token, max_bytes).ok().map(|p| p.claims)
}

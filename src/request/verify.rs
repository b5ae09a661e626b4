//! Full verification of one token nobody cached: the gateway's own tokens
//! for the gateway header, then the JWT consumers that read tokens from where
//! it was found; the identity it yields and how long it may be reused.

use crate::config::{Config, Scope, TokenLocation};
use crate::token::jwt::{self, claim_header, ClaimValue};
use crate::token::{verify_gateway_token, TokenError};
use crate::verified::cache::Identity;

use super::refusal::Refusal;

/// Longest a verified token without `exp` is trusted from the cache.
const MAX_CACHE_SECONDS_WITHOUT_EXP: u64 = 300;

/// Claims not passed upstream, with why (for the log).
type SkippedClaims = Vec<(String, &'static str)>;

/// Full verification: gateway tokens for the gateway header, then JWT
/// consumers reading tokens from where this one was found. Returns the
/// identity, the last second it may be reused, and the claims that could
/// not become headers.
pub(super) fn verify_token(
    config: &Config,
    scope: &Scope,
    location: &TokenLocation,
    token: &str,
    now: u64,
) -> Result<(Identity, u64, SkippedClaims), Refusal> {
    let consumers = &scope.consumers;
    let gateway_location =
        matches!(location, TokenLocation::Header { name, .. } if *name == scope.auth_header);
    let mut gateway_error = None;
    if gateway_location && consumers.has_gateway_consumers() {
        match verify_gateway_token(token, scope, config.max_token_bytes, now) {
            Ok(v) => {
                let identity = Identity {
                    consumer: v.consumer.name.clone(),
                    audience: v.audience.into_strings(),
                    claim_headers: Vec::new(),
                    strip_header: (!scope.keep_token).then(|| scope.auth_header.clone()),
                    gateway_token: true,
                    sub: Some(v.consumer.name.clone()),
                    jti: v.jti,
                };
                let valid_until = v.expires_at.saturating_add(scope.clock_skew);
                return Ok((identity, valid_until, Vec::new()));
            }
            Err(e) => gateway_error = Some(e),
        }
    }
    let mut candidates = consumers
        .jwt
        .iter()
        .filter(|c| c.locations.contains(location))
        .peekable();
    if candidates.peek().is_none() {
        return Err(gateway_error.map_or_else(
            || {
                Refusal::unauthorized(
                    "no_consumer_for_location",
                    "no consumer reads tokens from here",
                    true,
                )
            },
            Refusal::from,
        ));
    }
    let parsed = jwt::parse(token, config.max_token_bytes);
    let result = parsed.and_then(|p| jwt::verify(&p, candidates, now).map(|v| (p, v)));
    match result {
        Ok((parsed, verified)) => {
            let consumer = verified.consumer;
            let mut skipped = Vec::new();
            let mut claim_headers = Vec::new();
            for h in &consumer.claims_to_headers {
                match claim_header(&parsed.claims, &h.claim) {
                    ClaimValue::Value(v) => claim_headers.push((h.header.clone(), v, h.replace)),
                    ClaimValue::Absent => {}
                    ClaimValue::Refused(why) => skipped.push((h.claim.clone(), why)),
                }
            }
            let strip_header = match location {
                TokenLocation::Header { name, .. } if !consumer.keep_token => Some(name.clone()),
                _ => None,
            };
            let text_claim = |name: &str| {
                parsed
                    .claims
                    .get(name)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string)
            };
            let identity = Identity {
                consumer: consumer.name.clone(),
                audience: Vec::new(),
                claim_headers,
                strip_header,
                gateway_token: false,
                sub: text_claim("sub"),
                jti: text_claim("jti"),
            };
            let valid_until = verified
                .valid_until
                .unwrap_or_else(|| now.saturating_add(MAX_CACHE_SECONDS_WITHOUT_EXP));
            Ok((identity, valid_until, skipped))
        }
        // A gateway token (client_id of a gateway consumer) explains itself
        // better than "issuer not accepted" from the JWT consumers.
        Err(TokenError::WrongIssuer) if gateway_error.is_some() => {
            Err(gateway_error.map_or_else(|| TokenError::WrongIssuer.into(), Refusal::from))
        }
        Err(e) => Err(e.into()),
    }
}

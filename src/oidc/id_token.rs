//! Tokens from the single sign-on provider: ID tokens (OpenID Connect Core
//! §3.1.3.7) and bearer tokens on SSO routes go through one policy:
//! signature by the provider's keys with the algorithm bound to the key,
//! issuer, audience (+ authorized party), time with skew, and an identity.
//! ID tokens add the nonce; refreshed ID tokens must name the same user
//! (§12.2).

use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::config::oidc::OidcConfig;
use crate::keys::KeySet;
use crate::token::jwt::{self, check_audience, check_signature, check_times, JwtError};

/// Which of the provider's tokens is checked: what differs between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// From the token endpoint: meant for `client_id` only.
    IdToken,
    /// `Authorization: Bearer` on an SSO route (`accept_bearer`): for
    /// `client_id` or one of the configured `audiences`.
    Bearer,
}

/// The rules for one kind of provider token, read from the `oidc` block.
#[derive(Debug)]
pub struct Policy<'c> {
    pub issuer: &'c str,
    pub audiences: &'c [String],
    /// `azp` must be this when present, and present with several audiences.
    pub authorized_party: &'c str,
    pub clock_skew: u64,
    pub max_bytes: usize,
    /// Claims that must name someone: `sub` and the consumer claim.
    pub identity_claims: [&'c str; 2],
}

impl<'c> Policy<'c> {
    pub fn new(config: &'c OidcConfig, kind: TokenKind, max_bytes: usize) -> Self {
        Policy {
            issuer: &config.issuer,
            audiences: match kind {
                TokenKind::IdToken => std::slice::from_ref(&config.client_id),
                TokenKind::Bearer => &config.bearer_audiences,
            },
            authorized_party: &config.client_id,
            clock_skew: config.clock_skew,
            max_bytes,
            identity_claims: ["sub", &config.consumer_claim],
        }
    }
}

/// Checks `token` against `policy` and `keys`; its claims when it passes.
pub fn verify(
    token: &str,
    policy: &Policy<'_>,
    keys: &KeySet,
    now: u64,
) -> Result<Map<String, Value>, JwtError> {
    let parsed = jwt::parse(token, policy.max_bytes)?;
    if parsed.issuer() != Some(policy.issuer) {
        return Err(JwtError::WrongIssuer);
    }
    check_signature(&parsed, keys)?;
    check_times(&parsed, policy.clock_skew, true, now)?;
    check_audience(
        &parsed.claims,
        policy.audiences,
        Some(policy.authorized_party),
    )?;
    // No identity, no access: an upstream must never see an authenticated
    // request that names nobody.
    for claim in policy.identity_claims {
        if identity_of(&parsed.claims, claim).is_none() {
            return Err(JwtError::NoIdentity);
        }
    }
    Ok(parsed.claims)
}

/// A claim that names someone: a non-empty string.
fn identity_of<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    jwt::lookup_claim(claims, name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Why an ID token was refused at sign-in or refresh (shown on the error
/// page and logged; the code is for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenError {
    Token(JwtError),
    Nonce,
    /// A refreshed ID token for another user, issuer or client.
    OtherUser,
}

impl IdTokenError {
    pub fn description(self) -> &'static str {
        match self {
            IdTokenError::Token(JwtError::WrongIssuer) => "ID token issuer mismatch",
            IdTokenError::Token(JwtError::WrongAudience) => "ID token audience is not this client",
            IdTokenError::Token(JwtError::WrongAuthorizedParty) => {
                "ID token authorized party is not this client"
            }
            IdTokenError::Token(JwtError::NoIdentity) => "ID token names no user",
            IdTokenError::Token(e) => e.description(),
            IdTokenError::Nonce => "ID token nonce mismatch",
            IdTokenError::OtherUser => "refreshed ID token is for another user",
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            IdTokenError::Token(e) => e.code(),
            IdTokenError::Nonce => "nonce_mismatch",
            IdTokenError::OtherUser => "identity_changed",
        }
    }
}

impl From<JwtError> for IdTokenError {
    fn from(e: JwtError) -> Self {
        IdTokenError::Token(e)
    }
}

pub fn validate(
    token: &str,
    config: &OidcConfig,
    keys: &KeySet,
    nonce: Option<&str>,
    now: u64,
) -> Result<Map<String, Value>, IdTokenError> {
    let policy = Policy::new(config, TokenKind::IdToken, config.max_token_size);
    let claims = verify(token, &policy, keys, now)?;
    if let Some(expected) = nonce {
        let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !bool::from(got.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(IdTokenError::Nonce);
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

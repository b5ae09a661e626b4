//! Verifying the gateway's own access tokens (and the MSE/Higress plugin's).
//!
//! Order: size, structure (`jwt-compact`), header (algorithm bound to the
//! consumer's HMAC key, `typ`, no `crit`, no carried keys), consumer by
//! `client_id`, signature (`jwt-compact`'s HS256 with the consumer's
//! secret), then claims.
//! Nothing from the token is trusted before the signature checks out, except
//! the `client_id` used to pick the key.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;

use super::jwt::{self, JwtError};
use super::ACCESS_TOKEN_TYPE;
use crate::config::{Consumer, Scope};
use crate::keys::algorithm::hs256_verify;
use crate::keys::Algorithm;

/// Why a token was refused. Each maps to a short, non-secret description
/// for `WWW-Authenticate` and the debug log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    TooLarge,
    Malformed,
    UnsupportedAlgorithm,
    /// `jwk`, `jku`, `x5u` or `x5c` in the header.
    EmbeddedKey,
    WrongType,
    UnsupportedCritical,
    MissingClaim(&'static str),
    /// Unknown `client_id` or a bad signature: deliberately one answer, so the
    /// reply does not reveal which client ids exist.
    BadSignature,
    WrongIssuer,
    WrongSubject,
    Expired,
    NotYetValid,
    IssuedInFuture,
}

impl VerifyError {
    pub fn description(self) -> &'static str {
        match self {
            VerifyError::TooLarge => "token too large",
            VerifyError::Malformed => "malformed token",
            VerifyError::UnsupportedAlgorithm => "unsupported algorithm",
            VerifyError::EmbeddedKey => "embedded key headers are not accepted",
            VerifyError::WrongType => "unexpected token type",
            VerifyError::UnsupportedCritical => "unsupported critical header",
            VerifyError::MissingClaim(_) => "missing or invalid claim",
            VerifyError::BadSignature => "signature verification failed",
            VerifyError::WrongIssuer => "issuer not accepted",
            VerifyError::WrongSubject => "subject does not match client",
            VerifyError::Expired => "token expired",
            VerifyError::NotYetValid => "token not yet valid",
            VerifyError::IssuedInFuture => "token issued in the future",
        }
    }

    /// Stable machine-readable code for metrics and logs (the same codes as
    /// third-party tokens use for the same failure).
    pub fn code(self) -> &'static str {
        match self {
            VerifyError::TooLarge => "token_too_large",
            VerifyError::Malformed => "malformed_token",
            VerifyError::UnsupportedAlgorithm => "unsupported_algorithm",
            VerifyError::EmbeddedKey => "embedded_key",
            VerifyError::WrongType => "wrong_type",
            VerifyError::UnsupportedCritical => "unsupported_critical_header",
            VerifyError::MissingClaim(_) => "missing_claim",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::WrongIssuer => "wrong_issuer",
            VerifyError::WrongSubject => "wrong_subject",
            VerifyError::Expired => "token_expired",
            VerifyError::NotYetValid => "token_not_yet_valid",
            VerifyError::IssuedInFuture => "issued_in_future",
        }
    }
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience<'a> {
    #[serde(borrow)]
    One(Cow<'a, str>),
    #[serde(borrow)]
    Many(Vec<Cow<'a, str>>),
}

impl Audience<'_> {
    pub fn into_owned(self) -> Audience<'static> {
        match self {
            Audience::One(a) => Audience::One(Cow::Owned(a.into_owned())),
            Audience::Many(list) => Audience::Many(
                list.into_iter()
                    .map(|a| Cow::Owned(a.into_owned()))
                    .collect(),
            ),
        }
    }

    pub fn into_strings(self) -> Vec<String> {
        match self {
            Audience::One(a) => vec![a.into_owned()],
            Audience::Many(list) => list.into_iter().map(Cow::into_owned).collect(),
        }
    }

    pub fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(list) => list.iter().any(|a| a == wanted),
        }
    }
}

/// A token that passed every check.
#[derive(Debug)]
pub struct Verified<'c> {
    pub consumer: &'c Consumer,
    /// Copied out of the decoded payload, which does not outlive the check.
    pub audience: Audience<'static>,
    pub expires_at: u64,
}

/// `max_bytes` is the configured `max_token_bytes`.
pub fn verify_gateway_token<'c>(
    token: &str,
    scope: &'c Scope,
    max_bytes: usize,
    now: u64,
) -> Result<Verified<'c>, VerifyError> {
    let parsed = jwt::parse(token, max_bytes).map_err(|e| match e {
        JwtError::TooLarge => VerifyError::TooLarge,
        JwtError::UnsupportedAlgorithm => VerifyError::UnsupportedAlgorithm,
        JwtError::EmbeddedKey => VerifyError::EmbeddedKey,
        JwtError::UnsupportedCritical => VerifyError::UnsupportedCritical,
        _ => VerifyError::Malformed,
    })?;
    // The key decides the algorithm: consumers hold HMAC secrets, so only
    // HS256 is acceptable, whatever else the header claims.
    if parsed.alg != Algorithm::HS256 {
        return Err(VerifyError::UnsupportedAlgorithm);
    }
    let typ_ok = parsed.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE) || t.eq_ignore_ascii_case("at+jwt")
    });
    if !typ_ok {
        return Err(VerifyError::WrongType);
    }
    let claims = &parsed.claims;
    let client_id =
        string_claim(claims, "client_id")?.ok_or(VerifyError::MissingClaim("client_id"))?;
    let consumer = scope
        .consumers
        .by_client_id(client_id)
        .ok_or(VerifyError::BadSignature)?;
    if !hs256_verify(&consumer.secret, &parsed.token) {
        return Err(VerifyError::BadSignature);
    }

    if string_claim(claims, "iss")? != Some(scope.issuer.as_str()) {
        return Err(VerifyError::WrongIssuer);
    }
    if string_claim(claims, "sub")? != Some(consumer.name.as_str()) {
        return Err(VerifyError::WrongSubject);
    }
    let exp = parsed.times.exp.ok_or(VerifyError::MissingClaim("exp"))?;
    parsed.times.iat.ok_or(VerifyError::MissingClaim("iat"))?;
    jwt::check_times(&parsed, scope.clock_skew, true, now).map_err(|e| match e {
        JwtError::Expired => VerifyError::Expired,
        JwtError::NotYetValid => VerifyError::NotYetValid,
        JwtError::IssuedInFuture => VerifyError::IssuedInFuture,
        _ => VerifyError::Malformed,
    })?;
    let audience = match claims.get("aud") {
        None => return Err(VerifyError::MissingClaim("aud")),
        Some(Value::String(a)) => Audience::One(Cow::Owned(a.clone())),
        Some(Value::Array(list)) => Audience::Many(
            list.iter()
                .map(|a| a.as_str().map(|a| Cow::Owned(a.to_string())))
                .collect::<Option<Vec<_>>>()
                .ok_or(VerifyError::Malformed)?,
        ),
        Some(_) => return Err(VerifyError::Malformed),
    };
    Ok(Verified {
        consumer,
        audience,
        expires_at: u64::try_from(exp).unwrap_or(0),
    })
}

/// A claim that must be a string when present (another JSON type is a
/// malformed token, as the MSE plugin's typed parse has it).
fn string_claim<'m>(
    claims: &'m Map<String, Value>,
    name: &str,
) -> Result<Option<&'m str>, VerifyError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(VerifyError::Malformed),
    }
}

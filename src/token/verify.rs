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

use super::error::TokenError;
use super::jwt;
use super::ACCESS_TOKEN_TYPE;
use crate::config::{Consumer, Scope};
use crate::keys::algorithm::hs256_verify;
use crate::keys::Algorithm;

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
    /// For the audit trail.
    pub jti: Option<String>,
}

/// `max_bytes` is the configured `max_token_bytes`.
pub fn verify_gateway_token<'c>(
    token: &str,
    scope: &'c Scope,
    max_bytes: usize,
    now: u64,
) -> Result<Verified<'c>, TokenError> {
    let parsed = jwt::parse(token, max_bytes).map_err(|e| match e {
        // As the MSE plugin's typed parse: a bad date is a bad token.
        TokenError::InvalidDate => TokenError::Malformed,
        other => other,
    })?;
    // The key decides the algorithm: consumers hold HMAC secrets, so only
    // HS256 is acceptable, whatever else the header claims.
    if parsed.alg != Algorithm::HS256 {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    let typ_ok = parsed.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE) || t.eq_ignore_ascii_case("at+jwt")
    });
    if !typ_ok {
        return Err(TokenError::WrongType);
    }
    let claims = &parsed.claims;
    let client_id =
        string_claim(claims, "client_id")?.ok_or(TokenError::MissingClaim("client_id"))?;
    let consumer = scope
        .consumers
        .by_client_id(client_id)
        .ok_or(TokenError::BadSignature)?;
    if !hs256_verify(&consumer.secret, &parsed.token) {
        return Err(TokenError::BadSignature);
    }

    if string_claim(claims, "iss")? != Some(scope.issuer.as_str()) {
        return Err(TokenError::WrongIssuer);
    }
    if string_claim(claims, "sub")? != Some(consumer.name.as_str()) {
        return Err(TokenError::WrongSubject);
    }
    let exp = parsed.times.exp.ok_or(TokenError::MissingClaim("exp"))?;
    parsed.times.iat.ok_or(TokenError::MissingClaim("iat"))?;
    jwt::check_times(&parsed, scope.clock_skew, true, now)?;
    let audience = match claims.get("aud") {
        None => return Err(TokenError::MissingClaim("aud")),
        Some(Value::String(a)) => Audience::One(Cow::Owned(a.clone())),
        Some(Value::Array(list)) => Audience::Many(
            list.iter()
                .map(|a| a.as_str().map(|a| Cow::Owned(a.to_string())))
                .collect::<Option<Vec<_>>>()
                .ok_or(TokenError::Malformed)?,
        ),
        Some(_) => return Err(TokenError::Malformed),
    };
    let jti = string_claim(claims, "jti")?.map(str::to_string);
    Ok(Verified {
        consumer,
        audience,
        expires_at: u64::try_from(exp).unwrap_or(0),
        jti,
    })
}

/// A claim that must be a string when present (another JSON type is a
/// malformed token, as the MSE plugin's typed parse has it).
fn string_claim<'m>(
    claims: &'m Map<String, Value>,
    name: &str,
) -> Result<Option<&'m str>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TokenError::Malformed),
    }
}

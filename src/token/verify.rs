//! Verifying the gateway's own access tokens (and the MSE/Higress plugin's).
//!
//! Order: size, structure, header (algorithm bound to the consumer's HMAC
//! key, `typ`, no `crit`), consumer by `client_id`, signature, then claims.
//! Nothing from the token is trusted before the signature checks out, except
//! the `client_id` used to pick the key.

use serde::Deserialize;
use std::borrow::Cow;

use super::jws::{b64url_decode, hs256_verify, split, Header};
use super::ACCESS_TOKEN_TYPE;
use crate::config::{Consumer, Scope};

/// Why a token was refused. Each maps to a short, non-secret description
/// for `WWW-Authenticate` and the debug log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    TooLarge,
    Malformed,
    UnsupportedAlgorithm,
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

/// Claims as they arrive. Wrong JSON types are parse errors; duplicate keys
/// too (serde), so `{"sub":"a","sub":"b"}` cannot confuse anyone.
#[derive(Debug, Deserialize)]
struct Claims<'a> {
    #[serde(borrow, default)]
    client_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sub: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    aud: Option<Audience<'a>>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    nbf: Option<u64>,
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
    if token.len() > max_bytes {
        return Err(VerifyError::TooLarge);
    }
    let parts = split(token).ok_or(VerifyError::Malformed)?;
    let header_json = b64url_decode(parts.header).ok_or(VerifyError::Malformed)?;
    let header: Header<'_> =
        serde_json::from_slice(&header_json).map_err(|_| VerifyError::Malformed)?;
    // The key decides the algorithm: consumers hold HMAC secrets, so only
    // HS256 is acceptable, whatever else the header claims.
    if header.alg != "HS256" {
        return Err(VerifyError::UnsupportedAlgorithm);
    }
    if header.crit.is_some() {
        return Err(VerifyError::UnsupportedCritical);
    }
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE) || t.eq_ignore_ascii_case("at+jwt")
    });
    if !typ_ok {
        return Err(VerifyError::WrongType);
    }

    let payload = b64url_decode(parts.payload).ok_or(VerifyError::Malformed)?;
    let signature = b64url_decode(parts.signature).ok_or(VerifyError::Malformed)?;
    let claims: Claims<'_> =
        serde_json::from_slice(&payload).map_err(|_| VerifyError::Malformed)?;
    let client_id = claims
        .client_id
        .as_deref()
        .ok_or(VerifyError::MissingClaim("client_id"))?;
    let consumer = scope
        .consumers
        .by_client_id(client_id)
        .ok_or(VerifyError::BadSignature)?;
    if !hs256_verify(&consumer.secret, parts.signing_input.as_bytes(), &signature) {
        return Err(VerifyError::BadSignature);
    }

    if claims.iss.as_deref() != Some(scope.issuer.as_str()) {
        return Err(VerifyError::WrongIssuer);
    }
    if claims.sub.as_deref() != Some(consumer.name.as_str()) {
        return Err(VerifyError::WrongSubject);
    }
    let exp = claims.exp.ok_or(VerifyError::MissingClaim("exp"))?;
    let iat = claims.iat.ok_or(VerifyError::MissingClaim("iat"))?;
    let skew = scope.clock_skew;
    if now > exp.saturating_add(skew) {
        return Err(VerifyError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
        return Err(VerifyError::NotYetValid);
    }
    if iat > now.saturating_add(skew) {
        return Err(VerifyError::IssuedInFuture);
    }
    let audience = claims.aud.ok_or(VerifyError::MissingClaim("aud"))?;
    Ok(Verified {
        consumer,
        audience: audience.into_owned(),
        expires_at: exp,
    })
}

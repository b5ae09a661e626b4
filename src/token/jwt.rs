//! Verifying third-party JWTs (tokens from an identity provider) for JWT
//! consumers: size, parse, issuer (only to pick the candidate consumers and
//! their key sets), key by kid, signature (algorithm bound to the key), then
//! times, audience and the consumer's claim conditions (`policy`), which
//! decide between consumers of one issuer. Unlike Envoy jwt_authn, which
//! checks times and audiences before the signature, the signature comes
//! first: no claim of an unverified token decides anything beyond which keys
//! to try, and a refusal reason is only ever about a genuine token.

use std::fmt;
use std::rc::Rc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use jwt_compact::{Claims, TimeOptions, UntrustedToken, ValidationError};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

pub use super::error::TokenError;
use super::policy::{check_claims, Policy};
use crate::config::{JwtConsumer, KeySource};
use crate::keys::{Algorithm, KeySet};

/// JOSE header members `jwt-compact`'s `Header` does not name but our
/// policy refuses: carried keys (`jwk`, `x5c`; `jku` and `x5u` it names)
/// and critical extensions, none of which we understand.
#[derive(Debug, Clone, Deserialize)]
pub struct Refused {
    #[serde(default)]
    jwk: Option<IgnoredAny>,
    #[serde(default)]
    x5c: Option<IgnoredAny>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// `exp`, `nbf`, `iat` as `jwt-compact` read them (NumericDate seconds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Times {
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
}

/// A token taken apart by `jwt-compact` but not yet trusted.
pub struct ParsedJwt<'t> {
    pub token: UntrustedToken<'t, Refused>,
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub typ: Option<String>,
    /// Every claim (the times too, as integers), duplicates refused.
    pub claims: Map<String, Value>,
    pub times: Times,
    /// The payload segment as sent (base64url of the claims' JSON), e.g. for
    /// `X-Userinfo`.
    pub payload: &'t str,
}

impl ParsedJwt<'_> {
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }
}

/// A JSON object that refuses duplicate keys (`{"iss":"a","iss":"b"}`), so
/// no two parsers can disagree about what a token says.
struct StrictObject(Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrictVisitor;
        impl<'de> Visitor<'de> for StrictVisitor {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictObject, A::Error> {
                let mut map = Map::new();
                while let Some((key, value)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom("duplicate claim"));
                    }
                    map.insert(key, value);
                }
                Ok(StrictObject(map))
            }
        }
        deserializer.deserialize_map(StrictVisitor)
    }
}

/// Size, then `jwt-compact`'s parse (three base64url segments, a JSON
/// header), then our header policy, then the claims.
pub fn parse(token: &str, max_bytes: usize) -> Result<ParsedJwt<'_>, TokenError> {
    if token.len() > max_bytes {
        return Err(TokenError::TooLarge);
    }
    // Not three segments, bad base64url, a header that is not JSON or
    // lacks a string `alg`, duplicate header members: all malformed.
    let untrusted =
        UntrustedToken::<Refused>::try_from(token).map_err(|_| TokenError::Malformed)?;
    let alg =
        Algorithm::from_name(untrusted.algorithm()).ok_or(TokenError::UnsupportedAlgorithm)?;
    let header = untrusted.header();
    // Keys come from configuration only; a token naming or carrying its own
    // key is an attack or a misconfiguration, never fetched, never trusted.
    if header.key_set_url.is_some()
        || header.certificate_url.is_some()
        || header.other_fields.jwk.is_some()
        || header.other_fields.x5c.is_some()
    {
        return Err(TokenError::EmbeddedKey);
    }
    if header.other_fields.crit.is_some() {
        return Err(TokenError::UnsupportedCritical);
    }
    let (kid, typ) = (header.key_id.clone(), header.token_type.clone());
    let parsed: Claims<StrictObject> =
        untrusted
            .deserialize_claims_unchecked()
            .map_err(|e| match &e {
                // exp/nbf/iat present but not a NumericDate (or out of range).
                ValidationError::MalformedClaims(inner)
                    if inner.to_string().contains("timestamp") =>
                {
                    TokenError::InvalidDate
                }
                _ => TokenError::Malformed,
            })?;
    let times = Times {
        exp: parsed.expiration.map(|t| t.timestamp()),
        nbf: parsed.not_before.map(|t| t.timestamp()),
        iat: parsed.issued_at.map(|t| t.timestamp()),
    };
    let StrictObject(mut claims) = parsed.custom;
    // The times stay readable as claims (conditions, claims_to_headers).
    for (name, value) in [("exp", times.exp), ("nbf", times.nbf), ("iat", times.iat)] {
        if let Some(v) = value {
            claims.insert(name.into(), Value::from(v));
        }
    }
    // Three segments: `UntrustedToken` accepted the token.
    let payload = token.split('.').nth(1).unwrap_or_default();
    Ok(ParsedJwt {
        token: untrusted,
        payload,
        alg,
        kid,
        typ,
        claims,
        times,
    })
}

/// The consumer a token belongs to, and when it stops being valid.
#[derive(Debug)]
pub struct JwtVerified<'c> {
    pub consumer: &'c JwtConsumer,
    /// Last accepted second (exp + skew), if the token expires.
    pub valid_until: Option<u64>,
}

/// Tries `candidates` in config order; the first whose issuer, keys, time,
/// audience and claim conditions all accept the token wins.
pub fn verify<'c>(
    token: &ParsedJwt<'_>,
    candidates: impl Iterator<Item = &'c JwtConsumer>,
    now: u64,
) -> Result<JwtVerified<'c>, TokenError> {
    let iss = token.issuer();
    let mut furthest: Option<TokenError> = None;
    let mut keys_unavailable = false;
    // Consumers of one issuer often share a key set: check each set once.
    let mut checked: Vec<(Rc<KeySet>, Result<(), TokenError>)> = Vec::new();
    for consumer in candidates.filter(|c| Some(c.issuer.as_str()) == iss) {
        let outcome = check_consumer(token, consumer, now, &mut checked);
        match outcome {
            Ok(valid_until) => {
                return Ok(JwtVerified {
                    consumer,
                    valid_until,
                })
            }
            Err(TokenError::KeysUnavailable) => keys_unavailable = true,
            Err(e) => furthest = furthest.max(Some(e)),
        }
    }
    // Fail closed but retryable: a consumer we could not check might own it.
    if keys_unavailable {
        return Err(TokenError::KeysUnavailable);
    }
    Err(furthest.unwrap_or(TokenError::WrongIssuer))
}

fn check_consumer(
    token: &ParsedJwt<'_>,
    consumer: &JwtConsumer,
    now: u64,
    checked: &mut Vec<(Rc<KeySet>, Result<(), TokenError>)>,
) -> Result<Option<u64>, TokenError> {
    let keys = consumer.keys().ok_or(TokenError::KeysUnavailable)?;
    let signature = match checked.iter().find(|(set, _)| Rc::ptr_eq(set, &keys)) {
        Some((_, result)) => *result,
        None => {
            let result = check_signature(token, &keys);
            if result == Err(TokenError::UnknownKid) {
                if let KeySource::Remote(source) = &consumer.keys {
                    source.want_refetch();
                }
            }
            checked.push((keys, result));
            result
        }
    };
    signature?;
    let valid_until = check_claims(token, &Policy::jwt_consumer(consumer, usize::MAX), now)?;
    if !consumer
        .claims
        .iter()
        .all(|(name, wanted)| lookup_claim(&token.claims, name) == Some(wanted))
    {
        return Err(TokenError::ClaimsMismatch);
    }
    Ok(valid_until)
}

pub(crate) fn check_signature(token: &ParsedJwt<'_>, keys: &KeySet) -> Result<(), TokenError> {
    let kid = token.kid.as_deref();
    if kid.is_some_and(|k| !keys.has_kid(k)) {
        return Err(TokenError::UnknownKid);
    }
    let mut any_permitted = false;
    for key in keys.candidates(kid).filter(|k| k.permits(token.alg)) {
        any_permitted = true;
        if key.verify(token.alg, &token.token) {
            return Ok(());
        }
    }
    Err(if any_permitted {
        TokenError::BadSignature
    } else {
        TokenError::AlgorithmMismatch
    })
}

/// exp (required when `require_exp`, through `jwt-compact`'s
/// `validate_expiration` with Envoy's clock), nbf and iat when present,
/// against `now` with skew; returns the last accepted second.
pub(crate) fn check_times(
    token: &ParsedJwt<'_>,
    skew: u64,
    require_exp: bool,
    now: u64,
) -> Result<Option<u64>, TokenError> {
    let times = token.times;
    let now_signed = i64::try_from(now).unwrap_or(i64::MAX);
    let skew_signed = i64::try_from(skew).unwrap_or(i64::MAX);
    if let Some(exp) = times.exp {
        let options = TimeOptions::new(
            TimeDelta::try_seconds(skew_signed).unwrap_or(TimeDelta::MAX),
            || clock(now_signed),
        );
        let mut claims = Claims::empty();
        claims.expiration = Utc.timestamp_opt(exp, 0).single();
        match claims.validate_expiration(&options) {
            Ok(_) => {}
            Err(ValidationError::Expired) => return Err(TokenError::Expired),
            Err(_) => return Err(TokenError::InvalidDate),
        }
    } else if require_exp {
        return Err(TokenError::MissingExp);
    }
    // Plain integer arithmetic for nbf and iat: no date type to overflow.
    let latest = now_signed.saturating_add(skew_signed);
    if times.nbf.is_some_and(|nbf| nbf > latest) {
        return Err(TokenError::NotYetValid);
    }
    if times.iat.is_some_and(|iat| iat > latest) {
        return Err(TokenError::IssuedInFuture);
    }
    Ok(times
        .exp
        .map(|exp| u64::try_from(exp).unwrap_or(0).saturating_add(skew)))
}

/// Envoy's clock as `jwt-compact` wants it.
fn clock(now: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(now, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The audience policy every token kind shares: `aud` must name one of
/// `accepted`. With an `authorized_party` (OpenID Connect: our client id),
/// a token for several audiences must say it was issued to us (`azp`), and
/// an `azp` that is present must be us; a token issued to another client
/// for an audience list that happens to include ours is not ours.
pub(crate) fn check_audience(
    claims: &Map<String, Value>,
    accepted: &[String],
    authorized_party: Option<&str>,
) -> Result<(), TokenError> {
    let aud = claims.get("aud");
    if !audience_matches(aud, accepted) {
        return Err(TokenError::WrongAudience);
    }
    let Some(party) = authorized_party else {
        return Ok(());
    };
    let several = matches!(aud, Some(Value::Array(list)) if list.len() > 1);
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == party => Ok(()),
        Some(_) => Err(TokenError::WrongAuthorizedParty),
        None if several => Err(TokenError::WrongAuthorizedParty),
        None => Ok(()),
    }
}

pub(crate) fn audience_matches(aud: Option<&Value>, accepted: &[String]) -> bool {
    match aud {
        Some(Value::String(a)) => accepted.iter().any(|x| x == a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| accepted.iter().any(|x| x == a)),
        _ => false,
    }
}

/// A claim by name; a dotted name (`realm_access.roles`) walks nested
/// objects when no top-level claim has that exact name.
pub fn lookup_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// What a claim gives as a header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimValue {
    Value(String),
    /// The token has no such claim.
    Absent,
    /// The claim is there but cannot be passed on safely; the reason is for
    /// the log (it names no claim value).
    Refused(&'static str),
}

/// A claim as a header value: strings as they are, numbers and booleans as
/// JSON text, arrays of strings joined with commas. An array element that
/// itself contains a comma would read as two values upstream
/// (`["a","b,admin"]`), so the whole header is refused, as are objects,
/// mixed arrays and values with control characters (header injection).
pub fn claim_header(claims: &Map<String, Value>, claim: &str) -> ClaimValue {
    let Some(value) = lookup_claim(claims, claim) else {
        return ClaimValue::Absent;
    };
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => {
            let strings: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            let Some(strings) = strings else {
                return ClaimValue::Refused("array with a value that is not a string");
            };
            if strings.iter().any(|s| s.contains(',')) {
                return ClaimValue::Refused("array element contains the separator ','");
            }
            strings.join(",")
        }
        Value::Null => return ClaimValue::Absent,
        Value::Object(_) => return ClaimValue::Refused("an object"),
    };
    if text.chars().any(char::is_control) {
        return ClaimValue::Refused("control characters");
    }
    ClaimValue::Value(text)
}

/// [`claim_header`] when only a usable value matters.
pub fn claim_header_value(claims: &Map<String, Value>, claim: &str) -> Option<String> {
    match claim_header(claims, claim) {
        ClaimValue::Value(v) => Some(v),
        ClaimValue::Absent | ClaimValue::Refused(_) => None,
    }
}

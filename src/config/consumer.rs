//! Compiling consumers of both kinds: gateway clients (HS256 secrets) and
//! third-party JWT holders (issuer + inline or remote keys).

use std::collections::HashSet;
use std::rc::Rc;

use serde_json::Value;

use super::claim_headers::compile_claim_headers;
use super::error::{ConfigError, Errors};
use super::jwks::{inline_jwks, remote_source};
use super::patterns::is_header_name;
use super::raw::{RawConsumer, RawEnableHeader};
use crate::keys::remote::RemoteKeySource;
use crate::keys::KeySet;

/// HS256 keys shorter than the hash output weaken the MAC (RFC 7518 §3.2).
const RECOMMENDED_SECRET_LEN: usize = 32;
/// A gateway client: gets tokens at `auth_path`, signed with its secret.
#[derive(Debug)]
pub struct Consumer {
    pub name: String,
    pub client_id: String,
    pub secret: Vec<u8>,
}

#[derive(Debug)]
pub enum KeySource {
    Inline(Rc<KeySet>),
    Remote(Rc<RemoteKeySource>),
}

/// Where a token may be found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    /// Lower-case header name and the prefix before the token (matched
    /// case-insensitively; empty means the whole value).
    Header {
        name: String,
        prefix: String,
    },
    Param(String),
    Cookie(String),
}

pub use super::claim_headers::ClaimHeader;

/// A holder of tokens from an identity provider.
#[derive(Debug)]
pub struct JwtConsumer {
    pub name: String,
    pub issuer: String,
    /// The token's `aud` must contain one of these (when not empty).
    pub audiences: Vec<String>,
    pub keys: KeySource,
    /// Exact-match claim conditions that tell consumers of one issuer apart.
    pub claims: Vec<(String, Value)>,
    pub claims_to_headers: Vec<ClaimHeader>,
    pub locations: Vec<TokenLocation>,
    pub clock_skew: u64,
    pub keep_token: bool,
    pub require_exp: bool,
}

impl JwtConsumer {
    pub fn keys(&self) -> Option<Rc<KeySet>> {
        match &self.keys {
            KeySource::Inline(k) => Some(Rc::clone(k)),
            KeySource::Remote(r) => r.current(),
        }
    }
}

/// The consumers a scope knows: gateway clients indexed by `client_id`, and
/// JWT consumers in config order (the first that verifies and matches wins).
#[derive(Debug, Default)]
pub struct Consumers {
    list: Vec<Consumer>,
    by_client_id: std::collections::HashMap<String, usize>,
    pub jwt: Vec<JwtConsumer>,
}

impl Consumers {
    pub fn by_client_id(&self, client_id: &str) -> Option<&Consumer> {
        self.by_client_id
            .get(client_id)
            .and_then(|&i| self.list.get(i))
    }

    pub fn has_name(&self, name: &str) -> bool {
        self.list.iter().any(|c| c.name == name) || self.jwt.iter().any(|c| c.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Consumer> {
        self.list.iter()
    }

    pub fn has_gateway_consumers(&self) -> bool {
        !self.list.is_empty()
    }
}

/// Settings a consumer inherits from its scope.
pub struct ConsumerDefaults<'a> {
    pub clock_skew: u64,
    pub keep_token: bool,
    /// Remote key sources of the whole config, so consumers that name the
    /// same URL share one fetch.
    pub remote_sources: &'a mut Vec<Rc<RemoteKeySource>>,
    pub warnings: &'a mut Vec<String>,
}

pub fn compile_consumers(
    raw: &[RawConsumer],
    field: &str,
    defaults: &mut ConsumerDefaults<'_>,
    errors: &mut Errors,
) -> Consumers {
    let mut consumers = Consumers::default();
    let mut names = HashSet::new();
    // Also those of consumers with mistakes: a later duplicate is still one.
    let mut client_ids: HashSet<&str> = HashSet::new();
    let mut skipped: Vec<(ConfigError, &str)> = Vec::new();
    let mut broken = 0;
    for (i, c) in raw.iter().enumerate() {
        let at = |key: &str| format!("{field}[{i}].{key}");
        if c.name.is_empty() {
            errors.push(ConfigError::new(at("name"), "must not be empty"));
            broken += 1;
            continue;
        }
        if !is_header_safe_name(&c.name) {
            errors.push(ConfigError::new(
                at("name"),
                "must be printable ASCII without leading or trailing spaces: it is sent as the X-Mse-Consumer header value, where other characters arrive garbled or rejected (Higress issue 2995)",
            ));
            errors.broken_consumer(field, &c.name);
            broken += 1;
            continue;
        }
        if !names.insert(c.name.as_str()) {
            errors.push(ConfigError::new(
                at("name"),
                format!("duplicate consumer name \"{}\"", c.name),
            ));
            continue;
        }
        if c.client_id.is_some() || c.client_secret.is_some() {
            let consumer = gateway_consumer(c, &at, defaults.warnings);
            // The compiled client_id is the one written.
            let client_id = c.client_id.as_deref().filter(|id| !id.is_empty());
            let duplicate = client_id.filter(|id| !client_ids.insert(id));
            match consumer {
                Err(e) => {
                    errors.push(e);
                    errors.broken_consumer(field, &c.name);
                    broken += 1;
                }
                Ok(consumer) if duplicate.is_some() => {
                    errors.push(ConfigError::new(
                        at("client_id"),
                        format!("duplicate client_id \"{}\"", consumer.client_id),
                    ));
                    errors.broken_consumer(field, &c.name);
                    broken += 1;
                }
                Ok(consumer) => {
                    consumers
                        .by_client_id
                        .insert(consumer.client_id.clone(), consumers.list.len());
                    consumers.list.push(consumer);
                }
            }
        } else {
            // As the Higress jwt-auth plugin does: a consumer that does not
            // compile is skipped with a warning, unless none is left.
            match jwt_consumer(c, &at, defaults) {
                Ok(consumer) => consumers.jwt.push(consumer),
                Err(e) => skipped.push((e, c.name.as_str())),
            }
        }
    }
    let none_left = consumers.list.is_empty() && consumers.jwt.is_empty() && broken == 0;
    for (e, name) in skipped {
        if none_left {
            errors.push(e);
            errors.broken_consumer(field, name);
        } else {
            defaults
                .warnings
                .push(format!("{e}; this consumer is skipped"));
        }
    }
    consumers
}

/// Consumer names travel in `X-Mse-Consumer`. HTTP header values are
/// bytes; UTF-8 names reach upstreams decoded as Latin-1 or are refused by
/// proxies, and percent-encoding them would change the name upstreams and
/// `allow` lists compare. So names are visible ASCII (inner spaces allowed).
fn is_header_safe_name(name: &str) -> bool {
    name.bytes().all(|b| (0x20..0x7f).contains(&b)) && name.trim() == name
}

fn gateway_consumer(
    c: &RawConsumer,
    at: &dyn Fn(&str) -> String,
    warnings: &mut Vec<String>,
) -> Result<Consumer, ConfigError> {
    let jwt_keys = [
        ("issuer", c.issuer.is_some()),
        ("audiences", c.audiences.is_some()),
        ("jwks", c.jwks.is_some()),
        ("jwks_uri", c.jwks_uri.is_some()),
        ("oidc_issuer", c.oidc_issuer.is_some()),
        ("claims", c.claims.is_some()),
        ("claims_to_headers", c.claims_to_headers.is_some()),
        ("from_headers", c.from_headers.is_some()),
        ("from_params", c.from_params.is_some()),
        ("from_cookies", c.from_cookies.is_some()),
    ];
    if let Some((key, _)) = jwt_keys.iter().find(|(_, set)| *set) {
        return Err(ConfigError::new(
            at(key),
            "a consumer with client_id/client_secret is a gateway client; JWT keys belong to a separate consumer",
        ));
    }
    let client_id = c
        .client_id
        .as_deref()
        .ok_or_else(|| ConfigError::new(at("client_id"), "required with client_secret"))?;
    if client_id.is_empty() {
        return Err(ConfigError::new(at("client_id"), "must not be empty"));
    }
    let secret = c
        .client_secret
        .as_deref()
        .ok_or_else(|| ConfigError::new(at("client_secret"), "required with client_id"))?;
    if secret.is_empty() {
        return Err(ConfigError::new(at("client_secret"), "must not be empty"));
    }
    if secret.len() < RECOMMENDED_SECRET_LEN {
        warnings.push(format!(
            "{}: shorter than {RECOMMENDED_SECRET_LEN} bytes; HS256 keys should be at least {RECOMMENDED_SECRET_LEN} random bytes",
            at("client_secret")
        ));
    }
    Ok(Consumer {
        name: c.name.clone(),
        client_id: client_id.to_string(),
        secret: secret.as_bytes().to_vec(),
    })
}

fn jwt_consumer(
    c: &RawConsumer,
    at: &dyn Fn(&str) -> String,
    defaults: &mut ConsumerDefaults<'_>,
) -> Result<JwtConsumer, ConfigError> {
    let sources = [
        ("jwks", c.jwks.is_some()),
        ("jwks_uri", c.jwks_uri.is_some()),
        ("oidc_issuer", c.oidc_issuer.is_some()),
        ("remote_jwks", c.remote_jwks.is_some()),
    ];
    let mut present = sources.iter().filter(|(_, set)| *set).map(|(k, _)| *k);
    let source_key = match (present.next(), present.next()) {
        (Some(k), None) => k,
        (Some(_), Some(second)) => {
            return Err(ConfigError::new(
                at(second),
                "a consumer takes one of jwks, jwks_uri, oidc_issuer, remote_jwks",
            ))
        }
        (None, _) => {
            return Err(ConfigError::new(
                at("client_id"),
                "a consumer needs client_id and client_secret, or issuer with jwks, jwks_uri, oidc_issuer or remote_jwks",
            ))
        }
    };
    let issuer = match (&c.issuer, &c.oidc_issuer) {
        (Some(i), _) if i.is_empty() => {
            return Err(ConfigError::new(at("issuer"), "must not be empty"))
        }
        (Some(i), Some(o)) if i != o => {
            return Err(ConfigError::new(
                at("issuer"),
                "must equal oidc_issuer (discovery requires the exact issuer)",
            ))
        }
        (Some(i), _) => i.clone(),
        (None, Some(o)) => o.clone(),
        (None, None) => {
            return Err(ConfigError::new(
                at("issuer"),
                "required: tokens are matched to consumers by their iss claim",
            ))
        }
    };
    let keys = match source_key {
        "jwks" => KeySource::Inline(inline_jwks(c.jwks.as_ref(), &at("jwks"))?),
        _ => KeySource::Remote(remote_source(c, source_key, at, defaults.remote_sources)?),
    };
    let audiences = c.audiences.clone().unwrap_or_default();
    if let Some(j) = audiences.iter().position(String::is_empty) {
        return Err(ConfigError::new(
            format!("{}[{j}]", at("audiences")),
            "must not be empty",
        ));
    }
    Ok(JwtConsumer {
        name: c.name.clone(),
        issuer,
        audiences,
        keys,
        claims: claim_conditions(c, at)?,
        claims_to_headers: claim_headers(c, at)?,
        locations: token_locations(c, at)?,
        clock_skew: c.clock_skew_seconds.unwrap_or(defaults.clock_skew),
        keep_token: c.keep_token.unwrap_or(defaults.keep_token),
        require_exp: c.require_exp.unwrap_or(true),
    })
}

fn claim_conditions(
    c: &RawConsumer,
    at: &dyn Fn(&str) -> String,
) -> Result<Vec<(String, Value)>, ConfigError> {
    let mut out = Vec::new();
    for (name, value) in c.claims.iter().flatten() {
        if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
            return Err(ConfigError::new(
                format!("{}.{name}", at("claims")),
                "must be a string, number or boolean (exact match)",
            ));
        }
        out.push((name.clone(), value.clone()));
    }
    Ok(out)
}

fn claim_headers(
    c: &RawConsumer,
    at: &dyn Fn(&str) -> String,
) -> Result<Vec<ClaimHeader>, ConfigError> {
    compile_claim_headers(
        c.claims_to_headers.iter().flatten(),
        &at("claims_to_headers"),
    )
}

/// Higress defaults: `Authorization: Bearer <token>`, then `?access_token=`.
fn token_locations(
    c: &RawConsumer,
    at: &dyn Fn(&str) -> String,
) -> Result<Vec<TokenLocation>, ConfigError> {
    if c.from_headers.is_some() && c.enable_headers.is_some() {
        return Err(ConfigError::new(
            at("enable_headers"),
            "conflicts with from_headers",
        ));
    }
    let configured = c.from_headers.is_some()
        || c.enable_headers.is_some()
        || c.from_params.is_some()
        || c.from_cookies.is_some();
    if !configured {
        return Ok(vec![
            TokenLocation::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into(),
            },
            TokenLocation::Param("access_token".into()),
        ]);
    }
    let mut out = Vec::new();
    let from_headers = c
        .from_headers
        .iter()
        .flatten()
        .map(|h| (h.name.as_str(), h.value_prefix.as_deref(), "from_headers"));
    let enable_headers = c.enable_headers.iter().flatten().map(|h| match h {
        RawEnableHeader::Name(name) => (name.as_str(), None, "enable_headers"),
        RawEnableHeader::Entry(e) => (e.name.as_str(), e.value_prefix.as_deref(), "enable_headers"),
    });
    for (j, (name, prefix, key)) in from_headers.chain(enable_headers).enumerate() {
        if !is_header_name(name) {
            return Err(ConfigError::new(
                format!("{}[{j}].name", at(key)),
                "not a valid HTTP header name",
            ));
        }
        out.push(TokenLocation::Header {
            name: name.to_ascii_lowercase(),
            prefix: prefix.unwrap_or_default().to_string(),
        });
    }
    for (key, list, make) in [
        (
            "from_params",
            &c.from_params,
            TokenLocation::Param as fn(String) -> TokenLocation,
        ),
        ("from_cookies", &c.from_cookies, TokenLocation::Cookie),
    ] {
        for (j, name) in list.iter().flatten().enumerate() {
            if name.is_empty() {
                return Err(ConfigError::new(
                    format!("{}[{j}]", at(key)),
                    "must not be empty",
                ));
            }
            out.push(make(name.clone()));
        }
    }
    if out.is_empty() {
        return Err(ConfigError::new(
            at("from_headers"),
            "no place to read the token from",
        ));
    }
    Ok(out)
}

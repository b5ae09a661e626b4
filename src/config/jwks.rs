//! Where a JWT consumer's keys come from: an inline JWKS, or a remote one
//! (`jwks_uri`, OIDC discovery, a Higress `remote_jwks` mesh service), one
//! shared source per distinct location.

use std::rc::Rc;

use serde_json::Value;

use super::error::ConfigError;
use super::raw::{RawConsumer, RawRemoteJwks};
use crate::http_url::{authority_and_path, parse_absolute};
use crate::keys::remote::{KeyLocation, RemoteKeySource};
use crate::keys::{parse_jwks, KeySet};

pub const DEFAULT_JWKS_REFRESH_SECONDS: u64 = 600;
pub const DEFAULT_JWKS_TIMEOUT_MS: u64 = 5000;
const MAX_JWKS_TIMEOUT_MS: u64 = 60_000;
const MIN_JWKS_REFRESH_SECONDS: u64 = 10;

pub(super) fn inline_jwks(value: Option<&Value>, field: &str) -> Result<Rc<KeySet>, ConfigError> {
    let text = match value {
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => {
            return Err(ConfigError::new(
                field,
                "must be a JWKS as a JSON string or object",
            ))
        }
    };
    let keys = parse_jwks(text.as_bytes()).map_err(|e| ConfigError::new(field, e.0))?;
    Ok(Rc::new(keys))
}

pub(super) fn remote_source(
    c: &RawConsumer,
    source_key: &str,
    at: &dyn Fn(&str) -> String,
    remote_sources: &mut Vec<Rc<RemoteKeySource>>,
) -> Result<Rc<RemoteKeySource>, ConfigError> {
    if let Some(remote) = &c.remote_jwks {
        return remote_jwks_source(c, remote, at, remote_sources);
    }
    let url = match source_key {
        "jwks_uri" => c.jwks_uri.as_deref(),
        _ => c.oidc_issuer.as_deref(),
    }
    .unwrap_or("");
    let (url_authority, url_path) = parse_absolute(url)
        .map(|parsed| authority_and_path(&parsed))
        .map_err(|reason| ConfigError::new(at(source_key), reason))?;
    let location_of = |authority: String| {
        if source_key == "jwks_uri" {
            KeyLocation::Jwks {
                authority,
                path: url_path.clone(),
            }
        } else {
            KeyLocation::Discovery {
                issuer: url.to_string(),
                authority,
                path: format!(
                    "{}/.well-known/openid-configuration",
                    url_path.trim_end_matches('/')
                ),
            }
        }
    };
    let (cluster, authority) = match (&c.cluster, &c.service_name) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(at("service_name"), "conflicts with cluster"))
        }
        (Some(cluster), None) if !cluster.is_empty() => (cluster.clone(), url_authority),
        (None, Some(service)) if !service.is_empty() => (
            format!("outbound|{}||{service}", c.service_port.unwrap_or(80)),
            c.service_host.clone().unwrap_or(url_authority),
        ),
        _ => {
            return Err(ConfigError::new(
                at("cluster"),
                format!("{source_key} needs the Envoy cluster that reaches it: cluster, or service_name/service_port"),
            ))
        }
    };
    shared_source(cluster, location_of(authority), c, at, remote_sources)
}

/// Higress `jwt-auth` `remote_jwks`: a path on a mesh service. The
/// `:authority` is `service_host`, else the service name.
fn remote_jwks_source(
    c: &RawConsumer,
    remote: &RawRemoteJwks,
    at: &dyn Fn(&str) -> String,
    remote_sources: &mut Vec<Rc<RemoteKeySource>>,
) -> Result<Rc<RemoteKeySource>, ConfigError> {
    if let Some(key) = [
        ("cluster", c.cluster.is_some()),
        ("service_name", c.service_name.is_some()),
        ("service_port", c.service_port.is_some()),
        ("service_host", c.service_host.is_some()),
    ]
    .iter()
    .find_map(|(k, set)| set.then_some(*k))
    {
        return Err(ConfigError::new(at(key), "conflicts with remote_jwks"));
    }
    if remote.service_name.is_empty() || remote.service_name.contains(['|', '/', ' ']) {
        return Err(ConfigError::new(
            at("remote_jwks.service_name"),
            "must be a service name such as jwks.default.svc.cluster.local or keycloak.dns",
        ));
    }
    let authority = remote
        .service_host
        .clone()
        .unwrap_or_else(|| remote.service_name.clone());
    // Parsed as a URL on that host, so the path is checked (and written) as
    // every other configured URL is.
    let url = format!("http://{authority}{}", remote.path);
    if !remote.path.starts_with('/') {
        return Err(ConfigError::new(
            at("remote_jwks.path"),
            "must start with /",
        ));
    }
    let (authority, path) = parse_absolute(&url)
        .map(|parsed| authority_and_path(&parsed))
        .map_err(|reason| ConfigError::new(at("remote_jwks"), reason))?;
    let cluster = format!(
        "outbound|{}||{}",
        remote.service_port.unwrap_or(80),
        remote.service_name
    );
    shared_source(
        cluster,
        KeyLocation::Jwks { authority, path },
        c,
        at,
        remote_sources,
    )
}

/// The fetch settings, and one source per distinct location.
fn shared_source(
    cluster: String,
    location: KeyLocation,
    c: &RawConsumer,
    at: &dyn Fn(&str) -> String,
    remote_sources: &mut Vec<Rc<RemoteKeySource>>,
) -> Result<Rc<RemoteKeySource>, ConfigError> {
    let refresh_key = match (c.jwks_refresh_seconds, c.jwks_cache_duration) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                at("jwks_cache_duration"),
                "conflicts with jwks_refresh_seconds",
            ))
        }
        (_, Some(_)) => "jwks_cache_duration",
        _ => "jwks_refresh_seconds",
    };
    let refresh = c
        .jwks_refresh_seconds
        .or(c.jwks_cache_duration.map(|d| d.0))
        .unwrap_or(DEFAULT_JWKS_REFRESH_SECONDS);
    if refresh < MIN_JWKS_REFRESH_SECONDS {
        return Err(ConfigError::new(
            at(refresh_key),
            format!("must be at least {MIN_JWKS_REFRESH_SECONDS} seconds"),
        ));
    }
    let (timeout_key, timeout) = match (c.jwks_timeout_ms, &c.jwks_fetch_timeout) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                at("jwks_fetch_timeout"),
                "conflicts with jwks_timeout_ms",
            ))
        }
        (None, Some(v)) => ("jwks_fetch_timeout", fetch_timeout_ms(v)),
        (ms, None) => (
            "jwks_timeout_ms",
            Some(ms.unwrap_or(DEFAULT_JWKS_TIMEOUT_MS)),
        ),
    };
    let timeout = match timeout {
        Some(t) if (1..=MAX_JWKS_TIMEOUT_MS).contains(&t) => t,
        _ => {
            return Err(ConfigError::new(
                at(timeout_key),
                format!("must be between 1 and {MAX_JWKS_TIMEOUT_MS} milliseconds"),
            ))
        }
    };
    let candidate = RemoteKeySource::new(cluster, location, refresh, timeout);
    if let Some(existing) = remote_sources.iter().find(|s| s.id == candidate.id) {
        return Ok(Rc::clone(existing));
    }
    let source = Rc::new(candidate);
    remote_sources.push(Rc::clone(&source));
    Ok(source)
}

/// Milliseconds as a number, or a Go duration string (`"3s"`, `"500ms"`).
fn fetch_timeout_ms(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if s.ends_with("ms") => {
            s.strip_suffix("ms").and_then(|n| n.parse::<u64>().ok())
        }
        Value::String(s) => super::raw::parse_duration(s)?.checked_mul(1000),
        _ => None,
    }
}

//! Compiling a scope (the top level, or a rule's overrides on top of it):
//! issuer, token endpoint path, auth header, token lifetime, the places
//! tokens are read from, and the `oidc` block with its provider's keys.

use std::rc::Rc;

use super::claim_headers::writes_token_header;
use super::consumer::{Consumers, TokenLocation};
use super::error::{ConfigError, Errors};
use super::jwks::DEFAULT_JWKS_REFRESH_SECONDS;
use super::model::{
    OidcScope, Scope, DEFAULT_AUTH_HEADER, DEFAULT_AUTH_PATH, DEFAULT_CLOCK_SKEW, DEFAULT_ISSUER,
    DEFAULT_TOKEN_TTL,
};
use super::oidc_compile::compile_oidc;
use super::patterns::is_header_name;
use super::raw::{RawOidc, RawScope};
use crate::canonical::CanonicalPath;
use crate::keys::remote::{KeyLocation, RemoteKeySource};

/// Builds a scope from `raw`'s keys, falling back to `parent` (a rule's
/// overrides) or to the defaults (the top level).
pub(super) fn compile_scope(
    raw: &RawScope,
    prefix: &str,
    parent: Option<&Scope>,
    consumers: Rc<Consumers>,
    id: usize,
    remote_sources: &mut Vec<Rc<RemoteKeySource>>,
    errors: &mut Errors,
) -> Scope {
    // What a key that is absent, or has an error, stands for.
    let inherited_issuer = || parent.map_or(DEFAULT_ISSUER.to_string(), |p| p.issuer.clone());
    let issuer = match &raw.issuer {
        Some(i) if i.is_empty() => {
            errors.push(ConfigError::new(
                format!("{prefix}issuer"),
                "must not be empty",
            ));
            inherited_issuer()
        }
        Some(i) => i.clone(),
        None => inherited_issuer(),
    };
    let inherited_path = || parent.map_or(DEFAULT_AUTH_PATH.to_string(), |p| p.auth_path.clone());
    let auth_path = match &raw.auth_path {
        Some(p) => errors
            .take(normalize_auth_path(p, &format!("{prefix}auth_path")))
            .unwrap_or_else(inherited_path),
        None => inherited_path(),
    };
    let header = match (&raw.auth_header_name, &raw.auth_header) {
        (Some(a), Some(b)) if a != b => {
            errors.push(ConfigError::new(
                format!("{prefix}auth_header"),
                "conflicts with auth_header_name (an alias of it)",
            ));
            None
        }
        (Some(a), _) => Some((a, "auth_header_name")),
        (None, Some(b)) => Some((b, "auth_header")),
        (None, None) => None,
    };
    let inherited_header =
        || parent.map_or(DEFAULT_AUTH_HEADER.to_string(), |p| p.auth_header.clone());
    let auth_header = match header {
        Some((name, key)) if !is_header_name(name) => {
            errors.push(ConfigError::new(
                format!("{prefix}{key}"),
                "not a valid HTTP header name",
            ));
            inherited_header()
        }
        Some((name, _)) => name.to_ascii_lowercase(),
        None => inherited_header(),
    };
    let oidc = match (&raw.oidc, parent) {
        (Some(block), _) => {
            let compiled = oidc_scope(block, prefix, remote_sources, errors).map(Rc::new);
            if compiled.is_none() {
                errors.broken_oidc(prefix);
            }
            compiled
        }
        (None, Some(p)) => p.oidc.clone(),
        (None, None) => None,
    };
    errors.take(check_claims_leave_token_header(
        raw,
        prefix,
        &auth_header,
        &consumers,
        oidc.as_deref(),
    ));
    let inherited_ttl = parent.map_or(DEFAULT_TOKEN_TTL, |p| p.token_ttl);
    let token_ttl = match raw.token_ttl {
        Some(0) => {
            errors.push(ConfigError::new(
                format!("{prefix}token_ttl"),
                "must be at least 1 second",
            ));
            inherited_ttl
        }
        Some(t) => t,
        None => inherited_ttl,
    };
    let locations = token_locations(&auth_header, &consumers);
    Scope {
        id,
        issuer,
        auth_path,
        global_credentials: raw
            .global_credentials
            .or(parent.map(|p| p.global_credentials))
            .unwrap_or(true),
        auth_header,
        token_ttl,
        clock_skew: raw
            .clock_skew_seconds
            .or(parent.map(|p| p.clock_skew))
            .unwrap_or(DEFAULT_CLOCK_SKEW),
        keep_token: raw
            .keep_token
            .or(parent.map(|p| p.keep_token))
            .unwrap_or(true),
        consumers,
        locations,
        oidc,
    }
}

fn oidc_scope(
    raw: &RawOidc,
    prefix: &str,
    remote_sources: &mut Vec<Rc<RemoteKeySource>>,
    errors: &mut Errors,
) -> Option<OidcScope> {
    let config = compile_oidc(raw, prefix, errors)?;
    let candidate = RemoteKeySource::new(
        config.cluster.clone(),
        KeyLocation::Discovery {
            issuer: config.issuer.clone(),
            authority: config.discovery_authority.clone(),
            path: config.discovery_path.clone(),
        },
        DEFAULT_JWKS_REFRESH_SECONDS,
        // `oidc_verifier_request_timeout` (Higress: the discovery request).
        config.call_timeout_ms,
    );
    let provider = match remote_sources.iter().find(|s| s.id == candidate.id) {
        Some(existing) => Rc::clone(existing),
        None => {
            let source = Rc::new(candidate);
            remote_sources.push(Rc::clone(&source));
            source
        }
    };
    Some(OidcScope { config, provider })
}

/// No claim may be written into the header this scope reads gateway tokens
/// from: upstream it would read as a credential. The error names the claim
/// entry when this scope configured it, else the auth header that a rule
/// changed under inherited claims.
fn check_claims_leave_token_header(
    raw: &RawScope,
    prefix: &str,
    auth_header: &str,
    consumers: &Consumers,
    oidc: Option<&OidcScope>,
) -> Result<(), ConfigError> {
    let reason =
        || format!("\"{auth_header}\" is the auth header; a claim cannot be written into it");
    let header_key = if raw.auth_header.is_some() && raw.auth_header_name.is_none() {
        "auth_header"
    } else {
        "auth_header_name"
    };
    if let Some(sso) = oidc {
        if let Some(j) = writes_token_header(&sso.config.claims_to_headers, auth_header) {
            let field = match &raw.oidc {
                Some(_) => format!("{prefix}oidc.claims_to_headers[{j}].header"),
                None => format!("{prefix}{header_key}"),
            };
            return Err(ConfigError::new(field, reason()));
        }
    }
    for consumer in &consumers.jwt {
        if let Some(j) = writes_token_header(&consumer.claims_to_headers, auth_header) {
            let own = raw
                .consumers
                .as_deref()
                .and_then(|list| list.iter().position(|c| c.name == consumer.name));
            let field = match own {
                Some(i) => format!("{prefix}consumers[{i}].claims_to_headers[{j}].header"),
                None => format!("{prefix}{header_key}"),
            };
            return Err(ConfigError::new(field, reason()));
        }
    }
    Ok(())
}

fn normalize_auth_path(path: &str, field: &str) -> Result<String, ConfigError> {
    // An empty path would make every URL ending in "/" a token endpoint.
    if path.is_empty() || path == "/" {
        return Err(ConfigError::new(
            field,
            "must name a path such as /oauth2/token",
        ));
    }
    if path.contains(['?', '#']) || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(ConfigError::new(
            field,
            "must be a plain path without query or spaces",
        ));
    }
    let absolute = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    // Requests are compared in canonical form, so the configured path is
    // kept in that form too (`/oauth2/./token` is `/oauth2/token`).
    match crate::canonical::canonical_path(&absolute) {
        CanonicalPath::Safe(p) if p != "/" && !p.ends_with('/') => Ok(p),
        _ => Err(ConfigError::new(
            field,
            "must be a plain path such as /oauth2/token (no trailing slash, %2F or ..;)",
        )),
    }
}

/// The distinct places a scope reads tokens from.
fn token_locations(auth_header: &str, consumers: &Consumers) -> Vec<TokenLocation> {
    let mut out = Vec::new();
    if consumers.has_gateway_consumers() || consumers.jwt.is_empty() {
        out.push(TokenLocation::Header {
            name: auth_header.to_string(),
            prefix: "Bearer ".into(),
        });
    }
    for location in consumers.jwt.iter().flat_map(|c| c.locations.iter()) {
        if !out.contains(location) {
            out.push(location.clone());
        }
    }
    out
}

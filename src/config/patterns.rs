//! The patterns and names a configuration writes: `_match_domain_` /
//! `match_rule_domain` host patterns, `_match_service_` entries, HTTP
//! header names, `allowed_redirect_domains` / cookie domains, the paths
//! of an `oidc` block.

use super::error::ConfigError;
use crate::http_url::parse_absolute;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainPattern {
    Exact(String),
    /// `*.example.com` is stored as `.example.com`: subdomains only.
    Suffix(String),
    /// `api*` is stored as `api`.
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePattern {
    pub fqdn: String,
    pub port: Option<String>,
}

/// A `_match_domain_` / `match_rule_domain` pattern, spelled like the
/// canonical hosts it is matched against: lower case, one trailing dot
/// removed (`api.example.com.` is `api.example.com`).
pub(crate) fn domain_pattern(domain: &str) -> DomainPattern {
    let domain = domain.to_ascii_lowercase();
    let without_dot = |d: &str| d.strip_suffix('.').unwrap_or(d).to_string();
    if let Some(suffix) = domain.strip_prefix('*') {
        DomainPattern::Suffix(without_dot(suffix))
    } else if let Some(prefix) = domain.strip_suffix('*') {
        DomainPattern::Prefix(prefix.to_string())
    } else {
        DomainPattern::Exact(without_dot(&domain))
    }
}

pub(super) fn service_pattern(service: &str) -> Option<ServicePattern> {
    match service.rsplit_once(':') {
        None => Some(ServicePattern {
            fqdn: service.to_string(),
            port: None,
        }),
        Some((fqdn, port))
            if !fqdn.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(ServicePattern {
                fqdn: fqdn.to_string(),
                port: Some(port.to_string()),
            })
        }
        Some(_) => None,
    }
}

/// RFC 9110 token characters; pseudo-headers (`:path`) are not allowed.
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An `allowed_redirect_domains` entry: a host name (`example.com`), or
/// one with a leading dot for it and its subdomains (`.example.com`); lower
/// case, as the `url` crate writes hosts.
pub(super) fn redirect_domain(value: &str, field: &str) -> Result<String, ConfigError> {
    let name = value.strip_prefix('.').unwrap_or(value);
    let lower = name.to_ascii_lowercase();
    // ASCII without escapes before the url crate sees it (see http_url).
    let plain = name.is_ascii()
        && !name.contains('%')
        && matches!(url::Host::parse(name), Ok(url::Host::Domain(ref d)) if *d == lower);
    if !plain || lower.ends_with('.') {
        return Err(ConfigError::new(
            field,
            "must be a host name such as example.com or .example.com (ASCII, punycode for IDN)",
        ));
    }
    Ok(value.to_ascii_lowercase())
}

pub(super) fn path(value: Option<&str>, default: &str, field: &str) -> Result<String, ConfigError> {
    let p = value.unwrap_or(default);
    if !p.starts_with('/') || p.contains(['?', '#', ' ']) {
        return Err(ConfigError::new(field, "must be a path starting with /"));
    }
    canonical(p, field)
}

/// Requests are compared in canonical form: configured paths are kept in
/// that form too.
pub(super) fn canonical(p: &str, field: &str) -> Result<String, ConfigError> {
    match crate::canonical::canonical_path(p) {
        crate::canonical::CanonicalPath::Safe(c) if c.starts_with('/') => Ok(c),
        _ => Err(ConfigError::new(
            field,
            "must be a plain path (no %2F, backslash, %00, ..;)",
        )),
    }
}

/// Where to go after sign-out: a path on the request's host (one `/`, no
/// `//`, `\\`, spaces or control characters) or an http(s) URL.
pub(super) fn after_logout(value: &str, field: &str) -> Result<String, ConfigError> {
    if value.starts_with('/') {
        let odd = value.starts_with("//")
            || value
                .chars()
                .any(|c| c == '\\' || c.is_control() || c.is_whitespace());
        if odd {
            return Err(ConfigError::new(
                field,
                "must be a path starting with a single / (no spaces or backslashes), or an http(s) URL",
            ));
        }
        return Ok(value.to_string());
    }
    parse_absolute(value).map(String::from).map_err(|reason| {
        ConfigError::new(field, format!("must be a path or an http(s) URL: {reason}"))
    })
}

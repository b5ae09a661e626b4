//! The cookie settings of an `oidc` block: the session cookie's name, key
//! material, lifetimes and attributes (SameSite, Secure, HttpOnly, Domain).

use super::error::ConfigError;
use super::patterns::{is_header_name, redirect_domain};
use super::raw::{OneOrMany, RawOidc};
use crate::cookie::jar::{CookieAttributes, SameSite};
use crate::cookie::seal::SealKey;

const MIN_COOKIE_SECRET_BYTES: usize = 32;

/// The session cookie as configured.
pub(super) struct CookieSettings {
    pub name: String,
    pub session_key: SealKey,
    pub csrf_key: SealKey,
    /// None: a browser-session cookie.
    pub expire: Option<u64>,
    /// None: never refresh early.
    pub refresh: Option<u64>,
    /// Every attribute but `Domain` (checked later, see `cookie_domain`).
    pub attributes: CookieAttributes,
}

/// `cookie_name`, `cookie_secret`, `cookie_expire` / `cookie_refresh`,
/// `cookie_samesite`, `cookie_secure`, `cookie_httponly`, in that order.
pub(super) fn cookie_settings(
    raw: &RawOidc,
    at: &dyn Fn(&str) -> String,
) -> Result<CookieSettings, ConfigError> {
    let cookie_name = raw
        .cookie_name
        .clone()
        .unwrap_or_else(|| super::oidc::DEFAULT_COOKIE_NAME.into());
    if !is_header_name(&cookie_name) || cookie_name.contains(['=', ';', ',']) {
        return Err(ConfigError::new(
            at("cookie_name"),
            "not a valid cookie name",
        ));
    }
    let secret = cookie_secret(&raw.cookie_secret, &at("cookie_secret"))?;
    let cookie_expire = raw
        .cookie_expire
        .map_or(Some(86400), |d| (d.0 > 0).then_some(d.0));
    let cookie_refresh = raw
        .cookie_refresh
        .map_or(Some(3600), |d| (d.0 > 0).then_some(d.0));
    if let (Some(refresh), Some(expire)) = (cookie_refresh, cookie_expire) {
        if refresh >= expire {
            return Err(ConfigError::new(
                at("cookie_refresh"),
                "must be below cookie_expire",
            ));
        }
    }
    let same_site = match raw
        .cookie_samesite
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        // `""` (the Higress default) sends no attribute, which browsers
        // treat as Lax; Lax is written explicitly.
        None | Some("lax") | Some("") => SameSite::Lax,
        Some("strict") => SameSite::Strict,
        Some("none") => SameSite::None,
        Some(other) => {
            return Err(ConfigError::new(
                at("cookie_samesite"),
                format!("\"{other}\" is not lax, strict or none"),
            ))
        }
    };
    if raw.cookie_secure == Some(false) && same_site == SameSite::None {
        return Err(ConfigError::new(
            at("cookie_secure"),
            "must not be false with cookie_samesite none (browsers drop such cookies; a session cookie sent cross-site must be Secure)",
        ));
    }
    if raw.cookie_httponly == Some(false) {
        return Err(ConfigError::new(
            at("cookie_httponly"),
            "must not be false: the session cookie is always HttpOnly so that scripts on the site cannot read it",
        ));
    }
    Ok(CookieSettings {
        name: cookie_name,
        session_key: SealKey::derive(&secret, "session"),
        csrf_key: SealKey::derive(&secret, "csrf"),
        expire: cookie_expire,
        refresh: cookie_refresh,
        attributes: CookieAttributes {
            domain: None,
            path: raw.cookie_path.clone().unwrap_or_else(|| "/".into()),
            secure: raw.cookie_secure.unwrap_or(true),
            same_site,
        },
    })
}

/// `cookie_domain`, or `cookie_domains` (Higress) holding one domain:
/// oauth2-proxy picks the longest of several per request, which this plugin
/// does not (yet); several are refused rather than one silently chosen.
pub(super) fn cookie_domain(
    raw: &RawOidc,
    at: &dyn Fn(&str) -> String,
) -> Result<Option<String>, ConfigError> {
    let (field, value) =
        match (&raw.cookie_domain, &raw.cookie_domains) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    at("cookie_domains"),
                    "conflicts with cookie_domain",
                ))
            }
            (Some(d), None) => (at("cookie_domain"), d.as_str()),
            (None, Some(OneOrMany::One(d))) => (at("cookie_domains"), d.as_str()),
            (None, Some(OneOrMany::Many(list))) => match list.as_slice() {
                [] => return Ok(None),
                [d] => (at("cookie_domains"), d.as_str()),
                _ => return Err(ConfigError::new(
                    at("cookie_domains"),
                    "only one domain is supported (several would be chosen per request by host)",
                )),
            },
            (None, None) => return Ok(None),
        };
    if value.is_empty() {
        return Ok(None);
    }
    // An IPv4 address is a valid Domain attribute when it is the host.
    if !value.starts_with('.') && value.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(Some(value.to_string()));
    }
    // A `;` or space here would add attributes to every Set-Cookie.
    redirect_domain(value, &field).map(Some)
}

/// Key lengths oauth2-proxy accepts for its cookie secret (AES-128/192/256)
/// besides 32 and more: migrated configs keep their secret. The session and
/// CSRF keys are derived with HKDF-SHA256, so a 16-byte secret gives the
/// same 128-bit strength oauth2-proxy's AES-128 does; other short lengths
/// are most likely typed passwords and are refused.
fn secret_length_ok(len: usize) -> bool {
    len == 16 || len == 24 || len >= MIN_COOKIE_SECRET_BYTES
}

/// Raw or base64 (standard or URL-safe): whichever gives 16, 24 or 32+ bytes.
fn cookie_secret(secret: &str, field: &str) -> Result<Vec<u8>, ConfigError> {
    use base64::Engine;
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    for engine in engines {
        if let Ok(bytes) = engine.decode(secret) {
            if secret_length_ok(bytes.len()) {
                return Ok(bytes);
            }
        }
    }
    if secret_length_ok(secret.len()) {
        return Ok(secret.as_bytes().to_vec());
    }
    Err(ConfigError::new(
        field,
        format!("needs 16, 24 or at least {MIN_COOKIE_SECRET_BYTES} bytes of key material (raw or base64)"),
    ))
}

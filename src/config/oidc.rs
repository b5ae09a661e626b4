//! The `oidc` block: single sign-on at the gateway (authorization code +
//! PKCE). Field names follow MSE / ASM / APIG OIDC settings.

use serde::Deserialize;

use super::claim_headers::compile_claim_headers;
use super::compile::{is_header_name, ConfigError};
use crate::cookie::jar::{CookieAttributes, SameSite};
use crate::cookie::seal::SealKey;
use crate::http_url::{authority_and_path, parse_absolute};

/// How long a login may take: the lifetime of its CSRF/state cookie.
pub const LOGIN_TTL_SECONDS: u64 = 600;
pub const DEFAULT_CALLBACK_PATH: &str = "/oauth2/callback";
pub const DEFAULT_LOGOUT_PATH: &str = "/oauth2/sign_out";
pub const DEFAULT_SCOPE: &str = "openid email profile";
pub const DEFAULT_COOKIE_NAME: &str = "_edge_auth_session";
const MIN_COOKIE_SECRET_BYTES: usize = 32;
const DISCOVERY_SUFFIX: &str = "/.well-known/openid-configuration";
/// Calls to the IdP may take at most this long (`oidc_verifier_request_timeout`).
const CALL_TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u64> = 1..=60_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    /// Written flat at the scope level as the Higress `oidc` plugin does
    /// (errors then name the keys without `oidc.`).
    #[serde(skip)]
    pub flat: bool,
    /// `oidc_issuer_url`: the Higress `oidc` plugin's name.
    #[serde(alias = "oidc_issuer_url")]
    pub issuer: Option<String>,
    pub discovery: Option<String>,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_url: Option<String>,
    pub scope: Option<String>,
    pub cluster: Option<String>,
    pub service_name: Option<String>,
    pub service_port: Option<u16>,
    pub service_host: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub cookie_name: Option<String>,
    pub cookie_secret: String,
    pub cookie_domain: Option<String>,
    /// Higress / oauth2-proxy: one domain, as a string or a one-element list.
    pub cookie_domains: Option<OneOrMany>,
    /// Higress: must stay true (the session cookie is always HttpOnly).
    pub cookie_httponly: Option<bool>,
    /// Higress: login (CSRF) cookies are always per request here.
    pub cookie_csrf_per_request: Option<bool>,
    /// Higress: how long a login may take (CSRF cookie lifetime).
    pub cookie_csrf_expire: Option<Duration>,
    /// Higress: timeout of the discovery (and key) fetches, in milliseconds.
    pub oidc_verifier_request_timeout: Option<u64>,
    /// Higress: only `oidc` (the other providers are not OpenID Connect).
    pub provider: Option<String>,
    pub cookie_path: Option<String>,
    pub cookie_expire: Option<Duration>,
    pub cookie_refresh: Option<Duration>,
    pub cookie_secure: Option<bool>,
    pub cookie_samesite: Option<String>,
    pub match_type: Option<String>,
    pub match_list: Option<Vec<RawMatchRule>>,
    pub logout_path: Option<String>,
    pub end_session_endpoint: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub redirect_after_logout_uri: Option<String>,
    pub allowed_redirect_domains: Option<Vec<String>>,
    pub pass_authorization_header: Option<PassAuthorization>,
    /// `pass_access_token`: the Higress `oidc` plugin's name.
    #[serde(alias = "pass_access_token")]
    pub set_access_token_header: Option<bool>,
    /// `set_userinfo_header_enabled`: Huawei APIG's name.
    #[serde(alias = "set_userinfo_header_enabled")]
    pub set_userinfo_header: Option<bool>,
    /// Huawei APIG: the access token (instead of the ID token) in `Authorization`.
    pub set_access_token_header_enabled: Option<bool>,
    /// Huawei APIG: ID tokens are verified against the IdP's JWKS; `false`
    /// (a static `public_key`) is refused.
    pub jwks_enabled: Option<bool>,
    pub public_key: Option<String>,
    /// Huawei APIG: verified tokens are cached (always, here).
    pub jwt_cache_enabled: Option<bool>,
    /// Huawei APIG, spelled as there: renew with the refresh token.
    pub slient_renew_access_token_enabled: Option<bool>,
    /// Huawei APIG: where bearer tokens are read; only `Authorization`.
    pub auth_header_name: Option<String>,
    pub claims_to_headers: Option<Vec<super::raw::RawClaimToHeader>>,
    pub accept_bearer: Option<bool>,
    /// Audiences besides `client_id` that bearer tokens may carry.
    pub audiences: Option<Vec<String>>,
    pub access_token_expires_in: Option<u64>,
    pub max_token_size: Option<usize>,
    pub consumer_claim: Option<String>,
    /// The claim a rule's `allow` list is compared with (default:
    /// `consumer_claim`); an array claim such as `groups` matches when any
    /// element is listed.
    pub allow_claim: Option<String>,
    pub clock_skew_seconds: Option<u64>,
}

/// A string or a list of strings (`cookie_domains`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Keys of the Higress `oidc` plugin, lifted into an `oidc` block when a
/// config is written flat (the plugin's own format).
const HIGRESS_FLAT_KEYS: &[&str] = &[
    "oidc_issuer_url",
    "client_id",
    "client_secret",
    "redirect_url",
    "scope",
    "service_name",
    "service_port",
    "service_host",
    "cookie_name",
    "cookie_secret",
    "cookie_domains",
    "cookie_path",
    "cookie_expire",
    "cookie_refresh",
    "cookie_secure",
    "cookie_httponly",
    "cookie_samesite",
    "cookie_csrf_per_request",
    "cookie_csrf_expire",
    "pass_authorization_header",
    "pass_access_token",
    "oidc_verifier_request_timeout",
    "match_type",
    "match_list",
    "provider",
];

const FLAT_MARKERS: &[&str] = &[
    "oidc_issuer_url",
    "client_secret",
    "cookie_secret",
    "redirect_url",
];

/// A Higress `oidc` plugin config is flat: its keys sit where our `oidc`
/// block would. When `oidc_issuer_url` is among a scope's keys, they become
/// that scope's `oidc` block, with the plugin's defaults where ours differ
/// (`cookie_expire` 168h, no early `cookie_refresh`).
pub fn lift_flat(scope: &mut super::raw::RawScope, prefix: &str) -> Result<(), ConfigError> {
    // Keys only a flat oidc config has at this level: with any of them the
    // scope is one (a missing `oidc_issuer_url` is then an error, not a
    // config that silently authenticates nobody).
    let Some(marker) = FLAT_MARKERS
        .iter()
        .find(|k| scope.unknown.contains_key(**k))
    else {
        return Ok(());
    };
    if scope.oidc.is_some() {
        return Err(ConfigError::new(
            format!("{prefix}{marker}"),
            "a flat Higress oidc config and an oidc block cannot be combined",
        ));
    }
    let mut block = serde_json::Map::new();
    for key in HIGRESS_FLAT_KEYS {
        if let Some(value) = scope.unknown.remove(*key) {
            block.insert((*key).to_string(), value);
        }
    }
    block
        .entry("cookie_expire")
        .or_insert_with(|| serde_json::Value::from("168h"));
    block
        .entry("cookie_refresh")
        .or_insert_with(|| serde_json::Value::from(0));
    let mut raw: RawOidc = serde_path_to_error::deserialize(serde_json::Value::Object(block))
        .map_err(|err| {
            let field = err.path().to_string();
            let reason = if field.ends_with("secret") {
                "invalid value, expected a non-empty string".to_string()
            } else {
                err.into_inner().to_string()
            };
            // A missing key: serde names it in the reason, the path is the block.
            let field = if field == "." {
                prefix.trim_end_matches('.').to_string()
            } else {
                format!("{prefix}{field}")
            };
            ConfigError::new(field, reason)
        })?;
    raw.flat = true;
    scope.oidc = Some(raw);
    Ok(())
}

/// `true`/`false`, or which token to pass: `"id_token"` / `"access_token"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PassAuthorization {
    Flag(bool),
    Which(String),
}

/// Seconds as a number, or a duration string in Go's `time.ParseDuration`
/// syntax (`"24h"`, `"1h30m"`, `"1.5h"`, `"500ms"`), as MSE, Higress and
/// oauth2-proxy configs write them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub u64);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Ok(Duration(s)),
            Raw::Text(t) => parse_duration(&t).map(Duration).ok_or_else(|| {
                serde::de::Error::custom(format!("\"{t}\" is not a duration like 24h, 30m or 3600"))
            }),
        }
    }
}

/// Go's `time.ParseDuration` syntax without a sign: one or more
/// `<decimal><unit>` (`1h30m`, `1.5h`, `500ms`, `.5s`; units `ns`, `us`,
/// `µs`, `ms`, `s`, `m`, `h`), or `0`. Two extensions kept from earlier
/// versions: a bare number is seconds (`"3600"`), and `d` is 24h.
///
/// Whole seconds, rounded up: a non-zero duration never becomes 0, which
/// here means "off" (`500ms` is 1 second). Kept by hand rather than taken
/// from a crate: the Go ports on crates.io accept more (signs, overflow by
/// wrapping) or hang on long fractions; this one is exact (integer
/// nanoseconds) and bounded.
pub fn parse_duration(text: &str) -> Option<u64> {
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    let mut rest = text;
    let mut nanos: u128 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => return None,
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return None;
        }
        // 30 digits bound u128 arithmetic; more say nothing about seconds.
        if whole.len() > 30 || fraction.len() > 30 {
            return None;
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut part = whole.checked_mul(unit_nanos)?;
        if !fraction.is_empty() {
            let scale = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
            let numerator: u128 = fraction.parse().ok()?;
            // Round up: a fraction of a nanosecond still counts.
            part = part.checked_add(numerator.checked_mul(unit_nanos)?.div_ceil(scale))?;
        }
        nanos = nanos.checked_add(part)?;
        rest = next;
    }
    u64::try_from(nanos.div_ceil(1_000_000_000)).ok()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatchRule {
    pub match_rule_domain: Option<String>,
    pub match_rule_path: Option<String>,
    pub match_rule_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRule {
    /// Lower-case host without port; `*.x` = subdomains; empty = any host.
    pub domain: Option<super::DomainPattern>,
    pub path: PathMatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    /// Matching requests skip authentication.
    Whitelist,
    /// Only matching requests need authentication.
    Blacklist,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Post,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassToken {
    None,
    IdToken,
    AccessToken,
}

/// Where the browser comes back: a full URL, or a path on the request's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectUrl {
    Absolute(String),
    Path(String),
}

#[derive(Debug)]
pub struct OidcConfig {
    pub issuer: String,
    pub cluster: String,
    /// `:authority` and path of the discovery document.
    pub discovery_authority: String,
    pub discovery_path: String,
    pub client_id: String,
    pub client_secret: String,
    pub redirect: RedirectUrl,
    pub callback_path: String,
    pub scope: String,
    pub client_auth: ClientAuth,
    pub cookie_name: String,
    pub session_key: SealKey,
    pub csrf_key: SealKey,
    pub cookie: CookieAttributes,
    /// Timeout of discovery and key fetches (`oidc_verifier_request_timeout`).
    pub call_timeout_ms: u64,
    /// None: a browser-session cookie.
    pub cookie_expire: Option<u64>,
    /// None: never refresh early.
    pub cookie_refresh: Option<u64>,
    pub match_type: MatchType,
    pub match_list: Vec<MatchRule>,
    pub logout_path: String,
    pub end_session_endpoint: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub allowed_redirect_domains: Vec<String>,
    pub pass_token: PassToken,
    pub set_access_token_header: bool,
    pub set_userinfo_header: bool,
    pub claims_to_headers: Vec<super::ClaimHeader>,
    pub accept_bearer: bool,
    /// What a bearer token's `aud` may name: `client_id`, then the
    /// configured `audiences`.
    pub bearer_audiences: Vec<String>,
    pub access_token_expires_in: u64,
    pub max_token_size: usize,
    pub consumer_claim: String,
    /// What a rule's `allow` lists values of.
    pub allow_claim: String,
    pub clock_skew: u64,
}

impl OidcConfig {
    /// Headers this block may set upstream, scrubbed from every request.
    /// `Authorization` is not among them: other routes carry bearer tokens in
    /// it; on SSO requests the plugin replaces it outright.
    pub fn identity_headers(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.set_access_token_header {
            out.push("x-forwarded-access-token".to_string());
        }
        if self.set_userinfo_header {
            out.push("x-userinfo".to_string());
        }
        out.extend(self.claims_to_headers.iter().map(|h| h.header.clone()));
        out
    }
}

fn path(value: Option<&str>, default: &str, field: &str) -> Result<String, ConfigError> {
    let p = value.unwrap_or(default);
    if !p.starts_with('/') || p.contains(['?', '#', ' ']) {
        return Err(ConfigError::new(field, "must be a path starting with /"));
    }
    canonical(p, field)
}

/// Requests are compared in canonical form: configured paths are kept in
/// that form too.
fn canonical(p: &str, field: &str) -> Result<String, ConfigError> {
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
fn after_logout(value: &str, field: &str) -> Result<String, ConfigError> {
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

/// An `allowed_redirect_domains` entry: a host name (`example.com`), or
/// one with a leading dot for it and its subdomains (`.example.com`); lower
/// case, as the `url` crate writes hosts.
fn redirect_domain(value: &str, field: &str) -> Result<String, ConfigError> {
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

/// `cookie_domain`, or `cookie_domains` (Higress) holding one domain:
/// oauth2-proxy picks the longest of several per request, which this plugin
/// does not (yet); several are refused rather than one silently chosen.
fn cookie_domain(
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

/// Huawei APIG policy fields that map onto this plugin's behaviour only in
/// their secure setting.
fn check_apig_fields(raw: &RawOidc, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    if raw.jwks_enabled == Some(false) || raw.public_key.is_some() {
        return Err(ConfigError::new(
            at(if raw.public_key.is_some() { "public_key" } else { "jwks_enabled" }),
            "ID tokens are verified against the IdP's JWKS (from discovery); a static public_key is not supported",
        ));
    }
    if raw.jwt_cache_enabled == Some(false) {
        return Err(ConfigError::new(
            at("jwt_cache_enabled"),
            "verified tokens are always cached until they expire; set token_cache_size at the top level instead",
        ));
    }
    if let Some(name) = &raw.auth_header_name {
        if !name.eq_ignore_ascii_case("authorization") {
            return Err(ConfigError::new(
                at("auth_header_name"),
                "bearer tokens of an oidc block are read from Authorization; set auth_header_name at the top level for gateway tokens",
            ));
        }
    }
    Ok(())
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

pub fn compile_oidc(raw: &RawOidc, prefix: &str) -> Result<OidcConfig, ConfigError> {
    let at = |k: &str| {
        if raw.flat {
            let flat_name = match k {
                "issuer" => "oidc_issuer_url",
                "set_access_token_header" => "pass_access_token",
                other => other,
            };
            format!("{prefix}{flat_name}")
        } else {
            format!("{prefix}oidc.{k}")
        }
    };
    let (issuer, discovery_url) = match (&raw.issuer, &raw.discovery) {
        (Some(i), d) => (
            i.trim_end_matches('/').to_string(),
            d.clone().unwrap_or_else(|| {
                format!(
                    "{}/.well-known/openid-configuration",
                    i.trim_end_matches('/')
                )
            }),
        ),
        // OpenID Connect Discovery 1.0 §4: the document lives at the
        // issuer + `/.well-known/openid-configuration`, and the issuer it
        // names must equal that prefix; so the prefix is the issuer (Huawei
        // APIG configures `discovery` alone).
        (None, Some(d)) => match d.strip_suffix(DISCOVERY_SUFFIX) {
            Some(issuer) if !issuer.is_empty() => (issuer.to_string(), d.clone()),
            _ => {
                return Err(ConfigError::new(
                    at("issuer"),
                    format!("required when discovery does not end in {DISCOVERY_SUFFIX} (tokens are checked against it)"),
                ))
            }
        },
        (None, None) => return Err(ConfigError::new(at("issuer"), "required")),
    };
    // The issuer must be kept exactly as the IdP spells it (trailing slash
    // included); only the discovery URL is derived without it.
    let issuer = raw.issuer.clone().unwrap_or(issuer);
    let discovery_field = at(if raw.discovery.is_some() {
        "discovery"
    } else {
        "issuer"
    });
    let (url_authority, discovery_path) = parse_absolute(&discovery_url)
        .map(|url| authority_and_path(&url))
        .map_err(|reason| ConfigError::new(discovery_field, reason))?;
    let (cluster, discovery_authority) = match (&raw.cluster, &raw.service_name) {
        (Some(c), None) if !c.is_empty() => (c.clone(), url_authority),
        (None, Some(s)) if !s.is_empty() => (
            format!("outbound|{}||{s}", raw.service_port.unwrap_or(80)),
            raw.service_host.clone().unwrap_or(url_authority),
        ),
        (Some(_), Some(_)) => return Err(ConfigError::new(at("service_name"), "conflicts with cluster")),
        _ => {
            return Err(ConfigError::new(
                at("cluster"),
                "the Envoy cluster that reaches the IdP is required: cluster, or service_name/service_port",
            ))
        }
    };
    if raw.client_id.is_empty() {
        return Err(ConfigError::new(at("client_id"), "must not be empty"));
    }
    if raw.audiences.iter().flatten().any(String::is_empty) {
        return Err(ConfigError::new(
            at("audiences"),
            "must not hold an empty audience",
        ));
    }
    if raw.client_secret.is_empty() {
        return Err(ConfigError::new(at("client_secret"), "must not be empty"));
    }
    // A full URL is sent to the IdP exactly as written (IdPs compare it
    // with the registered one as a string); the callback is recognised by
    // its path as a browser will send it (WHATWG-normalized).
    let (redirect, callback_path) = match raw.redirect_url.as_deref() {
        None => (
            RedirectUrl::Path(DEFAULT_CALLBACK_PATH.into()),
            DEFAULT_CALLBACK_PATH.to_string(),
        ),
        Some(u) if u.starts_with('/') => {
            let p = path(Some(u), "", &at("redirect_url"))?;
            (RedirectUrl::Path(p.clone()), p)
        }
        Some(u) => {
            let url = parse_absolute(u).map_err(|reason| {
                ConfigError::new(
                    at("redirect_url"),
                    format!("must be a path or an http(s) URL: {reason}"),
                )
            })?;
            let callback = canonical(url.path(), &at("redirect_url"))?;
            (RedirectUrl::Absolute(u.to_string()), callback)
        }
    };
    let scope = raw
        .scope
        .as_deref()
        .unwrap_or(DEFAULT_SCOPE)
        .split([';', ' ', ','])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>();
    if !scope.contains(&"openid") {
        return Err(ConfigError::new(at("scope"), "must include openid"));
    }
    let client_auth = match raw.token_endpoint_auth_method.as_deref() {
        None | Some("client_secret_basic") => ClientAuth::Basic,
        Some("client_secret_post") => ClientAuth::Post,
        Some(other) => {
            return Err(ConfigError::new(
                at("token_endpoint_auth_method"),
                format!("\"{other}\" is not client_secret_basic or client_secret_post"),
            ))
        }
    };
    let cookie_name = raw
        .cookie_name
        .clone()
        .unwrap_or_else(|| DEFAULT_COOKIE_NAME.into());
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
    if raw.allow_claim.as_deref() == Some("") {
        return Err(ConfigError::new(at("allow_claim"), "must not be empty"));
    }
    let cookie_domain = cookie_domain(raw, &at)?;
    check_apig_fields(raw, &at)?;
    match raw.provider.as_deref() {
        None | Some("oidc") => {}
        Some(other) => {
            return Err(ConfigError::new(
                at("provider"),
                format!("\"{other}\" is not supported: only OpenID Connect providers (\"oidc\"), whose ID tokens can be verified"),
            ))
        }
    }
    let call_timeout_ms = raw
        .oidc_verifier_request_timeout
        .unwrap_or(super::DEFAULT_CALL_TIMEOUT_MS);
    if !CALL_TIMEOUT_RANGE_MS.contains(&call_timeout_ms) {
        return Err(ConfigError::new(
            at("oidc_verifier_request_timeout"),
            format!(
                "must be between {} and {} milliseconds",
                CALL_TIMEOUT_RANGE_MS.start(),
                CALL_TIMEOUT_RANGE_MS.end()
            ),
        ));
    }
    // A login must finish within LOGIN_TTL_SECONDS whatever is configured
    // (Higress' default 15m is longer: logins time out earlier here, which
    // only ever shortens a CSRF cookie's life). 0 would be no login at all.
    if raw.cookie_csrf_expire.is_some_and(|d| d.0 == 0) {
        return Err(ConfigError::new(
            at("cookie_csrf_expire"),
            format!("must be above 0 (logins may take up to {LOGIN_TTL_SECONDS}s)"),
        ));
    }
    let match_type = match raw.match_type.as_deref() {
        None | Some("whitelist") => MatchType::Whitelist,
        Some("blacklist") => MatchType::Blacklist,
        Some(other) => {
            return Err(ConfigError::new(
                at("match_type"),
                format!("\"{other}\" is not whitelist or blacklist"),
            ))
        }
    };
    let mut match_list = Vec::new();
    for (i, rule) in raw.match_list.iter().flatten().enumerate() {
        let field = format!("{}[{i}]", at("match_list"));
        let p = canonical(
            // Empty: every path, as before.
            rule.match_rule_path
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("/"),
            &format!("{field}.match_rule_path"),
        )?;
        let path = match rule.match_rule_type.as_deref() {
            None | Some("prefix") => PathMatch::Prefix(p),
            Some("exact") => PathMatch::Exact(p),
            Some("regex") => {
                return Err(ConfigError::new(
                    format!("{field}.match_rule_type"),
                    "regex is not supported: a path regex is matched against the raw path in the Higress plugin (/a/../b, %2e and case bypass it) and is easy to leave unanchored; list the paths with exact or prefix rules",
                ))
            }
            Some(other) => {
                return Err(ConfigError::new(
                    format!("{field}.match_rule_type"),
                    format!("\"{other}\" is not exact or prefix"),
                ))
            }
        };
        let domain = rule
            .match_rule_domain
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(super::compile::domain_pattern);
        match_list.push(MatchRule { domain, path });
    }
    let pass_token = match &raw.pass_authorization_header {
        _ if raw.set_access_token_header_enabled == Some(true) => {
            if matches!(
                raw.pass_authorization_header,
                Some(PassAuthorization::Flag(false)) | Some(PassAuthorization::Which(_))
            ) {
                return Err(ConfigError::new(
                    at("set_access_token_header_enabled"),
                    "conflicts with pass_authorization_header",
                ));
            }
            PassToken::AccessToken
        }
        None | Some(PassAuthorization::Flag(true)) => PassToken::IdToken,
        Some(PassAuthorization::Flag(false)) => PassToken::None,
        Some(PassAuthorization::Which(w)) if w == "id_token" => PassToken::IdToken,
        Some(PassAuthorization::Which(w)) if w == "access_token" => PassToken::AccessToken,
        Some(PassAuthorization::Which(w)) => {
            return Err(ConfigError::new(
                at("pass_authorization_header"),
                format!("\"{w}\" is not true, false, id_token or access_token"),
            ))
        }
    };
    let post_logout = match (
        &raw.post_logout_redirect_uri,
        &raw.redirect_after_logout_uri,
    ) {
        (Some(a), Some(b)) if a != b => {
            return Err(ConfigError::new(
                at("redirect_after_logout_uri"),
                "conflicts with post_logout_redirect_uri",
            ))
        }
        (Some(a), _) => Some(after_logout(a, &at("post_logout_redirect_uri"))?),
        (None, Some(a)) => Some(after_logout(a, &at("redirect_after_logout_uri"))?),
        (None, None) => None,
    };
    let end_session_endpoint = match &raw.end_session_endpoint {
        Some(u) => Some(
            parse_absolute(u)
                .map_err(|reason| ConfigError::new(at("end_session_endpoint"), reason))?
                .to_string(),
        ),
        None => None,
    };
    let mut allowed_redirect_domains = Vec::new();
    for (i, domain) in raw.allowed_redirect_domains.iter().flatten().enumerate() {
        let field = format!("{}[{i}]", at("allowed_redirect_domains"));
        allowed_redirect_domains.push(redirect_domain(domain, &field)?);
    }
    let claims_to_headers = compile_claim_headers(
        raw.claims_to_headers.iter().flatten(),
        &at("claims_to_headers"),
    )?;
    Ok(OidcConfig {
        issuer,
        cluster,
        discovery_authority,
        discovery_path,
        client_id: raw.client_id.clone(),
        client_secret: raw.client_secret.clone(),
        redirect,
        callback_path,
        scope: scope.join(" "),
        client_auth,
        session_key: SealKey::derive(&secret, "session"),
        csrf_key: SealKey::derive(&secret, "csrf"),
        cookie_name,
        call_timeout_ms,
        cookie: CookieAttributes {
            domain: cookie_domain,
            path: raw.cookie_path.clone().unwrap_or_else(|| "/".into()),
            secure: raw.cookie_secure.unwrap_or(true),
            same_site,
        },
        cookie_expire,
        cookie_refresh,
        match_type,
        match_list,
        logout_path: path(
            raw.logout_path.as_deref(),
            DEFAULT_LOGOUT_PATH,
            &at("logout_path"),
        )?,
        end_session_endpoint,
        post_logout_redirect_uri: post_logout,
        allowed_redirect_domains,
        pass_token,
        set_access_token_header: raw.set_access_token_header.unwrap_or(false),
        set_userinfo_header: raw.set_userinfo_header.unwrap_or(false),
        claims_to_headers,
        accept_bearer: raw.accept_bearer.unwrap_or(false),
        bearer_audiences: std::iter::once(raw.client_id.clone())
            .chain(raw.audiences.iter().flatten().cloned())
            .collect(),
        access_token_expires_in: raw.access_token_expires_in.unwrap_or(3600),
        max_token_size: raw.max_token_size.unwrap_or(5 * 1024),
        allow_claim: raw
            .allow_claim
            .clone()
            .or_else(|| raw.consumer_claim.clone())
            .unwrap_or_else(|| "sub".into()),
        consumer_claim: raw.consumer_claim.clone().unwrap_or_else(|| "sub".into()),
        clock_skew: raw.clock_skew_seconds.unwrap_or(60),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let good = [
            ("24h", 86400),
            ("1h30m", 5400),
            ("45s", 45),
            ("3600", 3600),
            ("7d", 604800),
            ("10", 10),
            ("0", 0),
            ("0s", 0),
            // Higress oidc plugin configs (Go time.ParseDuration).
            ("168h", 604800),
            ("1.5h", 5400),
            ("500ms", 1),
            ("1500ms", 2),
            ("2h45m30.5s", 9931),
            (".5m", 30),
            ("1.s", 1),
            ("90m", 5400),
            ("1h0m0s", 3600),
            ("3000000us", 3),
            ("3000000\u{b5}s", 3),
            ("1ns", 1),
        ];
        for (text, seconds) in good {
            assert_eq!(parse_duration(text), Some(seconds), "{text}");
        }
        let bad = [
            "",
            "h",
            "10x",
            "1h5",
            "-1h",
            "+1h",
            "1H",
            "1 h",
            " 1h",
            "1h ",
            ".",
            ".s",
            "1..5s",
            "1.2.3s",
            "1hh",
            "1e3s",
            "9999999999999999999999999999999h",
            "1sec",
            "\u{661}s",
        ];
        for text in bad {
            assert_eq!(parse_duration(text), None, "{text:?}");
        }
    }
}

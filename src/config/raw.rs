//! The configuration as users write it (Higress/MSE `oauth` key names).
//!
//! One struct serves the top level and every `_rules_` entry so the override
//! keys are spelled once; `compile` rejects keys used at the wrong level.
//! Unknown keys (a control plane's `_plugin_id_`, keys of a newer plugin
//! version, a typo) are collected, logged at warn and otherwise ignored, as
//! Higress plugins do: one stray key must not stop a gateway from loading.
//! `edge-auth-config --strict` reports them as errors. Every serde type of
//! the configuration is here, the `oidc` block's and durations included.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Keys this version does not know, by name. Values are kept: a Higress
/// `oidc` plugin config is written flat at this level and is lifted into an
/// `oidc` block from here (see `higress_flat::lift_flat`).
pub type UnknownKeys = BTreeMap<String, serde_json::Value>;

#[derive(Debug, Default, Deserialize)]
pub struct RawScope {
    pub consumers: Option<Vec<RawConsumer>>,
    pub issuer: Option<String>,
    pub auth_path: Option<String>,
    pub global_credentials: Option<bool>,
    pub auth_header_name: Option<String>,
    /// Alias of `auth_header_name`, as the MSE plugin spells it.
    pub auth_header: Option<String>,
    pub token_ttl: Option<u64>,
    pub clock_skew_seconds: Option<u64>,
    pub keep_token: Option<bool>,
    /// Single sign-on for browsers (at the top level or per rule).
    pub oidc: Option<RawOidc>,

    // Top level only.
    pub global_auth: Option<bool>,
    pub max_token_bytes: Option<usize>,
    pub token_cache_size: Option<usize>,
    pub token_cache_bytes: Option<usize>,
    pub token_body_timeout_ms: Option<u64>,
    #[serde(rename = "_rules_")]
    pub rules: Option<Vec<RawScope>>,

    // Rules only.
    #[serde(rename = "_match_route_")]
    pub match_route: Option<Vec<String>>,
    #[serde(rename = "_match_route_prefix_")]
    pub match_route_prefix: Option<Vec<String>>,
    #[serde(rename = "_match_domain_")]
    pub match_domain: Option<Vec<String>>,
    #[serde(rename = "_match_service_")]
    pub match_service: Option<Vec<String>>,
    pub allow: Option<Vec<String>>,
    #[serde(rename = "_disable_")]
    pub disable: Option<bool>,

    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

/// A consumer: either a gateway client (`client_id` + `client_secret`, the
/// MSE `oauth` kind) or a holder of third-party JWTs (`issuer` + keys, the
/// Higress `jwt-auth` kind). Which one is decided by the keys present.
#[derive(Debug, Deserialize)]
pub struct RawConsumer {
    pub name: String,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,

    pub issuer: Option<String>,
    pub audiences: Option<Vec<String>>,
    /// A JWKS as a JSON string (Higress) or an object.
    pub jwks: Option<serde_json::Value>,
    pub jwks_uri: Option<String>,
    pub oidc_issuer: Option<String>,
    pub cluster: Option<String>,
    pub service_name: Option<String>,
    pub service_port: Option<u16>,
    pub service_host: Option<String>,
    pub claims: Option<serde_json::Map<String, serde_json::Value>>,
    pub claims_to_headers: Option<Vec<RawClaimToHeader>>,
    pub from_headers: Option<Vec<RawFromHeader>>,
    pub from_params: Option<Vec<String>>,
    pub from_cookies: Option<Vec<String>>,
    pub clock_skew_seconds: Option<u64>,
    pub keep_token: Option<bool>,
    pub require_exp: Option<bool>,
    pub jwks_refresh_seconds: Option<u64>,
    pub jwks_timeout_ms: Option<u64>,
    /// Higress `jwt-auth`: the JWKS served by a mesh service.
    pub remote_jwks: Option<RawRemoteJwks>,
    /// Higress `jwt-auth`: alias of `jwks_refresh_seconds` (seconds or a Go duration).
    pub jwks_cache_duration: Option<Duration>,
    /// Higress `jwt-auth`: alias of `jwks_timeout_ms` (milliseconds or a Go duration).
    pub jwks_fetch_timeout: Option<serde_json::Value>,
    /// Higress `jwt-auth`: headers the token is read from, as names (the
    /// whole value) or `from_headers` entries.
    pub enable_headers: Option<Vec<RawEnableHeader>>,

    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClaimToHeader {
    pub claim: String,
    pub header: String,
    #[serde(rename = "override")]
    pub override_: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFromHeader {
    pub name: String,
    pub value_prefix: Option<String>,
}

/// Higress `jwt-auth` `remote_jwks`: `http://<service_host>/<path>` through
/// the cluster `outbound|<service_port>||<service_name>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemoteJwks {
    pub service_name: String,
    pub service_port: Option<u16>,
    pub service_host: Option<String>,
    pub path: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawEnableHeader {
    Name(String),
    Entry(RawFromHeader),
}

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
    pub claims_to_headers: Option<Vec<RawClaimToHeader>>,
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

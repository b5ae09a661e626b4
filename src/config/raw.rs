//! The configuration as users write it (Higress/MSE `oauth` key names).
//!
//! One struct serves the top level and every `_rules_` entry so the override
//! keys are spelled once; `compile` rejects keys used at the wrong level.
//! Unknown keys (a control plane's `_plugin_id_`, keys of a newer plugin
//! version, a typo) are collected, logged at warn and otherwise ignored, as
//! Higress plugins do: one stray key must not stop a gateway from loading.
//! `edge-auth-config --strict` reports them as errors.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Keys this version does not know, by name. Values are kept: a Higress
/// `oidc` plugin config is written flat at this level and is lifted into an
/// `oidc` block from here (see `oidc::lift_flat`).
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
    pub oidc: Option<super::oidc::RawOidc>,

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
    pub jwks_cache_duration: Option<super::oidc::Duration>,
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

//! The configuration as users write it (Higress/MSE `oauth` key names).
//!
//! One struct serves the top level and every `_rules_` entry so the override
//! keys are spelled once; `compile` rejects keys used at the wrong level.
//! Unknown keys are errors: a typo must not silently turn auth off.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
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

    // Top level only.
    pub global_auth: Option<bool>,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsumer {
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
}

//! Higress `oidc` plugin configs, written flat at a scope's level, lifted
//! into that scope's `oidc` block.

use super::error::ConfigError;
use super::raw::{RawOidc, RawScope};

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
pub fn lift_flat(scope: &mut RawScope, prefix: &str) -> Result<(), ConfigError> {
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

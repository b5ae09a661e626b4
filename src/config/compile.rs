//! Parsing the configuration JSON into a [`RawScope`], and compiling it into
//! the model requests read: the top-level scope (`scope`), each rule
//! (`rule`), then the lists derived from them (identity headers, unknown
//! keys). Every error is collected (`compile_all`); `compile` returns the
//! first, which is what the plugin logs.
//!
//! Every error names the offending field with its JSON path, e.g.
//! `consumers[1].client_id: duplicate client_id "abc"`. Secret values never
//! appear in an error message.

use std::rc::Rc;

use super::consumer::{compile_consumers, ConsumerDefaults};
use super::error::{ConfigError, Errors};
use super::higress_flat::lift_flat;
use super::model::{
    Config, Rule, Scope, DEFAULT_CLOCK_SKEW, DEFAULT_MAX_TOKEN_BYTES,
    DEFAULT_TOKEN_BODY_TIMEOUT_MS, DEFAULT_TOKEN_CACHE_BYTES, DEFAULT_TOKEN_CACHE_SIZE,
    MAX_TOKEN_CACHE_BYTES, MAX_TOKEN_CACHE_SIZE, TOKEN_BODY_TIMEOUT_RANGE_MS,
};
use super::raw::RawScope;
use super::rule::{compile_rule, reject_rule_only_keys};
use super::scope::compile_scope;

/// Parses the plugin configuration JSON. An empty configuration means all
/// defaults (which, with no consumers, denies every request: fail closed).
pub fn parse(json: &[u8]) -> Result<RawScope, ConfigError> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(RawScope::default());
    }
    // serde would also accept a JSON array as a struct; say what is expected.
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ConfigError::new(
            "",
            "the configuration must be a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let raw: RawScope = serde_path_to_error::deserialize(&mut de).map_err(serde_error)?;
    de.end().map_err(|e| {
        ConfigError::new(
            "",
            format!("not valid JSON: {}", strip_position(&e.to_string())),
        )
    })?;
    Ok(raw)
}

/// A serde error as a config error: its path, and a reason that never
/// echoes a secret.
pub(super) fn serde_error(err: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
    let field = err.path().to_string();
    let field = if field == "." { String::new() } else { field };
    let inner = err.into_inner();
    // serde echoes the offending value; for a secret that is a leak.
    let reason = if inner.is_syntax() || inner.is_eof() {
        format!("not valid JSON: {}", strip_position(&inner.to_string()))
    } else if field.ends_with("client_secret") {
        "invalid value, expected a non-empty string".to_string()
    } else {
        strip_position(&inner.to_string())
    };
    ConfigError::new(field, reason)
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message.get(..i).unwrap_or(message).to_string(),
        None => message.to_string(),
    }
}

/// Parses and compiles in one step: what `on_configure` calls.
pub fn compile_json(json: &[u8]) -> Result<Config, ConfigError> {
    let mut config = compile(parse(json)?)?;
    config.digest = <sha2::Sha256 as sha2::Digest>::digest(json).into();
    Ok(config)
}

pub fn compile(raw: RawScope) -> Result<Config, ConfigError> {
    compile_all(raw).map_err(first)
}

/// The first error: the one the plugin reports.
fn first(errors: Vec<ConfigError>) -> ConfigError {
    errors
        .into_iter()
        .next()
        .unwrap_or_else(|| ConfigError::new("", "invalid configuration"))
}

/// Compiles, collecting every error (each with its path) in the order the
/// compiler meets them; never an empty list.
pub fn compile_all(mut raw: RawScope) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Errors::default();
    errors.take(lift_flat(&mut raw, ""));
    for (i, rule) in raw.rules.iter_mut().flatten().enumerate() {
        errors.take(lift_flat(rule, &format!("_rules_[{i}].")));
    }
    let unknown_keys = unknown_keys(&raw);
    let mut warnings: Vec<String> = unknown_keys
        .iter()
        .map(|path| format!("{path}: unknown key, ignored"))
        .collect();
    let mut remote_sources = Vec::new();
    reject_rule_only_keys(&raw, &mut errors);
    let global_consumers = Rc::new(compile_consumers(
        raw.consumers.as_deref().unwrap_or(&[]),
        "consumers",
        &mut ConsumerDefaults {
            clock_skew: raw.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW),
            keep_token: raw.keep_token.unwrap_or(true),
            remote_sources: &mut remote_sources,
            warnings: &mut warnings,
        },
        &mut errors,
    ));
    let global = Rc::new(compile_scope(
        &raw,
        "",
        None,
        global_consumers,
        0,
        &mut remote_sources,
        &mut errors,
    ));

    let mut rules = Vec::new();
    for (i, raw_rule) in raw.rules.as_deref().unwrap_or(&[]).iter().enumerate() {
        let prefix = format!("_rules_[{i}].");
        let mut defaults = ConsumerDefaults {
            clock_skew: raw_rule.clock_skew_seconds.unwrap_or(global.clock_skew),
            keep_token: raw_rule.keep_token.unwrap_or(global.keep_token),
            remote_sources: &mut remote_sources,
            warnings: &mut warnings,
        };
        rules.push(compile_rule(
            raw_rule,
            &prefix,
            &global,
            &mut defaults,
            i + 1,
            &mut errors,
        ));
    }
    let max_token_bytes = match raw.max_token_bytes {
        Some(n) if n < 64 => {
            errors.push(ConfigError::new("max_token_bytes", "must be at least 64"));
            DEFAULT_MAX_TOKEN_BYTES
        }
        Some(n) => n,
        None => DEFAULT_MAX_TOKEN_BYTES,
    };
    let token_cache_size = raw.token_cache_size.unwrap_or(DEFAULT_TOKEN_CACHE_SIZE);
    if token_cache_size > MAX_TOKEN_CACHE_SIZE {
        errors.push(ConfigError::new(
            "token_cache_size",
            format!("must be at most {MAX_TOKEN_CACHE_SIZE}"),
        ));
    }
    let token_cache_bytes = raw.token_cache_bytes.unwrap_or(DEFAULT_TOKEN_CACHE_BYTES);
    if token_cache_bytes > MAX_TOKEN_CACHE_BYTES {
        errors.push(ConfigError::new(
            "token_cache_bytes",
            format!("must be at most {MAX_TOKEN_CACHE_BYTES}"),
        ));
    }
    let token_body_timeout_ms = raw
        .token_body_timeout_ms
        .unwrap_or(DEFAULT_TOKEN_BODY_TIMEOUT_MS);
    if !TOKEN_BODY_TIMEOUT_RANGE_MS.contains(&token_body_timeout_ms) {
        errors.push(ConfigError::new(
            "token_body_timeout_ms",
            format!(
                "must be between {} and {}",
                TOKEN_BODY_TIMEOUT_RANGE_MS.start(),
                TOKEN_BODY_TIMEOUT_RANGE_MS.end()
            ),
        ));
    }
    if errors.len() > 0 {
        return Err(errors.into_vec());
    }
    let identity_headers = identity_headers(&global, &rules);
    Ok(Config {
        global,
        rules,
        global_auth: raw.global_auth,
        max_token_bytes,
        digest: [0; 32],
        token_cache_size,
        token_cache_bytes,
        token_body_timeout_ms,
        remote_sources,
        identity_headers,
        warnings,
        unknown_keys,
    })
}

/// Every key the raw config carries that this version does not know, with
/// its path.
fn unknown_keys(raw: &RawScope) -> Vec<String> {
    fn scope(raw: &RawScope, prefix: &str, out: &mut Vec<String>) {
        out.extend(raw.unknown.keys().map(|k| format!("{prefix}{k}")));
        for (i, c) in raw.consumers.iter().flatten().enumerate() {
            out.extend(
                c.unknown
                    .keys()
                    .map(|k| format!("{prefix}consumers[{i}].{k}")),
            );
        }
    }
    let mut out = Vec::new();
    scope(raw, "", &mut out);
    for (i, rule) in raw.rules.iter().flatten().enumerate() {
        scope(rule, &format!("_rules_[{i}]."), &mut out);
    }
    out
}

fn identity_headers(global: &Scope, rules: &[Rule]) -> Vec<String> {
    let mut headers = vec![crate::headers::CONSUMER_HEADER.to_string()];
    let scopes = std::iter::once(global).chain(rules.iter().map(|r| r.scope.as_ref()));
    for scope in scopes {
        let from_claims = scope
            .consumers
            .jwt
            .iter()
            .flat_map(|c| c.claims_to_headers.iter().map(|h| h.header.clone()));
        let from_sso = scope.oidc.iter().flat_map(|o| o.config.identity_headers());
        for header in from_claims.chain(from_sso) {
            if !headers.contains(&header) {
                headers.push(header);
            }
        }
    }
    headers
}

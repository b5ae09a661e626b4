//! Compiling a `_rules_` entry: its selectors (all must match), its
//! overrides (a scope of its own), `allow` and `_disable_`; and the keys only
//! a rule may carry.

use std::rc::Rc;

use super::consumer::{compile_consumers, ConsumerDefaults};
use super::error::ConfigError;
use super::model::{AllowList, Matcher, Rule, Scope};
use super::patterns::{domain_pattern, service_pattern};
use super::raw::RawScope;
use super::scope::compile_scope;

pub(super) fn reject_rule_only_keys(raw: &RawScope) -> Result<(), ConfigError> {
    let present = [
        ("_match_route_", raw.match_route.is_some()),
        ("_match_route_prefix_", raw.match_route_prefix.is_some()),
        ("_match_domain_", raw.match_domain.is_some()),
        ("_match_service_", raw.match_service.is_some()),
        ("allow", raw.allow.is_some()),
        ("_disable_", raw.disable.is_some()),
    ];
    match present.iter().find(|(_, is_set)| *is_set) {
        Some((key, _)) => Err(ConfigError::new(
            *key,
            "only allowed inside a _rules_ entry",
        )),
        None => Ok(()),
    }
}

pub(super) fn compile_rule(
    raw: &RawScope,
    prefix: &str,
    global: &Rc<Scope>,
    defaults: &mut ConsumerDefaults<'_>,
    id: usize,
) -> Result<Rule, ConfigError> {
    let top_level_only = [
        ("global_auth", raw.global_auth.is_some()),
        ("max_token_bytes", raw.max_token_bytes.is_some()),
        ("token_cache_size", raw.token_cache_size.is_some()),
        ("token_cache_bytes", raw.token_cache_bytes.is_some()),
        ("token_body_timeout_ms", raw.token_body_timeout_ms.is_some()),
    ];
    if let Some((key, _)) = top_level_only.iter().find(|(_, set)| *set) {
        return Err(ConfigError::new(
            format!("{prefix}{key}"),
            "only allowed at the top level",
        ));
    }
    if raw.rules.is_some() {
        return Err(ConfigError::new(
            format!("{prefix}_rules_"),
            "rules cannot be nested",
        ));
    }
    let matchers = compile_matchers(raw, prefix)?;
    let consumers = match &raw.consumers {
        Some(list) => Rc::new(compile_consumers(
            list,
            &format!("{prefix}consumers"),
            defaults,
        )?),
        None => Rc::clone(&global.consumers),
    };
    let scope = compile_scope(
        raw,
        prefix,
        Some(global),
        consumers,
        id,
        defaults.remote_sources,
    )?;
    let disabled = raw.disable.unwrap_or(false);
    let allow = match &raw.allow {
        None => None,
        Some(_) if disabled => {
            return Err(ConfigError::new(
                format!("{prefix}allow"),
                "has no effect on a rule with _disable_: true",
            ))
        }
        Some(names) => {
            for (j, name) in names.iter().enumerate() {
                // With SSO the consumer name is a claim value (e.g. a
                // user's sub or email), not a configured consumer.
                if scope.oidc.is_none() && !scope.consumers.has_name(name) {
                    return Err(ConfigError::new(
                        format!("{prefix}allow[{j}]"),
                        format!("unknown consumer \"{name}\""),
                    ));
                }
            }
            Some(AllowList(names.clone()))
        }
    };
    Ok(Rule {
        matchers,
        disabled,
        allow,
        local_consumers: raw.consumers.is_some(),
        scope: Rc::new(scope),
    })
}

/// Every selector present in a rule; all of them must match.
fn compile_matchers(raw: &RawScope, prefix: &str) -> Result<Vec<Matcher>, ConfigError> {
    let candidates = [
        ("_match_route_", &raw.match_route),
        ("_match_route_prefix_", &raw.match_route_prefix),
        ("_match_domain_", &raw.match_domain),
        ("_match_service_", &raw.match_service),
    ];
    let mut matchers = Vec::new();
    for (key, values) in candidates {
        if let Some(values) = values {
            matchers.push(compile_matcher(key, values, prefix)?);
        }
    }
    if matchers.is_empty() {
        return Err(ConfigError::new(
            prefix.trim_end_matches('.'),
            "a rule needs at least one of _match_route_, _match_route_prefix_, _match_domain_, _match_service_",
        ));
    }
    Ok(matchers)
}

fn compile_matcher(key: &str, values: &[String], prefix: &str) -> Result<Matcher, ConfigError> {
    let field = format!("{prefix}{key}");
    if values.is_empty() {
        return Err(ConfigError::new(field, "must not be empty"));
    }
    if let Some(j) = values.iter().position(|v| v.is_empty()) {
        return Err(ConfigError::new(
            format!("{field}[{j}]"),
            "must not be empty",
        ));
    }
    Ok(match key {
        "_match_route_" => Matcher::Route(values.to_vec()),
        "_match_route_prefix_" => Matcher::RoutePrefix(values.to_vec()),
        "_match_domain_" => Matcher::Domain(values.iter().map(|d| domain_pattern(d)).collect()),
        _ => Matcher::Service(
            values
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    service_pattern(s).ok_or_else(|| {
                        ConfigError::new(format!("{field}[{j}]"), "expected fqdn or fqdn:port")
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

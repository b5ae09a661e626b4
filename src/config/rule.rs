//! Compiling a `_rules_` entry: its selectors (all must match), its
//! overrides (a scope of its own), `allow` and `_disable_`; and the keys only
//! a rule may carry.

use std::rc::Rc;

use super::consumer::{compile_consumers, ConsumerDefaults};
use super::error::{ConfigError, Errors};
use super::model::{AllowList, Matcher, Rule, Scope};
use super::patterns::{domain_pattern, service_pattern};
use super::raw::RawScope;
use super::scope::compile_scope;

pub(super) fn reject_rule_only_keys(raw: &RawScope, errors: &mut Errors) {
    let present = [
        ("_match_route_", raw.match_route.is_some()),
        ("_match_route_prefix_", raw.match_route_prefix.is_some()),
        ("_match_domain_", raw.match_domain.is_some()),
        ("_match_service_", raw.match_service.is_some()),
        ("allow", raw.allow.is_some()),
        ("_disable_", raw.disable.is_some()),
    ];
    for (key, _) in present.iter().filter(|(_, is_set)| *is_set) {
        errors.push(ConfigError::new(
            *key,
            "only allowed inside a _rules_ entry",
        ));
    }
}

pub(super) fn compile_rule(
    raw: &RawScope,
    prefix: &str,
    global: &Rc<Scope>,
    defaults: &mut ConsumerDefaults<'_>,
    id: usize,
    errors: &mut Errors,
) -> Rule {
    let top_level_only = [
        ("global_auth", raw.global_auth.is_some()),
        ("max_token_bytes", raw.max_token_bytes.is_some()),
        ("token_cache_size", raw.token_cache_size.is_some()),
        ("token_cache_bytes", raw.token_cache_bytes.is_some()),
        ("token_body_timeout_ms", raw.token_body_timeout_ms.is_some()),
    ];
    for (key, _) in top_level_only.iter().filter(|(_, set)| *set) {
        errors.push(ConfigError::new(
            format!("{prefix}{key}"),
            "only allowed at the top level",
        ));
    }
    if raw.rules.is_some() {
        errors.push(ConfigError::new(
            format!("{prefix}_rules_"),
            "rules cannot be nested",
        ));
    }
    let matchers = compile_matchers(raw, prefix, errors);
    // The list an `allow` entry names a consumer of.
    let consumer_list = match &raw.consumers {
        Some(_) => format!("{prefix}consumers"),
        None => "consumers".to_string(),
    };
    let consumers = match &raw.consumers {
        Some(list) => Rc::new(compile_consumers(list, &consumer_list, defaults, errors)),
        None => Rc::clone(&global.consumers),
    };
    let scope = compile_scope(
        raw,
        prefix,
        Some(global),
        consumers,
        id,
        defaults.remote_sources,
        errors,
    );
    let disabled = raw.disable.unwrap_or(false);
    let allow = match &raw.allow {
        None => None,
        Some(names) if disabled => {
            errors.push(ConfigError::new(
                format!("{prefix}allow"),
                "has no effect on a rule with _disable_: true",
            ));
            Some(AllowList(names.clone()))
        }
        Some(names) => {
            for (j, name) in names.iter().enumerate() {
                // With SSO the consumer name is a claim value (e.g. a
                // user's sub or email), not a configured consumer (an
                // `oidc` block with mistakes is no reason to say more).
                let sso = scope.oidc.is_some()
                    || errors.is_broken_oidc(prefix)
                    || (raw.oidc.is_none() && errors.is_broken_oidc(""));
                if !sso
                    && !scope.consumers.has_name(name)
                    && !errors.is_broken_consumer(&consumer_list, name)
                {
                    errors.push(ConfigError::new(
                        format!("{prefix}allow[{j}]"),
                        format!("unknown consumer \"{name}\""),
                    ));
                }
            }
            Some(AllowList(names.clone()))
        }
    };
    Rule {
        matchers,
        disabled,
        allow,
        local_consumers: raw.consumers.is_some(),
        scope: Rc::new(scope),
    }
}

/// Every selector present in a rule; all of them must match.
fn compile_matchers(raw: &RawScope, prefix: &str, errors: &mut Errors) -> Vec<Matcher> {
    let candidates = [
        ("_match_route_", &raw.match_route),
        ("_match_route_prefix_", &raw.match_route_prefix),
        ("_match_domain_", &raw.match_domain),
        ("_match_service_", &raw.match_service),
    ];
    if candidates.iter().all(|(_, values)| values.is_none()) {
        errors.push(ConfigError::new(
            prefix.trim_end_matches('.'),
            "a rule needs at least one of _match_route_, _match_route_prefix_, _match_domain_, _match_service_",
        ));
    }
    candidates
        .into_iter()
        .filter_map(|(key, values)| {
            let values = values.as_ref()?;
            errors.take(compile_matcher(key, values, prefix))
        })
        .collect()
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

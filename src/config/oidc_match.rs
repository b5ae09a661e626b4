//! Which requests of an `oidc` scope need a login: `match_type` and the
//! `match_list` paths (exact or prefix, canonical; no regex).

use super::error::ConfigError;
use super::oidc::{MatchRule, MatchType, PathMatch};
use super::patterns::{canonical, domain_pattern};
use super::raw::RawOidc;

pub(super) fn match_type(
    raw: &RawOidc,
    at: &dyn Fn(&str) -> String,
) -> Result<MatchType, ConfigError> {
    Ok(match raw.match_type.as_deref() {
        None | Some("whitelist") => MatchType::Whitelist,
        Some("blacklist") => MatchType::Blacklist,
        Some(other) => {
            return Err(ConfigError::new(
                at("match_type"),
                format!("\"{other}\" is not whitelist or blacklist"),
            ))
        }
    })
}

/// The paths `match_type` applies to.
pub(super) fn match_list(
    raw: &RawOidc,
    at: &dyn Fn(&str) -> String,
) -> Result<Vec<MatchRule>, ConfigError> {
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
            .map(domain_pattern);
        match_list.push(MatchRule { domain, path });
    }
    Ok(match_list)
}

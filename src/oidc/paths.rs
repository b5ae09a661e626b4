//! Which requests need a login: an `oidc` block's `match_type` and
//! `match_list`, read the way that asks for authentication whenever servers
//! could read a path differently.

use crate::canonical::{without_parameters, CanonicalPath};
use crate::config::oidc::{MatchType, OidcConfig, PathMatch};
use crate::rules::domain_matches;

/// Does the `match_type`/`match_list` pair ask for authentication here?
///
/// `host` and `path` are canonical. Where servers could read the path
/// differently, the reading that asks for authentication wins:
/// - a path with no canonical form (`%2F`, `\`, `%00`, `..;`) always needs it;
/// - a blacklist entry matches case-insensitively, also the path without
///   `;parameters` (`/admin;x` is `/admin` to Tomcat) and without a
///   trailing slash;
/// - a whitelist entry matches case-sensitively, and must match the path
///   both with and without `;parameters`.
pub fn needs_auth(config: &OidcConfig, host: &str, path: &CanonicalPath) -> bool {
    let Some(path) = path.as_safe() else {
        return true;
    };
    let lenient = without_parameters(path);
    let listed = |p: &str, any_case: bool| {
        config.match_list.iter().any(|rule| {
            rule.domain.as_ref().is_none_or(|d| domain_matches(d, host))
                && path_matches(&rule.path, p, any_case)
        })
    };
    match config.match_type {
        MatchType::Whitelist => !(listed(path, false) && listed(&lenient, false)),
        MatchType::Blacklist => [path, &*lenient].iter().any(|p| {
            listed(p, true)
                || p.strip_suffix('/')
                    .is_some_and(|trimmed| !trimmed.is_empty() && listed(trimmed, true))
        }),
    }
}

pub(super) fn path_matches(rule: &PathMatch, path: &str, any_case: bool) -> bool {
    let same = |a: &[u8], b: &[u8]| {
        if any_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    match rule {
        PathMatch::Exact(p) => same(path.as_bytes(), p.as_bytes()),
        PathMatch::Prefix(p) => path
            .as_bytes()
            .get(..p.len())
            .is_some_and(|head| same(head, p.as_bytes())),
    }
}

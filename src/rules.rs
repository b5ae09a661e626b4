//! Higress `_rules_` selection and the `global_auth` x `allow` decision.
//!
//! Pure functions of the compiled config and a few request facts. Facts are
//! read lazily: a config without route rules never asks Envoy for the route.

use crate::config::{AllowList, Config, DomainPattern, Matcher, Rule, ServicePattern};

/// The request attributes rules match on. Implementations fetch each one at
/// most once, only when asked.
pub trait Facts {
    /// The canonical host ([`crate::canonical::canonical_host`]): lower
    /// case, no port, no trailing dot.
    fn canonical_host(&mut self) -> &str;
    /// Envoy's `route_name` attribute.
    fn route_name(&mut self) -> &str;
    /// Envoy's `cluster_name` attribute (`outbound|port|subset|fqdn`).
    fn cluster_name(&mut self) -> &str;
}

/// What the applying configuration asks of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement<'c> {
    /// The matched rule has `_disable_`: the plugin does nothing but strip
    /// identity headers a client may have forged.
    Disabled,
    /// No configuration applies, or `global_auth: false` says this request
    /// needs no token.
    Open,
    /// A valid token is needed; when `allow` is set its consumer must be listed.
    Authenticate { allow: Option<&'c AllowList> },
}

/// The first rule that matches, in config order.
pub fn select<'c>(config: &'c Config, facts: &mut impl Facts) -> Option<&'c Rule> {
    config
        .rules
        .iter()
        .find(|rule| rule.matchers.iter().all(|matcher| matches(matcher, facts)))
}

/// The C++ RouteRuleMatcher's auth semantics (Higress/MSE `oauth`), with one
/// deliberate difference: a rule with its own consumers is enforced even
/// under `global_auth: false` (the C++ plugin skips it, which fails open).
///
/// | request | `global_auth` true | false | absent |
/// |---|---|---|---|
/// | no `_rules_` at all | token | open | token |
/// | matches no rule | token | open | open |
/// | rule with `allow` | token + allow | token + allow | token + allow |
/// | rule with own `consumers` | token (its consumers) | token (its consumers) | token (its consumers) |
/// | rule with neither | token | open | token |
/// | rule with `_disable_` | nothing | nothing | nothing |
pub fn requirement<'c>(config: &Config, rule: Option<&'c Rule>) -> Requirement<'c> {
    let authenticate = Requirement::Authenticate { allow: None };
    match rule {
        Some(r) if r.disabled => Requirement::Disabled,
        Some(Rule {
            allow: Some(allow), ..
        }) => Requirement::Authenticate { allow: Some(allow) },
        Some(r) if r.local_consumers => authenticate,
        Some(_) if config.global_auth == Some(false) => Requirement::Open,
        Some(_) => authenticate,
        None if config.rules.is_empty() && config.global_auth != Some(false) => authenticate,
        None if config.global_auth == Some(true) => authenticate,
        None => Requirement::Open,
    }
}

/// Whether a configuration applies to this request at all, so that a path
/// ending in `auth_path` is the token endpoint: a matched rule that is not
/// `_disable_`, an unmatched request under `global_auth: true`, or a config
/// without rules. Elsewhere such a path belongs to the upstream (Spring
/// Authorization Server and others serve `/oauth2/token` themselves).
pub fn serves_token_endpoint(config: &Config, rule: Option<&Rule>) -> bool {
    match rule {
        Some(r) => !r.disabled,
        None => config.rules.is_empty() || config.global_auth == Some(true),
    }
}

fn matches(matcher: &Matcher, facts: &mut impl Facts) -> bool {
    match matcher {
        Matcher::Route(routes) => {
            let route = facts.route_name();
            routes.iter().any(|r| r == route)
        }
        Matcher::RoutePrefix(prefixes) => {
            let route = facts.route_name();
            !route.is_empty() && prefixes.iter().any(|p| route.starts_with(p.as_str()))
        }
        Matcher::Domain(patterns) => {
            let host = facts.canonical_host();
            patterns.iter().any(|p| domain_matches(p, host))
        }
        Matcher::Service(patterns) => {
            let cluster = facts.cluster_name();
            patterns.iter().any(|p| service_matches(p, cluster))
        }
    }
}

/// `example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`; `[::1]` stays.
/// Decisions read the canonical host instead; this is for redirect targets.
pub fn strip_port(authority: &str) -> &str {
    match authority.rfind(':') {
        Some(colon) if authority.rfind(']').is_none_or(|bracket| bracket < colon) => {
            authority.get(..colon).unwrap_or(authority)
        }
        _ => authority,
    }
}

/// Patterns are stored lower-case without a trailing dot; `host` is a
/// canonical host (compared case-insensitively all the same).
pub fn domain_matches(pattern: &DomainPattern, host: &str) -> bool {
    let host = host.as_bytes();
    match pattern {
        DomainPattern::Exact(d) => host.eq_ignore_ascii_case(d.as_bytes()),
        DomainPattern::Suffix(s) => host
            .len()
            .checked_sub(s.len())
            .and_then(|start| host.get(start..))
            .is_some_and(|tail| tail.eq_ignore_ascii_case(s.as_bytes())),
        DomainPattern::Prefix(p) => host
            .get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p.as_bytes())),
    }
}

/// Cluster names look like `outbound|8080||echo.default.svc.cluster.local`;
/// a pattern is `fqdn` or `fqdn:port`.
pub fn service_matches(pattern: &ServicePattern, cluster: &str) -> bool {
    let mut parts = cluster.split('|');
    let (Some(_direction), Some(port), Some(_subset), Some(fqdn), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    fqdn == pattern.fqdn && pattern.port.as_deref().is_none_or(|p| p == port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile_json;

    struct StaticFacts {
        host: String,
        route: String,
        cluster: String,
    }

    impl Facts for StaticFacts {
        fn canonical_host(&mut self) -> &str {
            &self.host
        }
        fn route_name(&mut self) -> &str {
            &self.route
        }
        fn cluster_name(&mut self) -> &str {
            &self.cluster
        }
    }

    fn facts(authority: &str, route: &str, cluster: &str) -> StaticFacts {
        StaticFacts {
            host: crate::canonical::canonical_host(authority).unwrap_or_default(),
            route: route.into(),
            cluster: cluster.into(),
        }
    }

    const CONSUMERS: &str = r#""consumers":[
        {"name":"c1","client_id":"id1","client_secret":"s1"},
        {"name":"c2","client_id":"id2","client_secret":"s2"}]"#;

    fn config(extra: &str) -> Config {
        let json = format!("{{{CONSUMERS}{extra}}}");
        compile_json(json.as_bytes()).unwrap()
    }

    fn dom(p: &str) -> DomainPattern {
        let cfg = config(&format!(r#","_rules_":[{{"_match_domain_":["{p}"]}}]"#));
        match &cfg.rules[0].matchers[0] {
            Matcher::Domain(d) => d[0].clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn domain_patterns() {
        let table = [
            ("*.example.com", "api.example.com", true),
            ("*.example.com", "a.b.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "evil-example.com", false),
            ("*.example.com", "API.EXAMPLE.COM", true),
            ("api*", "api.example.com", true),
            ("api*", "apix", true),
            ("api*", "www.api.com", false),
            ("Example.com", "example.com", true),
            ("example.com", "example.com.evil.net", false),
            ("example.com", "xexample.com", false),
            ("example.com", "", false),
            // Patterns lose one trailing dot, like hosts do.
            ("example.com.", "example.com", true),
            ("*.example.com.", "api.example.com", true),
            ("api.*", "api.example.com", true),
        ];
        for (pattern, host, expected) in table {
            assert_eq!(
                domain_matches(&dom(pattern), host),
                expected,
                "{pattern} vs {host}"
            );
        }
    }

    #[test]
    fn port_stripping() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port(""), "");
    }

    #[test]
    fn service_patterns() {
        let fqdn = ServicePattern {
            fqdn: "echo.default.svc.cluster.local".into(),
            port: None,
        };
        let with_port = ServicePattern {
            port: Some("8080".into()),
            ..fqdn.clone()
        };
        let table = [
            (&fqdn, "outbound|8080||echo.default.svc.cluster.local", true),
            (
                &fqdn,
                "outbound|9090|v1|echo.default.svc.cluster.local",
                true,
            ),
            (
                &with_port,
                "outbound|8080||echo.default.svc.cluster.local",
                true,
            ),
            (
                &with_port,
                "outbound|9090||echo.default.svc.cluster.local",
                false,
            ),
            (
                &fqdn,
                "outbound|8080||other.default.svc.cluster.local",
                false,
            ),
            (&fqdn, "echo.default.svc.cluster.local", false),
            (&fqdn, "a|b|c|echo.default.svc.cluster.local|e", false),
            (&fqdn, "", false),
        ];
        for (pattern, cluster, expected) in table {
            assert_eq!(service_matches(pattern, cluster), expected, "{cluster}");
        }
    }

    #[test]
    fn first_matching_rule_wins_across_kinds() {
        let cfg = config(
            r#","_rules_":[
            {"_match_route_":["r1"],"allow":["c1"]},
            {"_match_route_prefix_":["api-"],"allow":["c2"]},
            {"_match_domain_":["*.example.com"],"allow":["c1","c2"]},
            {"_match_service_":["echo.ns:8080"],"_disable_":true}]"#,
        );
        let pick = |f: &mut StaticFacts| {
            select(&cfg, f).map(|r| cfg.rules.iter().position(|x| std::ptr::eq(x, r)).unwrap())
        };
        assert_eq!(pick(&mut facts("a.example.com", "r1", "")), Some(0));
        assert_eq!(pick(&mut facts("a.example.com", "api-x", "")), Some(1));
        assert_eq!(pick(&mut facts("a.example.com:443", "other", "")), Some(2));
        assert_eq!(
            pick(&mut facts("x", "other", "outbound|8080||echo.ns")),
            Some(3)
        );
        assert_eq!(pick(&mut facts("x", "other", "outbound|80||echo.ns")), None);
        assert_eq!(pick(&mut facts("x", "", "")), None);
    }

    /// The global_auth x rule-kind matrix of `requirement`'s doc table (the
    /// e2e suite, test_global_auth.py, mirrors it in a real Envoy).
    #[test]
    fn global_auth_matrix() {
        let rules = r#","_rules_":[{"_match_route_":["guarded"],"allow":["c1"]},
                                   {"_match_route_":["local"],"consumers":[
                                       {"name":"c3","client_id":"id3","client_secret":"s3"}]},
                                   {"_match_route_":["plain"],"issuer":"x"},
                                   {"_match_route_":["off"],"_disable_":true}]"#;
        // (route, [true, false, absent])
        let expected = [
            ("guarded", ["allow", "allow", "allow"]),
            ("local", ["auth", "auth", "auth"]),
            ("plain", ["auth", "open", "auth"]),
            ("off", ["disabled", "disabled", "disabled"]),
            ("none", ["auth", "open", "open"]),
        ];
        let modes = [Some(true), Some(false), None];
        for (route, outcomes) in expected {
            for (global_auth, want) in modes.iter().zip(outcomes) {
                let ga = global_auth.map_or(String::new(), |b| format!(r#","global_auth":{b}"#));
                let cfg = config(&format!("{ga}{rules}"));
                let rule = select(&cfg, &mut facts("h", route, ""));
                let got = match requirement(&cfg, rule) {
                    Requirement::Disabled => "disabled",
                    Requirement::Open => "open",
                    Requirement::Authenticate { allow: Some(_) } => "allow",
                    Requirement::Authenticate { allow: None } => "auth",
                };
                assert_eq!(got, want, "global_auth={global_auth:?} route={route}");
            }
        }
        // No _rules_ at all: every request, unless global_auth is false.
        for (global_auth, want) in modes.iter().zip(["auth", "open", "auth"]) {
            let ga = global_auth.map_or(String::new(), |b| format!(r#","global_auth":{b}"#));
            let cfg = config(&ga);
            let got = match requirement(&cfg, None) {
                Requirement::Open => "open",
                _ => "auth",
            };
            assert_eq!(got, want, "no rules, global_auth={global_auth:?}");
        }
    }

    /// The route-only config Higress writes when the plugin is enabled on
    /// one route: other routes pass untouched and have no token endpoint.
    #[test]
    fn route_only_config_leaves_other_routes_alone() {
        let cfg = compile_json(
            br#"{"_rules_":[{"_match_route_":["r"],"consumers":[
                {"name":"c1","client_id":"id1","client_secret":"s1"}]}]}"#,
        )
        .unwrap();
        let other = select(&cfg, &mut facts("h", "other", ""));
        assert!(other.is_none());
        assert_eq!(requirement(&cfg, other), Requirement::Open);
        assert!(!serves_token_endpoint(&cfg, other));
        let mine = select(&cfg, &mut facts("h", "r", ""));
        assert_eq!(
            requirement(&cfg, mine),
            Requirement::Authenticate { allow: None }
        );
        assert!(serves_token_endpoint(&cfg, mine));
    }

    #[test]
    fn token_endpoint_only_where_a_config_applies() {
        let rules = r#","_rules_":[{"_match_route_":["r"],"allow":["c1"]},
                                   {"_match_route_":["off"],"_disable_":true}]"#;
        for (global_auth, unmatched) in [(Some(true), true), (Some(false), false), (None, false)] {
            let ga = global_auth.map_or(String::new(), |b| format!(r#","global_auth":{b}"#));
            let cfg = config(&format!("{ga}{rules}"));
            let pick = |route: &str| select(&cfg, &mut facts("h", route, ""));
            assert!(serves_token_endpoint(&cfg, pick("r")));
            assert!(!serves_token_endpoint(&cfg, pick("off")));
            assert_eq!(serves_token_endpoint(&cfg, pick("x")), unmatched);
        }
        assert!(serves_token_endpoint(
            &config(r#","global_auth":false"#),
            None
        ));
    }

    /// Several selectors in one rule: all must match.
    #[test]
    fn every_selector_of_a_rule_must_match() {
        let cfg = config(
            r#","_rules_":[{"_match_route_":["r"],"_match_domain_":["api.example.com"],
                            "_match_service_":["echo.ns:8080"],"allow":["c1"]}]"#,
        );
        let cluster = "outbound|8080||echo.ns";
        assert!(select(&cfg, &mut facts("api.example.com", "r", cluster)).is_some());
        assert!(select(&cfg, &mut facts("other.example.com", "r", cluster)).is_none());
        assert!(select(&cfg, &mut facts("api.example.com", "x", cluster)).is_none());
        assert!(select(
            &cfg,
            &mut facts("api.example.com", "r", "outbound|80||echo.ns")
        )
        .is_none());
    }

    #[test]
    fn allow_list_membership() {
        let cfg = config(r#","_rules_":[{"_match_route_":["r"],"allow":["c2"]}]"#);
        let rule = select(&cfg, &mut facts("h", "r", "")).unwrap();
        let allow = rule.allow.as_ref().unwrap();
        assert!(allow.contains("c2"));
        assert!(!allow.contains("c1"));
        assert!(!allow.contains("C2"));
    }
}

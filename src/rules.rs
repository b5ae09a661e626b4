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
    /// No token needed (`global_auth` false, or absent with allow rules).
    Open,
    /// A valid token is needed; when `allow` is set its consumer must be listed.
    Authenticate { allow: Option<&'c AllowList> },
}

/// The first rule that matches, in config order.
pub fn select<'c>(config: &'c Config, facts: &mut impl Facts) -> Option<&'c Rule> {
    config
        .rules
        .iter()
        .find(|rule| matches(&rule.matcher, facts))
}

/// Higress `global_auth` semantics: a rule with `allow` is always enforced;
/// everything else needs a token only when auth is on by default.
pub fn requirement<'c>(config: &Config, rule: Option<&'c Rule>) -> Requirement<'c> {
    match rule {
        Some(r) if r.disabled => Requirement::Disabled,
        Some(Rule {
            allow: Some(allow), ..
        }) => Requirement::Authenticate { allow: Some(allow) },
        _ if config.auth_by_default => Requirement::Authenticate { allow: None },
        _ => Requirement::Open,
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
        match &cfg.rules[0].matcher {
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

    /// The global_auth x allow matrix, as Higress defines it.
    #[test]
    fn global_auth_matrix() {
        let with_allow = r#","_rules_":[{"_match_route_":["guarded"],"allow":["c1"]},
                                          {"_match_route_":["plain"],"issuer":"x"},
                                          {"_match_route_":["off"],"_disable_":true}]"#;
        let without_allow = r#","_rules_":[{"_match_route_":["plain"],"issuer":"x"}]"#;
        let cases = [
            // (global_auth, rules, route, expected)
            (Some(true), with_allow, "guarded", "allow"),
            (Some(true), with_allow, "plain", "auth"),
            (Some(true), with_allow, "none", "auth"),
            (Some(true), with_allow, "off", "disabled"),
            (Some(false), with_allow, "guarded", "allow"),
            (Some(false), with_allow, "plain", "open"),
            (Some(false), with_allow, "none", "open"),
            (Some(false), with_allow, "off", "disabled"),
            (None, with_allow, "guarded", "allow"),
            (None, with_allow, "plain", "open"),
            (None, with_allow, "none", "open"),
            (None, without_allow, "plain", "auth"),
            (None, without_allow, "none", "auth"),
            (Some(false), without_allow, "none", "open"),
            (None, "", "none", "auth"),
        ];
        for (global_auth, rules, route, expected) in cases {
            let ga = global_auth.map_or(String::new(), |b| format!(r#","global_auth":{b}"#));
            let cfg = config(&format!("{ga}{rules}"));
            let rule = select(&cfg, &mut facts("h", route, ""));
            let got = match requirement(&cfg, rule) {
                Requirement::Disabled => "disabled",
                Requirement::Open => "open",
                Requirement::Authenticate { allow: Some(_) } => "allow",
                Requirement::Authenticate { allow: None } => "auth",
            };
            assert_eq!(got, expected, "global_auth={global_auth:?} route={route}");
        }
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

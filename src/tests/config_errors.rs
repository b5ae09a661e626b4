//! Every configuration error names its field; good configs get the MSE
//! defaults.

use crate::config::{compile_json, DomainPattern, Matcher};

fn error_of(json: &str) -> String {
    compile_json(json.as_bytes()).unwrap_err().to_string()
}

const C1: &str = r#"{"name":"c1","client_id":"id1","client_secret":"s1"}"#;

#[test]
fn defaults_match_the_mse_plugin() {
    let cfg = compile_json(format!(r#"{{"consumers":[{C1}]}}"#).as_bytes()).unwrap();
    let g = &cfg.global;
    assert_eq!(g.issuer, "Higress-Gateway");
    assert_eq!(g.auth_path, "/oauth2/token");
    assert!(g.global_credentials);
    assert_eq!(g.auth_header, "authorization");
    assert_eq!(g.token_ttl, 7200);
    assert_eq!(g.clock_skew, 60);
    assert!(g.keep_token);
    assert_eq!(cfg.global_auth, None);
    assert!(cfg.rules.is_empty());
    // "s1" is a weak HS256 key: a warning naming the field, not the value.
    assert_eq!(cfg.warnings.len(), 1);
    assert!(cfg.warnings[0].starts_with("consumers[0].client_secret: shorter than 32"));
    assert!(!cfg.warnings[0].contains("s1\""));
}

#[test]
fn empty_config_fails_closed() {
    use crate::rules::{requirement, Requirement};
    let cfg = compile_json(b"").unwrap();
    assert_eq!(
        requirement(&cfg, None),
        Requirement::Authenticate { allow: None }
    );
    assert_eq!(cfg.global.consumers.iter().count(), 0);
    let cfg = compile_json(b"  {} ").unwrap();
    assert_eq!(
        requirement(&cfg, None),
        Requirement::Authenticate { allow: None }
    );
}

#[test]
fn keys_and_aliases() {
    let cfg = compile_json(
        format!(
            r#"{{"consumers":[{C1}],"issuer":"me","auth_path":"token","global_credentials":false,
            "auth_header":"X-Token","token_ttl":5,"clock_skew_seconds":0,"keep_token":false,"global_auth":false}}"#
        )
        .as_bytes(),
    )
    .unwrap();
    let g = &cfg.global;
    assert_eq!(g.issuer, "me");
    assert_eq!(g.auth_path, "/token");
    assert!(!g.global_credentials);
    assert_eq!(g.auth_header, "x-token");
    assert_eq!((g.token_ttl, g.clock_skew, g.keep_token), (5, 0, false));
    assert_eq!(cfg.global_auth, Some(false));
}

#[test]
fn rule_overrides_inherit_the_rest() {
    let cfg = compile_json(
        format!(
            r#"{{"consumers":[{C1}],"issuer":"top","token_ttl":100,
            "_rules_":[{{"_match_route_":["r"],"token_ttl":5,"allow":["c1"]}},
                       {{"_match_domain_":["*.Example.com","api*","Exact.com"],"consumers":[{{"name":"x","client_id":"idx","client_secret":"sx"}}],"allow":["x"]}}]}}"#
        )
        .as_bytes(),
    )
    .unwrap();
    let r0 = &cfg.rules[0].scope;
    assert_eq!((r0.issuer.as_str(), r0.token_ttl), ("top", 5));
    assert!(r0.consumers.by_client_id("id1").is_some());
    let r1 = &cfg.rules[1];
    assert!(r1.scope.consumers.by_client_id("id1").is_none());
    assert!(r1.scope.consumers.by_client_id("idx").is_some());
    assert!(!cfg.rules[0].local_consumers);
    assert!(r1.local_consumers);
    match &r1.matchers[0] {
        Matcher::Domain(d) => assert_eq!(
            d,
            &vec![
                DomainPattern::Suffix(".example.com".into()),
                DomainPattern::Prefix("api".into()),
                DomainPattern::Exact("exact.com".into())
            ]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_error_names_its_field() {
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "the configuration must be a JSON object"),
        ("{nope}".into(), "not valid JSON: key must be a string"),
        ("{\"issuer\":".into(), "not valid JSON: EOF"),
        ("[]".into(), "the configuration must be a JSON object"),
        (r#"{"consumers":[{C1}]} x"#.replace("{C1}", C1), "not valid JSON: trailing characters"),
        (r#"{"issuer":1}"#.into(), "issuer: invalid type: integer"),
        (r#"{"token_ttl":-1}"#.into(), "token_ttl: invalid value"),
        (r#"{"token_ttl":0}"#.into(), "token_ttl: must be at least 1 second"),
        (r#"{"keep_token":"yes"}"#.into(), "keep_token: invalid type"),
        (r#"{"consumers":{}}"#.into(), "consumers: invalid type: map"),
        (r#"{"consumers":[{"name":"a","client_id":"b"}]}"#.into(), "consumers[0].client_secret: required with client_id"),
        (r#"{"consumers":[{"name":"a","client_secret":"s"}]}"#.into(), "consumers[0].client_id: required with client_secret"),
        (r#"{"consumers":[{"name":"a","client_id":"b","client_secret":""}]}"#.into(), "consumers[0].client_secret: must not be empty"),
        (r#"{"consumers":[{"name":"","client_id":"b","client_secret":"s"}]}"#.into(), "consumers[0].name: must not be empty"),
        (r#"{"consumers":[{"name":"a","client_id":"","client_secret":"s"}]}"#.into(), "consumers[0].client_id: must not be empty"),
        (format!(r#"{{"consumers":[{C1},{{"name":"c1","client_id":"id2","client_secret":"s"}}]}}"#), "consumers[1].name: duplicate consumer name \"c1\""),
        (format!(r#"{{"consumers":[{C1},{{"name":"c2","client_id":"id1","client_secret":"s"}}]}}"#), "consumers[1].client_id: duplicate client_id \"id1\""),
        (r#"{"auth_path":""}"#.into(), "auth_path: must name a path"),
        (r#"{"auth_path":"/t?x=1"}"#.into(), "auth_path: must be a plain path"),
        (r#"{"auth_header_name":"bad header"}"#.into(), "auth_header_name: not a valid HTTP header name"),
        (r#"{"auth_header_name":"a","auth_header":"b"}"#.into(), "auth_header: conflicts with auth_header_name"),
        (r#"{"issuer":""}"#.into(), "issuer: must not be empty"),
        (r#"{"allow":["c1"]}"#.into(), "allow: only allowed inside a _rules_ entry"),
        (r#"{"_match_route_":["r"]}"#.into(), "_match_route_: only allowed inside a _rules_ entry"),
        (r#"{"_rules_":[{"allow":[]}]}"#.into(), "_rules_[0]: a rule needs at least one of"),
        (r#"{"_rules_":[{"_match_route_":["a"],"_match_domain_":[]}]}"#.into(), "_rules_[0]._match_domain_: must not be empty"),
        (r#"{"_rules_":[{"_match_route_":[]}]}"#.into(), "_rules_[0]._match_route_: must not be empty"),
        (r#"{"_rules_":[{"_match_route_":["a",""]}]}"#.into(), "_rules_[0]._match_route_[1]: must not be empty"),
        (r#"{"_rules_":[{"_match_service_":["svc:port"]}]}"#.into(), "_rules_[0]._match_service_[0]: expected fqdn or fqdn:port"),
        (r#"{"_rules_":[{"_match_route_":["a"],"allow":["ghost"]}]}"#.into(), "_rules_[0].allow[0]: unknown consumer \"ghost\""),
        (r#"{"_rules_":[{"_match_route_":["a"],"global_auth":true}]}"#.into(), "_rules_[0].global_auth: only allowed at the top level"),
        (r#"{"_rules_":[{"_match_route_":["a"],"_rules_":[]}]}"#.into(), "_rules_[0]._rules_: rules cannot be nested"),
        (format!(r#"{{"consumers":[{C1}],"_rules_":[{{"_match_route_":["a"],"_disable_":true,"allow":["c1"]}}]}}"#), "_rules_[0].allow: has no effect"),
        (r#"{"_rules_":[{"_match_route_":["a"],"token_ttl":0}]}"#.into(), "_rules_[0].token_ttl: must be at least 1 second"),
        (r#"{"_rules_":[{"_match_route_":["a"],"consumers":[{"name":"a","client_id":"b","client_secret":""}]}]}"#.into(), "_rules_[0].consumers[0].client_secret: must not be empty"),
    ];
    for (json, expected) in cases {
        let err = error_of(&json);
        assert!(
            err.starts_with(expected) || err.contains(expected),
            "config {json}\n  got: {err}\n  want: {expected}"
        );
        assert!(!err.contains(" at line "), "position noise in {err}");
    }
}

#[test]
fn secrets_never_appear_in_errors() {
    let err = error_of(r#"{"consumers":[{"name":"a","client_id":"b","client_secret":12345678}]}"#);
    assert_eq!(
        err,
        "consumers[0].client_secret: invalid value, expected a non-empty string"
    );
    assert!(!err.contains("12345678"));
}

/// Keys a control plane adds (`_plugin_id_`), keys of newer versions and
/// typos are warned about with their path and otherwise ignored, as Higress
/// plugins do; `edge-auth-config --strict` reports them as errors.
#[test]
fn unknown_keys_warn_with_their_path() {
    let cfg = compile_json(
        format!(
            r#"{{"_plugin_id_":"p1","unknown_key":1,"consumers":[{C1},{{"name":"a","client_id":"b","client_secret":"s","x":1}}],
            "_rules_":[{{"_match_route_":["a"],"allow":["r"],"bogus":true,"consumers":[{{"name":"r","client_id":"rb","client_secret":"rs","y":[]}}]}}]}}"#
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        cfg.unknown_keys,
        [
            "_plugin_id_",
            "unknown_key",
            "consumers[1].x",
            "_rules_[0].bogus",
            "_rules_[0].consumers[0].y"
        ]
    );
    for path in &cfg.unknown_keys {
        let line = format!("{path}: unknown key, ignored");
        assert!(cfg.warnings.contains(&line), "{line} in {:?}", cfg.warnings);
    }
    // A known key with a wrong type is still an error.
    assert_eq!(
        error_of(r#"{"_plugin_id_":"p","token_ttl":"x"}"#),
        "token_ttl: invalid type: string \"x\", expected u64"
    );
}

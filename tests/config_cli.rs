//! The config checker accepts the shipped manifests and names the field of
//! a broken configuration, listing every error.

use std::process::Command;

/// Exit status and stdout.
fn run(args: &[&str]) -> (i32, String) {
    let (code, out, _) = run_with_stderr(args);
    (code, out)
}

/// Exit status, stdout and stderr.
fn run_with_stderr(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edge-auth-config"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_manifests_are_valid() {
    let (code, out) = run(&[
        "deploy/higress-wasmplugin.yaml",
        "deploy/istio-wasmplugin.yaml",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches(": OK").count(), 2, "{out}");
}

#[test]
fn higress_match_rules_become_rules() {
    let (code, out) = run(&["--print", "deploy/higress-wasmplugin.yaml"]);
    assert_eq!(code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
    assert_eq!(json["_rules_"][0]["_match_route_"][0], "default/orders");
    assert_eq!(json["_rules_"][1]["_match_domain_"][0], "*.example.com");
    assert_eq!(json["global_auth"], false);
}

#[test]
fn errors_name_the_field_and_fail() {
    let dir = std::env::temp_dir().join(format!("edge-auth-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "consumers:\n- name: a\n  client_id: x\n  client_secret: ''\n_rules_:\n- _match_route_: [r]\n  allow: [ghost, a]\n",
    )
    .unwrap();
    let (code, out) = run(&[bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    // Every error, each with its path; the plugin's own (first) one first.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].ends_with("consumers[0].client_secret: must not be empty"),
        "{out}"
    );
    assert!(
        lines[1].ends_with("_rules_[0].allow[0]: unknown consumer \"ghost\""),
        "{out}"
    );
}

#[test]
fn three_independent_errors_are_listed_in_one_run() {
    // One in the top level, one in a consumer, one in a rule: the plugin
    // stops at the first; the checker names all three, once each.
    let bad = temp_file(
        "three-errors.json",
        r#"{"token_ttl": 0,
            "consumers": [{"name": "a", "client_id": "x", "client_secret": ""}],
            "_rules_": [{"_match_route_": ["r"], "allow": ["ghost"]}]}"#,
    );
    let (code, out) = run(&[bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].ends_with("consumers[0].client_secret: must not be empty"),
        "{out}"
    );
    assert!(
        lines[1].ends_with("token_ttl: must be at least 1 second"),
        "{out}"
    );
    assert!(
        lines[2].ends_with("_rules_[0].allow[0]: unknown consumer \"ghost\""),
        "{out}"
    );
    assert!(!out.contains("more errors may follow"), "{out}");
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-auth-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// As the Higress controller (ingress_config.go): a matchRule naming
/// ingresses, services and domains becomes one rule with every selector; a
/// rule with configDisable is dropped (not turned into `_disable_`).
#[test]
fn higress_conversion_matches_the_controller() {
    let manifest = temp_file(
        "higress.yaml",
        r#"apiVersion: extensions.higress.io/v1alpha1
kind: WasmPlugin
metadata: {name: edge-auth, namespace: higress-system}
spec:
  defaultConfig:
    consumers:
    - {name: c1, client_id: id1, client_secret: s1-0123456789abcdef0123456789abcdef}
    global_auth: false
  matchRules:
  - ingress: [default/orders]
    domain: [api.example.com]
    service: [orders.default.svc.cluster.local]
    config: {allow: [c1]}
  - ingress: [default/off]
    configDisable: true
    config: {allow: [c1]}
  - domain: [www.example.com]
    ingress: []
    config: {allow: [c1]}
"#,
    );
    let (code, out) = run(&["--print", manifest.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
    let rules = json["_rules_"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{json}");
    assert_eq!(rules[0]["_match_route_"][0], "default/orders");
    assert_eq!(rules[0]["_match_domain_"][0], "api.example.com");
    assert_eq!(
        rules[0]["_match_service_"][0],
        "orders.default.svc.cluster.local"
    );
    assert_eq!(rules[1]["_match_domain_"][0], "www.example.com");
    assert!(rules[1].get("_match_route_").is_none(), "{json}");
    assert!(rules.iter().all(|r| r.get("_disable_").is_none()), "{json}");
    assert_eq!(json["global_auth"], false);
}

#[test]
fn higress_default_config_disable() {
    let only_rules = temp_file(
        "default-off.yaml",
        "spec:\n  defaultConfigDisable: true\n  defaultConfig: {global_auth: true}\n  matchRules:\n  - ingress: [r]\n    config:\n      consumers: [{name: c1, client_id: id1, client_secret: s1-0123456789abcdef0123456789abcdef}]\n",
    );
    let (code, out) = run(&["--print", only_rules.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
    assert!(json.get("global_auth").is_none(), "{json}");
    assert_eq!(json["_rules_"][0]["_match_route_"][0], "r");

    let nothing = temp_file(
        "all-off.yaml",
        "spec:\n  defaultConfigDisable: true\n  matchRules:\n  - ingress: [r]\n    configDisable: true\n",
    );
    let (code, out) = run(&[nothing.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the plugin is not applied"), "{out}");

    let no_selector = temp_file("no-selector.yaml", "spec:\n  matchRules:\n  - config: {}\n");
    let (code, out) = run(&[no_selector.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("spec.matchRules[0]: invalid match rule has no match condition"),
        "{out}"
    );
}

/// Unknown keys load with a warning; --strict makes them errors.
#[test]
fn strict_reports_unknown_keys() {
    let config = temp_file(
        "unknown.json",
        r#"{"_plugin_id_":"x","consumers":[{"name":"c1","client_id":"id1","client_secret":"s1-0123456789abcdef0123456789abcdef","colour":"red"}]}"#,
    );
    let (code, out) = run(&[config.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: _plugin_id_: unknown key, ignored"),
        "{out}"
    );
    assert!(
        out.contains("warning: consumers[0].colour: unknown key, ignored"),
        "{out}"
    );
    let (code, out) = run(&["--strict", config.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("_plugin_id_: unknown key (--strict)"), "{out}");
    assert!(
        out.contains("consumers[0].colour: unknown key (--strict)"),
        "{out}"
    );
}

/// Exit status 2 (usage or read errors) is not 1 (an invalid configuration):
/// a script can tell "fix the config" from "fix the command".
#[test]
fn usage_and_read_errors_exit_2() {
    for args in [&[][..], &["--print"][..], &["--help"][..], &["-h"][..]] {
        let (code, out, err) = run_with_stderr(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            err.starts_with("usage: edge-auth-config"),
            "{args:?}: {err}"
        );
        assert_eq!(out, "", "{args:?}");
    }
    let missing = "no/such/edge-auth-config.yaml";
    let (code, out, err) = run_with_stderr(&["deploy/higress-wasmplugin.yaml", missing]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.starts_with(&format!("{missing}: cannot read: ")),
        "{err}"
    );
    // Control: the same command without the missing file exits 0.
    let (code, out, _) = run_with_stderr(&["deploy/higress-wasmplugin.yaml"]);
    assert_eq!((code, out.matches(": OK").count()), (0, 1), "{out}");
}

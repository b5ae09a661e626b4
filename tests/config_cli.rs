//! The config checker accepts the shipped manifests and names the field of
//! a broken configuration, listing every error.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edge-auth-config"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
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

/// Exit status 2 (usage or read errors) is not 1 (an invalid configuration):
/// a script can tell "fix the config" from "fix the command".
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

//! The compiler lists every error of a configuration (what
//! `edge-auth-config` prints), the plugin's own first. Moved from the CLI,
//! whose prune-and-retry loop these tests covered before the compiler
//! collected errors itself.

use serde_json::{json, Value};

use crate::config::{compile_json, compile_json_all};

fn errors(json: Value) -> (Vec<String>, bool) {
    let text = json.to_string();
    let Err(first) = compile_json(text.as_bytes()) else {
        assert!(compile_json_all(text.as_bytes()).is_ok(), "{text}");
        return (vec![], true);
    };
    let plugin_says = first.to_string();
    let all = compile_json_all(text.as_bytes()).expect_err("the plugin refused it");
    let list: Vec<String> = all.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        list.first(),
        Some(&plugin_says),
        "the plugin's error comes first"
    );
    (list, all.complete)
}

#[test]
fn independent_mistakes_are_all_listed_once() {
    let (all, complete) = errors(json!({
        "consumers": [
            {"name": "a", "client_id": "x", "client_secret": ""},
            {"name": "b", "client_id": "y", "client_secret": "s"}
        ],
        "token_ttl": "long",
        "issuer": 7,
        "_rules_": [
            {"_match_route_": ["r"], "allow": ["a", "ghost"]},
            {"_match_route_": ["q"], "alow": ["b"]},
            {"_match_domain_": [], "allow": ["b"]}
        ]
    }));
    assert!(complete, "{all:#?}");
    // "alow" is an unknown key: a warning (an error with --strict).
    assert_eq!(all.len(), 5, "{all:#?}");
    assert!(all.iter().any(|e| e.starts_with("issuer")), "{all:#?}");
    assert!(
        all.iter()
            .any(|e| e.starts_with("_rules_[2]._match_domain_")),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .any(|e| e.starts_with("consumers[0].client_secret")),
        "{all:#?}"
    );
    assert!(all.iter().any(|e| e.starts_with("token_ttl")), "{all:#?}");
    assert!(all.iter().any(|e| e.contains("ghost")), "{all:#?}");
}

#[test]
fn a_broken_consumer_does_not_make_its_allow_lists_wrong() {
    let (all, _) = errors(json!({
        "consumers": [{"name": "a", "client_id": "x"}],
        "_rules_": [{"_match_route_": ["r"], "allow": ["a"]}]
    }));
    assert_eq!(all.len(), 1, "{all:#?}");
}

#[test]
fn a_duplicate_behind_a_broken_consumer_is_reported() {
    let (all, complete) = errors(json!({
        "consumers": [
            {"name": "a", "client_id": "x", "client_secret": ""},
            {"name": "b", "client_id": "x", "client_secret": "s"}
        ]
    }));
    assert!(complete, "{all:#?}");
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all[1].starts_with("consumers[1]"), "{all:#?}");
}

#[test]
fn indices_are_the_ones_in_the_file() {
    let (all, complete) = errors(json!({
        "consumers": [{"name": "a", "client_id": "x", "client_secret": "s"}],
        "_rules_": [
            {"_match_route_": [""], "allow": ["a"]},
            {"_match_route_": ["r"], "allow": ["ghost", "a", "phantom"]}
        ]
    }));
    assert!(complete, "{all:#?}");
    assert!(
        all.iter()
            .any(|e| e.starts_with("_rules_[0]._match_route_")),
        "{all:#?}"
    );
    assert!(
        all.iter().any(|e| e.starts_with("_rules_[1].allow[0]:")),
        "{all:#?}"
    );
    assert!(
        all.iter().any(|e| e.starts_with("_rules_[1].allow[2]:")),
        "{all:#?}"
    );
    assert_eq!(all.len(), 3, "{all:#?}");
}

#[test]
fn mistakes_in_an_oidc_block_are_all_listed() {
    let (all, _) = errors(json!({
        "oidc": {
            "issuer": "https://idp.example.com",
            "cluster": "idp",
            "client_id": "app",
            "client_secret": "s",
            "cookie_secret": "short",
            "scope": "email",
            "match_type": "sometimes"
        },
        "_rules_": [{"_match_route_": ["r"], "allow": ["alice"]}]
    }));
    assert_eq!(
        all,
        [
            "oidc.scope: must include openid",
            "oidc.cookie_secret: needs 16, 24 or at least 32 bytes of key material (raw or base64)",
            "oidc.match_type: \"sometimes\" is not whitelist or blacklist",
        ],
        "{all:#?}"
    );
}

#[test]
fn an_unreadable_list_element_says_the_list_may_be_incomplete() {
    let (all, complete) = errors(json!({
        "consumers": [{"client_id": "x", "client_secret": "s"}],
        "token_ttl": 0
    }));
    assert!(!complete, "{all:#?}");
    assert_eq!(all.len(), 1, "{all:#?}");
}

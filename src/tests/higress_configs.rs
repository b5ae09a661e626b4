//! Configs of the plugins edge-auth replaces, loaded unchanged: the Higress
//! `oidc` plugin written flat, Higress `jwt-auth` consumers, Huawei APIG
//! OIDC policy fields. Each refused key is named in the error.

use serde_json::{json, Value};

use crate::config::oidc::{MatchType, OidcConfig, PassToken, PathMatch};
use crate::config::{compile_json, Config, DomainPattern};
use crate::cookie::jar::SameSite;

/// The Auth0 example of the Higress oidc plugin's README, values as there.
fn higress_auth0() -> Value {
    json!({
        "redirect_url": "http://foo.bar.com/oauth2/callback",
        "oidc_issuer_url": "https://dev-o43xb1mz7ya7ach4.us.auth0.com/",
        "client_id": "XXXXXXXXXXXXXXXX",
        "client_secret": "XXXXXXXXXXXXXXXX",
        "scope": "openid email offline_access",
        "cookie_secret": "nqavJrGvRmQxWwGNptLdyUVKcBNZ2b18Guc1n_8DCfY=",
        "service_name": "auth.dns",
        "service_port": 443,
        "match_type": "whitelist",
        "match_list": [{"match_rule_domain": "*.bar.com", "match_rule_path": "/foo", "match_rule_type": "prefix"}]
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

fn load(cfg: &Value) -> Result<Config, String> {
    compile_json(cfg.to_string().as_bytes()).map_err(|e| e.to_string())
}

fn sso(cfg: &Config) -> &OidcConfig {
    &cfg.global.oidc.as_ref().unwrap().config
}

#[test]
fn higress_oidc_readme_auth0_example_loads_flat() {
    let cfg = load(&higress_auth0()).unwrap();
    let o = sso(&cfg);
    assert_eq!(o.issuer, "https://dev-o43xb1mz7ya7ach4.us.auth0.com/");
    assert_eq!(o.discovery_path, "/.well-known/openid-configuration");
    assert_eq!(o.cluster, "outbound|443||auth.dns");
    assert_eq!(o.discovery_authority, "dev-o43xb1mz7ya7ach4.us.auth0.com");
    assert_eq!(o.scope, "openid email offline_access");
    assert_eq!(o.callback_path, "/oauth2/callback");
    // The plugin's defaults where ours differ: 168h, no early refresh.
    assert_eq!(o.cookie_expire, Some(168 * 3600));
    assert_eq!(o.cookie_refresh, None);
    assert_eq!(o.pass_token, PassToken::IdToken);
    assert_eq!(o.match_type, MatchType::Whitelist);
    assert_eq!(o.match_list.len(), 1);
    assert_eq!(o.match_list[0].path, PathMatch::Prefix("/foo".into()));
    assert_eq!(
        o.match_list[0].domain,
        Some(DomainPattern::Suffix(".bar.com".into()))
    );
    // The flat keys are not reported as unknown.
    assert!(cfg.unknown_keys.is_empty(), "{:?}", cfg.unknown_keys);
}

#[test]
fn higress_oidc_readme_keycloak_example_uses_service_host() {
    let cfg = load(&json!({
        "redirect_url": "http://foo.bar.com/oauth2/callback",
        "oidc_issuer_url": "http://127.0.0.1:9090/realms/myrealm",
        "client_id": "XXXXXXXXXXXXXXXX",
        "client_secret": "XXXXXXXXXXXXXXXX",
        "scope": "openid email",
        "cookie_secret": "nqavJrGvRmQxWwGNptLdyUVKcBNZ2b18Guc1n_8DCfY=",
        "service_name": "keycloak.static",
        "service_port": 80,
        "service_host": "127.0.0.1:9090",
        "match_type": "blacklist",
        "match_list": [{"match_rule_domain": "*.bar.com", "match_rule_path": "/headers", "match_rule_type": "prefix"}]
    }))
    .unwrap();
    let o = sso(&cfg);
    assert_eq!(o.cluster, "outbound|80||keycloak.static");
    assert_eq!(o.discovery_authority, "127.0.0.1:9090");
    assert_eq!(
        o.discovery_path,
        "/realms/myrealm/.well-known/openid-configuration"
    );
    assert_eq!(o.match_type, MatchType::Blacklist);
}

#[test]
fn higress_oidc_cookie_and_token_keys_map_onto_the_oidc_block() {
    let cfg = load(&with(
        higress_auth0(),
        json!({
            "cookie_name": "_oauth2_proxy",
            "cookie_domains": ".bar.com",
            "cookie_path": "/app",
            "cookie_expire": "1h30m",
            "cookie_refresh": "30m",
            "cookie_secure": true,
            "cookie_httponly": true,
            "cookie_samesite": "",
            "cookie_csrf_per_request": true,
            "cookie_csrf_expire": "15m",
            "pass_authorization_header": false,
            "pass_access_token": true,
            "oidc_verifier_request_timeout": 2000,
            "provider": "oidc"
        }),
    ))
    .unwrap();
    let o = sso(&cfg);
    assert_eq!(o.cookie_name, "_oauth2_proxy");
    assert_eq!(o.cookie.domain.as_deref(), Some(".bar.com"));
    assert_eq!(o.cookie.path, "/app");
    assert_eq!(o.cookie_expire, Some(5400));
    assert_eq!(o.cookie_refresh, Some(1800));
    assert!(o.cookie.secure);
    // "" sends no attribute in Higress: browsers then apply Lax.
    assert_eq!(o.cookie.same_site, SameSite::Lax);
    assert_eq!(o.pass_token, PassToken::None);
    assert!(o.set_access_token_header);
    assert_eq!(o.call_timeout_ms, 2000);
    // Discovery and key fetches use it (the Higress plugin's meaning).
    assert_eq!(cfg.global.oidc.as_ref().unwrap().provider.timeout_ms, 2000);
    // An IP address (the host itself) is kept.
    let cfg = load(&with(
        higress_auth0(),
        json!({"cookie_domains": "127.0.0.1"}),
    ))
    .unwrap();
    assert_eq!(sso(&cfg).cookie.domain.as_deref(), Some("127.0.0.1"));
    // cookie_domains as a one-element list.
    let cfg = load(&with(
        higress_auth0(),
        json!({"cookie_domains": ["Bar.COM"]}),
    ))
    .unwrap();
    assert_eq!(sso(&cfg).cookie.domain.as_deref(), Some("bar.com"));
}

#[test]
fn higress_oidc_unsafe_or_unsupported_keys_are_refused_by_name() {
    let cases = [
        (
            json!({"cookie_samesite": "none", "cookie_secure": false}),
            "cookie_secure: must not be false with cookie_samesite none",
        ),
        (
            json!({"cookie_httponly": false}),
            "cookie_httponly: must not be false",
        ),
        (
            json!({"match_list": [{"match_rule_path": "/api/.*", "match_rule_type": "regex"}]}),
            "match_list[0].match_rule_type: regex is not supported",
        ),
        (
            json!({"provider": "github"}),
            "provider: \"github\" is not supported",
        ),
        (
            json!({"provider": "aliyun"}),
            "provider: \"aliyun\" is not supported",
        ),
        (
            json!({"cookie_domains": [".a.com", ".b.com"]}),
            "cookie_domains: only one domain is supported",
        ),
        (
            json!({"cookie_domains": ".bar.com; Secure"}),
            "cookie_domains: must be a host name",
        ),
        (
            json!({"cookie_domains": "127.0.0.1; Secure"}),
            "cookie_domains: must be a host name",
        ),
        (
            json!({"cookie_domains": ".127.0.0.1"}),
            "cookie_domains: must be a host name",
        ),
        (
            json!({"oidc_verifier_request_timeout": 0}),
            "oidc_verifier_request_timeout: must be between 1 and 60000",
        ),
        (
            json!({"cookie_csrf_expire": "0s"}),
            "cookie_csrf_expire: must be above 0",
        ),
        (json!({"cookie_expire": "7 days"}), "cookie_expire: "),
        (
            json!({"client_secret": ""}),
            "client_secret: must not be empty",
        ),
        (json!({"oidc_issuer_url": "ftp://x"}), "oidc_issuer_url: "),
        (json!({"scope": "email"}), "scope: must include openid"),
        (
            json!({"oidc": {"issuer": "http://x", "client_id": "a", "client_secret": "b", "cluster": "c", "cookie_secret": "nqavJrGvRmQxWwGNptLdyUVKcBNZ2b18Guc1n_8DCfY="}}),
            "oidc_issuer_url: a flat Higress oidc config and an oidc block cannot be combined",
        ),
    ];
    for (extra, expected) in cases {
        let err = load(&with(higress_auth0(), extra.clone())).unwrap_err();
        assert!(err.starts_with(expected), "{extra}: {err}");
        assert!(!err.contains("XXXXXXXXXXXXXXXX"), "{err}");
    }
}

/// A flat config whose `oidc_issuer_url` is missing (or misspelt) is an
/// error, not a config without single sign-on.
#[test]
fn higress_oidc_flat_without_its_issuer_is_refused() {
    let mut cfg = higress_auth0();
    let issuer = cfg
        .as_object_mut()
        .unwrap()
        .remove("oidc_issuer_url")
        .unwrap();
    cfg["oidc_issuer"] = issuer;
    let err = load(&cfg).unwrap_err();
    assert_eq!(err, "oidc_issuer_url: required");
    let err = load(&json!({"cookie_secret": "nqavJrGvRmQxWwGNptLdyUVKcBNZ2b18Guc1n_8DCfY="}))
        .unwrap_err();
    assert!(err.starts_with("missing field `client_id`"), "{err}");
}

#[test]
fn higress_oidc_flat_in_a_rule_and_its_unknown_keys_warn() {
    let cfg = load(&json!({
        "_rules_": [with(higress_auth0(), json!({
            "_match_domain_": ["foo.bar.com"],
            "validate_service_name": "api.dns"
        }))]
    }))
    .unwrap();
    assert!(cfg.global.oidc.is_none());
    let o = &cfg.rules[0].scope.oidc.as_ref().unwrap().config;
    assert_eq!(o.client_id, "XXXXXXXXXXXXXXXX");
    assert_eq!(cfg.unknown_keys, vec!["_rules_[0].validate_service_name"]);
    // A flat rule's errors name the rule.
    let err = load(&json!({"_rules_": [with(higress_auth0(), json!({
        "_match_domain_": ["foo.bar.com"], "cookie_httponly": false}))]}))
    .unwrap_err();
    assert!(err.starts_with("_rules_[0].cookie_httponly: "), "{err}");
}

#[test]
fn cookie_secret_of_16_24_or_32_bytes_as_oauth2_proxy_accepts() {
    use base64::Engine;
    let b64 = |n: usize| base64::engine::general_purpose::URL_SAFE.encode(vec![7u8; n]);
    for secret in [
        "0123456789abcdef".to_string(),
        "0123456789abcdef01234567".to_string(),
        b64(16),
        b64(24),
        b64(32),
    ] {
        load(&with(higress_auth0(), json!({"cookie_secret": secret}))).unwrap();
    }
    for secret in [
        "0123456789abcde".to_string(),
        "0123456789abcdef0123".to_string(),
        b64(20),
    ] {
        let err = load(&with(higress_auth0(), json!({"cookie_secret": secret}))).unwrap_err();
        assert_eq!(
            err,
            "cookie_secret: needs 16, 24 or at least 32 bytes of key material (raw or base64)"
        );
    }
}

fn jwt_config(consumers: Value) -> Value {
    json!({"consumers": consumers})
}

fn remote_consumer(extra: Value) -> Value {
    with(
        json!({"name": "consumer1", "issuer": "https://issuer.example/",
               "remote_jwks": {"service_name": "jwks.dns", "service_port": 8443,
                               "service_host": "jwks.example.com", "path": "/.well-known/jwks.json"}}),
        extra,
    )
}

#[test]
fn higress_jwt_auth_remote_jwks_maps_onto_a_remote_key_source() {
    use crate::config::KeySource;
    use crate::keys::remote::KeyLocation;
    let cfg = load(&jwt_config(json!([remote_consumer(json!({
        "jwks_cache_duration": "30m",
        "jwks_fetch_timeout": 2500,
        "enable_headers": ["x-jwt", {"name": "Authorization", "value_prefix": "Bearer "}]
    }))])))
    .unwrap();
    let consumers = &cfg.global.consumers;
    let consumer = &consumers.jwt[0];
    let KeySource::Remote(source) = &consumer.keys else {
        panic!("remote keys expected")
    };
    assert_eq!(source.cluster, "outbound|8443||jwks.dns");
    assert_eq!(
        source.location,
        KeyLocation::Jwks {
            authority: "jwks.example.com".into(),
            path: "/.well-known/jwks.json".into()
        }
    );
    assert_eq!(source.refresh_seconds, 1800);
    assert_eq!(source.timeout_ms, 2500);
    assert_eq!(
        consumer.locations,
        vec![
            crate::config::TokenLocation::Header {
                name: "x-jwt".into(),
                prefix: String::new()
            },
            crate::config::TokenLocation::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into()
            },
        ]
    );
    // Without service_host the service name is the authority; Go
    // durations for the timeout.
    let cfg = load(&jwt_config(json!([{"name": "c", "issuer": "i",
        "remote_jwks": {"service_name": "keys.default.svc.cluster.local", "path": "/jwks"},
        "jwks_fetch_timeout": "3s"}])))
    .unwrap();
    let KeySource::Remote(source) = &cfg.global.consumers.jwt[0].keys else {
        panic!("remote keys expected")
    };
    assert_eq!(
        source.cluster,
        "outbound|80||keys.default.svc.cluster.local"
    );
    assert_eq!(source.timeout_ms, 3000);
    assert_eq!(source.refresh_seconds, 600);
}

#[test]
fn higress_jwt_auth_bad_remote_jwks_settings_are_named() {
    let cases = [
        (json!({"jwks_cache_duration": "5s"}), "consumers[0].jwks_cache_duration: must be at least 10 seconds"),
        (json!({"jwks_fetch_timeout": 0}), "consumers[0].jwks_fetch_timeout: must be between 1 and 60000 milliseconds"),
        (json!({"jwks_fetch_timeout": "2m"}), "consumers[0].jwks_fetch_timeout: must be between 1 and 60000 milliseconds"),
        (json!({"jwks_fetch_timeout": 100, "jwks_timeout_ms": 100}), "consumers[0].jwks_fetch_timeout: conflicts with jwks_timeout_ms"),
        (json!({"cluster": "x"}), "consumers[0].cluster: conflicts with remote_jwks"),
        (json!({"jwks_uri": "http://x/jwks"}), "consumers[0].remote_jwks: a consumer takes one of jwks, jwks_uri, oidc_issuer, remote_jwks"),
        (json!({"remote_jwks": {"service_name": "a|b", "path": "/j"}}), "consumers[0].remote_jwks.service_name: must be a service name"),
        (json!({"remote_jwks": {"service_name": "a", "path": "j"}}), "consumers[0].remote_jwks.path: must start with /"),
        (json!({"enable_headers": ["bad header"]}), "consumers[0].enable_headers[0].name: not a valid HTTP header name"),
        (json!({"enable_headers": ["x"], "from_headers": [{"name": "y"}]}), "consumers[0].enable_headers: conflicts with from_headers"),
    ];
    for (extra, expected) in cases {
        let err = load(&jwt_config(json!([remote_consumer(extra.clone())]))).unwrap_err();
        assert!(err.starts_with(expected), "{extra}: {err}");
    }
}

#[test]
fn higress_jwt_auth_consumers_that_do_not_compile_are_skipped_with_a_warning() {
    let cfg = load(&jwt_config(json!([
        remote_consumer(json!({})),
        {"name": "broken", "issuer": "i", "jwks": "{not json"},
    ])))
    .unwrap();
    assert_eq!(cfg.global.consumers.jwt.len(), 1);
    assert_eq!(cfg.global.consumers.jwt[0].name, "consumer1");
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.starts_with("consumers[1].jwks: ")
                && w.ends_with("; this consumer is skipped")),
        "{:?}",
        cfg.warnings
    );
    // The skipped consumer is not a name rules may allow.
    let err = load(&json!({"consumers": [remote_consumer(json!({})), {"name": "broken", "issuer": "i", "jwks": "{"}],
        "_rules_": [{"_match_route_": ["r"], "allow": ["broken"]}]}))
    .unwrap_err();
    assert!(err.contains("unknown consumer \"broken\""), "{err}");
    // Nothing valid left: the config is refused with the first error.
    let err = load(&jwt_config(
        json!([{"name": "broken", "issuer": "i", "jwks": "{"}]),
    ))
    .unwrap_err();
    assert!(err.starts_with("consumers[0].jwks: "), "{err}");
}

/// A Huawei APIG OIDC policy as an `oidc` block.
fn apig(extra: Value) -> Value {
    json!({"oidc": with(json!({
        "discovery": "https://idp.example.com/realms/shop/.well-known/openid-configuration",
        "client_id": "apig", "client_secret": "s3cret", "cluster": "idp",
        "cookie_secret": "nqavJrGvRmQxWwGNptLdyUVKcBNZ2b18Guc1n_8DCfY="
    }), extra)})
}

#[test]
fn apig_oidc_policy_fields_map_onto_the_oidc_block() {
    let cfg = load(&apig(json!({
        "set_access_token_header_enabled": true,
        "set_userinfo_header_enabled": true,
        "jwt_cache_enabled": true,
        "jwks_enabled": true,
        "slient_renew_access_token_enabled": true,
        "redirect_after_logout_uri": "/bye",
        "auth_header_name": "Authorization"
    })))
    .unwrap();
    let o = sso(&cfg);
    // OIDC Discovery §4: the issuer is the discovery URL without its suffix.
    assert_eq!(o.issuer, "https://idp.example.com/realms/shop");
    assert_eq!(
        o.discovery_path,
        "/realms/shop/.well-known/openid-configuration"
    );
    assert_eq!(o.pass_token, PassToken::AccessToken);
    assert!(o.set_userinfo_header);
    assert_eq!(o.post_logout_redirect_uri.as_deref(), Some("/bye"));
}

#[test]
fn apig_oidc_policy_fields_that_weaken_checks_are_refused() {
    let cases = [
        (json!({"discovery": "https://idp.example.com/discovery"}), "oidc.issuer: required when discovery does not end in /.well-known/openid-configuration"),
        (json!({"jwks_enabled": false}), "oidc.jwks_enabled: ID tokens are verified against the IdP's JWKS"),
        (json!({"public_key": "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"}), "oidc.public_key: ID tokens are verified against the IdP's JWKS"),
        (json!({"jwt_cache_enabled": false}), "oidc.jwt_cache_enabled: verified tokens are always cached"),
        (json!({"auth_header_name": "X-Token"}), "oidc.auth_header_name: bearer tokens of an oidc block are read from Authorization"),
        (json!({"set_access_token_header_enabled": true, "pass_authorization_header": false}), "oidc.set_access_token_header_enabled: conflicts with pass_authorization_header"),
    ];
    for (extra, expected) in cases {
        let err = load(&apig(extra.clone())).unwrap_err();
        assert!(err.starts_with(expected), "{extra}: {err}");
    }
}

#[test]
fn consumer_names_sent_in_x_mse_consumer_must_be_printable_ascii() {
    for name in ["张三", "caf\u{e9}", "a\tb", " lead", "trail ", "a\u{7f}"] {
        for consumer in [
            json!({"name": name, "client_id": "id", "client_secret": crate::tests::SECRET1}),
            remote_consumer(json!({"name": name})),
        ] {
            let err = load(&jwt_config(json!([consumer]))).unwrap_err();
            assert!(
                err.starts_with("consumers[0].name: must be printable ASCII"),
                "{name:?}: {err}"
            );
        }
    }
    for name in ["consumer1", "12345678-xxxx-xxxx", "team a", "a@b.c"] {
        load(&jwt_config(json!([remote_consumer(json!({"name": name}))]))).unwrap();
    }
}

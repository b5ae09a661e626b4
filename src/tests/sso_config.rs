//! The `oidc` block's URLs, redirect domains and `claims_to_headers` are
//! checked when the configuration loads, each error naming its field.

use serde_json::json;

use crate::config::oidc::RedirectUrl;
use crate::config::{compile_json, Config, ConfigError};

const IDP: &str = "http://idp.test";
const COOKIE_SECRET: &str = "cookie-secret-0123456789abcdef0123456789";

fn compile_with(extra: serde_json::Value) -> Result<Config, ConfigError> {
    let mut oidc = json!({"issuer": IDP, "client_id": "g", "client_secret": "s",
        "cluster": "idp", "cookie_secret": COOKIE_SECRET});
    for (k, v) in extra.as_object().unwrap() {
        oidc[k] = v.clone();
    }
    compile_json(json!({"oidc": oidc}).to_string().as_bytes())
}

fn error(extra: serde_json::Value) -> String {
    compile_with(extra).unwrap_err().to_string()
}

fn sso(cfg: &Config) -> &crate::config::oidc::OidcConfig {
    &cfg.global.oidc.as_ref().unwrap().config
}

#[test]
fn claims_to_headers_cannot_write_reserved_headers() {
    for header in [
        "x-mse-consumer",
        "X-MSE-CONSUMER",
        "x_mse_consumer",
        "X-Mse_Consumer",
        "authorization",
        "Cookie",
        "host",
        "transfer-encoding",
        "content-length",
        "connection",
        "upgrade",
        "x-envoy-original-path",
    ] {
        let err = error(json!({"claims_to_headers": [
            {"claim": "email", "header": "x-user-email"},
            {"claim": "sub", "header": header}]}));
        assert_eq!(
            err,
            format!(
                "oidc.claims_to_headers[1].header: \"{}\" cannot be set from a claim",
                header.to_ascii_lowercase()
            )
        );
    }
    for header in [":authority", ":path", "x user", ""] {
        let err = error(json!({"claims_to_headers": [{"claim": "sub", "header": header}]}));
        assert_eq!(
            err,
            "oidc.claims_to_headers[0].header: not a valid HTTP header name"
        );
    }
    let err = error(json!({"claims_to_headers": [{"claim": "", "header": "x-user"}]}));
    assert_eq!(err, "oidc.claims_to_headers[0].claim: must not be empty");
    // Positive control: the same block with an ordinary header loads.
    let cfg = compile_with(
        json!({"claims_to_headers": [{"claim": "sub", "header": "X-User-Sub", "override": false}]}),
    )
    .unwrap();
    let headers = &sso(&cfg).claims_to_headers;
    assert_eq!(headers[0].header, "x-user-sub");
    assert!(!headers[0].replace);
}

#[test]
fn claims_cannot_write_the_configured_auth_header() {
    let sso_block = json!({"issuer": IDP, "client_id": "g", "client_secret": "s", "cluster": "idp",
        "cookie_secret": COOKIE_SECRET, "claims_to_headers": [{"claim": "sub", "header": "x-gw_token"}]});
    let err = compile_json(
        json!({"auth_header_name": "X-Gw-Token", "oidc": sso_block})
            .to_string()
            .as_bytes(),
    )
    .unwrap_err();
    assert_eq!(err.field, "oidc.claims_to_headers[0].header");
    // A rule that moves the auth header under inherited claims is named.
    let err = compile_json(
        json!({"oidc": sso_block, "_rules_": [{"_match_route_": ["r"], "auth_header": "x-gw-token"}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap_err();
    assert_eq!(err.field, "_rules_[0].auth_header");
    // JWT consumers follow the same rule.
    let jwt = json!({"name": "j", "issuer": "i", "jwks_uri": "http://idp.test/jwks", "cluster": "idp",
        "claims_to_headers": [{"claim": "sub", "header": "x-gw-token"}]});
    let err = compile_json(
        json!({"auth_header": "x-gw-token", "consumers": [jwt]})
            .to_string()
            .as_bytes(),
    )
    .unwrap_err();
    assert_eq!(err.field, "consumers[0].claims_to_headers[0].header");
    assert!(compile_json(json!({"consumers": [jwt]}).to_string().as_bytes()).is_ok());
}

#[test]
fn urls_are_parsed_when_the_config_loads() {
    let cases = [
        (json!({"issuer": "idp.test"}), "oidc.issuer: must be an http:// or https:// URL"),
        (json!({"issuer": "https://user@idp.test"}), "oidc.issuer: must not contain user info (user@host)"),
        (json!({"discovery": "https:///idp.test/.well-known/openid-configuration"}), "oidc.discovery: must name a host after the scheme"),
        (json!({"discovery": "http://idp.test:99999/x"}), "oidc.discovery: is not a valid URL"),
        (json!({"redirect_url": "https://gw.test\\cb"}), "oidc.redirect_url: must be a path or an http(s) URL: must not contain spaces, control characters or backslashes"),
        (json!({"redirect_url": "gw.test/cb"}), "oidc.redirect_url: must be a path or an http(s) URL: must be an http:// or https:// URL"),
        (json!({"end_session_endpoint": "javascript:alert(1)"}), "oidc.end_session_endpoint: must be an http:// or https:// URL"),
        (json!({"post_logout_redirect_uri": "//evil.test/"}), "oidc.post_logout_redirect_uri: must be a path starting with a single /"),
        (json!({"post_logout_redirect_uri": "https://evil.test@gw.test/"}), "oidc.post_logout_redirect_uri: must be a path or an http(s) URL: must not contain user info"),
        (json!({"redirect_after_logout_uri": "/a b"}), "oidc.redirect_after_logout_uri: must be a path starting with a single /"),
        (json!({"allowed_redirect_domains": ["example.com", "https://x.test"]}), "oidc.allowed_redirect_domains[1]: must be a host name"),
        (json!({"allowed_redirect_domains": ["ex ample.com"]}), "oidc.allowed_redirect_domains[0]: must be a host name"),
        (json!({"allowed_redirect_domains": ["."]}), "oidc.allowed_redirect_domains[0]: must be a host name"),
        (json!({"allowed_redirect_domains": ["b\u{fc}cher.example"]}), "oidc.allowed_redirect_domains[0]: must be a host name"),
        (json!({"allowed_redirect_domains": ["B\u{fc}cher.example"]}), "oidc.allowed_redirect_domains[0]: must be a host name"),
        (json!({"allowed_redirect_domains": ["evil%2ecom"]}), "oidc.allowed_redirect_domains[0]: must be a host name"),
        (json!({"end_session_endpoint": "https://Idp.T\u{e9}st/logout"}), "oidc.end_session_endpoint: must have an ASCII host name"),
    ];
    for (extra, expected) in cases {
        let err = error(extra.clone());
        assert!(
            err.starts_with(expected),
            "{extra}\n  got: {err}\n  want: {expected}"
        );
    }
    // JWT consumers' key URLs go through the same parser.
    for (url, expected) in [
        (
            "https://user@idp.test/certs",
            "consumers[0].jwks_uri: must not contain user info",
        ),
        (
            "https:///idp.test/certs",
            "consumers[0].jwks_uri: must name a host after the scheme",
        ),
        (
            "http://idp.test\\certs",
            "consumers[0].jwks_uri: must not contain spaces, control characters or backslashes",
        ),
    ] {
        let jwt = json!({"name": "j", "issuer": "i", "jwks_uri": url, "cluster": "idp"});
        let err = compile_json(json!({"consumers": [jwt]}).to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with(expected), "{url}: {err}");
    }
}

#[test]
fn good_urls_keep_their_meaning() {
    let cfg = compile_with(json!({
        "issuer": "https://IdP.test:443/realms/a/",
        "redirect_url": "https://gw.test:8443/a/./oauth2/callback?x=1",
        "end_session_endpoint": "https://idp.test/logout",
        "post_logout_redirect_uri": "https://gw.test/bye",
        "allowed_redirect_domains": ["Example.com", ".Partner.test"],
        "cookie_expire": "168h", "cookie_refresh": "1.5h"
    }))
    .unwrap();
    let oidc = sso(&cfg);
    // The issuer stays exactly as written (it is compared with `iss`).
    assert_eq!(oidc.issuer, "https://IdP.test:443/realms/a/");
    assert_eq!(oidc.discovery_authority, "idp.test");
    assert_eq!(
        oidc.discovery_path,
        "/realms/a/.well-known/openid-configuration"
    );
    // redirect_uri goes to the IdP verbatim; the callback is matched on the
    // path the browser will request.
    assert_eq!(
        oidc.redirect,
        RedirectUrl::Absolute("https://gw.test:8443/a/./oauth2/callback?x=1".into())
    );
    assert_eq!(oidc.callback_path, "/a/oauth2/callback");
    assert_eq!(
        oidc.end_session_endpoint.as_deref(),
        Some("https://idp.test/logout")
    );
    assert_eq!(
        oidc.post_logout_redirect_uri.as_deref(),
        Some("https://gw.test/bye")
    );
    assert_eq!(
        oidc.allowed_redirect_domains,
        vec!["example.com", ".partner.test"]
    );
    assert_eq!(
        (oidc.cookie_expire, oidc.cookie_refresh),
        (Some(604800), Some(5400))
    );

    let cfg = compile_with(
        json!({"redirect_url": "/sso/cb", "post_logout_redirect_uri": "/bye?x=1",
        "cookie_expire": "1h30m", "cookie_refresh": "500ms"}),
    )
    .unwrap();
    let oidc = sso(&cfg);
    assert_eq!(oidc.redirect, RedirectUrl::Path("/sso/cb".into()));
    assert_eq!(oidc.callback_path, "/sso/cb");
    assert_eq!(oidc.post_logout_redirect_uri.as_deref(), Some("/bye?x=1"));
    assert_eq!(
        (oidc.cookie_expire, oidc.cookie_refresh),
        (Some(5400), Some(1))
    );
    assert_eq!(oidc.discovery_path, "/.well-known/openid-configuration");
}

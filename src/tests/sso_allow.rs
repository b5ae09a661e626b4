//! A rule's `allow` under single sign-on lists values of `allow_claim`
//! (default `consumer_claim`); for an array claim (`groups`, `roles`) any listed element admits the
//! request, as oauth2-proxy's `allowed_groups` does.

use serde_json::json;

use super::NOW;
use crate::config::{compile_json, Config};
use crate::decision::apply;
use crate::fake_host::FakeHost;
use crate::request::on_request_headers;
use crate::verified::cache::TokenCache;

use super::sso::{idp_signed, load_provider, IDP};

fn config(allow_claim: &str) -> Config {
    let cfg = json!({
        "oidc": {"issuer": IDP, "client_id": "gateway", "client_secret": "gw-secret",
                 "cluster": "idp", "cookie_secret": "cookie-secret-0123456789abcdef0123456789",
                 "accept_bearer": true, "allow_claim": allow_claim},
        "_rules_": [{"_match_domain_": ["gw.example.com"], "allow": ["admins", "42"]}]
    });
    let cfg = compile_json(cfg.to_string().as_bytes()).unwrap();
    load_provider(&cfg);
    cfg
}

fn token(claims: serde_json::Value) -> String {
    idp_signed(
        json!({"iss": IDP, "aud": "gateway", "sub": "alice", "iat": NOW, "exp": NOW + 300}),
        claims,
    )
}

fn call(cfg: &Config, claims: serde_json::Value) -> FakeHost {
    let mut host = FakeHost::new(NOW)
        .request("GET", "gw.example.com", "/api")
        .with_header("authorization", &format!("Bearer {}", token(claims)));
    let d = on_request_headers(cfg, &TokenCache::new(0), &mut host, true);
    apply(&mut host, d);
    host
}

/// Fails on the code before: allow was compared with consumer_claim only,
/// which must name the user (a non-empty string), so groups could not be
/// allowed at all.
#[test]
fn an_array_claim_is_allowed_when_any_element_is_listed() {
    let cfg = config("groups");
    for groups in [
        json!(["users", "admins"]),
        json!(["admins"]),
        json!("admins"),
    ] {
        let host = call(&cfg, json!({"groups": groups}));
        assert_eq!(host.reply, None, "{groups}");
        // The consumer is still the user (consumer_claim, sub).
        assert_eq!(host.header("x-mse-consumer"), Some("alice"), "{groups}");
    }
    for groups in [
        json!(["users"]),
        json!([]),
        json!("users,admins"),
        json!(["Admins"]),
        json!([["admins"]]),
        json!({"admins": true}),
        json!(null),
    ] {
        let host = call(&cfg, json!({"groups": groups}));
        let reply = host.reply.as_ref().expect("denied");
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (403, "Access Denied."),
            "{groups}"
        );
    }
    // Numbers compare as written (as before).
    let cfg = config("uid");
    assert_eq!(call(&cfg, json!({"uid": 42})).reply, None);
    assert_eq!(call(&cfg, json!({"uid": 43})).reply.unwrap().status, 403);
}

/// A signed-in browser the rule's `allow` refuses gets a page whose "Sign in
/// again" signs out and comes back (so another account can be used), with
/// the request id; an API call with the same session keeps the plain 403.
/// Fails on the code before: the browser got the plain "Access Denied.".
#[test]
fn a_refused_browser_session_gets_a_page_to_sign_in_as_someone_else() {
    use super::sso::{
        browser, cookie_header, finish_login, id_token, query_value, set_cookies, sso_json,
        start_login,
    };
    let mut raw = sso_json(json!({}));
    raw["_rules_"] = json!([{"_match_domain_": ["gw.example.com"], "allow": ["admins"]}]);
    let cfg = compile_json(raw.to_string().as_bytes()).unwrap();
    load_provider(&cfg);
    let login = start_login(&cfg, "/app");
    let nonce = query_value(&login.location, "nonce");
    let (status, headers) = finish_login(&cfg, &login, &id_token(json!({"nonce": nonce})));
    assert_eq!(status, 302);
    let session = cookie_header(&set_cookies(&headers));

    let mut host = browser("/app/x?a=1", Some(&session)).with_header("x-request-id", "rid-1");
    let d = on_request_headers(&cfg, &TokenCache::new(0), &mut host, true);
    apply(&mut host, d);
    let r = host.reply.unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.details, "edge_auth_denied{consumer_not_allowed}");
    assert!(
        r.body
            .contains(r#"<a href="/oauth2/sign_out?rd=%2Fapp%2Fx%3Fa%3D1">Sign in again</a>"#),
        "{}",
        r.body
    );
    assert!(r.body.contains("<code>rid-1</code>"), "{}", r.body);

    let mut host = FakeHost::new(NOW)
        .request("GET", "gw.example.com", "/app/x")
        .with_header("cookie", &session);
    let d = on_request_headers(&cfg, &TokenCache::new(0), &mut host, true);
    apply(&mut host, d);
    let r = host.reply.unwrap();
    assert_eq!((r.status, r.body.as_str()), (403, "Access Denied."));
}

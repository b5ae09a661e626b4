//! Whole requests through `request::on_request_headers` and `apply`, as the
//! shell drives them, against the fake host.

use base64::Engine;

use super::segments;
use super::{config, NOW, SECRET1, SECRET2};
use crate::b64::b64url_decode;
use crate::config::Config;
use crate::decision::{apply, Decision, Flow};
use crate::fake_host::{FakeHost, SentReply};
use crate::host::LogLevel;
use crate::request::on_request_headers;
use crate::token_endpoint;
use crate::verified::cache::TokenCache;

/// Runs the headers phase (and the body phase when asked for) and returns
/// the flow plus the host to inspect.
fn run(cfg: &Config, mut host: FakeHost, body: Option<&str>) -> (Flow, FakeHost) {
    let cache = TokenCache::new(16);
    let decision = on_request_headers(cfg, &cache, &mut host, body.is_none());
    let flow = match decision {
        Decision::Wait(crate::request::Wait::ReadBody(pending)) => {
            let reply = token_endpoint::on_body(&pending, body.unwrap_or("").as_bytes(), &mut host);
            apply(&mut host, Decision::<crate::request::Wait>::Reply(reply))
        }
        other => apply(&mut host, other),
    };
    (flow, host)
}

fn get(cfg: &Config, path: &str, headers: &[(&str, &str)]) -> (Flow, FakeHost) {
    let mut host = FakeHost::new(NOW)
        .request("GET", "gw.example.com:8080", path)
        .with_property("route_name", "route-a")
        .with_property(
            "cluster_name",
            "outbound|8080||echo.default.svc.cluster.local",
        );
    for (k, v) in headers {
        host = host.with_header(k, v);
    }
    run(cfg, host, None)
}

fn reply(host: &FakeHost) -> &SentReply {
    host.reply.as_ref().expect("a local reply")
}

fn json(reply: &SentReply) -> serde_json::Value {
    serde_json::from_str(&reply.body).unwrap()
}

fn token_for(cfg: &Config, id: &str, secret: &str) -> String {
    let (flow, host) = get(
        cfg,
        &format!(
            "/oauth2/token?grant_type=client_credentials&client_id={id}&client_secret={secret}"
        ),
        &[],
    );
    assert_eq!(flow, Flow::Stop);
    let r = reply(&host);
    assert_eq!(r.status, 200, "{}", r.body);
    json(r)["access_token"].as_str().unwrap().to_string()
}

fn claims_of(token: &str) -> serde_json::Value {
    serde_json::from_slice(&b64url_decode(segments(token).1).unwrap()).unwrap()
}

#[test]
fn get_issues_an_rfc9068_token() {
    let cfg = config("");
    let (flow, host) = get(
        &cfg,
        &format!("/api/oauth2/token?grant_type=client_credentials&client_id=id1&client_secret={SECRET1}&scope=read%20write"),
        &[],
    );
    assert_eq!(flow, Flow::Stop);
    let r = reply(&host);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = json(r);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 7200);
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["iss"], "Higress-Gateway");
    assert_eq!(claims["sub"], "consumer1");
    assert_eq!(claims["client_id"], "id1");
    assert_eq!(claims["aud"], "default");
    assert_eq!(claims["iat"], NOW);
    assert_eq!(claims["exp"], NOW + 7200);
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["jti"], "01020304-0506-4708-890a-0b0c0d0e0f10");
}

#[test]
fn post_form_and_basic_issue_tokens() {
    let cfg = config("");
    let host = FakeHost::new(NOW)
        .request("POST", "gw", "/oauth2/token")
        .with_header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        );
    let body = format!("grant_type=client_credentials&client_id=id2&client_secret={SECRET2}");
    let (_, host) = run(&cfg, host, Some(&body));
    let r = reply(&host);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        claims_of(json(r)["access_token"].as_str().unwrap())["sub"],
        "consumer2"
    );
    assert!(claims_of(json(r)["access_token"].as_str().unwrap())
        .get("scope")
        .is_none());

    let basic = base64::engine::general_purpose::STANDARD.encode(format!("id1:{SECRET1}"));
    let host = FakeHost::new(NOW)
        .request("POST", "gw", "/oauth2/token")
        .with_header("content-type", "application/x-www-form-urlencoded")
        .with_header("authorization", &format!("Basic {basic}"));
    let (_, host) = run(&cfg, host, Some("grant_type=client_credentials"));
    assert_eq!(reply(&host).status, 200, "{}", reply(&host).body);
}

#[test]
fn token_endpoint_errors() {
    let cfg = config("");
    let wrong_basic = base64::engine::general_purpose::STANDARD.encode("id1:wrong");
    let good_basic = base64::engine::general_purpose::STANDARD.encode(format!("id1:{SECRET1}"));
    // (name, path, extra headers, status, error, error_description)
    type Case<'a> = (
        &'a str,
        String,
        Vec<(&'a str, String)>,
        u32,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        ("no query", "/oauth2/token".into(), vec![], 400, "invalid_request", "grant_type is missing"),
        ("no grant", "/oauth2/token?client_id=id1".into(), vec![], 400, "invalid_request", "grant_type is missing"),
        ("bad grant", "/oauth2/token?grant_type=password".into(), vec![], 400, "unsupported_grant_type", "grant_type is not supported, only client_credentials is"),
        ("no id", "/oauth2/token?grant_type=client_credentials&client_secret=x".into(), vec![], 400, "invalid_request", "client_id is missing"),
        ("no secret", "/oauth2/token?grant_type=client_credentials&client_id=id1".into(), vec![], 400, "invalid_request", "client_secret is missing"),
        ("unknown id", "/oauth2/token?grant_type=client_credentials&client_id=nope&client_secret=x".into(), vec![], 400, "invalid_client", "invalid client_id or client_secret"),
        ("wrong secret", "/oauth2/token?grant_type=client_credentials&client_id=id1&client_secret=x".into(), vec![], 400, "invalid_client", "invalid client_id or client_secret"),
        ("other's secret", format!("/oauth2/token?grant_type=client_credentials&client_id=id1&client_secret={SECRET2}"), vec![], 400, "invalid_client", "invalid client_id or client_secret"),
        ("repeated", "/oauth2/token?grant_type=client_credentials&grant_type=client_credentials".into(), vec![], 400, "invalid_request", "grant_type is repeated"),
        ("bad encoding", "/oauth2/token?grant_type=%zz".into(), vec![], 400, "invalid_request", "malformed parameters"),
        ("bad scope", format!("/oauth2/token?grant_type=client_credentials&client_id=id1&client_secret={SECRET1}&scope=a%22b"), vec![], 400, "invalid_scope", "scope has invalid characters"),
        ("wrong basic", "/oauth2/token?grant_type=client_credentials".into(), vec![("authorization", format!("Basic {wrong_basic}"))], 401, "invalid_client", "invalid client_id or client_secret"),
        ("garbled basic", "/oauth2/token?grant_type=client_credentials".into(), vec![("authorization", "Basic %%%".into())], 401, "invalid_client", "invalid client_id or client_secret"),
        ("basic and params", "/oauth2/token?grant_type=client_credentials&client_id=id1".into(), vec![("authorization", format!("Basic {good_basic}"))], 400, "invalid_request", "client credentials must be sent either in Authorization: Basic or as parameters, not both"),
    ];
    for (name, path, headers, status, code, description) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (flow, host) = get(&cfg, &path, &headers);
        assert_eq!(flow, Flow::Stop, "{name}");
        let r = reply(&host);
        assert_eq!(r.status, status, "{name}: {}", r.body);
        assert_eq!(r.header("cache-control"), Some("no-store"), "{name}");
        assert_eq!(
            json(r),
            serde_json::json!({"error": code, "error_description": description}),
            "{name}"
        );
        assert_eq!(
            r.header("www-authenticate").is_some(),
            status == 401,
            "{name}"
        );
        if status == 401 {
            assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
        }
    }
}

#[test]
fn token_endpoint_closes_the_mse_holes() {
    let cfg = config("");
    for method in ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        let host = FakeHost::new(NOW).request(method, "gw", "/oauth2/token");
        let (flow, host) = run(&cfg, host, None);
        assert_eq!(flow, Flow::Stop, "{method} must never be forwarded");
        let r = reply(&host);
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, POST"));
    }
    let no_body = FakeHost::new(NOW)
        .request("POST", "gw", "/oauth2/token")
        .with_header("content-type", "application/x-www-form-urlencoded");
    let (_, host) = run(&cfg, no_body, None);
    assert_eq!(
        (
            reply(&host).status,
            json(reply(&host))["error_description"].as_str()
        ),
        (400, Some("request body is missing"))
    );

    for ct in [None, Some("application/json"), Some("text/plain")] {
        let mut host = FakeHost::new(NOW).request("POST", "gw", "/oauth2/token");
        if let Some(ct) = ct {
            host = host.with_header("content-type", ct);
        }
        let (_, host) = run(&cfg, host, Some("grant_type=client_credentials"));
        assert_eq!(reply(&host).status, 400, "{ct:?}");
        assert_eq!(json(reply(&host))["error"], "invalid_request");
    }
    let big = FakeHost::new(NOW)
        .request("POST", "gw", "/oauth2/token")
        .with_header("content-type", "application/x-www-form-urlencoded");
    let (_, host) = run(
        &cfg,
        big,
        Some(&"a".repeat(token_endpoint::MAX_FORM_BYTES + 1)),
    );
    assert_eq!(reply(&host).status, 413);
}

#[test]
fn random_failure_fails_closed() {
    let cfg = config("");
    let mut host = FakeHost::new(NOW).request(
        "GET",
        "gw",
        &format!(
            "/oauth2/token?grant_type=client_credentials&client_id=id1&client_secret={SECRET1}"
        ),
    );
    host.fail_random = true;
    let (_, host) = run(&cfg, host, None);
    assert_eq!(reply(&host).status, 500);
}

#[test]
fn valid_token_forwards_with_consumer_and_strips_spoofing() {
    let cfg = config("");
    let token = token_for(&cfg, "id1", SECRET1);
    let (flow, host) = get(
        &cfg,
        "/anything",
        &[
            ("authorization", &format!("bearer {token}")),
            ("x-mse-consumer", "admin"),
        ],
    );
    assert_eq!(flow, Flow::Continue);
    assert!(host.reply.is_none());
    assert_eq!(host.header("x-mse-consumer"), Some("consumer1"));
    assert_eq!(host.header_count("x-mse-consumer"), 1);
    assert!(
        host.header("authorization").is_some(),
        "keep_token defaults to true"
    );
    assert_eq!(host.counter("requests_allowed"), 1);
    assert_eq!(host.counter("cache_misses"), 1);
}

#[test]
fn refusals_and_issuance_are_counted() {
    let cfg = config("");
    let (_, host) = get(&cfg, "/x", &[("authorization", "Bearer a.b.c")]);
    assert_eq!(host.counter("denied_401_malformed_token"), 1);
    let (_, host) = get(&cfg, "/x", &[]);
    assert_eq!(host.counter("denied_401_no_bearer_token"), 1);
    let issue = format!(
        "/oauth2/token?grant_type=client_credentials&client_id=id1&client_secret={SECRET1}"
    );
    let (_, host) = get(&cfg, &issue, &[]);
    assert_eq!(host.counter("tokens_issued"), 1);
    let (_, host) = get(&cfg, "/oauth2/token?grant_type=password", &[]);
    assert_eq!(
        host.counter("token_endpoint_errors_unsupported_grant_type"),
        1
    );
}

#[test]
fn keep_token_false_and_custom_header() {
    let cfg = config(r#","keep_token":false,"auth_header_name":"X-Token""#);
    let token = token_for(&cfg, "id2", SECRET2);
    let (flow, host) = get(&cfg, "/x", &[("x-token", &format!("Bearer {token}"))]);
    assert_eq!(flow, Flow::Continue);
    assert_eq!(host.header("x-token"), None);
    assert_eq!(host.header("x-mse-consumer"), Some("consumer2"));
    // The standard header is not looked at any more.
    let (_, host) = get(&cfg, "/x", &[("authorization", &format!("Bearer {token}"))]);
    assert_eq!(reply(&host).status, 401);
}

#[test]
fn unauthorized_replies_follow_rfc6750() {
    let cfg = config("");
    let (flow, host) = get(&cfg, "/a/b?access_token=secret", &[]);
    assert_eq!(flow, Flow::Stop);
    let r = reply(&host);
    assert_eq!(r.status, 401);
    assert_eq!(r.body, "Invalid Jwt token.");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="http://gw.example.com:8080/a/b""#)
    );
    let (_, host) = get(&cfg, "/a", &[("authorization", "Bearer not.a.jwt")]);
    assert_eq!(
        reply(&host).header("www-authenticate"),
        Some(
            r#"Bearer realm="http://gw.example.com:8080/a", error="invalid_token", error_description="malformed token""#
        )
    );
    // A denial is explained in the log, without the token.
    let logs = host.logs.borrow();
    let line = logs.iter().find(|(l, _)| *l == LogLevel::Debug).unwrap();
    assert_eq!(
        line.1,
        r#"edge-auth: 401 on route "route-a": malformed token [malformed_token]"#
    );
}

#[test]
fn allow_lists_and_route_scoped_tokens() {
    let cfg = config(
        r#","global_credentials":false,"_rules_":[{"_match_route_":["route-a"],"allow":["consumer2"]}]"#,
    );
    let token1 = token_for(&cfg, "id1", SECRET1);
    assert_eq!(claims_of(&token1)["aud"], "route-a");
    let (flow, host) = get(
        &cfg,
        "/x",
        &[("authorization", &format!("Bearer {token1}"))],
    );
    assert_eq!(flow, Flow::Stop);
    assert_eq!(
        (reply(&host).status, reply(&host).body.as_str()),
        (403, "Access Denied.")
    );

    let token2 = token_for(&cfg, "id2", SECRET2);
    let (flow, host) = get(
        &cfg,
        "/x",
        &[("authorization", &format!("Bearer {token2}"))],
    );
    assert_eq!(flow, Flow::Continue);
    assert_eq!(host.header("x-mse-consumer"), Some("consumer2"));

    // The same token on another route (global_auth absent + allow rule ⇒
    // other routes are open, so use global_auth true to force a check).
    let cfg = config(r#","global_credentials":false,"global_auth":true"#);
    let host = FakeHost::new(NOW)
        .request("GET", "gw", "/x")
        .with_property("route_name", "route-b")
        .with_header("authorization", &format!("Bearer {token2}"));
    let (_, host) = run(&cfg, host, None);
    assert_eq!(reply(&host).status, 403);
}

#[test]
fn open_and_disabled_routes_still_strip_spoofed_identity() {
    let cfg = config(
        r#","_rules_":[{"_match_route_":["route-a"],"_disable_":true},{"_match_route_":["guarded"],"allow":["consumer1"]}]"#,
    );
    // route-a: disabled. Token endpoint off too: forwarded, header stripped.
    for path in ["/x", "/oauth2/token"] {
        let (flow, host) = get(&cfg, path, &[("x-mse-consumer", "admin")]);
        assert_eq!(flow, Flow::Continue, "{path}");
        assert_eq!(host.header("x-mse-consumer"), None, "{path}");
    }
    // Not matched, global_auth absent with an allow rule: open, stripped.
    let host = FakeHost::new(NOW)
        .request("GET", "gw", "/x")
        .with_property("route_name", "other")
        .with_header("X-Mse-Consumer", "admin");
    let (flow, host) = run(&cfg, host, None);
    assert_eq!(flow, Flow::Continue);
    assert_eq!(host.header("x-mse-consumer"), None);
}

#[test]
fn rule_scope_overrides_apply_to_issue_and_verify() {
    let cfg = config(
        r#","global_auth":true,"_rules_":[{"_match_domain_":["*.example.com"],"issuer":"rule-issuer","token_ttl":10}]"#,
    );
    let token = token_for(&cfg, "id1", SECRET1);
    let claims = claims_of(&token);
    assert_eq!(
        (claims["iss"].as_str(), claims["exp"].as_u64()),
        (Some("rule-issuer"), Some(NOW + 10))
    );
    // Verified under the rule's issuer on the same domain...
    let (flow, _) = get(&cfg, "/x", &[("authorization", &format!("Bearer {token}"))]);
    assert_eq!(flow, Flow::Continue);
    // ...and refused where the global issuer applies.
    let host = FakeHost::new(NOW)
        .request("GET", "other.net", "/x")
        .with_header("authorization", &format!("Bearer {token}"));
    let (_, host) = run(&cfg, host, None);
    assert!(reply(&host)
        .header("www-authenticate")
        .unwrap()
        .contains("issuer not accepted"));
}

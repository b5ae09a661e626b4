//! Single sign-on as a state machine against the fake host: login redirect,
//! callback checks, code exchange, ID token validation, session cookie,
//! refresh and sign-out.

use serde_json::json;

use super::hs256_jwt;
use super::NOW;
use crate::b64::b64url;
use crate::config::{compile_json, Config};
use crate::decision::{apply, CookieEdit, Decision, Flow};
use crate::fake_host::FakeHost;
use crate::keys::remote::KeyFetcher;
use crate::oidc::flow::{on_response, CallOut, Continuation};
use crate::request::{on_request_headers, SsoFacts, Wait};
use crate::verified::cache::TokenCache;

pub(super) const IDP: &str = "http://idp.test";
pub(super) const KEY: &str = "idp-signing-key-0123456789abcdef0123";
const COOKIE_SECRET: &str = "cookie-secret-0123456789abcdef0123456789";

pub(super) fn sso_config(extra: serde_json::Value) -> Config {
    compile_json(sso_json(extra).to_string().as_bytes()).unwrap()
}

/// The plugin configuration of [`sso_config`], as Envoy hands it over.
pub(super) fn sso_json(extra: serde_json::Value) -> serde_json::Value {
    let mut oidc = json!({
        "issuer": IDP, "client_id": "gateway", "client_secret": "gw-secret",
        "cluster": "idp", "cookie_secret": COOKIE_SECRET,
        "post_logout_redirect_uri": "/bye",
        "claims_to_headers": [{"claim": "email", "header": "x-user-email"}],
        "set_access_token_header": true
    });
    for (k, v) in extra.as_object().unwrap() {
        oidc[k] = v.clone();
    }
    json!({"oidc": oidc})
}

/// Delivers the discovery document and a JWKS, as the root context would.
pub(super) fn load_provider(cfg: &Config) {
    let mut host = FakeHost::new(NOW);
    let mut fetcher = KeyFetcher::default();
    fetcher.on_tick(&cfg.remote_sources, &mut host);
    let doc = json!({"issuer": IDP, "jwks_uri": format!("{IDP}/jwks"),
        "authorization_endpoint": format!("{IDP}/auth"), "token_endpoint": format!("{IDP}/token"),
        "end_session_endpoint": format!("{IDP}/session/end")});
    fetcher.on_response(
        &cfg.remote_sources,
        1,
        Some(200),
        doc.to_string().as_bytes(),
        &mut host,
    );
    let jwks = json!({"keys": [{"kty": "oct", "kid": "k1", "k": b64url(KEY.as_bytes())}]});
    fetcher.on_response(
        &cfg.remote_sources,
        2,
        Some(200),
        jwks.to_string().as_bytes(),
        &mut host,
    );
    assert!(cfg.remote_sources[0].current().is_some());
}

pub(super) fn id_token(claims: serde_json::Value) -> String {
    idp_signed(
        json!({"iss": IDP, "aud": "gateway", "sub": "alice", "email": "alice@example.com",
               "iat": NOW, "exp": NOW + 300, "nonce": "n"}),
        claims,
    )
}

/// `base` with `overrides` merged over it, signed with the test IdP's key
/// (HS256, kid `k1`).
pub(super) fn idp_signed(mut base: serde_json::Value, overrides: serde_json::Value) -> String {
    for (k, v) in overrides.as_object().unwrap() {
        base[k] = v.clone();
    }
    hs256_jwt(
        r#"{"alg":"HS256","kid":"k1"}"#,
        &base.to_string(),
        KEY.as_bytes(),
    )
}

/// Each simulated request draws different random bytes (states, nonces).
fn fresh_random() -> u8 {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
    NEXT.fetch_add(97, std::sync::atomic::Ordering::Relaxed)
}

pub(super) fn browser(path: &str, cookie: Option<&str>) -> FakeHost {
    let mut host = FakeHost::new(NOW);
    host.random_counter = fresh_random();
    let mut host = host
        .request("GET", "gw.example.com", path)
        .with_header("accept", "text/html,application/xhtml+xml");
    if let Some(c) = cookie {
        host = host.with_header("cookie", c);
    }
    host
}

fn run<'c>(cfg: &'c Config, host: &mut FakeHost) -> Decision<'c, Wait> {
    on_request_headers(cfg, &TokenCache::new(0), host, true)
}

pub(super) fn set_cookies(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.clone())
        .collect()
}

/// `name=value` pairs from Set-Cookie lines that set (not clear) a cookie.
pub(super) fn cookie_header(lines: &[String]) -> String {
    lines
        .iter()
        .filter(|l| !l.contains("Max-Age=0"))
        .map(|l| l.split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

pub(super) fn query_value(url: &str, name: &str) -> String {
    let q = url.split_once('?').unwrap().1;
    crate::form::first(q, name).unwrap()
}

pub(super) struct Login {
    pub location: String,
    pub cookie: String,
}

pub(super) fn start_login(cfg: &Config, path: &str) -> Login {
    let mut host = browser(path, None);
    let d = run(cfg, &mut host);
    assert_eq!(apply(&mut host, d), Flow::Stop);
    let r = host.reply.unwrap();
    assert_eq!(r.status, 302);
    Login {
        location: r.header("location").unwrap().to_string(),
        cookie: cookie_header(&set_cookies(&r.headers)),
    }
}

/// Callback → code exchange → session cookie header.
pub(super) fn finish_login(
    cfg: &Config,
    login: &Login,
    token: &str,
) -> (u32, Vec<(String, String)>) {
    let state = query_value(&login.location, "state");
    let mut host = browser(
        &format!("/oauth2/callback?code=c0de&state={state}"),
        Some(&login.cookie),
    );
    let Decision::Wait(Wait::CallOut(call)) = run(cfg, &mut host) else {
        panic!("expected a call to the IdP")
    };
    let body = json!({"id_token": token, "access_token": "at-1", "refresh_token": "rt-1", "expires_in": 600});
    let facts = SsoFacts::read(&host);
    let path = host.header(":path").unwrap().to_string();
    let d = on_response(
        cfg,
        call.then,
        Some(200),
        body.to_string().as_bytes(),
        &facts.request(&path),
        &mut host,
    );
    apply(&mut host, d);
    let r = host.reply.unwrap();
    (r.status, r.headers)
}

#[test]
fn login_redirect_carries_state_nonce_and_pkce() {
    let cfg = sso_config(json!({}));
    // Before discovery: fail closed, retryable.
    let mut host = browser("/app", None);
    let d = run(&cfg, &mut host);
    apply(&mut host, d);
    assert_eq!(host.reply.as_ref().unwrap().status, 503);
    // Discovery in but no keys yet (another worker published them apart):
    // still 503, never a login that could not be finished.
    let mut worker = FakeHost::new(NOW);
    let mut fetcher = KeyFetcher::default();
    fetcher.on_tick(&cfg.remote_sources, &mut worker);
    let doc = json!({"issuer": IDP, "jwks_uri": format!("{IDP}/jwks"),
        "authorization_endpoint": format!("{IDP}/auth"), "token_endpoint": format!("{IDP}/token")});
    fetcher.on_response(
        &cfg.remote_sources,
        1,
        Some(200),
        doc.to_string().as_bytes(),
        &mut worker,
    );
    assert!(cfg.remote_sources[0].metadata().is_some());
    let mut host = browser("/app", None);
    let d = run(&cfg, &mut host);
    apply(&mut host, d);
    assert_eq!(host.reply.as_ref().unwrap().status, 503);
    let jwks = json!({"keys": [{"kty": "oct", "kid": "k1", "k": b64url(KEY.as_bytes())}]});
    fetcher.on_response(
        &cfg.remote_sources,
        2,
        Some(200),
        jwks.to_string().as_bytes(),
        &mut worker,
    );

    let login = start_login(&cfg, "/app?x=1");
    assert!(login
        .location
        .starts_with("http://idp.test/auth?response_type=code&client_id=gateway&"));
    assert_eq!(
        query_value(&login.location, "redirect_uri"),
        "http://gw.example.com/oauth2/callback"
    );
    assert_eq!(
        query_value(&login.location, "scope"),
        "openid email profile"
    );
    assert_eq!(
        query_value(&login.location, "code_challenge_method"),
        "S256"
    );
    assert_eq!(query_value(&login.location, "code_challenge").len(), 43);
    assert!(login.cookie.starts_with("_edge_auth_session_csrf_"));
    assert!(
        !login.location.contains("prompt="),
        "no offline_access, no prompt"
    );
    let offline = sso_config(json!({"scope": "openid offline_access"}));
    load_provider(&offline);
    let with_refresh = start_login(&offline, "/app");
    assert_eq!(query_value(&with_refresh.location, "prompt"), "consent");

    // XHR and API calls get 401, not a redirect.
    for (k, v) in [
        ("x-requested-with", "XMLHttpRequest"),
        ("accept", "application/json"),
    ] {
        let mut host = FakeHost::new(NOW)
            .request("GET", "gw.example.com", "/app")
            .with_header(k, v);
        let d = run(&cfg, &mut host);
        apply(&mut host, d);
        assert_eq!(host.reply.as_ref().unwrap().status, 401, "{k}");
    }
}

#[test]
fn full_login_then_session_requests() {
    let cfg = sso_config(json!({}));
    load_provider(&cfg);
    let login = start_login(&cfg, "/app?x=1");
    let nonce = query_value(&login.location, "nonce");
    let (status, headers) = finish_login(&cfg, &login, &id_token(json!({"nonce": nonce})));
    assert_eq!(status, 302);
    let location = &headers.iter().find(|(k, _)| k == "location").unwrap().1;
    assert_eq!(location, "/app?x=1");
    let lines = set_cookies(&headers);
    assert!(lines.iter().any(|l| l.starts_with("_edge_auth_session=")
        && l.contains("HttpOnly")
        && l.contains("Secure")
        && l.contains("SameSite=Lax")));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("_edge_auth_session_csrf_") && l.contains("Max-Age=0")),
        "login cookie cleared"
    );
    let session = cookie_header(&lines);

    // The session lets requests through with a verified identity.
    let mut host = browser("/app", Some(&format!("other=1; {session}")))
        .with_header("x-user-email", "forged@evil")
        .with_header("x-mse-consumer", "admin");
    let d = run(&cfg, &mut host);
    let Decision::Forward(f) = &d else {
        panic!("{d:?}")
    };
    assert_eq!(
        f.upstream_cookie,
        CookieEdit::StripFamily("_edge_auth_session".into())
    );
    assert_eq!(apply(&mut host, d), Flow::Continue);
    assert_eq!(host.header("cookie"), Some("other=1"), "ours taken out");
    assert_eq!(host.header("x-mse-consumer"), Some("alice"));
    assert_eq!(host.header("x-user-email"), Some("alice@example.com"));
    assert!(host
        .header("authorization")
        .unwrap()
        .starts_with("Bearer eyJ"));
    assert_eq!(host.header("x-forwarded-access-token"), Some("at-1"));
    assert_eq!(host.header("cookie"), Some("other=1"));

    // A tampered cookie reads as no session: back to the IdP.
    let mut tampered = session.clone();
    tampered.pop();
    tampered.push(if session.ends_with('A') { 'B' } else { 'A' });
    let mut host = browser("/app", Some(&tampered));
    let d = run(&cfg, &mut host);
    apply(&mut host, d);
    assert_eq!(host.reply.unwrap().status, 302);

    // A cookie sealed under another secret reads as no session.
    let other = sso_config(json!({"cookie_secret": "another-secret-0123456789abcdef0123456"}));
    load_provider(&other);
    let mut host = browser("/app", Some(&session));
    let d = run(&other, &mut host);
    apply(&mut host, d);
    assert_eq!(host.reply.unwrap().status, 302);
}

#[test]
fn parallel_logins_each_complete() {
    let cfg = sso_config(json!({}));
    load_provider(&cfg);
    let a = start_login(&cfg, "/a");
    let b = start_login(&cfg, "/b");
    assert_ne!(a.cookie, b.cookie);
    let both = format!("{}; {}", a.cookie, b.cookie);
    for (login, target) in [(&b, "/b"), (&a, "/a")] {
        let nonce = query_value(&login.location, "nonce");
        let joint = Login {
            location: login.location.clone(),
            cookie: both.clone(),
        };
        let (status, headers) = finish_login(&cfg, &joint, &id_token(json!({"nonce": nonce})));
        assert_eq!(status, 302);
        assert_eq!(
            headers.iter().find(|(k, _)| k == "location").unwrap().1,
            target
        );
    }
}

#[test]
fn callback_refusals() {
    let cfg = sso_config(json!({}));
    load_provider(&cfg);
    let login = start_login(&cfg, "/app");
    let state = query_value(&login.location, "state");
    let nonce = query_value(&login.location, "nonce");
    let cases = [
        (
            format!(
                "/oauth2/callback?error=access_denied&error_description=%3Cscript%3E&state={state}"
            ),
            Some(login.cookie.clone()),
            "idp_error",
        ),
        (
            format!("/oauth2/callback?code=c&state={state}"),
            None,
            "unknown_login",
        ),
        (
            "/oauth2/callback?code=c&state=forged".to_string(),
            Some(login.cookie.clone()),
            "unknown_login",
        ),
        (
            format!("/oauth2/callback?state={state}"),
            Some(login.cookie.clone()),
            "missing_state_or_code",
        ),
    ];
    for (path, cookie, reason) in cases {
        let mut host = browser(&path, cookie.as_deref());
        let d = run(&cfg, &mut host);
        apply(&mut host, d);
        let r = host.reply.unwrap();
        assert_eq!(r.status, 403, "{path}");
        // The technical reason goes to the access log, not on the page.
        assert_eq!(
            r.details,
            format!("edge_auth_sso_refused{{{reason}}}"),
            "{path}"
        );
        assert!(r.body.contains("Sign in again"), "{path}: {}", r.body);
        assert!(!r.body.contains("script") && !r.body.contains("access_denied"));
    }
    // ID token problems after the exchange: no session.
    for (claims, why) in [
        (json!({"nonce": "other"}), "nonce mismatch"),
        (
            json!({"nonce": nonce, "aud": "someone-else"}),
            "audience is not this client",
        ),
        (
            json!({"nonce": nonce, "azp": "someone-else"}),
            "authorized party",
        ),
        (
            json!({"nonce": nonce, "iss": "http://evil"}),
            "issuer mismatch",
        ),
        (json!({"nonce": nonce, "exp": NOW - 120}), "token expired"),
    ] {
        let (status, headers) = finish_login(&cfg, &login, &id_token(claims));
        assert_eq!(status, 403, "{why}");
        assert!(
            set_cookies(&headers)
                .iter()
                .all(|l| !l.starts_with("_edge_auth_session=")),
            "{why}"
        );
    }
    // The IdP refuses the code (replayed): 403, no session.
    let mut host = browser(
        &format!("/oauth2/callback?code=c&state={state}"),
        Some(&login.cookie),
    );
    let Decision::Wait(Wait::CallOut(call)) = run(&cfg, &mut host) else {
        panic!()
    };
    let body = String::from_utf8(call.body.clone()).unwrap();
    assert!(body.contains("grant_type=authorization_code") && body.contains("code_verifier="));
    assert!(call
        .headers
        .iter()
        .any(|(k, v)| k == "authorization" && v.starts_with("Basic ")));
    let facts = SsoFacts::read(&host);
    let d = on_response(
        &cfg,
        call.then,
        Some(400),
        br#"{"error":"invalid_grant"}"#,
        &facts.request("/oauth2/callback"),
        &mut host,
    );
    apply(&mut host, d);
    assert_eq!(host.reply.unwrap().status, 403);
}

/// An ID token signed with key `kid` / `key` (the IdP after a rotation).
fn id_token_with_key(kid: &str, key: &str, claims: serde_json::Value) -> String {
    let mut base = json!({"iss": IDP, "aud": "gateway", "sub": "alice",
                          "iat": NOW, "exp": NOW + 300});
    for (k, v) in claims.as_object().unwrap() {
        base[k] = v.clone();
    }
    let header = json!({"alg": "HS256", "kid": kid}).to_string();
    hs256_jwt(&header, &base.to_string(), key.as_bytes())
}

/// A login up to the IdP's answer: its nonce, the callback request and the
/// code exchange call.
fn at_code_exchange(cfg: &Config, path: &str) -> (String, FakeHost, CallOut) {
    let login = start_login(cfg, path);
    let state = query_value(&login.location, "state");
    let mut host = browser(
        &format!("/oauth2/callback?code=c0de&state={state}"),
        Some(&login.cookie),
    );
    let Decision::Wait(Wait::CallOut(exchange)) = run(cfg, &mut host) else {
        panic!("expected the code exchange")
    };
    (query_value(&login.location, "nonce"), host, exchange)
}

/// The IdP's answer to `then`'s call; a further call it starts, if any.
fn answer(
    cfg: &Config,
    host: &mut FakeHost,
    then: Continuation,
    status: Option<u32>,
    body: &[u8],
) -> Option<CallOut> {
    let path = host.header(":path").unwrap().to_string();
    let facts = SsoFacts::read(host);
    let d = on_response(cfg, then, status, body, &facts.request(&path), host);
    match d {
        Decision::Wait(call) => Some(call),
        d => {
            apply(host, d);
            None
        }
    }
}

fn sets_session(headers: &[(String, String)]) -> bool {
    set_cookies(headers)
        .iter()
        .any(|l| l.starts_with("_edge_auth_session="))
}

#[test]
fn login_after_the_idp_rotated_its_keys_fetches_them_once() {
    const NEW_KEY: &str = "idp-rotated-key-abcdef0123456789abcd";
    let cfg = sso_config(json!({}));
    load_provider(&cfg);
    let rotated =
        json!({"keys": [{"kty": "oct", "kid": "k2", "k": b64url(NEW_KEY.as_bytes())}]}).to_string();

    let (nonce, mut host, exchange) = at_code_exchange(&cfg, "/app?x=1");
    let token = id_token_with_key("k2", NEW_KEY, json!({"nonce": nonce}));
    let reply = json!({"id_token": token, "access_token": "at", "expires_in": 600}).to_string();
    // The answer names kid k2, which we lack: the JWKS is fetched first.
    let fetch =
        answer(&cfg, &mut host, exchange.then, Some(200), reply.as_bytes()).expect("a JWKS fetch");
    assert!(fetch.then.fetches_keys());
    assert_eq!(fetch.cluster, "idp");
    assert!(fetch.headers.contains(&(":path".into(), "/jwks".into())));
    assert!(fetch.headers.contains(&(":method".into(), "GET".into())));
    assert!(answer(&cfg, &mut host, fetch.then, Some(200), rotated.as_bytes()).is_none());
    let r = host.reply.as_ref().unwrap();
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(r.header("location"), Some("/app?x=1"));
    assert!(sets_session(&r.headers));
    // The new keys are published for the other workers.
    let published = host.shared.keys().filter(|k| k.ends_with("/keys")).count();
    assert_eq!(published, 1);
    assert!(cfg.remote_sources[0]
        .current()
        .unwrap()
        .candidates(Some("k2"))
        .next()
        .is_some());

    // A kid the IdP's JWKS does not have either: one fetch, then refused.
    let (nonce, mut host, exchange) = at_code_exchange(&cfg, "/app");
    let token = id_token_with_key("k9", NEW_KEY, json!({"nonce": nonce}));
    let reply = json!({"id_token": token}).to_string();
    let fetch =
        answer(&cfg, &mut host, exchange.then, Some(200), reply.as_bytes()).expect("a JWKS fetch");
    assert!(answer(&cfg, &mut host, fetch.then, Some(200), rotated.as_bytes()).is_none());
    let r = host.reply.as_ref().unwrap();
    assert_eq!(r.status, 403);
    assert!(!sets_session(&r.headers));

    // The fetch fails: the old keys stay, the login is refused.
    let (_, mut host, exchange) = at_code_exchange(&cfg, "/app");
    let fetch =
        answer(&cfg, &mut host, exchange.then, Some(200), reply.as_bytes()).expect("a JWKS fetch");
    assert!(answer(&cfg, &mut host, fetch.then, Some(503), b"").is_none());
    assert_eq!(host.reply.unwrap().status, 403);
    assert_eq!(host.counters.borrow().get("jwks_fetch_failed"), Some(&1));
    assert!(cfg.remote_sources[0]
        .current()
        .unwrap()
        .candidates(Some("k2"))
        .next()
        .is_some());
}

#[test]
fn a_code_exchange_without_any_answer_is_sent_once_more() {
    let cfg = sso_config(json!({}));
    load_provider(&cfg);
    let (nonce, mut host, exchange) = at_code_exchange(&cfg, "/app");
    // The connection died: no status, no body. The same call again.
    let (body, headers) = (exchange.body.clone(), exchange.headers.clone());
    let second =
        answer(&cfg, &mut host, exchange.then, None, b"").expect("the exchange sent again");
    assert_eq!((&second.body, &second.headers), (&body, &headers));
    // Its answer is taken up as the first one's would have been.
    let reply = json!({"id_token": id_token(json!({"nonce": nonce})), "access_token": "at"});
    let next = answer(
        &cfg,
        &mut host,
        second.then,
        Some(200),
        reply.to_string().as_bytes(),
    );
    assert!(next.is_none());
    assert_eq!(host.reply.as_ref().unwrap().status, 302);

    // Only once: a second silence is a refused sign-in.
    let (_, mut host, exchange) = at_code_exchange(&cfg, "/app");
    let again = answer(&cfg, &mut host, exchange.then, None, b"").expect("the exchange sent again");
    assert!(answer(&cfg, &mut host, again.then, None, b"").is_none());
    let r = host.reply.unwrap();
    assert_eq!(r.status, 403);
    assert!(!sets_session(&r.headers));
}

#[test]
fn refresh_and_sign_out() {
    let cfg = sso_config(json!({"cookie_refresh": "10m", "cookie_expire": "1h"}));
    load_provider(&cfg);
    let login = start_login(&cfg, "/app");
    let nonce = query_value(&login.location, "nonce");
    let (_, headers) = finish_login(&cfg, &login, &id_token(json!({"nonce": nonce})));
    let session = cookie_header(&set_cookies(&headers));

    // Past cookie_refresh: a refresh call first, then forward with a new cookie.
    let mut host = browser("/app", Some(&session));
    host.now = NOW + 601;
    let Decision::Wait(Wait::CallOut(call)) = run(&cfg, &mut host) else {
        panic!("expected refresh")
    };
    assert!(String::from_utf8(call.body.clone())
        .unwrap()
        .contains("grant_type=refresh_token&refresh_token=rt-1"));
    let facts = SsoFacts::read(&host);
    let d = on_response(
        &cfg,
        call.then,
        Some(200),
        br#"{"access_token":"at-2","expires_in":600}"#,
        &facts.request("/app"),
        &mut host,
    );
    let Decision::Forward(f) = &d else {
        panic!("{d:?}")
    };
    assert!(f
        .response_cookies
        .iter()
        .any(|c| c.starts_with("_edge_auth_session=")));
    apply(&mut host, d);
    assert_eq!(host.header("x-forwarded-access-token"), Some("at-2"));

    // A failed refresh clears the session and sends a browser to log in.
    let mut host = browser("/app", Some(&session));
    host.now = NOW + 601;
    let Decision::Wait(Wait::CallOut(call)) = run(&cfg, &mut host) else {
        panic!()
    };
    let facts = SsoFacts::read(&host);
    let d = on_response(
        &cfg,
        call.then,
        Some(400),
        b"{}",
        &facts.request("/app"),
        &mut host,
    );
    apply(&mut host, d);
    let r = host.reply.unwrap();
    assert_eq!(r.status, 302);
    assert!(set_cookies(&r.headers)
        .iter()
        .any(|l| l.starts_with("_edge_auth_session=;") && l.contains("Max-Age=0")));

    // Past cookie_expire the server refuses the session even if sent.
    let mut host = browser("/app", Some(&session));
    host.now = NOW + 3600;
    let d = run(&cfg, &mut host);
    apply(&mut host, d);
    assert_eq!(host.reply.unwrap().status, 302);

    // Sign-out: cookies cleared, IdP end-session with the hint; open
    // redirects in rd fall back to the configured target.
    let mut host = browser("/oauth2/sign_out?rd=%2F%2Fevil.com", Some(&session));
    let d = run(&cfg, &mut host);
    apply(&mut host, d);
    let r = host.reply.unwrap();
    assert_eq!(r.status, 302);
    let location = r.header("location").unwrap();
    assert!(location.starts_with("http://idp.test/session/end?client_id=gateway&post_logout_redirect_uri=http%3A%2F%2Fgw.example.com%2Fbye&id_token_hint=eyJ"), "{location}");
    assert!(set_cookies(&r.headers)
        .iter()
        .all(|l| l.contains("Max-Age=0")));
}

#[test]
fn match_lists_and_config_errors() {
    let cfg = sso_config(
        json!({"match_type": "whitelist", "match_list": [{"match_rule_path": "/public", "match_rule_type": "prefix"}]}),
    );
    load_provider(&cfg);
    let mut host = browser("/public/x", None);
    let d = run(&cfg, &mut host);
    assert_eq!(apply(&mut host, d), Flow::Continue);
    let cfg = sso_config(
        json!({"match_type": "blacklist", "match_list": [{"match_rule_domain": "*.example.com", "match_rule_path": "/admin", "match_rule_type": "exact"}]}),
    );
    load_provider(&cfg);
    let mut host = browser("/admin", None);
    let d = run(&cfg, &mut host);
    assert_eq!(apply(&mut host, d), Flow::Stop);
    let mut host = browser("/other", None);
    let d = run(&cfg, &mut host);
    assert_eq!(apply(&mut host, d), Flow::Continue);

    let err = |extra: serde_json::Value| {
        let mut oidc = json!({"issuer": IDP, "client_id": "g", "client_secret": "s", "cluster": "idp", "cookie_secret": COOKIE_SECRET});
        for (k, v) in extra.as_object().unwrap() {
            oidc[k] = v.clone();
        }
        compile_json(json!({"oidc": oidc}).to_string().as_bytes())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(json!({"cookie_secret": "short"})),
        "oidc.cookie_secret: needs 16, 24 or at least 32 bytes of key material (raw or base64)"
    );
    assert_eq!(
        err(json!({"cookie_refresh": "2h", "cookie_expire": "1h"})),
        "oidc.cookie_refresh: must be below cookie_expire"
    );
    assert_eq!(
        err(json!({"cookie_samesite": "sometimes"})),
        "oidc.cookie_samesite: \"sometimes\" is not lax, strict or none"
    );
    assert_eq!(
        err(json!({"scope": "email"})),
        "oidc.scope: must include openid"
    );
    assert_eq!(err(json!({"cluster": null})), "oidc.cluster: the Envoy cluster that reaches the IdP is required: cluster, or service_name/service_port");
    assert!(err(json!({"cookie_expire": "soon"}))
        .starts_with("oidc.cookie_expire: \"soon\" is not a duration"));
}

/// An API call with `Authorization: Bearer <token>` on an SSO route.
fn api_call(cfg: &Config, token: &str) -> FakeHost {
    let mut host = FakeHost::new(NOW)
        .request("GET", "gw.example.com", "/api/orders")
        .with_header("authorization", &format!("Bearer {token}"))
        .with_header("x-mse-consumer", "mallory");
    let d = run(cfg, &mut host);
    apply(&mut host, d);
    host
}

/// Fails on the build before the fix: bearer tokens were checked for
/// issuer, signature and time only, so any token of the provider passed.
#[test]
fn bearer_tokens_must_be_meant_for_this_client() {
    let cfg = sso_config(json!({"accept_bearer": true, "audiences": ["urn:orders"]}));
    load_provider(&cfg);
    let accepted = [
        json!({"aud": "gateway"}),
        json!({"aud": "urn:orders"}),
        json!({"aud": ["gateway", "urn:other"], "azp": "gateway"}),
        json!({"aud": "gateway", "azp": "gateway"}),
    ];
    for claims in accepted {
        let host = api_call(&cfg, &id_token(claims.clone()));
        assert_eq!(host.reply, None, "{claims}");
        assert_eq!(host.header("x-mse-consumer"), Some("alice"), "{claims}");
    }
    let refused = [
        (json!({"aud": "urn:other-api"}), "audience not accepted"),
        (json!({"aud": null}), "audience not accepted"),
        (json!({"aud": []}), "audience not accepted"),
        (
            json!({"aud": ["gateway", "urn:other"]}),
            "authorized party is not this client",
        ),
        (
            json!({"aud": ["gateway", "other-client"], "azp": "other-client"}),
            "authorized party is not this client",
        ),
        (
            json!({"aud": "gateway", "azp": "other-client"}),
            "authorized party is not this client",
        ),
        (json!({"sub": null}), "token names no subject"),
        (json!({"sub": ""}), "token names no subject"),
    ];
    for (claims, reason) in refused {
        let host = api_call(&cfg, &id_token(claims.clone()));
        let r = host.reply.unwrap();
        assert_eq!(
            (r.status, r.body.as_str()),
            (401, "Invalid Jwt token."),
            "{claims}"
        );
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains(&format!("error_description=\"{reason}\"")),
            "{claims}: {r:?}"
        );
    }
}

/// Fails on the build before the fix: the session was made and requests
/// went upstream with no X-Mse-Consumer.
#[test]
fn an_id_token_that_names_nobody_makes_no_session() {
    for (extra, claims) in [
        (json!({}), json!({"sub": null})),
        (json!({"consumer_claim": "email"}), json!({"email": null})),
        (json!({"consumer_claim": "email"}), json!({"email": ""})),
    ] {
        let cfg = sso_config(extra);
        load_provider(&cfg);
        let (nonce, mut host, exchange) = at_code_exchange(&cfg, "/app");
        let mut claims = claims;
        claims["nonce"] = json!(nonce);
        let body = json!({"id_token": id_token(claims.clone()), "access_token": "at-1", "expires_in": 600});
        assert!(answer(
            &cfg,
            &mut host,
            exchange.then,
            Some(200),
            body.to_string().as_bytes()
        )
        .is_none());
        let r = host.reply.clone().unwrap();
        assert_eq!(r.status, 403, "{claims}");
        // The reason is in the response code details (the access log),
        // not on the page.
        assert_eq!(r.details, "edge_auth_sso_refused{no_identity}", "{claims}");
        assert!(!r.body.contains("ID token"), "{claims}: {}", r.body);
        assert!(!sets_session(&r.headers), "{claims}");
        assert_eq!(host.counter("sso_logins_failed"), 1);
        assert!(host
            .logs
            .borrow()
            .iter()
            .any(|(_, l)| l == "edge-auth: sign-in refused: ID token names no user [no_identity]"));
    }
}

/// Fails on the build before the fix: the refreshed ID token's `sub`
/// replaced the session's user.
#[test]
fn a_refresh_for_another_user_ends_the_session() {
    let cfg = sso_config(json!({"cookie_refresh": "10m", "cookie_expire": "1h"}));
    load_provider(&cfg);
    let login = start_login(&cfg, "/app");
    let nonce = query_value(&login.location, "nonce");
    let (_, headers) = finish_login(
        &cfg,
        &login,
        &id_token(json!({"nonce": nonce, "sub": "bob"})),
    );
    let session = cookie_header(&set_cookies(&headers));
    let refresh = |claims: serde_json::Value| {
        let mut host = browser("/app", Some(&session));
        host.now = NOW + 601;
        let Decision::Wait(Wait::CallOut(call)) = run(&cfg, &mut host) else {
            panic!("expected refresh")
        };
        let body = json!({"id_token": id_token(claims), "access_token": "at-2", "expires_in": 600});
        assert!(answer(
            &cfg,
            &mut host,
            call.then,
            Some(200),
            body.to_string().as_bytes()
        )
        .is_none());
        host
    };
    // Positive control: the same user, a new ID token.
    let ok = json!({"sub": "bob", "iat": NOW + 601, "exp": NOW + 901});
    let host = refresh(ok.clone());
    assert_eq!(host.reply, None);
    assert_eq!(host.header("x-mse-consumer"), Some("bob"));
    for (claim, value) in [("sub", json!("mallory")), ("aud", json!(["gateway", "x"]))] {
        let mut claims = ok.clone();
        claims[claim] = value.clone();
        if claim == "aud" {
            claims["azp"] = json!("gateway");
        }
        let host = refresh(claims);
        let r = host.reply.clone().unwrap();
        assert_eq!(r.status, 302, "{claim}={value}");
        assert!(r
            .header("location")
            .unwrap()
            .starts_with("http://idp.test/auth?"));
        assert!(
            set_cookies(&r.headers)
                .iter()
                .any(|l| l.starts_with("_edge_auth_session=;") && l.contains("Max-Age=0")),
            "{claim}={value}: {:?}",
            r.headers
        );
        assert_eq!(host.header("x-mse-consumer"), None);
        assert_eq!(host.counter("sso_refresh_failed"), 1);
        let logs = host.logs.borrow();
        let line = logs
            .iter()
            .find(|(_, l)| l.contains("session refresh failed"));
        assert!(
            line.is_some_and(|(_, l)| l.ends_with("[identity_changed]")),
            "{logs:?}"
        );
    }
}

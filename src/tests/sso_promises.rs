//! README promises of the `oidc` block checked on the fake host (its clock,
//! and call outcomes an e2e IdP cannot be made to produce on cue):
//! - `access_token_expires_in` is the access token's lifetime when the
//!   IdP's token answer has no `expires_in` (with `cookie_refresh: 0` its
//!   end is what makes the session refresh);
//! - a refresh that gets no answer at all is sent once more, only once;
//! - a refresh the IdP does not answer (no answer twice, or Envoy's 504 for
//!   a timeout) is a 503 that keeps the session, and for `IDP_BACKOFF_MS`
//!   the next refreshes are refused at once without a call; then one probes;
//! - only the IdP's token answer can make the gateway fetch keys at once; a
//!   client's token naming an unknown kid is refused on the spot and can at
//!   most ask the rate-limited background refetch.

use serde_json::json;

use super::NOW;
use crate::config::{compile_json, Config};
use crate::decision::{apply, Decision};
use crate::fake_host::FakeHost;
use crate::keys::remote::KeyFetcher;
use crate::oidc::flow::{on_response, CallOut};
use crate::request::{on_request_headers, SsoFacts, Wait};
use crate::tests::hs256_jwt;
use crate::verified::cache::TokenCache;

use super::sso::{load_provider, IDP, KEY};

fn config(access_token_expires_in: u64) -> Config {
    let oidc = json!({
        "issuer": IDP, "client_id": "gateway", "client_secret": "gw-secret", "cluster": "idp",
        "cookie_secret": "cookie-secret-0123456789abcdef0123456789",
        "cookie_refresh": "0", "cookie_expire": "24h", "accept_bearer": true,
        "access_token_expires_in": access_token_expires_in
    });
    let cfg = compile_json(json!({ "oidc": oidc }).to_string().as_bytes()).unwrap();
    load_provider(&cfg);
    cfg
}

fn id_token(nonce: &str) -> String {
    signed(
        "k1",
        json!({"iss": IDP, "aud": "gateway", "sub": "alice", "iat": NOW, "exp": NOW + 300,
                        "nonce": nonce}),
    )
}

fn signed(kid: &str, claims: serde_json::Value) -> String {
    hs256_jwt(
        &json!({"alg": "HS256", "kid": kid}).to_string(),
        &claims.to_string(),
        KEY.as_bytes(),
    )
}

fn browser(path: &str, cookie: Option<&str>, now: u64, random: u8) -> FakeHost {
    let mut host = FakeHost::new(now);
    host.random_counter = random;
    let mut host = host
        .request("GET", "gw.example.com", path)
        .with_header("accept", "text/html");
    if let Some(c) = cookie {
        host = host.with_header("cookie", c);
    }
    host
}

fn cookies_set(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .filter(|(k, v)| k == "set-cookie" && !v.contains("Max-Age=0"))
        .filter_map(|(_, v)| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

fn param(url: &str, name: &str) -> String {
    crate::form::first(url.split_once('?').unwrap().1, name).unwrap()
}

/// A whole login whose token answer is `answer` (plus the ID token); the
/// session cookie header.
fn signed_in(cfg: &Config, answer: serde_json::Value) -> String {
    let cache = TokenCache::new(0);
    let mut host = browser("/app", None, NOW, 3);
    let d = on_request_headers(cfg, &cache, &mut host, true);
    apply(&mut host, d);
    let r = host.reply.unwrap();
    assert_eq!(r.status, 302);
    let location = r.header("location").unwrap().to_string();
    let login_cookie = cookies_set(&r.headers);
    let path = format!(
        "/oauth2/callback?code=c0de&state={}",
        param(&location, "state")
    );
    let mut host = browser(&path, Some(&login_cookie), NOW, 5);
    let Decision::Wait(Wait::CallOut(call)) = on_request_headers(cfg, &cache, &mut host, true)
    else {
        panic!("expected the code exchange")
    };
    let mut body = answer;
    body["id_token"] = json!(id_token(&param(&location, "nonce")));
    let facts = SsoFacts::read(&host);
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
    assert_eq!(r.status, 302);
    cookies_set(&r.headers)
}

/// Whether a request with the session at `now` refreshes first (a call to
/// the IdP's token endpoint with the refresh token) or is forwarded.
fn refreshes_at(cfg: &Config, session: &str, now: u64) -> bool {
    let mut host = browser("/app", Some(session), now, 7);
    match on_request_headers(cfg, &TokenCache::new(0), &mut host, true) {
        Decision::Wait(Wait::CallOut(call)) => {
            let body = String::from_utf8(call.body.clone()).unwrap();
            assert!(
                body.contains("grant_type=refresh_token&refresh_token=rt-1"),
                "{body}"
            );
            true
        }
        Decision::Forward(_) => false,
        other => panic!("{other:?}"),
    }
}

#[test]
fn access_token_expires_in_applies_when_the_idp_omits_expires_in() {
    let cfg = config(120);
    let session = signed_in(
        &cfg,
        json!({"access_token": "at-1", "refresh_token": "rt-1"}),
    );
    assert!(!refreshes_at(&cfg, &session, NOW + 119));
    assert!(refreshes_at(&cfg, &session, NOW + 121));

    // Control: an IdP that says expires_in is believed instead.
    let session = signed_in(
        &cfg,
        json!({"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 600}),
    );
    assert!(!refreshes_at(&cfg, &session, NOW + 121));
    assert!(refreshes_at(&cfg, &session, NOW + 601));
}

/// A session whose access token lives 600 s, and the refresh call a request
/// with it starts once that has passed (with its host).
fn refresh_due(cfg: &Config) -> (String, FakeHost, CallOut) {
    let session = signed_in(
        cfg,
        json!({"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 600}),
    );
    let (host, call) = refresh_call(cfg, &session, NOW + 601);
    (session, host, call)
}

/// The refresh call a request with `session` at `now` starts, and its host.
fn refresh_call(cfg: &Config, session: &str, now: u64) -> (FakeHost, CallOut) {
    let mut host = browser("/app", Some(session), now, 9);
    let Decision::Wait(Wait::CallOut(call)) =
        on_request_headers(cfg, &TokenCache::new(0), &mut host, true)
    else {
        panic!("expected a refresh")
    };
    (host, call)
}

fn answer<'c>(
    cfg: &'c Config,
    host: &mut FakeHost,
    call: CallOut,
    status: Option<u32>,
    body: &[u8],
) -> Decision<'c, CallOut> {
    let facts = SsoFacts::read(host);
    on_response(cfg, call.then, status, body, &facts.request("/app"), host)
}

#[test]
fn a_refresh_without_any_answer_is_sent_once_more() {
    let cfg = config(3600);
    let (session, mut host, call) = refresh_due(&cfg);
    let (body, headers) = (call.body.clone(), call.headers.clone());
    // The connection died: no status, no body. The same call again...
    let Decision::Wait(again) = answer(&cfg, &mut host, call, None, b"") else {
        panic!("expected the refresh sent again")
    };
    assert_eq!((&again.body, &again.headers), (&body, &headers));
    // ...whose answer is taken up: forwarded with the new token and cookie.
    let d = answer(
        &cfg,
        &mut host,
        again,
        Some(200),
        br#"{"access_token":"at-2","expires_in":600}"#,
    );
    let Decision::Forward(f) = &d else {
        panic!("{d:?}")
    };
    assert!(f
        .response_cookies
        .iter()
        .any(|c| c.starts_with("_edge_auth_session=")));

    // Only once: a second silence is a failed refresh. The IdP did not
    // answer (it did not refuse): 503, the session kept for a later retry.
    let (mut host, call) = refresh_call(&cfg, &session, NOW + 601);
    let Decision::Wait(again) = answer(&cfg, &mut host, call, None, b"") else {
        panic!("expected the refresh sent again")
    };
    let d = answer(&cfg, &mut host, again, None, b"");
    assert!(!matches!(d, Decision::Wait(_)), "sent a third time");
    apply(&mut host, d);
    let r = host.reply.unwrap();
    assert_eq!(r.status, 503);
    assert!(
        !r.headers.iter().any(|(k, _)| k == "set-cookie"),
        "{:?}",
        r.headers
    );
}

/// A request with `session` at `now` (a navigation, or an API call), as
/// the plugin decides it, applied: its reply (None: forwarded) and whether
/// it waits for a call to the IdP.
fn refused_without_call(cfg: &Config, session: &str, now: u64, navigation: bool) -> FakeHost {
    let mut host = browser("/app", Some(session), now, 21);
    if !navigation {
        host = host.with_header("x-requested-with", "XMLHttpRequest");
    }
    let d = on_request_headers(cfg, &TokenCache::new(0), &mut host, true);
    assert!(!matches!(d, Decision::Wait(_)), "a call to the IdP: {d:?}");
    apply(&mut host, d);
    host
}

fn assert_idp_unavailable(host: &FakeHost, retry_after: &str) {
    let r = host.reply.as_ref().expect("answered");
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some(retry_after));
    // The session is kept: its refresh token was never refused.
    assert!(
        !r.headers.iter().any(|(k, _)| k == "set-cookie"),
        "{:?}",
        r.headers
    );
}

#[test]
fn while_the_idp_does_not_answer_refreshes_are_refused_at_once_then_one_probes() {
    let cfg = config(3600);
    // Envoy's own 504: the call timed out (the IdP is slow).
    let (session, mut host, call) = refresh_due(&cfg);
    let d = answer(
        &cfg,
        &mut host,
        call,
        Some(504),
        b"upstream request timeout",
    );
    apply(&mut host, d);
    assert_idp_unavailable(&host, "5");
    assert!(host
        .reply
        .as_ref()
        .unwrap()
        .body
        .contains("Sign-in is unavailable"));

    // The next ones are answered without a call: a navigation gets the
    // page, an API call the plain 503; both keep the session.
    let nav = refused_without_call(&cfg, &session, NOW + 602, true);
    assert_idp_unavailable(&nav, "4");
    assert!(nav
        .reply
        .as_ref()
        .unwrap()
        .body
        .contains("Sign-in is unavailable"));
    assert_eq!(nav.counter("sso_refresh_deferred"), 1);
    let api = refused_without_call(&cfg, &session, NOW + 605, false);
    assert_idp_unavailable(&api, "1");

    // The backoff is over: one request probes, the others wait for it.
    let (mut probe, call) = refresh_call(&cfg, &session, NOW + 606);
    let meanwhile = refused_without_call(&cfg, &session, NOW + 606, true);
    assert_idp_unavailable(&meanwhile, "5");
    // The IdP answers again: the probe is forwarded, refreshes call again.
    let d = answer(
        &cfg,
        &mut probe,
        call,
        Some(200),
        br#"{"access_token":"at-2","expires_in":600}"#,
    );
    assert!(matches!(d, Decision::Forward(_)), "{d:?}");
    assert!(refreshes_at(&cfg, &session, NOW + 606));
}

#[test]
fn an_idp_that_refuses_a_refresh_is_answering() {
    // Control: a refusal (invalid_grant) ends the session as before and
    // the next refresh is made (nothing held back).
    let cfg = config(3600);
    let (session, mut host, call) = refresh_due(&cfg);
    let d = answer(
        &cfg,
        &mut host,
        call,
        Some(400),
        br#"{"error":"invalid_grant"}"#,
    );
    apply(&mut host, d);
    let r = host.reply.unwrap();
    assert_eq!(r.status, 302);
    assert!(r.headers.iter().any(|(k, v)| k == "set-cookie"
        && v.starts_with("_edge_auth_session=;")
        && v.contains("Max-Age=0")));
    assert!(refreshes_at(&cfg, &session, NOW + 601));
}

#[test]
fn only_the_idps_answer_fetches_keys_at_once() {
    let cfg = config(3600);
    // A client's bearer token naming a kid the gateway lacks: refused on the
    // spot, no call made for it.
    let claims =
        json!({"iss": IDP, "aud": "gateway", "sub": "mallory", "iat": NOW, "exp": NOW + 300});
    let bearer = signed("k-client", claims);
    let mut host = FakeHost::new(NOW)
        .request("GET", "gw.example.com", "/api")
        .with_header("authorization", &format!("Bearer {bearer}"));
    let d = on_request_headers(&cfg, &TokenCache::new(0), &mut host, true);
    assert!(!matches!(d, Decision::Wait(Wait::CallOut(_))), "{d:?}");
    apply(&mut host, d);
    let r = host.reply.unwrap();
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|c| c.contains("unknown key id")));
    assert!(host.calls.is_empty());
    // At most the background refetch, rate limited like any unknown kid:
    // nothing within 30 s of the last fetch (NOW, in config()).
    let mut root = FakeHost::new(NOW + 29);
    let mut fetcher = KeyFetcher::default();
    fetcher.on_tick(&cfg.remote_sources, &mut root);
    assert!(root.calls.is_empty(), "{:?}", root.calls);
    root.now = NOW + 30;
    fetcher.on_tick(&cfg.remote_sources, &mut root);
    assert_eq!(root.calls.len(), 1, "the rate-limited refetch");

    // Control: the IdP's own answer naming a new kid does fetch at once.
    let cache = TokenCache::new(0);
    let mut host = browser("/app", None, NOW, 11);
    let d = on_request_headers(&cfg, &cache, &mut host, true);
    apply(&mut host, d);
    let r = host.reply.unwrap();
    let location = r.header("location").unwrap().to_string();
    let path = format!(
        "/oauth2/callback?code=c0de&state={}",
        param(&location, "state")
    );
    let mut host = browser(&path, Some(&cookies_set(&r.headers)), NOW, 13);
    let Decision::Wait(Wait::CallOut(exchange)) = on_request_headers(&cfg, &cache, &mut host, true)
    else {
        panic!("expected the code exchange")
    };
    let rotated = signed(
        "k2",
        json!({"iss": IDP, "aud": "gateway", "sub": "alice", "iat": NOW,
                                     "exp": NOW + 300, "nonce": param(&location, "nonce")}),
    );
    let body = json!({"id_token": rotated, "access_token": "at"}).to_string();
    let facts = SsoFacts::read(&host);
    let d = on_response(
        &cfg,
        exchange.then,
        Some(200),
        body.as_bytes(),
        &facts.request(&path),
        &mut host,
    );
    let Decision::Wait(fetch) = d else {
        panic!("expected a JWKS fetch")
    };
    assert!(fetch.then.fetches_keys());
}

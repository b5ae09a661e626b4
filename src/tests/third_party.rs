//! Third-party JWT consumers through the whole request path: token
//! locations, consumer selection, claims to headers, refusals, 503 before
//! remote keys arrive, and the background key fetcher with shared data.

use std::rc::Rc;

use serde_json::json;

use super::hs256_jwt;
use super::NOW;
use crate::b64::b64url;
use crate::config::{compile_json, Config};
use crate::decision::{apply, Flow};
use crate::fake_host::FakeHost;
use crate::keys::remote::KeyFetcher;
use crate::request::on_request_headers;
use crate::verified::cache::TokenCache;

const KEY_A: &str = "key-a-0123456789abcdef0123456789abcdef";
const KEY_B: &str = "key-b-0123456789abcdef0123456789abcdef";
const ISS: &str = "https://idp.example";

fn oct(kid: &str, secret: &str) -> serde_json::Value {
    json!({"kty": "oct", "kid": kid, "k": b64url(secret.as_bytes())})
}

fn sign(header: serde_json::Value, claims: serde_json::Value, secret: &str) -> String {
    hs256_jwt(&header.to_string(), &claims.to_string(), secret.as_bytes())
}

fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut base = json!({"iss": ISS, "sub": "user-7", "aud": "api", "iat": NOW, "exp": NOW + 600,
                          "client_id": "app1", "roles": ["a", "b"], "level": 3, "admin": false,
                          "realm_access": {"roles": ["r1", "r2"]}});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn token(kid: &str, secret: &str, extra: serde_json::Value) -> String {
    sign(json!({"alg": "HS256", "kid": kid}), claims(extra), secret)
}

fn config(json: serde_json::Value) -> Config {
    compile_json(json.to_string().as_bytes()).unwrap()
}

/// Two consumers of one issuer told apart by client_id, one inline key set.
fn two_apps() -> Config {
    let jwks = json!({"keys": [oct("a", KEY_A)]}).to_string();
    config(json!({
        "consumers": [
            {"name": "app-one", "issuer": ISS, "jwks": jwks, "audiences": ["api"],
             "claims": {"client_id": "app1"},
             "claims_to_headers": [{"claim": "sub", "header": "X-User"},
                                   {"claim": "roles", "header": "x-roles"},
                                   {"claim": "level", "header": "x-level", "override": false},
                                   {"claim": "admin", "header": "x-admin"},
                                   {"claim": "realm_access.roles", "header": "x-realm-roles"},
                                   {"claim": "realm_access", "header": "x-object"}]},
            {"name": "app-two", "issuer": ISS, "jwks": jwks, "claims": {"client_id": "app2"}}
        ],
        "_rules_": [{"_match_route_": ["only-two"], "allow": ["app-two"]}],
        "global_auth": true
    }))
}

fn send(
    cfg: &Config,
    cache: &TokenCache,
    path: &str,
    headers: &[(&str, &str)],
) -> (Flow, FakeHost) {
    let mut host = FakeHost::new(NOW)
        .request("GET", "gw", path)
        .with_property("route_name", "r");
    for (k, v) in headers {
        host = host.with_header(k, v);
    }
    let decision = on_request_headers(cfg, cache, &mut host, true);
    let flow = apply(&mut host, decision);
    (flow, host)
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[test]
fn consumer_selection_claims_and_headers() {
    let cfg = two_apps();
    let cache = TokenCache::new(8);
    let t1 = token("a", KEY_A, json!({}));
    let (flow, host) = send(
        &cfg,
        &cache,
        "/x",
        &[
            ("authorization", &bearer(&t1)),
            ("x-user", "spoofed"),
            ("x-level", "99"),
            ("x-mse-consumer", "evil"),
        ],
    );
    assert_eq!(flow, Flow::Continue);
    assert_eq!(host.header("x-mse-consumer"), Some("app-one"));
    assert_eq!(host.header("x-user"), Some("user-7"));
    assert_eq!(host.header("x-roles"), Some("a,b"));
    assert_eq!(host.header("x-admin"), Some("false"));
    assert_eq!(host.header("x-realm-roles"), Some("r1,r2"));
    assert_eq!(
        host.header("x-object"),
        None,
        "objects are not header values"
    );
    assert_eq!(host.header("x-realm-roles"), Some("r1,r2"));
    assert_eq!(
        host.header("x-object"),
        None,
        "objects are not header values"
    );
    // Appending claim: the client's value was removed first, then ours added.
    assert_eq!(host.header_count("x-level"), 1);
    assert_eq!(host.header("x-level"), Some("3"));

    let t2 = token("a", KEY_A, json!({"client_id": "app2"}));
    let (_, host) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&t2))]);
    assert_eq!(host.header("x-mse-consumer"), Some("app-two"));
    assert_eq!(host.header("x-user"), None, "app-two maps no claims");

    let t3 = token("a", KEY_A, json!({"client_id": "app3"}));
    let (_, host) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&t3))]);
    let r = host.reply.unwrap();
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("token claims match no consumer"));

    // Allow list on a route: app-one is authenticated but not allowed.
    let mut host = FakeHost::new(NOW)
        .request("GET", "gw", "/x")
        .with_property("route_name", "only-two")
        .with_header("authorization", &bearer(&t1));
    let d = on_request_headers(&cfg, &cache, &mut host, true);
    apply(&mut host, d);
    assert_eq!(
        host.reply.as_ref().map(|r| (r.status, r.body.as_str())),
        Some((403, "Access Denied."))
    );
}

#[test]
fn refusals_name_their_reason() {
    let cfg = two_apps();
    let cache = TokenCache::new(8);
    let cases = [
        (
            "wrong key",
            token("a", KEY_B, json!({})),
            "signature verification failed",
        ),
        (
            "unknown kid",
            token("zzz", KEY_A, json!({})),
            "unknown key id",
        ),
        (
            "wrong iss",
            token("a", KEY_A, json!({"iss": "https://evil"})),
            "issuer not accepted",
        ),
        (
            "no iss",
            token("a", KEY_A, json!({"iss": null})),
            "issuer not accepted",
        ),
        (
            "expired",
            token("a", KEY_A, json!({"exp": NOW - 61})),
            "token expired",
        ),
        (
            "no exp",
            token("a", KEY_A, json!({"exp": null})),
            "token has no expiry",
        ),
        (
            "nbf",
            token("a", KEY_A, json!({"nbf": NOW + 61})),
            "token not yet valid",
        ),
        (
            "iat",
            token("a", KEY_A, json!({"iat": NOW + 61})),
            "token issued in the future",
        ),
        (
            "aud",
            token("a", KEY_A, json!({"aud": ["other"]})),
            "audience not accepted",
        ),
        (
            "exp string",
            token("a", KEY_A, json!({"exp": "soon"})),
            "exp, nbf or iat is not a number",
        ),
        (
            "alg none",
            sign(json!({"alg": "none", "kid": "a"}), claims(json!({})), KEY_A),
            "unsupported algorithm",
        ),
        (
            "alg RS256 on oct key",
            sign(
                json!({"alg": "RS256", "kid": "a"}),
                claims(json!({})),
                KEY_A,
            ),
            "algorithm does not match the key",
        ),
        (
            "HS512 on HS key",
            sign(
                json!({"alg": "HS512", "kid": "a"}),
                claims(json!({})),
                KEY_A,
            ),
            "signature verification failed",
        ),
        (
            "jku",
            sign(
                json!({"alg": "HS256", "kid": "a", "jku": "http://127.0.0.1:9/k"}),
                claims(json!({})),
                KEY_A,
            ),
            "embedded key headers are not accepted",
        ),
        (
            "jwk",
            sign(
                json!({"alg": "HS256", "jwk": oct("x", KEY_B)}),
                claims(json!({})),
                KEY_B,
            ),
            "embedded key headers are not accepted",
        ),
        (
            "x5u",
            sign(
                json!({"alg": "HS256", "x5u": "http://127.0.0.1:9/c"}),
                claims(json!({})),
                KEY_A,
            ),
            "embedded key headers are not accepted",
        ),
        (
            "x5c",
            sign(
                json!({"alg": "HS256", "x5c": ["AAAA"]}),
                claims(json!({})),
                KEY_A,
            ),
            "embedded key headers are not accepted",
        ),
        (
            "crit",
            sign(
                json!({"alg": "HS256", "kid": "a", "crit": ["x"], "x": 1}),
                claims(json!({})),
                KEY_A,
            ),
            "unsupported critical header",
        ),
        (
            "kid traversal",
            token("../../../../dev/null", KEY_A, json!({})),
            "unknown key id",
        ),
        (
            "too large",
            token("a", KEY_A, json!({"pad": "x".repeat(9000)})),
            "token too large",
        ),
    ];
    for (name, t, reason) in cases {
        let (flow, host) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&t))]);
        assert_eq!(flow, Flow::Stop, "{name}");
        let r = host.reply.unwrap();
        assert_eq!(
            (r.status, r.body.as_str()),
            (401, "Invalid Jwt token."),
            "{name}"
        );
        let challenge = r.header("www-authenticate").unwrap();
        assert!(
            challenge.contains(&format!(
                "error=\"invalid_token\", error_description=\"{reason}\""
            )),
            "{name}: {challenge}"
        );
    }
}

#[test]
fn duplicate_claims_are_malformed() {
    let cfg = two_apps();
    let payload = format!(
        r#"{{"iss":"{ISS}","exp":{},"client_id":"app2","client_id":"app1"}}"#,
        NOW + 60
    );
    let t = hs256_jwt(r#"{"alg":"HS256","kid":"a"}"#, &payload, KEY_A.as_bytes());
    let (_, host) = send(
        &cfg,
        &TokenCache::new(0),
        "/x",
        &[("authorization", &bearer(&t))],
    );
    assert!(host
        .reply
        .unwrap()
        .header("www-authenticate")
        .unwrap()
        .contains("malformed token"));

    // Duplicate header members, the time claims and a carried key in the
    // flattened header part: refused the same way.
    let claims = format!(r#"{{"iss":"{ISS}","exp":{},"client_id":"app1"}}"#, NOW + 60);
    let dup_exp = format!(
        r#"{{"iss":"{ISS}","exp":{},"exp":{},"client_id":"app1"}}"#,
        NOW - 999,
        NOW + 60
    );
    for (header, payload, reason) in [
        (
            r#"{"alg":"HS256","alg":"none","kid":"a"}"#,
            claims.as_str(),
            "malformed token",
        ),
        (
            r#"{"alg":"HS256","kid":"b","kid":"a"}"#,
            claims.as_str(),
            "malformed token",
        ),
        (
            r#"{"alg":"HS256","kid":"a","typ":"JWT","typ":"x"}"#,
            claims.as_str(),
            "malformed token",
        ),
        (
            r#"{"alg":"HS256","kid":"a"}"#,
            dup_exp.as_str(),
            "malformed token",
        ),
        (
            r#"{"alg":"HS256","kid":"a","x5c":["AAAA"],"x5c":null}"#,
            claims.as_str(),
            "malformed token",
        ),
        (
            r#"{"alg":"HS256","kid":"a","cty":"CBOR"}"#,
            claims.as_str(),
            "malformed token",
        ),
    ] {
        let t = hs256_jwt(header, payload, KEY_A.as_bytes());
        let (flow, host) = send(
            &cfg,
            &TokenCache::new(0),
            "/x",
            &[("authorization", &bearer(&t))],
        );
        assert_eq!(flow, Flow::Stop, "{header} {payload}");
        let r = host.reply.unwrap();
        assert_eq!(r.status, 401, "{header} {payload}");
        assert!(
            r.header("www-authenticate").unwrap().contains(reason),
            "{header} {payload}: {r:?}"
        );
    }
}

#[test]
fn token_locations_params_cookies_prefixes() {
    let jwks = json!({"keys": [oct("a", KEY_A)]}).to_string();
    let cfg = config(json!({"consumers": [
        {"name": "default-places", "issuer": ISS, "jwks": jwks},
        {"name": "custom", "issuer": "https://other", "jwks": jwks,
         "from_headers": [{"name": "X-Api-Token", "value_prefix": "JWT="}],
         "from_cookies": ["session_jwt"], "keep_token": false}
    ]}));
    let cache = TokenCache::new(0);
    let t = token("a", KEY_A, json!({}));
    let other = token("a", KEY_A, json!({"iss": "https://other"}));
    let (_, host) = send(&cfg, &cache, &format!("/x?a=1&access_token={t}"), &[]);
    assert_eq!(host.header("x-mse-consumer"), Some("default-places"));
    let (_, host) = send(
        &cfg,
        &cache,
        "/x",
        &[("x-api-token", &format!("JWT={other}"))],
    );
    assert_eq!(host.header("x-mse-consumer"), Some("custom"));
    assert_eq!(
        host.header("x-api-token"),
        None,
        "keep_token false strips the header"
    );
    let (_, host) = send(
        &cfg,
        &cache,
        "/x",
        &[("cookie", &format!("a=b; session_jwt={other}"))],
    );
    assert_eq!(host.header("x-mse-consumer"), Some("custom"));
    // A token in a place only another consumer reads does not count for this one.
    let (_, host) = send(
        &cfg,
        &cache,
        "/x",
        &[("cookie", &format!("session_jwt={t}"))],
    );
    assert_eq!(host.reply.unwrap().status, 401);
    // Cookies are not read unless configured.
    let (_, host) = send(
        &cfg,
        &cache,
        "/x",
        &[("cookie", &format!("access_token={t}"))],
    );
    assert_eq!(host.reply.unwrap().status, 401);
}

#[test]
fn verified_tokens_are_cached_until_exp() {
    let cfg = two_apps();
    let cache = TokenCache::new(8);
    let t = token("a", KEY_A, json!({"exp": NOW + 10}));
    let (flow, host) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&t))]);
    assert_eq!(flow, Flow::Continue);
    assert_eq!(cache.len(), 1);
    assert_eq!(
        (host.counter("cache_misses"), host.counter("cache_hits")),
        (1, 0)
    );
    // A hit (counted as one) gives the same identity and headers.
    let (flow, host) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&t))]);
    assert_eq!(flow, Flow::Continue);
    assert_eq!(
        (host.counter("cache_misses"), host.counter("cache_hits")),
        (0, 1)
    );
    assert_eq!(host.header("x-mse-consumer"), Some("app-one"));
    assert_eq!(host.header("x-user"), Some("user-7"));
    assert_eq!(cache.len(), 1);
    // Past exp + skew the entry no longer answers: no hit, a 401.
    let mut host = FakeHost::new(NOW + 71)
        .request("GET", "gw", "/x")
        .with_header("authorization", &bearer(&t));
    let d = on_request_headers(&cfg, &cache, &mut host, true);
    apply(&mut host, d);
    assert_eq!(host.reply.as_ref().map(|r| r.status), Some(401));
    assert_eq!(host.counter("cache_hits"), 0);
    // Failures are never cached: the same bad token misses twice.
    let bad = token("a", KEY_B, json!({}));
    for _ in 0..2 {
        let (_, host) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&bad))]);
        assert_eq!(host.reply.as_ref().map(|r| r.status), Some(401));
        assert_eq!(
            (host.counter("cache_misses"), host.counter("cache_hits")),
            (1, 0)
        );
    }
}

fn remote_config() -> Config {
    config(json!({"consumers": [
        {"name": "idp-app", "issuer": ISS, "jwks_uri": "http://idp.local:8080/jwks", "cluster": "idp"},
        {"name": "oidc-app", "oidc_issuer": "http://127.0.0.1:3000/realm/", "service_name": "idp.svc", "service_port": 3000, "service_host": "idp.example"}
    ]}))
}

#[test]
fn remote_keys_503_until_fetched_then_shared_across_workers() {
    let cfg = remote_config();
    assert_eq!(cfg.remote_sources.len(), 2);
    let cache = TokenCache::new(0);
    let t = token("a", KEY_A, json!({}));
    let (_, host) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&t))]);
    let r = host.reply.unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("5"));

    // Worker 1's first tick claims and starts both fetches.
    let mut worker1 = FakeHost::new(NOW);
    let mut fetcher = KeyFetcher::default();
    fetcher.on_tick(&cfg.remote_sources, &mut worker1);
    assert_eq!(worker1.calls.len(), 2);
    let jwks_call = &worker1.calls[0];
    assert_eq!(jwks_call.cluster, "idp");
    assert!(jwks_call
        .headers
        .contains(&(":path".into(), "/jwks".into())));
    assert!(jwks_call
        .headers
        .contains(&(":authority".into(), "idp.local:8080".into())));
    let discovery = &worker1.calls[1];
    assert_eq!(discovery.cluster, "outbound|3000||idp.svc");
    assert!(discovery.headers.contains(&(
        ":path".into(),
        "/realm/.well-known/openid-configuration".into()
    )));
    assert!(discovery
        .headers
        .contains(&(":authority".into(), "idp.example".into())));

    // A second tick while the calls are out starts nothing new.
    fetcher.on_tick(&cfg.remote_sources, &mut worker1);
    assert_eq!(worker1.calls.len(), 2);

    let jwks = json!({"keys": [oct("a", KEY_A)]}).to_string();
    let changes = fetcher.on_response(
        &cfg.remote_sources,
        1,
        Some(200),
        jwks.as_bytes(),
        &mut worker1,
    );
    assert!(changes.keys_replaced);
    let (_, host) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&t))]);
    assert_eq!(host.header("x-mse-consumer"), Some("idp-app"));

    // Discovery answer → JWKS call through the same cluster.
    let doc = json!({"issuer": "http://127.0.0.1:3000/realm/", "jwks_uri": "http://127.0.0.1:3000/realm/certs"}).to_string();
    fetcher.on_response(
        &cfg.remote_sources,
        2,
        Some(200),
        doc.as_bytes(),
        &mut worker1,
    );
    assert_eq!(worker1.calls.len(), 3);
    assert!(worker1.calls[2]
        .headers
        .contains(&(":path".into(), "/realm/certs".into())));

    // Worker 2 (another VM copy of the config) adopts published keys
    // without fetching.
    let cfg2 = remote_config();
    let mut worker2 = FakeHost::new(NOW + 1);
    worker2.shared = worker1.shared.clone();
    let mut fetcher2 = KeyFetcher::default();
    let changes = fetcher2.on_tick(&cfg2.remote_sources, &mut worker2);
    assert!(changes.keys_replaced);
    assert_eq!(
        worker2.calls.len(),
        0,
        "the discovery fetch is claimed by worker 1"
    );
    assert!(cfg2.remote_sources[0].current().is_some());
}

/// A key removed from the JWKS (revoked) stops its tokens on every worker
/// within a second of the fetch that saw it go, even on a worker whose own
/// tick is late (found by the soak under load: the other worker kept
/// accepting for 7.5 s more) and even for a token it had cached.
#[test]
fn a_revoked_key_stops_on_every_worker_within_a_second_without_their_tick() {
    let cfg1 = remote_config();
    let cfg2 = remote_config();
    let cache2 = TokenCache::new(100);
    let t = token("a", KEY_A, json!({}));
    let both = json!({"keys": [oct("a", KEY_A), oct("b", KEY_B)]}).to_string();
    let only_b = json!({"keys": [oct("b", KEY_B)]}).to_string();

    // Worker 1 fetches keys a and b and publishes them.
    let mut worker1 = FakeHost::new(NOW);
    assert!(crate::keys::remote::accept_jwks(
        &cfg1.remote_sources[0],
        both.as_bytes(),
        &mut worker1
    ));
    // Worker 2 (never ticks here) serves and caches a token of key a.
    let on_worker2 = |now: u64, shared: &FakeHost| serve_sharing(&cfg2, &cache2, &t, now, shared);
    for now in [NOW, NOW + 1] {
        let host = on_worker2(now, &worker1);
        assert!(host.reply.is_none(), "{:?}", host.reply);
        assert_eq!(host.header("x-mse-consumer"), Some("idp-app"));
    }

    // Worker 1's refresh at NOW + 10 finds key a gone.
    let mut refreshed = FakeHost::new(NOW + 10);
    refreshed.shared = worker1.shared.clone();
    assert!(crate::keys::remote::accept_jwks(
        &cfg1.remote_sources[0],
        only_b.as_bytes(),
        &mut refreshed
    ));
    // Worker 2, one second later and without a tick: refused, cache or not.
    let host = on_worker2(NOW + 11, &refreshed);
    let reply = host.reply.as_ref().expect("refused");
    assert_eq!(reply.status, 401);
    assert_eq!(host.header("x-mse-consumer"), None);
}

/// A GET with `token` on another worker (its own config and cache) that
/// shares Envoy's shared data with `shared`; the host after the decision.
fn serve_sharing(
    cfg: &Config,
    cache: &TokenCache,
    token: &str,
    now: u64,
    shared: &FakeHost,
) -> FakeHost {
    let mut host = FakeHost::new(now)
        .request("GET", "gw", "/x")
        .with_property("route_name", "r")
        .with_header("authorization", &bearer(token));
    host.shared = shared.shared.clone();
    let decision = on_request_headers(cfg, cache, &mut host, true);
    apply(&mut host, decision);
    host
}

/// A refresh that brings back the same JWKS body changes no key: the
/// verified-token cache stays, on the worker that fetched and on the ones
/// that adopt the newer record (found by the soak: every refresh emptied
/// every worker's cache, so with a 10 s refresh interval it never filled).
#[test]
fn an_unchanged_key_set_keeps_the_verified_token_cache_on_every_worker() {
    let cfg1 = remote_config();
    let cfg2 = remote_config();
    let cache2 = TokenCache::new(100);
    let t = token("a", KEY_A, json!({}));
    let both = json!({"keys": [oct("a", KEY_A), oct("b", KEY_B)]}).to_string();
    let only_b = json!({"keys": [oct("b", KEY_B)]}).to_string();
    let refresh = |now: u64, shared: &FakeHost, body: &str| {
        let mut host = FakeHost::new(now);
        host.shared = shared.shared.clone();
        let replaced =
            crate::keys::remote::accept_jwks(&cfg1.remote_sources[0], body.as_bytes(), &mut host);
        (replaced, host)
    };
    let on_worker2 = |now: u64, shared: &FakeHost| serve_sharing(&cfg2, &cache2, &t, now, shared);

    let (replaced, worker1) = refresh(NOW, &FakeHost::new(NOW), &both);
    assert!(replaced, "the first key set replaces nothing but is new");
    let host = on_worker2(NOW, &worker1);
    assert!(host.reply.is_none(), "{:?}", host.reply);
    assert_eq!(host.header("x-mse-consumer"), Some("idp-app"));
    assert_eq!(host.counter("cache_misses"), 1);
    assert_eq!(cache2.len(), 1);

    // The periodic refresh brings the same body: nothing replaced.
    let (replaced, worker1) = refresh(NOW + 10, &worker1, &both);
    assert!(!replaced, "the same key set again is no change");
    // Worker 2 sees the newer record (same keys) and keeps its cache: a hit.
    let host = on_worker2(NOW + 11, &worker1);
    assert!(host.reply.is_none(), "{:?}", host.reply);
    assert_eq!(host.header("x-mse-consumer"), Some("idp-app"));
    assert_eq!(host.counter("cache_hits"), 1);
    assert_eq!(host.counter("cache_misses"), 0);
    assert_eq!(cache2.len(), 1);

    // A changed body still replaces the keys and empties the cache.
    let (replaced, worker1) = refresh(NOW + 20, &worker1, &only_b);
    assert!(replaced);
    let host = on_worker2(NOW + 21, &worker1);
    assert_eq!(host.reply.as_ref().map(|r| r.status), Some(401));
    assert_eq!(host.header("x-mse-consumer"), None);
    assert_eq!(cache2.len(), 0);
}

#[test]
fn a_reloaded_config_serves_with_published_keys_before_its_first_tick() {
    let cfg = remote_config();
    let mut worker = FakeHost::new(NOW);
    let mut fetcher = KeyFetcher::default();
    fetcher.on_tick(&cfg.remote_sources, &mut worker);
    let jwks = json!({"keys": [oct("a", KEY_A)]}).to_string();
    fetcher.on_response(
        &cfg.remote_sources,
        1,
        Some(200),
        jwks.as_bytes(),
        &mut worker,
    );

    // Envoy hands the plugin a new configuration: new sources, no tick yet,
    // but the shared data of the VM is still there.
    let reloaded = remote_config();
    assert!(reloaded.remote_sources[0].current().is_none());
    let cache = TokenCache::new(0);
    let t = token("a", KEY_A, json!({}));
    let mut host = FakeHost::new(NOW + 1)
        .request("GET", "gw", "/x")
        .with_property("route_name", "r")
        .with_header("authorization", &bearer(&t));
    host.shared = worker.shared.clone();
    let decision = on_request_headers(&reloaded, &cache, &mut host, true);
    apply(&mut host, decision);
    assert!(host.reply.is_none(), "{:?}", host.reply);
    assert_eq!(host.header("x-mse-consumer"), Some("idp-app"));
    assert!(host.calls.is_empty(), "nothing fetched on the request path");

    // A token whose key set was never published still gets 503.
    let other = remote_config();
    let (_, host) = send(&other, &cache, "/x", &[("authorization", &bearer(&t))]);
    assert_eq!(host.reply.map(|r| r.status), Some(503));
}

#[test]
fn discovery_issuer_must_match() {
    let cfg = remote_config();
    let mut host = FakeHost::new(NOW);
    let mut fetcher = KeyFetcher::default();
    fetcher.on_tick(&cfg.remote_sources, &mut host);
    let doc =
        json!({"issuer": "http://evil", "jwks_uri": "http://127.0.0.1:3000/certs"}).to_string();
    fetcher.on_response(&cfg.remote_sources, 2, Some(200), doc.as_bytes(), &mut host);
    assert_eq!(
        host.calls.len(),
        2,
        "no JWKS fetch after a bad discovery document"
    );
    let logs = host.logs.borrow();
    assert!(logs
        .iter()
        .any(|(_, l)| l.contains("discovery issuer \"http://evil\" is not the configured")));
}

#[test]
fn failed_refresh_keeps_keys_and_unknown_kid_refetch_is_rate_limited() {
    let cfg = remote_config();
    let source = Rc::clone(&cfg.remote_sources[0]);
    let mut host = FakeHost::new(NOW);
    let mut fetcher = KeyFetcher::default();
    fetcher.on_tick(&cfg.remote_sources, &mut host);
    let jwks = json!({"keys": [oct("a", KEY_A)]}).to_string();
    fetcher.on_response(
        &cfg.remote_sources,
        1,
        Some(200),
        jwks.as_bytes(),
        &mut host,
    );
    let calls_after_first = host.calls.len();

    // A token with an unknown kid asks for a refetch...
    let cache = TokenCache::new(0);
    let rotated = token("b", KEY_B, json!({}));
    let (_, h) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&rotated))]);
    assert_eq!(h.reply.unwrap().status, 401);
    // ...which waits 30 s after the last fetch.
    host.now = NOW + 29;
    fetcher.on_tick(&cfg.remote_sources[..1], &mut host);
    assert_eq!(host.calls.len(), calls_after_first);
    host.now = NOW + 30;
    fetcher.on_tick(&cfg.remote_sources[..1], &mut host);
    assert_eq!(host.calls.len(), calls_after_first + 1);
    let token_id = host.calls.last().unwrap().token;

    // The IdP answers 500: old keys stay, a warning explains.
    fetcher.on_response(
        &cfg.remote_sources[..1],
        token_id,
        Some(500),
        b"oops",
        &mut host,
    );
    assert!(source.current().unwrap().has_kid("a"));
    assert!(host
        .logs
        .borrow()
        .iter()
        .any(|(_, l)| l.contains("JWKS fetch failed: status 500; keeping the previous keys")));

    // Retry after backoff brings the rotated key in.
    host.now = NOW + 31;
    fetcher.on_tick(&cfg.remote_sources[..1], &mut host);
    let token_id = host.calls.last().unwrap().token;
    let rotated_set = json!({"keys": [oct("b", KEY_B)]}).to_string();
    fetcher.on_response(
        &cfg.remote_sources[..1],
        token_id,
        Some(200),
        rotated_set.as_bytes(),
        &mut host,
    );
    let (_, h) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&rotated))]);
    assert_eq!(h.header("x-mse-consumer"), Some("idp-app"));
}

#[test]
fn garbage_jwks_never_replaces_good_keys() {
    let cfg = remote_config();
    let sources = &cfg.remote_sources[..1];
    let source = Rc::clone(&cfg.remote_sources[0]);
    let cache = TokenCache::new(0);
    let good = token("a", KEY_A, json!({"exp": NOW + 3600}));
    let mut host = FakeHost::new(NOW);
    let mut fetcher = KeyFetcher::default();

    // Good keys first: the token verifies.
    fetcher.on_tick(sources, &mut host);
    let id = host.calls.last().unwrap().token;
    let jwks = json!({"keys": [oct("a", KEY_A)]}).to_string();
    assert!(
        fetcher
            .on_response(sources, id, Some(200), jwks.as_bytes(), &mut host)
            .keys_replaced
    );
    let (_, h) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&good))]);
    assert_eq!(h.header("x-mse-consumer"), Some("idp-app"));
    // The record other workers read: "<fetched at>\n<body>".
    let published: Vec<(String, Vec<u8>)> = host
        .shared
        .iter()
        .filter(|(_, (v, _))| v.ends_with(jwks.as_bytes()))
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect();
    assert_eq!(published.len(), 1);
    let (keys_key, keys_record) = &published[0];

    // Then every kind of garbage as the answer to a due refresh.
    let too_big = vec![b' '; crate::keys::remote::MAX_DOCUMENT_BYTES + 1];
    let unusable = json!({"keys": [{"kty": "oct", "kid": "b"}]}).to_string();
    let garbage: [(&[u8], Option<u32>); 7] = [
        (b"{not json", Some(200)),
        (&too_big, Some(200)),
        (b"", None),
        (b"{\"keys\": []}", Some(200)),
        (unusable.as_bytes(), Some(200)),
        (b"[]", Some(200)),
        (jwks.as_bytes(), Some(500)),
    ];
    host.now = NOW + 600; // the periodic refresh is due
    for (body, status) in garbage {
        let calls = host.calls.len();
        fetcher.on_tick(sources, &mut host);
        assert_eq!(host.calls.len(), calls + 1, "a refresh is asked for");
        let id = host.calls.last().unwrap().token;
        let changes = fetcher.on_response(sources, id, status, body, &mut host);
        assert!(!changes.keys_replaced);
        assert!(source.current().unwrap().has_kid("a"));
        assert_eq!(host.shared.get(keys_key).map(|(v, _)| v), Some(keys_record));
        // The good keys still verify, here and in a worker that reads the
        // shared data (a reloaded configuration).
        let (flow, h) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&good))]);
        assert_eq!(flow, Flow::Continue);
        assert_eq!(h.header("x-mse-consumer"), Some("idp-app"));
        let reloaded = remote_config();
        let mut other = FakeHost::new(host.now)
            .request("GET", "gw", "/x")
            .with_property("route_name", "r")
            .with_header("authorization", &bearer(&good));
        other.shared = host.shared.clone();
        let decision = on_request_headers(&reloaded, &cache, &mut other, true);
        apply(&mut other, decision);
        assert_eq!(
            other.header("x-mse-consumer"),
            Some("idp-app"),
            "{:?}",
            other.reply
        );
        host.now += 16; // past the longest backoff
    }
}

/// Gateway consumers and a JWT consumer reading the Higress default places
/// (`Authorization: Bearer` and `?access_token=`).
fn gateway_and_jwt() -> Config {
    let jwks = json!({"keys": [oct("a", KEY_A)]}).to_string();
    config(json!({
        "consumers": [
            {"name": "consumer1", "client_id": "id1", "client_secret": super::SECRET1},
            {"name": "app-one", "issuer": ISS, "jwks": jwks, "audiences": ["api"],
             "claims_to_headers": [{"claim": "roles", "header": "x-roles"},
                                   {"claim": "sub", "header": "x-user"}]}
        ],
        "global_auth": true
    }))
}

fn gateway_token(cfg: &Config) -> String {
    let consumer = cfg.global.consumers.by_client_id("id1").unwrap();
    crate::token::issue_access_token(&crate::token::issue::AccessTokenRequest {
        consumer,
        issuer: &cfg.global.issuer,
        audience: "default",
        scope: None,
        now: NOW,
        ttl: 600,
        jti_random: [1; 16],
    })
}

/// Fails on the build before the fix: the cache was keyed by scope and
/// token only, so the second request was a hit.
#[test]
fn the_cache_never_changes_a_decision_a_token_valid_in_the_header_is_not_valid_in_the_query() {
    let cfg = gateway_and_jwt();
    let cache = TokenCache::new(8);
    let t = gateway_token(&cfg);
    // Without the cache: gateway tokens are only read from the gateway header.
    let (flow, host) = send(
        &cfg,
        &TokenCache::new(0),
        &format!("/x?access_token={t}"),
        &[],
    );
    assert_eq!((flow, host.reply.unwrap().status), (Flow::Stop, 401));
    let (flow, host) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&t))]);
    assert_eq!(flow, Flow::Continue);
    assert_eq!(host.header("x-mse-consumer"), Some("consumer1"));
    let (flow, host) = send(&cfg, &cache, &format!("/x?access_token={t}"), &[]);
    assert_eq!(flow, Flow::Stop);
    let r = host.reply.clone().unwrap();
    assert_eq!((r.status, r.body.as_str()), (401, "Invalid Jwt token."));
    assert_eq!(host.counter("denied_401_malformed_token"), 0);
}

/// Fails on the build before the fix: only the first token found was
/// checked, the query one reached the upstream unchecked.
#[test]
fn every_token_present_must_verify() {
    let cfg = gateway_and_jwt();
    let cache = TokenCache::new(8);
    let good = token("a", KEY_A, json!({}));
    let bad = token("a", KEY_B, json!({"sub": "admin"}));
    let (flow, host) = send(
        &cfg,
        &cache,
        &format!("/x?access_token={bad}"),
        &[("authorization", &bearer(&good))],
    );
    assert_eq!(flow, Flow::Stop);
    let r = host.reply.clone().unwrap();
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("error_description=\"signature verification failed\""));
    assert_eq!(host.counter("denied_401_bad_signature"), 1);
    // The same valid token in both places is fine; two valid tokens of
    // different consumers are not.
    let (flow, _) = send(
        &cfg,
        &cache,
        &format!("/x?access_token={good}"),
        &[("authorization", &bearer(&good))],
    );
    assert_eq!(flow, Flow::Continue);
    let gw = gateway_token(&cfg);
    let (flow, host) = send(
        &cfg,
        &cache,
        &format!("/x?access_token={good}"),
        &[("authorization", &bearer(&gw))],
    );
    assert_eq!(flow, Flow::Stop);
    assert_eq!(host.reply.clone().unwrap().status, 401);
    assert_eq!(host.counter("denied_401_tokens_disagree"), 1);
}

/// Fails on the build before the fix: `["a","b,admin"]` became `a,b,admin`.
#[test]
fn array_claims_with_the_separator_in_an_element_give_no_header() {
    let cfg = gateway_and_jwt();
    let cache = TokenCache::new(0);
    let t = token("a", KEY_A, json!({"roles": ["reader", "b,admin"]}));
    let (flow, host) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&t))]);
    assert_eq!(flow, Flow::Continue);
    assert_eq!(host.header("x-roles"), None);
    assert_eq!(
        host.header("x-user"),
        Some("user-7"),
        "other claims still pass"
    );
    assert!(host
        .logs
        .borrow()
        .iter()
        .any(|(_, l)| l.contains("claim \"roles\" not passed upstream")));
    let t = token("a", KEY_A, json!({"roles": ["reader", "writer"]}));
    let (_, host) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&t))]);
    assert_eq!(host.header("x-roles"), Some("reader,writer"));
}

/// One header read through two configured prefixes is one token, not a
/// second (malformed) one: a consumer reading the raw `Authorization` value
/// next to the gateway's `Bearer ` location must not refuse every request.
#[test]
fn one_header_under_two_prefixes_is_one_token() {
    let jwks = json!({"keys": [oct("a", KEY_A)]}).to_string();
    let cfg = config(json!({
        "consumers": [
            {"name": "consumer1", "client_id": "id1", "client_secret": super::SECRET1},
            {"name": "raw-app", "issuer": ISS, "jwks": jwks,
             "from_headers": [{"name": "Authorization"}]}
        ],
        "global_auth": true
    }));
    let cache = TokenCache::new(0);
    let gw = gateway_token(&cfg);
    let (flow, host) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&gw))]);
    assert_eq!(flow, Flow::Continue);
    assert_eq!(host.header("x-mse-consumer"), Some("consumer1"));
    let raw = token("a", KEY_A, json!({}));
    let (flow, host) = send(&cfg, &cache, "/x", &[("authorization", &raw)]);
    assert_eq!(flow, Flow::Continue);
    assert_eq!(host.header("x-mse-consumer"), Some("raw-app"));
    // A JWT consumer's token after "Bearer " is read by the gateway location
    // only, which does not know it: refused, never let through.
    let (flow, _) = send(&cfg, &cache, "/x", &[("authorization", &bearer(&raw))]);
    assert_eq!(flow, Flow::Stop);
}

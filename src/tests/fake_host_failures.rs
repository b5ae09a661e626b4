//! Failures the host can cause, shown with the fake host's existing switches
//! (`fail_dispatch` had no test): a key fetch that cannot even be sent is a
//! failed fetch (warned, counted, backed off, retried), requests keep
//! failing closed meanwhile, and one broken source does not hold up another.
//! Also CAS contention between workers (`fail_next_cas`), a second reply on
//! one stream (refused and recorded), and repeated request headers. Stream
//! level dispatch failure is in `tests/stream.rs`.

use serde_json::json;

use super::NOW;
use crate::b64::b64url;
use crate::config::{compile_json, Config};
use crate::decision::apply;
use crate::fake_host::FakeHost;
use crate::host::LogLevel;
use crate::keys::remote::KeyFetcher;
use crate::request::on_request_headers;
use crate::tests::hs256_jwt;
use crate::verified::cache::TokenCache;

const KEY: &str = "key-a-0123456789abcdef0123456789abcdef";
const ISS: &str = "https://idp.example";
const ISS2: &str = "https://other.example";

fn remote(consumers: serde_json::Value) -> Config {
    compile_json(json!({ "consumers": consumers }).to_string().as_bytes()).unwrap()
}

fn token(iss: &str) -> String {
    let header = json!({"alg": "HS256", "kid": "a"}).to_string();
    let claims = json!({"iss": iss, "sub": "s", "exp": NOW + 3600}).to_string();
    hs256_jwt(&header, &claims, KEY.as_bytes())
}

fn status_of(cfg: &Config, shared: &FakeHost, now: u64, iss: &str) -> Option<u32> {
    let mut host = FakeHost::new(now)
        .request("GET", "gw", "/x")
        .with_property("route_name", "r")
        .with_header("authorization", &format!("Bearer {}", token(iss)));
    host.shared = shared.shared.clone();
    let d = on_request_headers(cfg, &TokenCache::new(0), &mut host, true);
    apply(&mut host, d);
    host.reply.map(|r| r.status)
}

fn jwks() -> Vec<u8> {
    json!({"keys": [{"kty": "oct", "kid": "a", "k": b64url(KEY.as_bytes())}]})
        .to_string()
        .into_bytes()
}

#[test]
fn a_key_fetch_that_cannot_be_dispatched_is_a_failed_fetch() {
    let cfg = remote(
        json!([{"name": "a", "issuer": ISS, "jwks_uri": "http://idp.local/jwks",
                             "cluster": "missing-cluster"}]),
    );
    let mut host = FakeHost::new(NOW);
    host.fail_dispatch = true;
    let mut fetcher = KeyFetcher::default();
    fetcher.on_tick(&cfg.remote_sources, &mut host);
    assert!(host.calls.is_empty());
    assert_eq!(host.counter("jwks_fetch_failed"), 1);
    let warned = host.logs.borrow().iter().any(|(level, line)| {
        *level == LogLevel::Warn
            && line.contains("cannot call cluster \"missing-cluster\"")
            && line.contains("no keys yet, requests needing them get 503")
    });
    assert!(warned, "{:?}", host.logs.borrow());
    // Fail closed meanwhile.
    assert_eq!(status_of(&cfg, &host, NOW, ISS), Some(503));

    // Backoff: no new attempt within the first second, then one.
    fetcher.on_tick(&cfg.remote_sources, &mut host);
    assert_eq!(host.counter("jwks_fetch_failed"), 1, "retried at once");
    host.now = NOW + 1;
    fetcher.on_tick(&cfg.remote_sources, &mut host);
    assert_eq!(host.counter("jwks_fetch_failed"), 2);

    // The cluster appears: the next due attempt is sent and its keys serve.
    host.fail_dispatch = false;
    host.now = NOW + 3;
    fetcher.on_tick(&cfg.remote_sources, &mut host);
    assert_eq!(host.calls.len(), 1);
    assert_eq!(host.calls[0].cluster, "missing-cluster");
    let id = host.calls[0].token;
    fetcher.on_response(&cfg.remote_sources, id, Some(200), &jwks(), &mut host);
    assert_eq!(status_of(&cfg, &host, NOW + 3, ISS), None);
}

#[test]
fn one_source_failing_to_dispatch_does_not_hold_up_another() {
    let cfg = remote(json!([
        {"name": "a", "issuer": ISS, "jwks_uri": "http://idp.local/jwks", "cluster": "idp"},
        {"name": "b", "issuer": ISS2, "jwks_uri": "http://other.local/jwks", "cluster": "other"}
    ]));
    let mut host = FakeHost::new(NOW);
    let mut fetcher = KeyFetcher::default();
    // Only the first dispatch fails: the fake host's switch is flipped by
    // ticking the sources one at a time.
    host.fail_dispatch = true;
    fetcher.on_tick(&cfg.remote_sources[..1], &mut host);
    host.fail_dispatch = false;
    fetcher.on_tick(&cfg.remote_sources, &mut host);
    assert_eq!(host.calls.len(), 1, "{:?}", host.calls);
    assert_eq!(host.calls[0].cluster, "other");
    let id = host.calls[0].token;
    fetcher.on_response(&cfg.remote_sources, id, Some(200), &jwks(), &mut host);
    assert_eq!(status_of(&cfg, &host, NOW, ISS2), None);
    assert_eq!(status_of(&cfg, &host, NOW, ISS), Some(503));
}

#[test]
fn a_worker_that_loses_the_fetch_claim_to_another_does_not_fetch() {
    let cfg = remote(
        json!([{"name": "a", "issuer": ISS, "jwks_uri": "http://idp.local/jwks",
                             "cluster": "idp", "jwks_refresh_seconds": 60}]),
    );
    let mut host = FakeHost::new(NOW);
    let mut fetcher = KeyFetcher::default();
    fetcher.on_tick(&cfg.remote_sources, &mut host);
    assert_eq!(host.calls.len(), 1);
    fetcher.on_response(&cfg.remote_sources, 1, Some(200), &jwks(), &mut host);

    // The refresh is due, but another worker writes the fetch state between
    // this worker's read and its CAS write: that worker fetches, not this one.
    host.now = NOW + 61;
    host.fail_next_cas = 1; // mutation: ignoring the CAS error in KeyFetcher::on_tick fails this test
    fetcher.on_tick(&cfg.remote_sources, &mut host);
    assert_eq!(host.calls.len(), 1, "lost the claim, yet fetched");
    assert_eq!(
        host.counter("jwks_fetch_failed"),
        0,
        "losing a claim is no failure"
    );
    assert_eq!(
        status_of(&cfg, &host, NOW + 61, ISS),
        None,
        "the keys still serve"
    );

    // No contention on the next tick: the claim is won and the fetch sent.
    fetcher.on_tick(&cfg.remote_sources, &mut host);
    assert_eq!(host.calls.len(), 2);
}

#[test]
fn a_second_reply_on_one_stream_is_refused_and_logged() {
    let mut host = FakeHost::new(NOW).request("GET", "gw", "/x");
    host.context = 3;
    let first = crate::decision::keys_unavailable();
    let second = crate::decision::server_error();
    apply(&mut host, crate::decision::Decision::<()>::Reply(first));
    apply(&mut host, crate::decision::Decision::<()>::Reply(second));
    assert_eq!(host.replies_on(3).len(), 2, "both attempts are recorded");
    assert_eq!(
        host.reply.as_ref().map(|r| r.status),
        Some(503),
        "the first stands"
    );
    let logged = host.logs.borrow().iter().any(|(level, line)| {
        *level == LogLevel::Error
            && line.contains("local reply failed (a second reply on one stream)")
    });
    assert!(logged, "{:?}", host.logs.borrow());
    // Another stream may still be answered.
    host.context = 4;
    apply(
        &mut host,
        crate::decision::Decision::<()>::Reply(crate::decision::server_error()),
    );
    assert_eq!(host.replies_on(4).len(), 1);
}

#[test]
fn a_repeated_identity_header_loses_every_value() {
    let cfg = remote(json!([{"name": "a", "issuer": ISS, "jwks": {"keys": [
        {"kty": "oct", "kid": "a", "k": b64url(KEY.as_bytes())}]}}]));
    let mut host = FakeHost::new(NOW)
        .request("GET", "gw", "/x")
        .with_property("route_name", "r")
        .with_header("authorization", &format!("Bearer {}", token(ISS)))
        .with_header("x-mse-consumer", "mallory")
        .with_header("x-mse-consumer", "eve");
    assert_eq!(host.header_count("x-mse-consumer"), 2);
    let d = on_request_headers(&cfg, &TokenCache::new(0), &mut host, true);
    assert_eq!(apply(&mut host, d), crate::decision::Flow::Continue);
    let values: Vec<&str> = host
        .headers
        .iter()
        .filter(|(k, _)| k == "x-mse-consumer")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(values, ["a"]);
}

#[test]
fn the_fake_host_keeps_repeated_header_values_apart_as_envoy_does() {
    use crate::host::Host;
    let mut host = FakeHost::new(NOW)
        .request("GET", "gw", "/x")
        .with_header("x-api-token", "first")
        .with_raw_header("X-Api-Token", "second");
    // The single-value read gives the first, as get_header_map_value does.
    assert_eq!(host.request_header("x-api-token").as_deref(), Some("first"));
    assert_eq!(
        host.request_header_values("x-api-token").unwrap(),
        ["first", "second"]
    );
    host.fail_header_list = true;
    assert!(host.request_header_values("x-api-token").is_err());
}

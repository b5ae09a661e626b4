//! The verified-token cache shared by workers, through the whole request
//! path: two "workers" (each its own config copy, key fetcher and local
//! cache, as Envoy gives each worker its own VM) share one shared-data store.

use std::collections::HashMap;

use serde_json::json;

use super::hs256_jwt;
use super::NOW;
use crate::b64::b64url;
use crate::config::{compile_json, Config};
use crate::decision::{apply, Flow};
use crate::fake_host::FakeHost;
use crate::keys::remote::{accept_jwks, KeyFetcher};
use crate::request::on_request_headers;
use crate::verified::cache::TokenCache;
use crate::verified::shared_cache::SharedTokenCache;

const KEY_A: &str = "key-a-0123456789abcdef0123456789abcdef";
const KEY_A2: &str = "key-a2-0123456789abcdef0123456789abcde";
const KEY_B: &str = "key-b-0123456789abcdef0123456789abcdef";
const ISS: &str = "https://idp.example";

type Store = HashMap<String, (Vec<u8>, u32)>;

fn jwks(keys: &[(&str, &str)]) -> String {
    let keys: Vec<_> = keys
        .iter()
        .map(|(kid, k)| json!({"kty": "oct", "kid": kid, "k": b64url(k.as_bytes())}))
        .collect();
    json!({ "keys": keys }).to_string()
}

fn token(kid: &str, secret: &str) -> String {
    let header = json!({"alg": "HS256", "kid": kid}).to_string();
    let claims = json!({"iss": ISS, "sub": "u", "exp": NOW + 600}).to_string();
    hs256_jwt(&header, &claims, secret.as_bytes())
}

struct Worker {
    cfg: Config,
    cache: TokenCache,
    fetcher: KeyFetcher,
}

impl Worker {
    /// Worker `n`: its local cache has a secret of its own (as each VM
    /// draws one), the shared ring is common.
    fn new(n: u8) -> Self {
        let cfg = compile_json(
            json!({"consumers": [{"name": "idp-app", "issuer": ISS,
                   "jwks_uri": "http://idp.local:8080/jwks", "cluster": "idp"}]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let mut secret_source = FakeHost::new(0);
        secret_source.random_counter = n.wrapping_mul(16);
        Worker {
            cfg,
            cache: TokenCache::with_budget(100, 1 << 20, &mut secret_source)
                .with_sharing(SharedTokenCache::new(64)),
            fetcher: KeyFetcher::default(),
        }
    }

    fn host(store: &mut Store, now: u64) -> FakeHost {
        let mut host = FakeHost::new(now);
        host.shared = std::mem::take(store);
        host
    }

    /// This worker fetched `body` (and published it, as a fetch does).
    fn fetched(&self, store: &mut Store, now: u64, body: &str) {
        let mut host = Self::host(store, now);
        assert!(accept_jwks(
            &self.cfg.remote_sources[0],
            body.as_bytes(),
            &mut host
        ));
        self.cache.clear();
        *store = host.shared;
    }

    /// A tick: adopts what another worker published.
    fn tick(&mut self, store: &mut Store, now: u64) {
        let mut host = Self::host(store, now);
        if self
            .fetcher
            .on_tick(&self.cfg.remote_sources, &mut host)
            .keys_replaced
        {
            self.cache.clear();
        }
        *store = host.shared;
    }

    /// A request with `token`, as the plugin shell runs it (decision, then
    /// publication to the shared ring).
    fn send(&self, store: &mut Store, now: u64, token: &str) -> (Flow, FakeHost) {
        let mut host = Self::host(store, now)
            .request("GET", "gw", "/x")
            .with_property("route_name", "r")
            .with_header("authorization", &format!("Bearer {token}"));
        let decision = on_request_headers(&self.cfg, &self.cache, &mut host, true);
        self.cache.publish_shared(&mut host);
        let flow = apply(&mut host, decision);
        *store = std::mem::take(&mut host.shared);
        (flow, host)
    }
}

fn counts(host: &FakeHost) -> (u64, u64, u64) {
    (
        host.counter("cache_hits"),
        host.counter("cache_shared_hits"),
        host.counter("cache_misses"),
    )
}

fn accepted(flow: Flow, host: &FakeHost) {
    assert_eq!(flow, Flow::Continue, "reply: {:?}", host.reply);
    assert_eq!(host.header("x-mse-consumer"), Some("idp-app"));
}

fn refused(host: &FakeHost) {
    let reply = host.reply.as_ref().expect("a refusal");
    assert_eq!(reply.status, 401);
    assert_eq!(host.header("x-mse-consumer"), None);
}

/// Fails without the shared ring: worker 2 verified the token itself
/// (counts (0, 0, 1)).
#[test]
fn a_token_verified_on_one_worker_is_a_hit_on_the_other() {
    let mut store = Store::new();
    let (mut one, mut two) = (Worker::new(1), Worker::new(2));
    one.fetched(&mut store, NOW, &jwks(&[("a", KEY_A)]));
    two.tick(&mut store, NOW);
    one.tick(&mut store, NOW);
    let t = token("a", KEY_A);

    let (flow, host) = one.send(&mut store, NOW, &t);
    accepted(flow, &host);
    assert_eq!(counts(&host), (0, 0, 1), "first sight: verified on one");
    let (flow, host) = two.send(&mut store, NOW, &t);
    accepted(flow, &host);
    assert_eq!(counts(&host), (0, 1, 0), "worker two takes one's result");
    let (flow, host) = two.send(&mut store, NOW, &t);
    accepted(flow, &host);
    assert_eq!(counts(&host), (1, 0, 0), "then from its own cache");
    // A token that does not verify is never published.
    let forged = token("a", KEY_B);
    let (_, host) = one.send(&mut store, NOW, &forged);
    refused(&host);
    let (_, host) = two.send(&mut store, NOW, &forged);
    refused(&host);
    assert_eq!(counts(&host), (0, 0, 1));
}

/// A revoked key (removed from the JWKS) stops its tokens on every worker
/// once each holds the new key set, although the shared ring still has the
/// identity verified under the old one. Fails when shared entries are not
/// versioned by the key set (worker two answered 200 from the ring).
#[test]
fn a_revoked_key_stops_its_tokens_on_every_worker() {
    let mut store = Store::new();
    let (one, mut two) = (Worker::new(1), Worker::new(2));
    one.fetched(&mut store, NOW, &jwks(&[("a", KEY_A), ("b", KEY_B)]));
    two.tick(&mut store, NOW);
    let t = token("a", KEY_A);
    let (flow, host) = one.send(&mut store, NOW, &t);
    accepted(flow, &host);

    // Key a revoked: worker one fetches the new set.
    one.fetched(&mut store, NOW + 300, &jwks(&[("b", KEY_B)]));
    let (_, host) = one.send(&mut store, NOW + 300, &t);
    refused(&host);
    // Worker two adopts it on its next tick: the old entry in the ring
    // names the old key set and is never trusted.
    two.tick(&mut store, NOW + 301);
    let (_, host) = two.send(&mut store, NOW + 301, &t);
    refused(&host);
    assert_eq!(counts(&host), (0, 0, 1));
    // Tokens of the remaining key still share.
    let tb = token("b", KEY_B);
    let (flow, host) = one.send(&mut store, NOW + 302, &tb);
    accepted(flow, &host);
    let (flow, host) = two.send(&mut store, NOW + 302, &tb);
    accepted(flow, &host);
    assert_eq!(counts(&host), (0, 1, 0));
}

/// A rotated key (same kid, new secret): old tokens stop, new ones verify
/// and are shared under the new key set.
#[test]
fn a_key_rotation_invalidates_shared_entries() {
    let mut store = Store::new();
    let (one, mut two) = (Worker::new(1), Worker::new(2));
    one.fetched(&mut store, NOW, &jwks(&[("a", KEY_A)]));
    two.tick(&mut store, NOW);
    let old = token("a", KEY_A);
    let (flow, host) = one.send(&mut store, NOW, &old);
    accepted(flow, &host);

    one.fetched(&mut store, NOW + 300, &jwks(&[("a", KEY_A2)]));
    two.tick(&mut store, NOW + 301);
    let (_, host) = two.send(&mut store, NOW + 301, &old);
    refused(&host);
    assert_eq!(counts(&host), (0, 0, 1), "the old entry is not found");
    let new = token("a", KEY_A2);
    let (flow, host) = two.send(&mut store, NOW + 302, &new);
    accepted(flow, &host);
    let (flow, host) = one.send(&mut store, NOW + 302, &new);
    accepted(flow, &host);
    assert_eq!(counts(&host), (0, 1, 0));
}

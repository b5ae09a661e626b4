//! The plugin's own per-request cost on the request path, without Envoy:
//! the real stream code (`stream::Worker`/`Stream`) with the fake host, for
//! a cached verification among many distinct tokens and for an open route.
//! Built for wasm32-wasip1 and run in V8 (`bench/crypto_wasi.mjs`), or
//! natively. Prints `<row> <microseconds per request>`.

use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use edge_auth::fake_host::FakeHost;
use edge_auth::stream::Worker;

const KEY: &[u8] = b"hot-path-bench-secret-0123456789abcdef";

fn hs256(claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": "k"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).expect("key");
    mac.update(input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{input}.{sig}")
}

fn run(label: &str, config: &serde_json::Value, tokens: &[String], rounds: usize) {
    let mut worker = Worker::new(1);
    let mut host = FakeHost::new(1_700_000_000);
    assert!(
        worker.configure(config.to_string().as_bytes(), &mut host),
        "config"
    );
    let once = |i: usize| {
        let mut host = FakeHost::new(1_700_000_000).request("GET", "bench.example", "/bench");
        host = host
            .with_header("user-agent", "wrk")
            .with_header("accept", "*/*");
        if let Some(t) = tokens.get(i % tokens.len().max(1)) {
            host = host.with_header("authorization", &format!("Bearer {t}"));
        }
        let mut stream = worker.new_stream(2 + i as u32);
        let flow = stream.on_request_headers(&mut host, true);
        (flow, host)
    };
    // Warm: every token once.
    for i in 0..tokens.len().max(1) {
        once(i);
    }
    let (flow, host) = once(0);
    assert_eq!(
        format!("{flow:?}"),
        "Continue",
        "{label}: {:?}",
        host.audit()
    );
    let n = rounds * tokens.len().max(1000);
    let start = Instant::now();
    for i in 0..n {
        std::hint::black_box(once(i));
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("{label} {us:.2}");
}

fn main() {
    {
        use sha2::Digest;
        let data = vec![b'a'; 800];
        let n = 20_000;
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(Sha256::digest(std::hint::black_box(&data)));
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("sha256 of 800 bytes {us:.2}");
    }
    let distinct: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let jwks = json!({"keys": [{"kty": "oct", "kid": "k", "alg": "HS256",
        "k": URL_SAFE_NO_PAD.encode(KEY)}]});
    let consumer = json!({"consumers": [{"name": "bench", "issuer": "iss", "audiences": ["aud"],
        "jwks": jwks.to_string()}]});
    // Padded to an RS256 token's length (~800 bytes).
    let tokens: Vec<String> = (0..distinct)
        .map(|i| {
            hs256(
                &json!({"iss": "iss", "aud": "aud", "sub": format!("user-{i}"),
                "exp": 1_900_000_000u64, "pad": "x".repeat(420)}),
            )
        })
        .collect();
    run(
        "no-op baseline (empty fake request)",
        &json!({"global_auth": false, "consumers": []}),
        &[],
        20,
    );
    run(
        "auth off",
        &json!({"global_auth": false, "consumers": [{"name": "a", "client_id": "a", "client_secret": "s".repeat(32)}]}),
        &[],
        20,
    );
    run("cached, many tokens", &consumer, &tokens, 3);
    run("cached, one token", &consumer, &tokens[..1], 20);
}

//! README promises about JWT consumers that no other test held the code to:
//! every configuration error of a JWT consumer (each next to the same
//! config made valid, so the error is about that one thing), the fetch a
//! non-default `jwks_timeout_ms` and the default `service_port` produce, and
//! a reloaded configuration taking published keys without another fetch.

use serde_json::json;

use super::NOW;
use crate::b64::b64url;
use crate::config::{compile_json, Config};
use crate::decision::apply;
use crate::fake_host::FakeHost;
use crate::keys::remote::KeyFetcher;
use crate::request::on_request_headers;
use crate::tests::hs256_jwt;
use crate::verified::cache::TokenCache;

const KEY: &str = "key-a-0123456789abcdef0123456789abcdef";
const ISS: &str = "https://idp.example";

fn jwks() -> serde_json::Value {
    json!({"keys": [{"kty": "oct", "kid": "a", "k": b64url(KEY.as_bytes())}]})
}

fn compile(config: &serde_json::Value) -> Result<Config, String> {
    compile_json(config.to_string().as_bytes()).map_err(|e| e.to_string())
}

/// A config with one JWT consumer: `base` plus `extra` (null deletes a key).
fn one_consumer(extra: serde_json::Value) -> serde_json::Value {
    let mut consumer = json!({"name": "jwt-app", "issuer": ISS, "jwks_uri": "http://idp.local:8080/jwks",
                              "cluster": "idp"});
    for (k, v) in extra.as_object().into_iter().flatten() {
        if v.is_null() {
            consumer.as_object_mut().map(|o| o.remove(k));
        } else {
            consumer[k] = v.clone();
        }
    }
    json!({"consumers": [consumer]})
}

fn assert_error(extra: serde_json::Value, fixed: serde_json::Value, want: &str) {
    let err = compile(&one_consumer(extra.clone())).err();
    assert_eq!(err.as_deref(), Some(want), "config {extra}");
    // The same consumer with only that mistake corrected compiles.
    let mut corrected = extra;
    for (k, v) in fixed.as_object().into_iter().flatten() {
        corrected[k] = v.clone();
    }
    let ok = compile(&one_consumer(corrected.clone()));
    assert!(ok.is_ok(), "config {corrected}: {:?}", ok.err());
}

#[test]
fn exactly_one_key_source() {
    let one_of = "a consumer takes one of jwks, jwks_uri, oidc_issuer, remote_jwks";
    assert_error(
        json!({"jwks": jwks()}),
        json!({"jwks": null}),
        &format!("consumers[0].jwks_uri: {one_of}"),
    );
    assert_error(
        json!({"oidc_issuer": ISS}),
        json!({"oidc_issuer": null}),
        &format!("consumers[0].oidc_issuer: {one_of}"),
    );
    assert_error(
        json!({"jwks": jwks(), "jwks_uri": null, "oidc_issuer": ISS}),
        json!({"oidc_issuer": null}),
        &format!("consumers[0].oidc_issuer: {one_of}"),
    );
    // None of the three: not a JWT consumer, and not a gateway client either.
    assert_error(
        json!({"jwks_uri": null}),
        json!({"jwks": jwks()}),
        "consumers[0].client_id: a consumer needs client_id and client_secret, or issuer with jwks, jwks_uri, oidc_issuer or remote_jwks",
    );
}

#[test]
fn jwks_refresh_seconds_is_at_least_ten() {
    assert_error(
        json!({"jwks_refresh_seconds": 9}),
        json!({"jwks_refresh_seconds": 10}),
        "consumers[0].jwks_refresh_seconds: must be at least 10 seconds",
    );
}

#[test]
fn remote_keys_need_a_cluster() {
    assert_error(
        json!({"cluster": null}),
        json!({"cluster": "idp"}),
        "consumers[0].cluster: jwks_uri needs the Envoy cluster that reaches it: cluster, or service_name/service_port",
    );
    assert_error(
        json!({"cluster": null, "jwks_uri": null, "issuer": null, "oidc_issuer": ISS}),
        json!({"service_name": "idp.svc"}),
        "consumers[0].cluster: oidc_issuer needs the Envoy cluster that reaches it: cluster, or service_name/service_port",
    );
    assert_error(
        json!({"cluster": ""}),
        json!({"cluster": "idp"}),
        "consumers[0].cluster: jwks_uri needs the Envoy cluster that reaches it: cluster, or service_name/service_port",
    );
}

#[test]
fn identity_and_framing_headers_cannot_come_from_claims() {
    for header in [
        "X-Mse-Consumer",
        "host",
        "content-length",
        "Content-Type",
        "transfer-encoding",
        "connection",
        "te",
        "upgrade",
        "cookie",
        "Authorization",
    ] {
        let lower = header.to_ascii_lowercase();
        assert_error(
            json!({"claims_to_headers": [{"claim": "sub", "header": "x-sub"}, {"claim": "sub", "header": header}]}),
            json!({"claims_to_headers": [{"claim": "sub", "header": "x-sub"}, {"claim": "sub", "header": "x-user"}]}),
            &format!(
                "consumers[0].claims_to_headers[1].header: \"{lower}\" cannot be set from a claim"
            ),
        );
    }
}

/// The first tick's key fetch for `consumer` (one remote source).
fn first_fetch(consumer: serde_json::Value) -> crate::fake_host::DispatchedCall {
    let cfg = compile(&json!({ "consumers": [consumer] })).unwrap();
    let mut host = FakeHost::new(NOW);
    KeyFetcher::default().on_tick(&cfg.remote_sources, &mut host);
    assert_eq!(host.calls.len(), 1);
    host.calls.remove(0)
}

fn header<'a>(call: &'a crate::fake_host::DispatchedCall, name: &str) -> Option<&'a str> {
    call.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn jwks_timeout_ms_is_the_fetch_timeout() {
    let base = json!({"name": "a", "issuer": ISS, "jwks_uri": "http://idp.local:8080/jwks", "cluster": "idp"});
    assert_eq!(first_fetch(base.clone()).timeout_ms, 5000, "the default");
    let mut custom = base;
    custom["jwks_timeout_ms"] = json!(1234);
    assert_eq!(first_fetch(custom).timeout_ms, 1234);
}

#[test]
fn service_port_defaults_to_80() {
    let call = first_fetch(
        json!({"name": "a", "issuer": ISS, "jwks_uri": "http://idp.local:8080/jwks",
                                  "service_name": "idp.svc"}),
    );
    assert_eq!(call.cluster, "outbound|80||idp.svc");
    // Without service_host the URL's authority is the :authority.
    assert_eq!(header(&call, ":authority"), Some("idp.local:8080"));
    assert_eq!(header(&call, ":path"), Some("/jwks"));
    let call = first_fetch(
        json!({"name": "a", "issuer": ISS, "jwks_uri": "http://idp.local:8080/jwks",
                                  "service_name": "idp.svc", "service_port": 8080, "service_host": "idp.example"}),
    );
    assert_eq!(call.cluster, "outbound|8080||idp.svc");
    assert_eq!(header(&call, ":authority"), Some("idp.example"));
}

fn sign(kid: &str) -> String {
    let header = json!({"alg": "HS256", "kid": kid}).to_string();
    let claims = json!({"iss": ISS, "sub": "user-7", "exp": NOW + 3600}).to_string();
    hs256_jwt(&header, &claims, KEY.as_bytes())
}

#[test]
fn a_reload_causes_no_extra_fetch() {
    let config = one_consumer(json!({}));
    let cfg = compile(&config).unwrap();
    let mut worker = FakeHost::new(NOW);
    let mut fetcher = KeyFetcher::default();
    fetcher.on_tick(&cfg.remote_sources, &mut worker);
    assert_eq!(worker.calls.len(), 1);
    let id = worker.calls[0].token;
    fetcher.on_response(
        &cfg.remote_sources,
        id,
        Some(200),
        jwks().to_string().as_bytes(),
        &mut worker,
    );

    // The reloaded configuration: new sources and a new fetcher, the VM's
    // shared data kept. Neither its ticks nor its requests fetch.
    let reloaded = compile(&config).unwrap();
    let mut after = FakeHost::new(NOW + 1);
    after.shared = worker.shared.clone();
    let mut fetcher = KeyFetcher::default();
    for second in 1..=5 {
        after.now = NOW + second;
        fetcher.on_tick(&reloaded.remote_sources, &mut after);
    }
    assert!(after.calls.is_empty(), "{:?}", after.calls);
    let cache = TokenCache::new(8);
    let mut req = FakeHost::new(NOW + 5)
        .request("GET", "gw", "/x")
        .with_property("route_name", "r")
        .with_header("authorization", &format!("Bearer {}", sign("a")));
    req.shared = after.shared.clone();
    let decision = on_request_headers(&reloaded, &cache, &mut req, true);
    apply(&mut req, decision);
    assert_eq!(
        req.header("x-mse-consumer"),
        Some("jwt-app"),
        "{:?}",
        req.reply
    );
    assert!(req.calls.is_empty());
    // Control: the same configuration in a fresh VM (no shared data)
    // fetches on its first tick.
    let fresh_cfg = compile(&config).unwrap();
    let mut fresh = FakeHost::new(NOW + 5);
    KeyFetcher::default().on_tick(&fresh_cfg.remote_sources, &mut fresh);
    assert_eq!(fresh.calls.len(), 1);
}

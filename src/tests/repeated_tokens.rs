//! A token place holding two values (a header sent twice, a repeated query
//! parameter, two cookies of one name) is refused: only one value could be
//! checked, and an upstream may read the other (found while reviewing the
//! host boundary: a forged second `X-Api-Token` went upstream unverified).

use serde_json::json;

use super::{config as gateway_config, hs256_jwt, NOW};
use crate::b64::b64url;
use crate::config::{compile_json, Config};
use crate::decision::{apply, Flow};
use crate::fake_host::FakeHost;
use crate::request::on_request_headers;
use crate::token::issue::{issue_access_token, AccessTokenRequest};
use crate::verified::cache::TokenCache;

const KEY: &str = "key-a-0123456789abcdef0123456789abcdef";
const ISS: &str = "https://idp.example";

fn jwt(sub: &str) -> String {
    let header = json!({"alg": "HS256", "kid": "a"}).to_string();
    let claims = json!({"iss": ISS, "sub": sub, "iat": NOW, "exp": NOW + 600}).to_string();
    hs256_jwt(&header, &claims, KEY.as_bytes())
}

/// One JWT consumer reading `X-Api-Token` (raw), `?tok=` and the cookie
/// `tok`, keeping the token upstream.
fn api_config() -> Config {
    let jwks = json!({"keys": [{"kty": "oct", "kid": "a", "k": b64url(KEY.as_bytes())}]});
    compile_json(
        json!({"global_auth": true, "consumers": [{
            "name": "api", "issuer": ISS, "jwks": jwks.to_string(), "keep_token": true,
            "from_headers": [{"name": "X-Api-Token", "value_prefix": ""}],
            "from_params": ["tok"], "from_cookies": ["tok"]}]})
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

/// The status of a local reply, or `None` when forwarded.
fn status(cfg: &Config, path: &str, headers: &[(&str, &str)]) -> (Option<u32>, FakeHost) {
    let mut host = FakeHost::new(NOW).request("GET", "gw.example.com", path);
    for (k, v) in headers {
        host = host.with_header(k, v);
    }
    let decision = on_request_headers(cfg, &TokenCache::new(0), &mut host, true);
    let flow = apply(&mut host, decision);
    let status = match flow {
        Flow::Continue => None,
        Flow::Stop => host.reply.as_ref().map(|r| r.status),
    };
    (status, host)
}

fn assert_refused_as_repeated(cfg: &Config, path: &str, headers: &[(&str, &str)]) {
    let (got, host) = status(cfg, path, headers);
    assert_eq!(got, Some(401), "{path} {headers:?}");
    let challenge = host
        .reply
        .as_ref()
        .and_then(|r| r.header("www-authenticate"));
    assert!(
        challenge.is_some_and(|c| c.contains("more than one token in one place")),
        "{challenge:?}"
    );
}

#[test]
fn a_header_sent_twice_is_refused() {
    let cfg = api_config();
    let good = jwt("alice");
    // Control: once, it passes.
    assert_eq!(status(&cfg, "/x", &[("x-api-token", &good)]).0, None);
    assert_refused_as_repeated(
        &cfg,
        "/x",
        &[("x-api-token", &good), ("x-api-token", "forged")],
    );
    assert_refused_as_repeated(
        &cfg,
        "/x",
        &[("x-api-token", &good), ("x-api-token", &good)],
    );
}

#[test]
fn a_repeated_query_parameter_is_refused() {
    let cfg = api_config();
    let good = jwt("alice");
    assert_eq!(status(&cfg, &format!("/x?tok={good}"), &[]).0, None);
    assert_refused_as_repeated(&cfg, &format!("/x?tok={good}&tok=forged"), &[]);
    assert_refused_as_repeated(&cfg, &format!("/x?t%6fk=forged&tok={good}"), &[]);
}

#[test]
fn two_cookies_of_one_name_are_refused() {
    let cfg = api_config();
    let good = jwt("alice");
    assert_eq!(
        status(&cfg, "/x", &[("cookie", &format!("a=1; tok={good}"))]).0,
        None
    );
    assert_refused_as_repeated(
        &cfg,
        "/x",
        &[("cookie", &format!("tok={good}; tok=forged"))],
    );
    // Two Cookie headers (as HTTP/2 may send them).
    assert_refused_as_repeated(
        &cfg,
        "/x",
        &[("cookie", &format!("tok={good}")), ("cookie", "tok=forged")],
    );
}

#[test]
fn the_gateway_header_sent_twice_is_refused() {
    let cfg = gateway_config("");
    let token = issue_access_token(&AccessTokenRequest {
        consumer: cfg.global.consumers.by_client_id("id1").unwrap(),
        issuer: "Higress-Gateway",
        audience: "default",
        scope: None,
        now: NOW,
        ttl: 600,
        jti_random: [7; 16],
    });
    let bearer = format!("Bearer {token}");
    assert_eq!(status(&cfg, "/x", &[("authorization", &bearer)]).0, None);
    assert_refused_as_repeated(
        &cfg,
        "/x",
        &[
            ("authorization", &bearer),
            ("authorization", "Bearer forged"),
        ],
    );
}

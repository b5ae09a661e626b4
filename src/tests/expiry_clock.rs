//! Token lifetime and clock skew on the fake host's clock: the exact
//! boundaries e2e/test_expiry.py could only approach by waiting on the wall
//! clock (1-second TTLs). Issued by the token endpoint at `NOW`, verified at
//! chosen instants, through `request::on_request_headers`.

use super::{config, NOW, SECRET1};
use crate::config::Config;
use crate::decision::apply;
use crate::fake_host::FakeHost;
use crate::request::on_request_headers;
use crate::verified::cache::TokenCache;

/// One GET at `now` on route `route` (a verified-token cache shared by the
/// calls that pass it, as one worker's).
fn get_at(
    cfg: &Config,
    cache: &TokenCache,
    now: u64,
    route: &str,
    path: &str,
    auth: Option<&str>,
) -> FakeHost {
    let mut host = FakeHost::new(now)
        .request("GET", "gw.example.com", path)
        .with_property("route_name", route);
    if let Some(a) = auth {
        host = host.with_header("authorization", a);
    }
    let d = on_request_headers(cfg, cache, &mut host, true);
    apply(&mut host, d);
    host
}

fn issue(cfg: &Config, route: &str) -> String {
    let path = format!(
        "/oauth2/token?grant_type=client_credentials&client_id=id1&client_secret={SECRET1}"
    );
    let host = get_at(cfg, &TokenCache::new(0), NOW, route, &path, None);
    let r = host.reply.as_ref().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// `None` when forwarded as consumer1, else the 401's error_description.
fn verdict(cfg: &Config, cache: &TokenCache, now: u64, route: &str, token: &str) -> Option<String> {
    let host = get_at(
        cfg,
        cache,
        now,
        route,
        "/x",
        Some(&format!("Bearer {token}")),
    );
    match &host.reply {
        None => {
            assert_eq!(host.header("x-mse-consumer"), Some("consumer1"));
            None
        }
        Some(r) => {
            assert_eq!(r.status, 401, "{}", r.body);
            let challenge = r.header("www-authenticate").unwrap_or_default();
            let description = challenge
                .split("error_description=\"")
                .nth(1)
                .unwrap_or_default();
            Some(description.trim_end_matches('"').to_string())
        }
    }
}

const CONFIG: &str = r#","token_ttl":1,"clock_skew_seconds":0,"global_auth":true,
    "_rules_":[{"_match_route_":["route-b"],"token_ttl":7200,"clock_skew_seconds":300}]"#;

#[test]
fn a_one_second_token_expires_after_its_exp_with_zero_skew() {
    let cfg = config(CONFIG);
    let token = issue(&cfg, "route-a");
    let cache = TokenCache::new(16);
    assert_eq!(verdict(&cfg, &cache, NOW, "route-a", &token), None);
    // Valid through its exp second (jwt_authn: expired when now > exp + skew),
    // expired after it; the cached verdict ends with the token too.
    assert_eq!(verdict(&cfg, &cache, NOW + 1, "route-a", &token), None);
    let expired = Some("token expired".to_string());
    assert_eq!(verdict(&cfg, &cache, NOW + 2, "route-a", &token), expired);
    assert_eq!(
        verdict(&cfg, &TokenCache::new(0), NOW + 2, "route-a", &token),
        expired
    );
    assert_eq!(
        verdict(&cfg, &cache, NOW + 3600, "route-a", &token),
        expired
    );
}

#[test]
fn a_rule_overrides_ttl_and_skew() {
    let cfg = config(CONFIG);
    let token = issue(&cfg, "route-b");
    let cache = TokenCache::new(0);
    assert_eq!(verdict(&cfg, &cache, NOW + 7199, "route-b", &token), None);
    // exp + 300 s of route-b's skew, then expired.
    assert_eq!(
        verdict(&cfg, &cache, NOW + 7200 + 299, "route-b", &token),
        None
    );
    assert_eq!(
        verdict(&cfg, &cache, NOW + 7200 + 301, "route-b", &token),
        Some("token expired".to_string())
    );
    // Issued 200 s in the future of the verifier: within route-b's skew only.
    assert_eq!(verdict(&cfg, &cache, NOW - 200, "route-b", &token), None);
    assert_eq!(verdict(&cfg, &cache, NOW - 300, "route-b", &token), None);
    assert_eq!(
        verdict(&cfg, &cache, NOW - 200, "route-a", &token),
        Some("token issued in the future".to_string())
    );
    assert_eq!(
        verdict(&cfg, &cache, NOW - 301, "route-b", &token),
        Some("token issued in the future".to_string())
    );
}

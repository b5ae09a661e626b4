//! Vectors for verifying gateway tokens: every refusal reason, and interop
//! with tokens in the MSE/Higress plugin's exact format.

use super::hs256_jwt;
use super::{config, NOW, SECRET1, SECRET2};
use crate::b64::b64url;
use crate::token::issue::{issue_access_token, AccessTokenRequest};
use crate::token::{verify_gateway_token, TokenError};

/// Signs arbitrary header and claims JSON with HS256 (or leaves the
/// signature as given).
fn sign(header: &str, claims: &str, secret: &str) -> String {
    hs256_jwt(header, claims, secret.as_bytes())
}

const HEADER: &str = r#"{"alg":"HS256","typ":"application/at+jwt"}"#;

fn claims(overrides: &[(&str, &str)]) -> String {
    let mut fields = vec![
        ("iss", r#""Higress-Gateway""#.to_string()),
        ("sub", r#""consumer1""#.to_string()),
        ("aud", r#""default""#.to_string()),
        ("iat", NOW.to_string()),
        ("exp", (NOW + 7200).to_string()),
        ("client_id", r#""id1""#.to_string()),
        (
            "jti",
            r#""5b0b8d4e-0f7a-4f8e-9a57-1f2b3c4d5e6f""#.to_string(),
        ),
    ];
    for (k, v) in overrides {
        fields.retain(|(name, _)| name != k);
        if !v.is_empty() {
            fields.push((k, v.to_string()));
        }
    }
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!(r#""{k}":{v}"#))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn verify(token: &str) -> Result<String, TokenError> {
    let cfg = config("");
    verify_gateway_token(token, &cfg.global, cfg.max_token_bytes, NOW)
        .map(|v| v.consumer.name.clone())
}

#[test]
fn accepts_mse_format_and_own_tokens() {
    // Exactly what the MSE/Higress oauth plugin emits (jwt-cpp field order).
    assert_eq!(
        verify(&sign(HEADER, &claims(&[]), SECRET1)).unwrap(),
        "consumer1"
    );
    // jwt-cpp writes "typ" before "alg"; order must not matter.
    let swapped = r#"{"typ":"application/at+jwt","alg":"HS256"}"#;
    assert_eq!(
        verify(&sign(swapped, &claims(&[]), SECRET1)).unwrap(),
        "consumer1"
    );

    let cfg = config("");
    let consumer = cfg.global.consumers.by_client_id("id2").unwrap();
    let token = issue_access_token(&AccessTokenRequest {
        consumer,
        issuer: "Higress-Gateway",
        audience: "default",
        scope: None,
        now: NOW,
        ttl: 60,
        jti_random: [1; 16],
    });
    let v = verify_gateway_token(&token, &cfg.global, cfg.max_token_bytes, NOW + 30).unwrap();
    assert_eq!(v.consumer.name, "consumer2");
    assert!(v.audience.contains("default"));
    assert_eq!(v.expires_at, NOW + 60);
}

#[test]
fn refusal_table() {
    let good = sign(HEADER, &claims(&[]), SECRET1);
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let tampered_payload = format!(
        "{head}.{}.{sig}",
        b64url(claims(&[("sub", r#""consumer2""#)]).as_bytes())
    );
    let mut bad_sig = sig.to_string();
    bad_sig.replace_range(..1, if bad_sig.starts_with('A') { "B" } else { "A" });
    let none_header = b64url(br#"{"alg":"none","typ":"application/at+jwt"}"#);
    let cases: Vec<(&str, String, TokenError)> = vec![
        ("garbage", "garbage".into(), TokenError::Malformed),
        (
            "two parts",
            format!("{head}.{payload}"),
            TokenError::Malformed,
        ),
        (
            "stripped signature",
            format!("{head}.{payload}."),
            TokenError::BadSignature,
        ),
        (
            "tampered signature",
            format!("{head}.{payload}.{bad_sig}"),
            TokenError::BadSignature,
        ),
        (
            "tampered payload",
            tampered_payload,
            TokenError::BadSignature,
        ),
        (
            "alg none, no sig",
            format!("{none_header}.{payload}."),
            TokenError::UnsupportedAlgorithm,
        ),
        (
            "alg none, old sig",
            format!("{none_header}.{payload}.{sig}"),
            TokenError::UnsupportedAlgorithm,
        ),
        (
            "alg None",
            sign(r#"{"alg":"None","typ":"at+jwt"}"#, &claims(&[]), SECRET1),
            TokenError::UnsupportedAlgorithm,
        ),
        (
            "alg HS512",
            sign(r#"{"alg":"HS512","typ":"at+jwt"}"#, &claims(&[]), SECRET1),
            TokenError::UnsupportedAlgorithm,
        ),
        (
            "alg RS256",
            sign(r#"{"alg":"RS256","typ":"at+jwt"}"#, &claims(&[]), SECRET1),
            TokenError::UnsupportedAlgorithm,
        ),
        (
            "alg ES256",
            sign(r#"{"alg":"ES256","typ":"at+jwt"}"#, &claims(&[]), SECRET1),
            TokenError::UnsupportedAlgorithm,
        ),
        (
            "typ JWT",
            sign(r#"{"alg":"HS256","typ":"JWT"}"#, &claims(&[]), SECRET1),
            TokenError::WrongType,
        ),
        (
            "typ missing",
            sign(r#"{"alg":"HS256"}"#, &claims(&[]), SECRET1),
            TokenError::WrongType,
        ),
        (
            "crit",
            sign(
                r#"{"alg":"HS256","typ":"at+jwt","crit":["exp"]}"#,
                &claims(&[]),
                SECRET1,
            ),
            TokenError::UnsupportedCritical,
        ),
        (
            "duplicate alg",
            sign(
                r#"{"alg":"HS256","alg":"none","typ":"at+jwt"}"#,
                &claims(&[]),
                SECRET1,
            ),
            TokenError::Malformed,
        ),
        (
            "padded base64",
            format!("{head}=.{payload}.{sig}"),
            TokenError::Malformed,
        ),
        (
            "other consumer's secret",
            sign(HEADER, &claims(&[]), SECRET2),
            TokenError::BadSignature,
        ),
        (
            "unknown client_id",
            sign(HEADER, &claims(&[("client_id", r#""nobody""#)]), SECRET1),
            TokenError::BadSignature,
        ),
        (
            "no client_id",
            sign(HEADER, &claims(&[("client_id", "")]), SECRET1),
            TokenError::MissingClaim("client_id"),
        ),
        (
            "client_id number",
            sign(HEADER, &claims(&[("client_id", "1")]), SECRET1),
            TokenError::Malformed,
        ),
        (
            "wrong iss",
            sign(HEADER, &claims(&[("iss", r#""evil""#)]), SECRET1),
            TokenError::WrongIssuer,
        ),
        (
            "no iss",
            sign(HEADER, &claims(&[("iss", "")]), SECRET1),
            TokenError::WrongIssuer,
        ),
        (
            "sub of another consumer",
            sign(HEADER, &claims(&[("sub", r#""consumer2""#)]), SECRET1),
            TokenError::WrongSubject,
        ),
        (
            "duplicate sub",
            sign(
                HEADER,
                &format!(
                    "{}{}",
                    claims(&[]).trim_end_matches('}'),
                    r#","sub":"consumer2"}"#
                ),
                SECRET1,
            ),
            TokenError::Malformed,
        ),
        (
            "expired beyond skew",
            sign(
                HEADER,
                &claims(&[("exp", &(NOW - 61).to_string())]),
                SECRET1,
            ),
            TokenError::Expired,
        ),
        (
            "nbf beyond skew",
            sign(
                HEADER,
                &claims(&[("nbf", &(NOW + 61).to_string())]),
                SECRET1,
            ),
            TokenError::NotYetValid,
        ),
        (
            "iat beyond skew",
            sign(
                HEADER,
                &claims(&[("iat", &(NOW + 61).to_string())]),
                SECRET1,
            ),
            TokenError::IssuedInFuture,
        ),
        (
            "no exp",
            sign(HEADER, &claims(&[("exp", "")]), SECRET1),
            TokenError::MissingClaim("exp"),
        ),
        (
            "no iat",
            sign(HEADER, &claims(&[("iat", "")]), SECRET1),
            TokenError::MissingClaim("iat"),
        ),
        (
            "exp as string",
            sign(HEADER, &claims(&[("exp", r#""9999999999""#)]), SECRET1),
            TokenError::Malformed,
        ),
        (
            "no aud",
            sign(HEADER, &claims(&[("aud", "")]), SECRET1),
            TokenError::MissingClaim("aud"),
        ),
        (
            "too large",
            format!("{head}.{}.{sig}", "A".repeat(9000)),
            TokenError::TooLarge,
        ),
    ];
    for (name, token, expected) in cases {
        assert_eq!(verify(&token), Err(expected), "{name}");
    }
    // A fractional NumericDate is a date (RFC 7519 §2), read as jwt-compact
    // reads it (whole seconds), and still checked.
    let float = sign(HEADER, &claims(&[("exp", "1.8e9")]), SECRET1);
    assert_eq!(verify(&float), Ok("consumer1".into()));
    let past = sign(HEADER, &claims(&[("exp", "1.6e9")]), SECRET1);
    assert_eq!(verify(&past), Err(TokenError::Expired));
}

#[test]
fn skew_edges_are_inclusive() {
    let at_edge = sign(
        HEADER,
        &claims(&[
            ("exp", &(NOW - 60).to_string()),
            ("iat", &(NOW - 100).to_string()),
        ]),
        SECRET1,
    );
    assert!(verify(&at_edge).is_ok());
    let nbf_edge = sign(
        HEADER,
        &claims(&[
            ("nbf", &(NOW + 60).to_string()),
            ("iat", &(NOW + 60).to_string()),
        ]),
        SECRET1,
    );
    assert!(verify(&nbf_edge).is_ok());
    // Zero skew: one second late is too late.
    let cfg = config(r#","clock_skew_seconds":0"#);
    let late = sign(HEADER, &claims(&[("exp", &(NOW - 1).to_string())]), SECRET1);
    assert_eq!(
        verify_gateway_token(&late, &cfg.global, cfg.max_token_bytes, NOW).map(|_| ()),
        Err(TokenError::Expired)
    );
}

#[test]
fn audience_forms() {
    let array = sign(HEADER, &claims(&[("aud", r#"["a","route-x"]"#)]), SECRET1);
    let cfg = config("");
    let v = verify_gateway_token(&array, &cfg.global, cfg.max_token_bytes, NOW).unwrap();
    assert!(v.audience.contains("route-x"));
    assert!(!v.audience.contains("route-y"));
}

/// A request with `token` on route `route` through the whole request path.
fn on_route(cfg: &crate::config::Config, route: &str, token: &str) -> crate::fake_host::FakeHost {
    let mut host = crate::fake_host::FakeHost::new(NOW)
        .request("GET", "gw", "/x")
        .with_property("route_name", route)
        .with_header("authorization", &format!("Bearer {token}"));
    let cache = crate::verified::cache::TokenCache::new(8);
    let d = crate::request::on_request_headers(cfg, &cache, &mut host, true);
    crate::decision::apply(&mut host, d);
    host
}

/// Fails on the build before the fix: the route binding was checked only
/// on route-scoped routes, so `aud: route-a` passed everywhere else.
#[test]
fn a_route_scoped_token_works_on_its_own_route_only() {
    let scoped = sign(HEADER, &claims(&[("aud", r#""route-a""#)]), SECRET1);
    let global = sign(HEADER, &claims(&[]), SECRET1);
    // Global credentials everywhere, route-a's own rule route-scoped.
    let cfg = config(
        r#","global_auth":true,"_rules_":[{"_match_route_":["route-a"],"global_credentials":false}]"#,
    );
    let host = on_route(&cfg, "route-a", &scoped);
    assert_eq!(host.reply, None, "positive control: its own route");
    assert_eq!(host.header("x-mse-consumer"), Some("consumer1"));
    let host = on_route(&cfg, "route-b", &scoped);
    let r = host.reply.clone().unwrap();
    assert_eq!((r.status, r.body.as_str()), (403, "Access Denied."));
    assert_eq!(host.counter("denied_403_wrong_audience"), 1);
    assert_eq!(on_route(&cfg, "route-b", &global).reply, None);
    assert_eq!(
        on_route(&cfg, "route-a", &global).reply.unwrap().status,
        403
    );
}

/// Fails on the build before the fix: gateway tokens were held to a fixed
/// 8 KiB whatever `max_token_bytes` said.
#[test]
fn max_token_bytes_applies_to_gateway_tokens() {
    let big = sign(
        HEADER,
        &claims(&[("scope", &format!("\"{}\"", "read ".repeat(2000).trim()))]),
        SECRET1,
    );
    assert!(big.len() > 8 * 1024 && big.len() < 16 * 1024);
    let cfg = config(r#","max_token_bytes":16384"#);
    let v = verify_gateway_token(&big, &cfg.global, cfg.max_token_bytes, NOW);
    assert_eq!(v.map(|v| v.consumer.name.clone()), Ok("consumer1".into()));
    assert_eq!(
        on_route(&cfg, "r", &big).header("x-mse-consumer"),
        Some("consumer1")
    );
    // And a smaller limit refuses what the default would take.
    let small = sign(HEADER, &claims(&[]), SECRET1);
    let cfg = config(r#","max_token_bytes":128"#);
    assert_eq!(
        verify_gateway_token(&small, &cfg.global, cfg.max_token_bytes, NOW).map(|_| ()),
        Err(TokenError::TooLarge)
    );
    let host = on_route(&cfg, "r", &small);
    assert_eq!(host.reply.clone().unwrap().status, 401);
    assert_eq!(host.counter("denied_401_token_too_large"), 1);
}

/// Fails without the eviction counter: a cache full by its byte budget
/// evicts the least recently used identity, and says so in
/// `cache_evictions`; the evicted token verifies again (a miss), correctly.
#[test]
fn a_full_cache_evicts_and_counts() {
    let cfg = config("");
    let tokens: Vec<String> = (0..3)
        .map(|i| sign(HEADER, &claims(&[("jti", &format!("\"{i}\""))]), SECRET1))
        .collect();
    // Room for two identities of consumer1 (their size is what is accounted).
    let one = crate::verified::cache::Identity {
        consumer: "consumer1".into(),
        audience: vec!["default".into()],
        claim_headers: vec![],
        strip_header: None,
        gateway_token: true,
        sub: None,
        jti: None,
    }
    .entry_bytes();
    let cache = crate::verified::cache::TokenCache::with_budget(
        100,
        2 * one + one / 2,
        &mut crate::fake_host::FakeHost::new(0),
    );
    let run = |token: &str| {
        let mut host = crate::fake_host::FakeHost::new(NOW)
            .request("GET", "gw", "/x")
            .with_header("authorization", &format!("Bearer {token}"));
        let d = crate::request::on_request_headers(&cfg, &cache, &mut host, true);
        crate::decision::apply(&mut host, d);
        assert_eq!(host.reply, None);
        assert_eq!(host.header("x-mse-consumer"), Some("consumer1"));
        host
    };
    let counts = |h: &crate::fake_host::FakeHost| {
        (
            h.counter("cache_hits"),
            h.counter("cache_misses"),
            h.counter("cache_evictions"),
        )
    };
    assert_eq!(counts(&run(&tokens[0])), (0, 1, 0));
    assert_eq!(counts(&run(&tokens[1])), (0, 1, 0));
    assert_eq!(counts(&run(&tokens[0])), (1, 0, 0));
    assert_eq!(counts(&run(&tokens[2])), (0, 1, 1), "tokens[1] evicted");
    assert_eq!(counts(&run(&tokens[1])), (0, 1, 1), "verified again");
    assert_eq!(counts(&run(&tokens[2])), (1, 0, 0));
}

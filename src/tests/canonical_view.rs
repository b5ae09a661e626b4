//! Every decision reads the canonical request view: SSO match lists, the
//! SSO callback and sign-out paths, the token endpoint and `_match_domain_`
//! rules, whatever the spelling of path and host.

use serde_json::json;

use super::{config, NOW, SECRET1};
use crate::b64::b64url;
use crate::config::{compile_json, Config};
use crate::decision::{apply, Flow};
use crate::fake_host::{FakeHost, SentReply};
use crate::keys::remote::KeyFetcher;
use crate::request::on_request_headers;
use crate::verified::cache::TokenCache;

const IDP: &str = "http://idp.test";

fn sso_config(match_type: &str, list: serde_json::Value) -> Config {
    let oidc = json!({
        "issuer": IDP, "client_id": "gateway", "client_secret": "gw-secret",
        "cluster": "idp", "cookie_secret": "cookie-secret-0123456789abcdef0123456789",
        "match_type": match_type, "match_list": list,
    });
    let cfg = compile_json(json!({ "oidc": oidc }).to_string().as_bytes()).unwrap();
    // Discovery and keys, as the root context would deliver them.
    let mut host = FakeHost::new(NOW);
    let mut fetcher = KeyFetcher::default();
    fetcher.on_tick(&cfg.remote_sources, &mut host);
    let doc = json!({"issuer": IDP, "jwks_uri": format!("{IDP}/jwks"),
        "authorization_endpoint": format!("{IDP}/auth"), "token_endpoint": format!("{IDP}/token")});
    let sources = &cfg.remote_sources;
    fetcher.on_response(sources, 1, Some(200), doc.to_string().as_bytes(), &mut host);
    let jwks = json!({"keys": [{"kty": "oct", "kid": "k1", "k": b64url(b"idp-signing-key-0123456789abcdef0123")}]});
    fetcher.on_response(
        sources,
        2,
        Some(200),
        jwks.to_string().as_bytes(),
        &mut host,
    );
    cfg
}

/// One request through the headers phase: the flow and the local reply.
fn send(cfg: &Config, authority: &str, path: &str, navigation: bool) -> (Flow, Option<SentReply>) {
    let mut host = FakeHost::new(NOW)
        .request("GET", authority, path)
        .with_property("route_name", "route-a");
    if navigation {
        host = host.with_header("accept", "text/html");
    }
    let decision = on_request_headers(cfg, &TokenCache::new(0), &mut host, true);
    let flow = apply(&mut host, decision);
    (flow, host.reply)
}

fn status(cfg: &Config, authority: &str, path: &str, navigation: bool) -> Option<u32> {
    let (flow, reply) = send(cfg, authority, path, navigation);
    match flow {
        Flow::Continue => None,
        Flow::Stop => Some(reply.expect("a local reply").status),
    }
}

const LOGIN: Option<u32> = Some(302);
const FORWARDED: Option<u32> = None;

#[test]
fn blacklist_decides_on_the_canonical_path() {
    let cfg = sso_config(
        "blacklist",
        json!([{"match_rule_path": "/admin", "match_rule_type": "prefix"},
               {"match_rule_path": "/secret", "match_rule_type": "exact"},
               {"match_rule_domain": "api.example.com", "match_rule_path": "/"}]),
    );
    let h = "gw.example.com";
    for path in [
        "/admin/x",
        "//admin/x",
        "/./admin/x",
        "/x/../admin/x",
        "/%61dmin/x",
        "/x/%2e%2e/admin/x",
        "/ADMIN/x",
        "/secret",
        "/secret/",
        "/secret;jsessionid=1",
        "/secret%3bjsessionid=1",
        "/Secret/.",
        "/x/../secret?q=1",
    ] {
        assert_eq!(status(&cfg, h, path, true), LOGIN, "{path}");
        assert_eq!(status(&cfg, h, path, false), Some(401), "{path}");
    }
    for path in [
        "/admin%2Fx",
        "/admin%5Cx",
        "/admin\\x",
        "/admin%00",
        "/x/..;/admin",
        "/%252e",
    ] {
        assert_eq!(status(&cfg, h, path, true), Some(400), "{path}");
        assert_eq!(status(&cfg, h, path, false), Some(401), "{path}");
    }
    for path in [
        "/",
        "/app",
        "/secretx",
        "/secret/x",
        "/x/admin/..",
        "/app?next=/admin",
    ] {
        assert_eq!(status(&cfg, h, path, true), FORWARDED, "{path}");
    }
    for host in [
        "api.example.com",
        "API.example.com.",
        "api.example.com.:8443",
    ] {
        assert_eq!(status(&cfg, host, "/x", true), LOGIN, "{host}");
    }
    assert_eq!(status(&cfg, "api.example.com..", "/x", true), Some(400));
}

#[test]
fn whitelist_decides_on_the_canonical_path() {
    let cfg = sso_config(
        "whitelist",
        json!([{"match_rule_path": "/public", "match_rule_type": "prefix"},
               {"match_rule_path": "/bye", "match_rule_type": "exact"}]),
    );
    let h = "gw.example.com";
    for path in [
        "/public",
        "/public/x",
        "//public/x",
        "/%70ublic/./x",
        "/x/../public/x",
        "/bye",
        "/public;x",
        "/public/x?next=/../app",
    ] {
        assert_eq!(status(&cfg, h, path, true), FORWARDED, "{path}");
    }
    for path in [
        "/public/../app",
        "/public/%2e%2e/app",
        "/public/.%2E/app",
        "/PUBLIC/x",
        "/bye/",
        "/bye;x",
        "/app",
    ] {
        assert_eq!(status(&cfg, h, path, true), LOGIN, "{path}");
    }
    for path in [
        "/public/..%2Fapp",
        "/public/..;/app",
        "/public/..%3B/app",
        "/public/%252e%252e/app",
        "/public%00",
    ] {
        assert_eq!(status(&cfg, h, path, true), Some(400), "{path}");
    }
}

#[test]
fn callback_and_sign_out_in_any_spelling() {
    let cfg = sso_config("whitelist", json!([]));
    for path in [
        "/oauth2/callback?code=c&state=s",
        "/oauth2//callback?code=c&state=s",
        "/x/../oauth2/%63allback?code=c&state=s",
    ] {
        let (_, reply) = send(&cfg, "gw.example.com", path, true);
        let reply = reply.unwrap();
        assert_eq!(reply.status, 403, "{path}: {}", reply.body);
        assert!(reply.body.contains("Sign-in failed"), "{path}");
    }
    for path in [
        "/oauth2/sign_out",
        "/oauth2/./sign_out",
        "//oauth2/sign_out",
    ] {
        let (_, reply) = send(&cfg, "gw.example.com", path, true);
        let reply = reply.unwrap();
        assert_eq!(reply.status, 302, "{path}");
        assert!(
            reply
                .headers
                .iter()
                .any(|(k, v)| k == "set-cookie" && v.contains("Max-Age=0")),
            "{path}: {:?}",
            reply.headers
        );
    }
}

#[test]
fn token_endpoint_in_any_spelling() {
    let cfg = config(r#","global_auth":false"#);
    let creds = format!("?grant_type=client_credentials&client_id=id1&client_secret={SECRET1}");
    for path in [
        "/oauth2/token",
        "/oauth2/./token",
        "/oauth2//token",
        "/x/../oauth2/token",
        "/oauth2/%74oken",
        "/api/v1/../oauth2/token",
    ] {
        let (flow, reply) = send(&cfg, "gw.example.com", &format!("{path}{creds}"), false);
        assert_eq!(flow, Flow::Stop, "{path}");
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert!(reply.body.contains("access_token"), "{path}");
    }
    // No canonical form: not the token endpoint; the (open) route applies.
    for path in [
        "/oauth2%2Ftoken",
        "/oauth2/..;/oauth2/token",
        "/oauth2/token/",
    ] {
        let (flow, _) = send(&cfg, "gw.example.com", &format!("{path}{creds}"), false);
        assert_eq!(flow, Flow::Continue, "{path}");
    }
    let closed = config("");
    for path in ["/oauth2%2Ftoken", "/oauth2%00/token"] {
        let got = status(&closed, "gw.example.com", &format!("{path}{creds}"), false);
        assert_eq!(got, Some(401), "{path}");
    }
}

#[test]
fn domain_rules_read_the_canonical_host() {
    let cfg = config(
        r#","_rules_":[{"_match_domain_":["api.example.com"],"allow":["consumer1"]},
                       {"_match_domain_":["*.internal.test."],"allow":["consumer2"]}]"#,
    );
    for host in [
        "api.example.com",
        "API.EXAMPLE.COM",
        "api.example.com.",
        "api.example.com.:80",
        "db.internal.test",
        "DB.internal.test.:8080",
    ] {
        assert_eq!(status(&cfg, host, "/x", false), Some(401), "{host}");
    }
    for host in [
        "other.example.com",
        "internal.test",
        "[::1]:8080",
        "127.0.0.1",
    ] {
        assert_eq!(status(&cfg, host, "/x", false), FORWARDED, "{host}");
    }
    for host in [
        "api.example.com..",
        "",
        "user@api.example.com",
        "api.example.com:99999",
        "api.example.com:",
        "a..b",
    ] {
        let (flow, reply) = send(&cfg, host, "/x", false);
        assert_eq!(flow, Flow::Stop, "{host:?}");
        let reply = reply.unwrap();
        assert_eq!(reply.status, 400, "{host:?}");
        assert_eq!(reply.body, "Bad Request: invalid host.");
    }
}

#[test]
fn configured_paths_are_kept_canonical() {
    let cfg = config(r#","auth_path":"/oauth2/./issue""#);
    assert_eq!(cfg.global.auth_path, "/oauth2/issue");
    for bad in [r#""/oauth2%2Ftoken""#, r#""/oauth2/token/""#, r#""/a/..""#] {
        let json = format!("{{{},\"auth_path\":{bad}}}", super::consumers_json());
        let err = compile_json(json.as_bytes()).unwrap_err().to_string();
        assert!(
            err.starts_with("auth_path: must be a plain path"),
            "{bad}: {err}"
        );
    }
    let oidc = |extra: serde_json::Value| {
        let mut o = json!({"issuer": IDP, "client_id": "g", "client_secret": "s", "cluster": "idp",
                           "cookie_secret": "cookie-secret-0123456789abcdef0123456789"});
        for (k, v) in extra.as_object().unwrap() {
            o[k] = v.clone();
        }
        compile_json(json!({ "oidc": o }).to_string().as_bytes())
    };
    let cfg = oidc(
        json!({"logout_path": "/oauth2//out", "redirect_url": "/cb/./x",
                          "match_list": [{"match_rule_path": "/%61dmin/../b"}]}),
    )
    .unwrap();
    let sso = cfg.global.oidc.as_ref().unwrap();
    assert_eq!(sso.config.logout_path, "/oauth2/out");
    assert_eq!(sso.config.callback_path, "/cb/x");
    assert_eq!(
        sso.config.match_list[0].path,
        crate::config::oidc::PathMatch::Prefix("/b".into())
    );
    let err = oidc(json!({"match_list": [{"match_rule_path": "/a%2Fb"}]})).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("oidc.match_list[0].match_rule_path: must be a plain path"));
}

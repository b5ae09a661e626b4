//! Interop with the C++ Higress/MSE `oauth` plugin: the token its README
//! shows (issued by that plugin, header `typ` written as
//! `application\/at+jwt`) verifies here under the config from that README,
//! with the plugin's own test setting `clock_skew_seconds: 3153600000` that
//! keeps the 2023 token valid.

use crate::config::compile_json;
use crate::decision::{apply, Flow};
use crate::fake_host::FakeHost;
use crate::request::on_request_headers;
use crate::verified::cache::TokenCache;

/// From `plugins/wasm-cpp/extensions/oauth/README.md` (issued by the C++
/// plugin for consumer1, `exp` 1687951463 = 2023-06-28).
const HIGRESS_README_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6ImFwcGxpY2F0aW9uXC9hdCtqd3QifQ.eyJhdWQiOiJkZWZhdWx0IiwiY2xpZW50X2lkIjoiMTIzNDU2NzgteHh4eC14eHh4LXh4eHgteHh4eHh4eHh4eHh4IiwiZXhwIjoxNjg3OTUxNDYzLCJpYXQiOjE2ODc5NDQyNjMsImlzcyI6IkhpZ3Jlc3MtR2F0ZXdheSIsImp0aSI6IjEwOTU5ZDFiLThkNjEtNGRlYy1iZWE3LTk0ODEwMzc1YjYzYyIsInN1YiI6ImNvbnN1bWVyMSJ9.NkT_rG3DcV9543vBQgneVqoGfIhVeOuUBwLJJ4Wycb0";

/// The README's consumers, as written there.
fn readme_config(clock_skew_seconds: Option<u64>) -> String {
    let skew =
        clock_skew_seconds.map_or(String::new(), |s| format!(r#","clock_skew_seconds":{s}"#));
    format!(
        r#"{{"global_auth":true{skew},"consumers":[
            {{"name":"consumer1","client_id":"12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx","client_secret":"abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx"}},
            {{"name":"consumer2","client_id":"87654321-xxxx-xxxx-xxxx-xxxxxxxxxxxx","client_secret":"hgfedcba-xxxx-xxxx-xxxx-xxxxxxxxxxxx"}}]}}"#
    )
}

/// 2026-12-01: three years after the token expired.
const NOW: u64 = 1_795_996_800;

fn call(config_json: &str, token: &str) -> FakeHost {
    let cfg = compile_json(config_json.as_bytes()).unwrap();
    let mut host = FakeHost::new(NOW)
        .request("GET", "test.com", "/")
        .with_header("authorization", &format!("Bearer {token}"));
    let decision = on_request_headers(&cfg, &TokenCache::new(0), &mut host, true);
    let flow = apply(&mut host, decision);
    assert_eq!(flow == Flow::Continue, host.reply.is_none());
    host
}

#[test]
fn the_cpp_plugins_readme_token_verifies_here() {
    let host = call(&readme_config(Some(3_153_600_000)), HIGRESS_README_TOKEN);
    assert!(host.reply.is_none(), "{:?}", host.reply);
    assert_eq!(host.header("x-mse-consumer"), Some("consumer1"));
}

#[test]
fn the_cpp_plugins_readme_token_is_refused_when_it_should_be() {
    // Control: with the default skew it is three years past its exp.
    let host = call(&readme_config(None), HIGRESS_README_TOKEN);
    let reply = host.reply.as_ref().expect("refused");
    assert_eq!(reply.status, 401);
    // Another consumer's secret does not verify it: one byte of the
    // signature changed is refused too.
    let mut tampered = HIGRESS_README_TOKEN.to_string();
    tampered.pop();
    tampered.push('1');
    let host = call(&readme_config(Some(3_153_600_000)), &tampered);
    assert_eq!(host.reply.as_ref().map(|r| r.status), Some(401));
    assert_eq!(host.header("x-mse-consumer"), None);
}

#![no_main]
//! Any string as a bearer token, against a gateway consumer and a JWT
//! consumer with every kind of key.
use edge_auth::config::{compile_json, Config};
use edge_auth::token::{jwt, verify_gateway_token};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static CONFIG: Config = compile_json(include_bytes!("../seeds/config.json")).expect("seed config");
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    CONFIG.with(|cfg| {
        let _ = verify_gateway_token(token, &cfg.global, cfg.max_token_bytes, 1_700_000_000);
        if let Ok(parsed) = jwt::parse(token, 16 * 1024) {
            let _ = jwt::verify(&parsed, cfg.global.consumers.jwt.iter(), 1_700_000_000);
        }
    });
});

//! Native tests of whole request flows through the core with a fake host.

mod audit_trail;
mod canonical_view;
mod config_all_errors;
mod config_errors;
mod expiry_clock;
mod fake_host_failures;
mod flows;
mod higress_configs;
mod higress_interop;
mod jose;
mod jwt_consumer_promises;
mod repeated_tokens;
mod shared_cache;
mod sso;
mod sso_allow;
mod sso_config;
mod sso_promises;
mod stream;
mod third_party;
mod verification;

use crate::config::{compile_json, Config};

pub const SECRET1: &str = "secret-one-0123456789abcdefghijklmnop";
pub const SECRET2: &str = "secret-two-0123456789abcdefghijklmnop";
pub const NOW: u64 = 1_700_000_000;

pub fn consumers_json() -> String {
    format!(
        r#""consumers":[
            {{"name":"consumer1","client_id":"id1","client_secret":"{SECRET1}"}},
            {{"name":"consumer2","client_id":"id2","client_secret":"{SECRET2}"}}]"#
    )
}

/// HMAC-SHA256, for tests that build tokens by hand (attack shapes the
/// signing library would never produce).
pub fn hs256_sign(key: &[u8], input: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(input);
    mac.finalize().into_bytes().to_vec()
}

/// A compact HS256 token of the given header and claims JSON, signed with
/// `secret` whatever the header says (one signer for every test).
pub fn hs256_jwt(header: &str, claims: &str, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        crate::b64::b64url(header.as_bytes()),
        crate::b64::b64url(claims.as_bytes())
    );
    let sig = crate::b64::b64url(&hs256_sign(secret, input.as_bytes()));
    format!("{input}.{sig}")
}

/// The three segments of a compact token, for tests that inspect or take
/// apart what was issued.
pub fn segments(token: &str) -> (&str, &str, &str) {
    let mut parts = token.split('.');
    let out = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    assert!(parts.next().is_none(), "{token}");
    out
}

/// A config with the two test consumers plus `extra` top-level keys.
pub fn config(extra: &str) -> Config {
    let json = format!("{{{}{extra}}}", consumers_json());
    compile_json(json.as_bytes()).unwrap()
}

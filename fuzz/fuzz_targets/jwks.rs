#![no_main]
//! Any bytes as a JWKS document (what a remote IdP might send).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = edge_auth::keys::parse_jwks(data) {
        for key in &set.keys {
            for alg in ["HS256", "RS256", "PS256", "ES256", "ES384", "EdDSA"] {
                if let Some(a) = edge_auth::keys::Algorithm::from_name(alg) {
                    let _ = key.verify(a, b"header.payload", data);
                }
            }
        }
    }
});

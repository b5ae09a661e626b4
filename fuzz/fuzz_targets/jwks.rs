#![no_main]
//! Any bytes as a JWKS document (what a remote IdP might send). Oracles:
//! parsing is deterministic, and no key verifies a signature that is just
//! the document's own bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let first = edge_auth::keys::parse_jwks(data);
    let second = edge_auth::keys::parse_jwks(data);
    assert_eq!(
        format!("{first:?}"),
        format!("{second:?}"),
        "two parses disagree"
    );
    if let Ok(set) = first {
        for key in &set.keys {
            for alg in [
                "HS256", "RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA",
            ] {
                if let Some(a) = edge_auth::keys::Algorithm::from_name(alg) {
                    assert!(
                        !(key.permits(a)
                            && a.verify_signature(&key.material, b"header.payload", data)),
                        "a {alg} key verified the document as a signature"
                    );
                }
            }
        }
    }
});

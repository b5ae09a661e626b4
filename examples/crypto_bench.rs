//! Signature verification cost per backend, for the crypto comparison in
//! BENCHMARKS.md. Built for wasm32-wasip1 and run in V8 (Node's WASI, the
//! engine Envoy runs the plugin in) by `bench/crypto.py`; natively it runs
//! too. Uses the RFC 7515 A.2 (RS256) and A.3 (ES256) vectors.
//!
//! Prints one line per backend: `<alg> <backend> <microseconds per verify>`.

use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_compact::{Algorithm as _, AlgorithmSignature};
use serde_json::Value;

use edge_auth::keys::{parse_jwks, Algorithm};

fn b64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).expect("vector base64")
}

fn time(label: &str, iterations: u32, mut verify: impl FnMut() -> bool) {
    assert!(verify(), "{label}: the vector must verify");
    let start = Instant::now();
    for _ in 0..iterations {
        assert!(verify());
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    println!("{label} {us:.1}");
}

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let vectors: Vec<Value> =
        serde_json::from_str(include_str!("../src/keys/vectors/rfc.json")).expect("vectors");
    for alg_name in ["RS256", "ES256"] {
        let v = vectors
            .iter()
            .find(|v| v["alg"] == alg_name)
            .expect("vector");
        let compact = v["compact"].as_str().expect("compact");
        let (input, sig) = compact.rsplit_once('.').expect("three parts");
        let sig = b64(sig);
        let jwk = &v["jwk"];
        let jwks = serde_json::json!({ "keys": [jwk] }).to_string();
        let set = parse_jwks(jwks.as_bytes()).expect("jwks");
        let key = &set.keys[0];
        let alg = Algorithm::from_name(alg_name).expect("alg");
        // What the plugin runs (ring for RSA and ES256 since issue 10).
        time(&format!("{alg_name} plugin"), iterations, || {
            alg.verify_signature(&key.material, input.as_bytes(), &sig)
        });
        let field = |name: &str| b64(jwk[name].as_str().expect("field"));
        if alg_name == "RS256" {
            let public = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&field("n")),
                rsa::BigUint::from_bytes_be(&field("e")),
            )
            .expect("rsa key");
            let rs256 = jwt_compact::alg::Rsa::rs256();
            let signature =
                <jwt_compact::alg::Rsa as jwt_compact::Algorithm>::Signature::try_from_slice(&sig)
                    .expect("sig");
            time("RS256 rsa-0.9", iterations, || {
                rs256.verify_signature(&signature, &public, input.as_bytes())
            });
            let (n, e) = (field("n"), field("e"));
            time("RS256 ring-0.17", iterations, || {
                ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
                    .verify(
                        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                        input.as_bytes(),
                        &sig,
                    )
                    .is_ok()
            });
        } else {
            let mut point = vec![4u8];
            point.extend(field("x"));
            point.extend(field("y"));
            let ring_key = ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point.clone(),
            );
            time("ES256 ring-0.17", iterations, || {
                ring_key.verify(input.as_bytes(), &sig).is_ok()
            });
            let p256_key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).expect("p256");
            let p256_sig = p256::ecdsa::Signature::from_slice(&sig).expect("sig");
            time("ES256 p256-0.13", iterations, || {
                use p256::ecdsa::signature::Verifier;
                p256_key.verify(input.as_bytes(), &p256_sig).is_ok()
            });
        }
    }
}

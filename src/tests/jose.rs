//! JOSE vectors for every algorithm (RFC 7515, RFC 7520, RFC 8037, and
//! vectors made with pyca/cryptography where no RFC example exists), key
//! parsing errors, and algorithm binding.

use serde_json::Value;

use jwt_compact::UntrustedToken;

use super::{hs256_sign, segments};
use crate::b64::{b64url, b64url_decode};
use crate::keys::{parse_jwks, Algorithm, Jwk};

/// The bare signature check, as the key permits it.
fn verifies(key: &Jwk, alg: Algorithm, input: &[u8], signature: &[u8]) -> bool {
    key.permits(alg) && alg.verify_signature(&key.material, input, signature)
}

const ALL: [Algorithm; 13] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::ES512,
    Algorithm::EdDSA,
];

fn vectors() -> Vec<Value> {
    let mut all: Vec<Value> =
        serde_json::from_str(include_str!("../keys/vectors/rfc.json")).unwrap();
    let generated: Vec<Value> =
        serde_json::from_str(include_str!("../keys/vectors/generated.json")).unwrap();
    all.extend(generated);
    all
}

#[test]
fn every_algorithm_has_a_vector_that_verifies() {
    let vectors = vectors();
    for alg in ALL {
        let v = vectors
            .iter()
            .find(|v| v["alg"] == alg.name())
            .unwrap_or_else(|| panic!("no vector for {}", alg.name()));
        let jwks = serde_json::json!({"keys": [v["jwk"]]}).to_string();
        let set = parse_jwks(jwks.as_bytes()).unwrap();
        let key = &set.keys[0];
        let compact = v["compact"].as_str().unwrap();
        let (header, payload, signature) = segments(compact);
        let sig = b64url_decode(signature).unwrap();
        let signing_input = format!("{header}.{payload}");
        let input = signing_input.as_bytes();
        assert!(
            verifies(key, alg, input, &sig),
            "{} ({})",
            alg.name(),
            v["source"]
        );
        // Vectors with a claims set also pass the whole token path.
        let claims = b64url_decode(payload).unwrap();
        if serde_json::from_slice::<serde_json::Map<String, Value>>(&claims).is_ok() {
            let token = UntrustedToken::new(compact).unwrap();
            assert!(key.verify(alg, &token), "{} token", alg.name());
            let tampered = format!(
                "{header}.{payload}.{}",
                b64url(&{
                    let mut s = sig.clone();
                    s[0] ^= 1;
                    s
                })
            );
            assert!(!key.verify(alg, &UntrustedToken::new(&tampered).unwrap()));
        }

        // One flipped bit in the signature or the input: refused.
        let mut bad = sig.clone();
        bad[sig.len() / 2] ^= 1;
        assert!(
            !verifies(key, alg, input, &bad),
            "{} tampered sig",
            alg.name()
        );
        let mut bad_input = input.to_vec();
        bad_input[5] ^= 1;
        assert!(
            !verifies(key, alg, &bad_input, &sig),
            "{} tampered input",
            alg.name()
        );
        assert!(!verifies(key, alg, input, &[]), "{} empty sig", alg.name());

        // No other algorithm may use this key with this signature.
        for other in ALL.iter().filter(|o| **o != alg) {
            assert!(
                !verifies(key, *other, input, &sig),
                "{} key accepted {}",
                alg.name(),
                other.name()
            );
        }
    }
}

#[test]
fn a_key_that_declares_alg_permits_only_that_one() {
    let v = vectors()
        .into_iter()
        .find(|v| v["source"] == "RFC 7520 4.1")
        .unwrap();
    let mut jwk = v["jwk"].clone();
    jwk["alg"] = "PS256".into();
    let set = parse_jwks(serde_json::json!({"keys": [jwk]}).to_string().as_bytes()).unwrap();
    assert!(set.keys[0].permits(Algorithm::PS256));
    assert!(!set.keys[0].permits(Algorithm::RS256));
    // Without alg: the whole RSA family, nothing else.
    let set = parse_jwks(
        serde_json::json!({"keys": [v["jwk"]]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    for alg in ALL {
        let rsa = alg.name().starts_with('R') || alg.name().starts_with('P');
        assert_eq!(set.keys[0].permits(alg), rsa, "{}", alg.name());
    }
}

/// The classic confusion: an RSA public key (as PEM/DER/JWK text) used as an
/// HMAC secret by an attacker who then sets `alg: HS256`.
#[test]
fn rsa_public_key_is_never_an_hmac_secret() {
    let v = vectors()
        .into_iter()
        .find(|v| v["source"] == "RFC 7520 4.1")
        .unwrap();
    let jwk_text = v["jwk"].to_string();
    let set = parse_jwks(format!(r#"{{"keys":[{jwk_text}]}}"#).as_bytes()).unwrap();
    let input = b"eyJhbGciOiJIUzI1NiJ9.e30";
    for secret in [
        jwk_text.as_bytes(),
        v["jwk"]["n"].as_str().unwrap().as_bytes(),
    ] {
        let sig = hs256_sign(secret, input);
        assert!(!set.keys[0].permits(Algorithm::HS256));
        assert!(!verifies(&set.keys[0], Algorithm::HS256, input, &sig));
        let token = format!("{}.{}", std::str::from_utf8(input).unwrap(), b64url(&sig));
        let token = UntrustedToken::new(&token).unwrap();
        assert!(!set.keys[0].verify(Algorithm::HS256, &token));
        assert!(!Algorithm::HS256.verify(&set.keys[0].material, &token));
    }
}

#[test]
fn jwks_parsing_errors_and_skips() {
    let rsa_n = vectors()[0]["jwk"]["n"].as_str().unwrap().to_string();
    let short_n = b64url(&[0xc5; 128]);
    let err = |json: String| parse_jwks(json.as_bytes()).unwrap_err().0;
    let cases = [
        ("not json".to_string(), "not a JWKS document"),
        (
            r#"{"kty":"RSA"}"#.to_string(),
            "not a JWKS document: missing field `keys`",
        ),
        (r#"{"keys":[]}"#.to_string(), "no usable signature key"),
        (
            r#"{"keys":[{"kty":"RSA","e":"AQAB"}]}"#.to_string(),
            "keys[0] (#0): missing \"n\"",
        ),
        (
            format!(r#"{{"keys":[{{"kty":"RSA","kid":"small","n":"{short_n}","e":"AQAB"}}]}}"#),
            "keys[0] (small): RSA key shorter than 2048 bits",
        ),
        (
            r#"{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}"#.to_string(),
            "HMAC key shorter than 32 bytes",
        ),
        (
            r#"{"keys":[{"kty":"oct","k":"!!"}]}"#.to_string(),
            "\"k\" is not base64url",
        ),
        (
            r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}"#.to_string(),
            "P-256 coordinates must be 32 bytes",
        ),
        (
            format!(
                r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{0}","y":"{0}"}}]}}"#,
                b64url(&[1; 32])
            ),
            "point is not on P-256",
        ),
        (
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}"#.to_string(),
            "Ed25519 key must be 32 bytes",
        ),
        (
            format!(r#"{{"keys":[{{"kty":"RSA","alg":"HS256","n":"{rsa_n}","e":"AQAB"}}]}}"#),
            "alg HS256 does not fit a RSA key",
        ),
        (
            format!(r#"{{"keys":[{{"kty":"RSA","alg":"none","n":"{rsa_n}","e":"AQAB"}}]}}"#),
            "algorithm \"none\" is not a signature algorithm",
        ),
        (
            format!(r#"{{"keys":[{{"kty":"RSA","alg":"RS1","n":"{rsa_n}","e":"AQAB"}}]}}"#),
            "unsupported algorithm \"RS1\"",
        ),
        (
            r#"{"keys":[{"kty":"EC","x":"AAAA","y":"AAAA"}]}"#.to_string(),
            "missing \"crv\"",
        ),
    ];
    for (json, expected) in cases {
        let got = err(json.clone());
        assert!(
            got.contains(expected),
            "{json}\n got {got}\n want {expected}"
        );
    }
    // Encryption keys, other curves and unknown types are skipped, not fatal.
    let mixed = format!(
        r#"{{"keys":[{{"kty":"RSA","use":"enc","n":"{rsa_n}","e":"AQAB"}},
                     {{"kty":"EC","crv":"secp256k1","x":"AA","y":"AA"}},
                     {{"kty":"OKP","crv":"X25519","x":"AA"}},
                     {{"kty":"weird"}},
                     {{"kty":"RSA","kid":"k1","use":"sig","n":"{rsa_n}","e":"AQAB"}}]}}"#
    );
    let set = parse_jwks(mixed.as_bytes()).unwrap();
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.keys[0].kid.as_deref(), Some("k1"));
    assert_eq!(set.skipped.len(), 4);
    assert!(set.has_kid("k1") && !set.has_kid("k2"));
    assert_eq!(set.candidates(Some("k2")).count(), 0);
    assert_eq!(set.candidates(None).count(), 1);
}

//! JOSE signature algorithms (RFC 7518 §3, RFC 8037) and the signature
//! check for each.

use hmac::{Hmac, Mac};
use rsa::signature::Verifier;
use sha2::{Sha256, Sha384, Sha512};

use super::jwk::KeyMaterial;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

impl Algorithm {
    /// Exact, case-sensitive names (RFC 7515 §4.1.1). `none` is not one.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "ES512" => Algorithm::ES512,
            "EdDSA" => Algorithm::EdDSA,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Whether `material` is the kind of key this algorithm uses. This is
    /// what stops an RSA public key from being used as an HMAC secret.
    pub fn fits(self, material: &KeyMaterial) -> bool {
        use Algorithm::*;
        matches!(
            (self, material),
            (HS256 | HS384 | HS512, KeyMaterial::Hmac(_))
                | (
                    RS256 | RS384 | RS512 | PS256 | PS384 | PS512,
                    KeyMaterial::Rsa(_)
                )
                | (ES256, KeyMaterial::P256(_))
                | (ES384, KeyMaterial::P384(_))
                | (ES512, KeyMaterial::P521(_))
                | (EdDSA, KeyMaterial::Ed25519(_))
        )
    }

    /// Checks `signature` over `input` with `material`. A key of the wrong
    /// kind never verifies.
    pub fn verify(self, material: &KeyMaterial, input: &[u8], signature: &[u8]) -> bool {
        use Algorithm::*;
        match (self, material) {
            (HS256, KeyMaterial::Hmac(k)) => hmac_verify::<Hmac<Sha256>>(k, input, signature),
            (HS384, KeyMaterial::Hmac(k)) => hmac_verify::<Hmac<Sha384>>(k, input, signature),
            (HS512, KeyMaterial::Hmac(k)) => hmac_verify::<Hmac<Sha512>>(k, input, signature),
            (RS256, KeyMaterial::Rsa(k)) => pkcs1_verify(
                rsa::pkcs1v15::VerifyingKey::<Sha256>::new(k.clone()),
                input,
                signature,
            ),
            (RS384, KeyMaterial::Rsa(k)) => pkcs1_verify(
                rsa::pkcs1v15::VerifyingKey::<Sha384>::new(k.clone()),
                input,
                signature,
            ),
            (RS512, KeyMaterial::Rsa(k)) => pkcs1_verify(
                rsa::pkcs1v15::VerifyingKey::<Sha512>::new(k.clone()),
                input,
                signature,
            ),
            (PS256, KeyMaterial::Rsa(k)) => pss_verify(
                rsa::pss::VerifyingKey::<Sha256>::new(k.clone()),
                input,
                signature,
            ),
            (PS384, KeyMaterial::Rsa(k)) => pss_verify(
                rsa::pss::VerifyingKey::<Sha384>::new(k.clone()),
                input,
                signature,
            ),
            (PS512, KeyMaterial::Rsa(k)) => pss_verify(
                rsa::pss::VerifyingKey::<Sha512>::new(k.clone()),
                input,
                signature,
            ),
            (ES256, KeyMaterial::P256(k)) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| k.verify(input, &sig).is_ok()),
            (ES384, KeyMaterial::P384(k)) => p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| k.verify(input, &sig).is_ok()),
            (ES512, KeyMaterial::P521(k)) => p521::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| k.verify(input, &sig).is_ok()),
            (EdDSA, KeyMaterial::Ed25519(k)) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|sig| k.verify_strict(input, &sig).is_ok()),
            _ => false,
        }
    }
}

fn hmac_verify<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &[u8], signature: &[u8]) -> bool {
    match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(input);
            mac.verify_slice(signature).is_ok()
        }
        Err(_) => false,
    }
}

fn pkcs1_verify<D>(key: rsa::pkcs1v15::VerifyingKey<D>, input: &[u8], signature: &[u8]) -> bool
where
    D: rsa::sha2::Digest + rsa::pkcs8::AssociatedOid,
{
    rsa::pkcs1v15::Signature::try_from(signature).is_ok_and(|sig| key.verify(input, &sig).is_ok())
}

fn pss_verify<D>(key: rsa::pss::VerifyingKey<D>, input: &[u8], signature: &[u8]) -> bool
where
    D: rsa::sha2::Digest + rsa::sha2::digest::FixedOutputReset,
{
    rsa::pss::Signature::try_from(signature).is_ok_and(|sig| key.verify(input, &sig).is_ok())
}

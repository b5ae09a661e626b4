//! Typed public key material (or an HMAC secret), as parsed from a JWK. A
//! leaf of `keys/`: the JWK parser makes it, the algorithms check against it.

use std::fmt;

/// A key of one type; which algorithms it may verify follows from the type.
pub enum KeyMaterial {
    Hmac(Vec<u8>),
    Rsa(super::rsa_ring::RsaKey),
    P256(super::ecdsa::es256_ring::P256Point),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
    Ed25519(ed25519_compact::PublicKey),
}

impl fmt::Debug for KeyMaterial {
    // Never print key bytes (HMAC keys are secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyMaterial::Hmac(_) => "Hmac(..)",
            KeyMaterial::Rsa(_) => "Rsa(..)",
            KeyMaterial::P256(_) => "P256(..)",
            KeyMaterial::P384(_) => "P384(..)",
            KeyMaterial::P521(_) => "P521(..)",
            KeyMaterial::Ed25519(_) => "Ed25519(..)",
        })
    }
}

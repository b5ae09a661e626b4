//! ES256: ECDSA on P-256 with SHA-256 (RFC 7518 §3.4), verified by `ring`
//! through `jwt-compact`'s `Algorithm` trait. In V8 ring verifies P-256
//! about 1.5x faster than the pure-Rust `p256` crate (BENCHMARKS.md,
//! "Crypto backends"). Verification only.

use std::borrow::Cow;
use std::num::NonZeroUsize;

use jwt_compact::{Algorithm, AlgorithmSignature};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

use super::NoSigningKey;

#[derive(Debug, Clone, Copy, Default)]
pub struct Es256Ring;

/// A P-256 public key as an uncompressed SEC1 point (0x04 || x || y),
/// checked to be on the curve when the JWK was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct P256Point(pub Vec<u8>);

/// The JOSE form: r || s, 64 bytes (never DER).
#[derive(Debug, Clone)]
pub struct Signature(Vec<u8>);

impl AlgorithmSignature for Signature {
    const LENGTH: Option<NonZeroUsize> = NonZeroUsize::new(64);

    fn try_from_slice(slice: &[u8]) -> anyhow::Result<Self> {
        if slice.len() != 64 {
            return Err(anyhow::anyhow!("not a ES256 signature"));
        }
        Ok(Signature(slice.to_vec()))
    }

    fn as_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.0)
    }
}

impl Algorithm for Es256Ring {
    type SigningKey = NoSigningKey;
    type VerifyingKey = P256Point;
    type Signature = Signature;

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("ES256")
    }

    fn sign(&self, signing_key: &NoSigningKey, _message: &[u8]) -> Signature {
        match *signing_key {}
    }

    fn verify_signature(&self, signature: &Signature, key: &P256Point, message: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &key.0)
            .verify(message, &signature.0)
            .is_ok()
    }
}

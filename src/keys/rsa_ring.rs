//! RS256/384/512 and PS256/384/512 verified by `ring` (RFC 7518 §3.3, §3.5),
//! through `jwt-compact`'s `Algorithm` trait. In V8 (what Envoy runs the
//! plugin in) ring verifies an RSA-2048 signature about 4x faster than the
//! pure-Rust `rsa` crate (BENCHMARKS.md, "Crypto backends"): the cost every
//! verified-token cache miss pays. Verification only.

use std::borrow::Cow;

use jwt_compact::{Algorithm, AlgorithmSignature};
use ring::signature::{self, RsaParameters, RsaPublicKeyComponents};

use super::ecdsa::NoSigningKey;

/// An RSA public key as big-endian modulus and exponent, already bounded
/// (2048 to 8192 bits) and checked when the JWK was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaKey {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
}

/// One of the six JOSE RSA algorithms; the padding and hash are fixed by it,
/// never by the token (the caller binds the algorithm to the key).
#[derive(Debug, Clone, Copy)]
pub struct RingRsa {
    name: &'static str,
    params: &'static RsaParameters,
}

impl RingRsa {
    pub fn rs256() -> Self {
        RingRsa {
            name: "RS256",
            params: &signature::RSA_PKCS1_2048_8192_SHA256,
        }
    }
    pub fn rs384() -> Self {
        RingRsa {
            name: "RS384",
            params: &signature::RSA_PKCS1_2048_8192_SHA384,
        }
    }
    pub fn rs512() -> Self {
        RingRsa {
            name: "RS512",
            params: &signature::RSA_PKCS1_2048_8192_SHA512,
        }
    }
    /// PSS with the salt as long as the hash, as RFC 7518 §3.5 requires.
    pub fn ps256() -> Self {
        RingRsa {
            name: "PS256",
            params: &signature::RSA_PSS_2048_8192_SHA256,
        }
    }
    pub fn ps384() -> Self {
        RingRsa {
            name: "PS384",
            params: &signature::RSA_PSS_2048_8192_SHA384,
        }
    }
    pub fn ps512() -> Self {
        RingRsa {
            name: "PS512",
            params: &signature::RSA_PSS_2048_8192_SHA512,
        }
    }
}

/// The signature bytes as sent; ring checks their length against the key.
#[derive(Debug, Clone)]
pub struct Signature(Vec<u8>);

impl AlgorithmSignature for Signature {
    fn try_from_slice(slice: &[u8]) -> anyhow::Result<Self> {
        Ok(Signature(slice.to_vec()))
    }

    fn as_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.0)
    }
}

impl Algorithm for RingRsa {
    type SigningKey = NoSigningKey;
    type VerifyingKey = RsaKey;
    type Signature = Signature;

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.name)
    }

    fn sign(&self, signing_key: &NoSigningKey, _message: &[u8]) -> Signature {
        match *signing_key {}
    }

    fn verify_signature(&self, signature: &Signature, key: &RsaKey, message: &[u8]) -> bool {
        RsaPublicKeyComponents {
            n: &key.n,
            e: &key.e,
        }
        .verify(self.params, message, &signature.0)
        .is_ok()
    }
}

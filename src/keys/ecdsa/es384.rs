//! ES384: ECDSA on P-384 with SHA-384 (RFC 7518 §3.4), for `jwt-compact`.

use std::borrow::Cow;
use std::num::NonZeroUsize;

use jwt_compact::{Algorithm, AlgorithmSignature};
use p384::ecdsa::signature::Verifier;

use super::NoSigningKey;

#[derive(Debug, Clone, Copy, Default)]
pub struct Es384;

/// The JOSE form: r || s, 96 bytes (never DER).
#[derive(Debug, Clone)]
pub struct Signature(p384::ecdsa::Signature);

impl AlgorithmSignature for Signature {
    const LENGTH: Option<NonZeroUsize> = NonZeroUsize::new(96);

    fn try_from_slice(slice: &[u8]) -> anyhow::Result<Self> {
        p384::ecdsa::Signature::from_slice(slice)
            .map(Signature)
            .map_err(|_| anyhow::anyhow!("not a ES384 signature"))
    }

    fn as_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.to_bytes().to_vec())
    }
}

impl Algorithm for Es384 {
    type SigningKey = NoSigningKey;
    type VerifyingKey = p384::ecdsa::VerifyingKey;
    type Signature = Signature;

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("ES384")
    }

    fn sign(&self, signing_key: &NoSigningKey, _message: &[u8]) -> Signature {
        match *signing_key {}
    }

    fn verify_signature(
        &self,
        signature: &Signature,
        verifying_key: &Self::VerifyingKey,
        message: &[u8],
    ) -> bool {
        verifying_key.verify(message, &signature.0).is_ok()
    }
}

//! JOSE signature algorithms (RFC 7518 §3, RFC 8037): which key each one
//! fits, and the signature check for each through `jwt-compact`.

use jwt_compact::{AlgorithmExt, AlgorithmSignature, Empty, UntrustedToken};

use super::ecdsa::{es256_ring::Es256Ring, es384::Es384, es512::Es512};
use super::material::KeyMaterial;
use super::rsa_ring::RingRsa;

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

    /// Checks the signature of `token` with `material`, through
    /// `jwt-compact`'s validator for this algorithm. A key of the wrong kind
    /// never verifies. The caller has already bound the algorithm to the key
    /// ([`crate::keys::Jwk::permits`]); the validator checks again that the
    /// token's `alg` is this one.
    pub fn verify<H: Clone>(self, material: &KeyMaterial, token: &UntrustedToken<'_, H>) -> bool {
        with_algorithm!(self, material, |alg, key| alg
            .validator::<Empty>(key)
            .validate(token)
            .is_ok())
    }

    /// The bare signature check over `signing_input` (for JOSE test vectors
    /// whose payload is not a claims set; tokens go through [`Self::verify`]).
    pub fn verify_signature(
        self,
        material: &KeyMaterial,
        signing_input: &[u8],
        signature: &[u8],
    ) -> bool {
        with_algorithm!(self, material, |alg, key| raw(
            alg,
            key,
            signing_input,
            signature
        ))
    }
}

/// Runs `$body` with `jwt-compact`'s algorithm value for `$alg` and the key
/// of `$material` in its type; `false` when the key does not fit.
macro_rules! with_algorithm {
    ($alg:expr, $material:expr, |$a:ident, $k:ident| $body:expr) => {{
        use jwt_compact::alg;
        use Algorithm::*;
        match ($alg, $material) {
            (HS256, KeyMaterial::Hmac(k)) => {
                let ($a, $k) = (alg::Hs256, &alg::Hs256Key::new(k));
                $body
            }
            (HS384, KeyMaterial::Hmac(k)) => {
                let ($a, $k) = (alg::Hs384, &alg::Hs384Key::new(k));
                $body
            }
            (HS512, KeyMaterial::Hmac(k)) => {
                let ($a, $k) = (alg::Hs512, &alg::Hs512Key::new(k));
                $body
            }
            (RS256 | RS384 | RS512 | PS256 | PS384 | PS512, KeyMaterial::Rsa($k)) => {
                let $a = match $alg {
                    RS256 => RingRsa::rs256(),
                    RS384 => RingRsa::rs384(),
                    RS512 => RingRsa::rs512(),
                    PS256 => RingRsa::ps256(),
                    PS384 => RingRsa::ps384(),
                    _ => RingRsa::ps512(),
                };
                $body
            }
            (ES256, KeyMaterial::P256($k)) => {
                let $a = Es256Ring;
                $body
            }
            (ES384, KeyMaterial::P384($k)) => {
                let $a = Es384;
                $body
            }
            (ES512, KeyMaterial::P521($k)) => {
                let $a = Es512;
                $body
            }
            (EdDSA, KeyMaterial::Ed25519($k)) => {
                let $a = alg::Ed25519;
                $body
            }
            _ => false,
        }
    }};
}
use with_algorithm;

/// HS256 with a gateway consumer's secret (any length: the plain key type,
/// not the crate's 64-byte strict wrapper; the config warns on short ones).
pub fn hs256_verify<H: Clone>(secret: &[u8], token: &UntrustedToken<'_, H>) -> bool {
    jwt_compact::alg::Hs256
        .validator::<Empty>(&jwt_compact::alg::Hs256Key::new(secret))
        .validate(token)
        .is_ok()
}

fn raw<A: jwt_compact::Algorithm>(
    alg: A,
    key: &A::VerifyingKey,
    input: &[u8],
    signature: &[u8],
) -> bool {
    if A::Signature::LENGTH.is_some_and(|len| len.get() != signature.len()) {
        return false;
    }
    A::Signature::try_from_slice(signature).is_ok_and(|sig| alg.verify_signature(&sig, key, input))
}

//! Compact JWS pieces shared by issuing and verifying: base64url, the JOSE
//! header, and HMAC-SHA256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::borrow::Cow;

type HmacSha256 = Hmac<Sha256>;

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict base64url without padding, as RFC 7515 §2 requires.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// The parts of a compact JWS, still encoded.
#[derive(Debug, Clone, Copy)]
pub struct Compact<'t> {
    /// `header.payload`: the bytes the signature covers.
    pub signing_input: &'t str,
    pub header: &'t str,
    pub payload: &'t str,
    pub signature: &'t str,
}

/// Splits `a.b.c`; anything else (JWE's five parts, two parts) is `None`.
pub fn split(token: &str) -> Option<Compact<'_>> {
    let first = token.find('.')?;
    let second = first + 1 + token.get(first + 1..)?.find('.')?;
    let signature = token.get(second + 1..)?;
    if signature.contains('.') {
        return None;
    }
    Some(Compact {
        signing_input: token.get(..second)?,
        header: token.get(..first)?,
        payload: token.get(first + 1..second)?,
        signature,
    })
}

/// The JOSE header fields that matter for a security decision. Duplicate
/// keys are a parse error (serde), which closes parser-differential tricks.
#[derive(Debug, Deserialize)]
pub struct Header<'a> {
    #[serde(borrow)]
    pub alg: Cow<'a, str>,
    #[serde(borrow, default)]
    pub typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub kid: Option<Cow<'a, str>>,
    /// Extensions the verifier must understand; we understand none.
    #[serde(default)]
    pub crit: Option<serde::de::IgnoredAny>,
    /// Key-carrying headers. We never fetch or trust them; their presence
    /// is itself a refusal reason for keys we did not configure.
    #[serde(default)]
    pub jku: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub jwk: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub x5u: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub x5c: Option<serde::de::IgnoredAny>,
}

impl Header<'_> {
    pub fn carries_key_material(&self) -> bool {
        self.jku.is_some() || self.jwk.is_some() || self.x5u.is_some() || self.x5c.is_some()
    }
}

pub fn hs256_sign(key: &[u8], signing_input: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so new_from_slice cannot fail; an
    // empty signature would simply never verify.
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(signing_input);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Constant-time HMAC-SHA256 check.
pub fn hs256_verify(key: &[u8], signing_input: &[u8], signature: &[u8]) -> bool {
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(signing_input);
            mac.verify_slice(signature).is_ok()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_parts_only() {
        let c = split("aa.bb.cc").unwrap();
        assert_eq!(
            (c.header, c.payload, c.signature, c.signing_input),
            ("aa", "bb", "cc", "aa.bb")
        );
        assert!(split("aa.bb").is_none());
        assert!(split("a.b.c.d.e").is_none());
        assert!(split("a.b.c.").is_none());
        let empty_sig = split("a.b.").unwrap();
        assert_eq!(empty_sig.signature, "");
    }

    /// RFC 7515 Appendix A.1: HS256 example.
    #[test]
    fn rfc7515_a1_hs256() {
        let key = b64url_decode(
            "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
        )
        .unwrap();
        let input = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        let sig = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(b64url(&hs256_sign(&key, input.as_bytes())), sig);
        assert!(hs256_verify(
            &key,
            input.as_bytes(),
            &b64url_decode(sig).unwrap()
        ));
        assert!(!hs256_verify(
            b"other",
            input.as_bytes(),
            &b64url_decode(sig).unwrap()
        ));
        assert!(!hs256_verify(&key, input.as_bytes(), &[]));
    }

    #[test]
    fn base64url_is_strict() {
        assert_eq!(b64url_decode("YQ").unwrap(), b"a");
        assert!(b64url_decode("YQ==").is_none());
        assert!(b64url_decode("Y+/=").is_none());
    }
}

//! Sealing cookie values with XChaCha20-Poly1305. The key is derived from the
//! configured `cookie_secret` with HKDF-SHA256; the cookie's name is bound in
//! as associated data, so a value moved to another cookie does not open.
//! Any tampering, truncation or foreign key reads as "no value".

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::b64::{b64url, b64url_decode};

/// First byte of every sealed value: lets a later format coexist.
const VERSION: u8 = 1;
pub const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// A 256-bit key for one purpose, derived from the operator's secret.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    pub fn derive(secret: &[u8], purpose: &str) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"edge-auth session v1"), secret);
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit: cannot fail.
        let _ = hk.expand(purpose.as_bytes(), &mut key);
        SealKey(key)
    }

    /// `base64url(version || nonce || ciphertext || tag)`.
    pub fn seal(&self, plaintext: &[u8], context: &str, nonce: [u8; NONCE_LEN]) -> String {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        b64url(&out)
    }

    pub fn open(&self, value: &str, context: &str) -> Option<Vec<u8>> {
        let raw = b64url_decode(value)?;
        let (&version, rest) = raw.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> SealKey {
        SealKey::derive(secret.as_bytes(), "session")
    }

    #[test]
    fn round_trip_and_every_tamper_fails() {
        let k = key("0123456789abcdef0123456789abcdef");
        let sealed = k.seal(b"hello session", "sess", [7; NONCE_LEN]);
        assert_eq!(k.open(&sealed, "sess").unwrap(), b"hello session");
        // Other context (cookie name), other key, other purpose.
        assert!(k.open(&sealed, "sess_csrf").is_none());
        assert!(key("another secret of enough length!!")
            .open(&sealed, "sess")
            .is_none());
        assert!(SealKey::derive(b"0123456789abcdef0123456789abcdef", "csrf")
            .open(&sealed, "sess")
            .is_none());
        // Every single-character change and every truncation.
        let chars: Vec<char> = sealed.chars().collect();
        for i in 0..chars.len() {
            let mut t = chars.clone();
            t[i] = if t[i] == 'A' { 'B' } else { 'A' };
            let tampered: String = t.into_iter().collect();
            if tampered != sealed {
                assert!(k.open(&tampered, "sess").is_none(), "tamper at {i}");
            }
            assert!(k.open(&sealed[..i], "sess").is_none(), "truncated to {i}");
        }
        assert!(k.open("", "sess").is_none());
        assert!(k.open("not base64 !", "sess").is_none());
    }

    #[test]
    fn nonces_make_values_differ() {
        let k = key("0123456789abcdef0123456789abcdef");
        assert_ne!(
            k.seal(b"x", "c", [1; NONCE_LEN]),
            k.seal(b"x", "c", [2; NONCE_LEN])
        );
    }
}

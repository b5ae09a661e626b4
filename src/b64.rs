//! base64url without padding (RFC 4648 §5), the encoding of JOSE keys,
//! session cookies and PKCE values. Token segments are never split or
//! decoded here: that is `jwt-compact`'s job.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict: no padding, no `+`/`/`.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_is_strict() {
        assert_eq!(b64url_decode("YQ").unwrap(), b"a");
        assert!(b64url_decode("YQ==").is_none());
        assert!(b64url_decode("Y+/=").is_none());
        assert_eq!(b64url(b"\xfb\xff"), "-_8");
    }
}

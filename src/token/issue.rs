//! Issuing RFC 9068 access tokens, in the format of the MSE/Higress `oauth`
//! plugin so tokens from either verify at the other.

use chrono::{TimeZone, Utc};
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims, Header};
use serde::Serialize;

use super::ACCESS_TOKEN_TYPE;
use crate::config::Consumer;

/// Claims besides `exp` and `iat` (which `jwt-compact` writes first).
#[derive(Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

pub struct AccessTokenRequest<'a> {
    pub consumer: &'a Consumer,
    pub issuer: &'a str,
    pub audience: &'a str,
    pub scope: Option<&'a str>,
    pub now: u64,
    pub ttl: u64,
    /// 16 random bytes from the host; formatted as a UUID v4.
    pub jti_random: [u8; 16],
}

/// Signed by `jwt-compact` (HS256 with the consumer's secret); the header
/// is exactly `{"alg":"HS256","typ":"application/at+jwt"}`, as the MSE
/// plugin writes it.
pub fn issue_access_token(req: &AccessTokenRequest<'_>) -> String {
    let jti = uuid_v4(req.jti_random);
    let at = |seconds: u64| {
        i64::try_from(seconds)
            .ok()
            .and_then(|s| Utc.timestamp_opt(s, 0).single())
    };
    let mut claims = Claims::new(AccessClaims {
        iss: req.issuer,
        sub: &req.consumer.name,
        aud: req.audience,
        client_id: &req.consumer.client_id,
        jti: &jti,
        scope: req.scope,
    });
    claims.issued_at = at(req.now);
    claims.expiration = at(req.now.saturating_add(req.ttl));
    let header = Header::empty().with_token_type(ACCESS_TOKEN_TYPE);
    // Serializing strings and integers cannot fail; an empty token would
    // simply never verify.
    Hs256
        .token(&header, &claims, &Hs256Key::new(&req.consumer.secret))
        .unwrap_or_default()
}

/// RFC 9562 §5.4: version 4 in the high nibble of byte 6, variant 10 in the
/// top bits of byte 8.
pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::b64::{b64url, b64url_decode};
    use crate::tests::{hs256_sign, segments};

    #[test]
    fn uuid_v4_layout() {
        let id = uuid_v4([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let id = uuid_v4([0; 16]);
        assert_eq!(id, "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn token_layout_matches_mse() {
        let consumer = Consumer {
            name: "consumer1".into(),
            client_id: "id1".into(),
            secret: b"secret1".to_vec(),
        };
        let token = issue_access_token(&AccessTokenRequest {
            consumer: &consumer,
            issuer: "Higress-Gateway",
            audience: "default",
            scope: Some("read write"),
            now: 1_700_000_000,
            ttl: 7200,
            jti_random: [7; 16],
        });
        let (header_b64, payload_b64, signature) = segments(&token);
        // Byte for byte what the MSE plugin writes.
        assert_eq!(
            b64url_decode(header_b64).unwrap(),
            br#"{"alg":"HS256","typ":"application/at+jwt"}"#
        );
        let header: serde_json::Value =
            serde_json::from_slice(&b64url_decode(header_b64).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg":"HS256","typ":"application/at+jwt"})
        );
        let claims: serde_json::Value =
            serde_json::from_slice(&b64url_decode(payload_b64).unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({
                "iss":"Higress-Gateway","sub":"consumer1","aud":"default",
                "iat":1_700_000_000u64,"exp":1_700_007_200u64,"client_id":"id1",
                "jti":"07070707-0707-4707-8707-070707070707","scope":"read write"
            })
        );
        let signing_input = format!("{header_b64}.{payload_b64}");
        assert_eq!(
            signature,
            b64url(&hs256_sign(b"secret1", signing_input.as_bytes()))
        );
    }
}

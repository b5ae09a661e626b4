//! JWK and JWKS parsing (RFC 7517, RFC 7518 §6, RFC 8037). Each key becomes
//! typed key material; the algorithms it may verify follow from its type
//! (and its `alg`, when it declares one), never from a token.

use jwt_compact::UntrustedToken;
use serde::Deserialize;
use std::fmt;

use super::algorithm::Algorithm;
pub use super::material::KeyMaterial;
use crate::b64::b64url_decode;

/// RFC 7518 §3.3: RSA keys of 2048 bits or larger MUST be used.
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;
/// RFC 7518 §3.2: an HMAC key at least as long as the hash output (HS256).
const MIN_HMAC_BYTES: usize = 32;

#[derive(Debug)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The one algorithm the key declares, if it does.
    pub alg: Option<Algorithm>,
    pub material: KeyMaterial,
}

impl Jwk {
    /// May this key verify a token signed with `alg`? The key type decides
    /// the family; a declared `alg` narrows it to exactly that one.
    pub fn permits(&self, alg: Algorithm) -> bool {
        alg.fits(&self.material) && self.alg.is_none_or(|own| own == alg)
    }

    pub fn verify<H: Clone>(&self, alg: Algorithm, token: &UntrustedToken<'_, H>) -> bool {
        self.permits(alg) && alg.verify(&self.material, token)
    }
}

#[derive(Debug, Default)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
    /// Keys passed over (encryption keys, unsupported types), with why.
    pub skipped: Vec<String>,
}

impl KeySet {
    /// Keys to try for a token: those with its `kid`, or all when it has none.
    pub fn candidates<'s>(&'s self, kid: Option<&'s str>) -> impl Iterator<Item = &'s Jwk> {
        self.keys
            .iter()
            .filter(move |k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwkError(pub String);

impl fmt::Display for JwkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    k: Option<String>,
}

/// Parses a JWKS document. Keys that are not for signatures or of a type we
/// do not support are skipped (IdPs publish encryption keys too); a key that
/// claims to be a signature key but is broken is an error, so a typo in an
/// inline key is caught at configuration time. No usable key is an error.
pub fn parse_jwks(json: &[u8]) -> Result<KeySet, JwkError> {
    let raw: RawJwks = serde_json::from_slice(json).map_err(|e| {
        JwkError(format!(
            "not a JWKS document: {}",
            first_clause(&e.to_string())
        ))
    })?;
    let mut set = KeySet::default();
    for (i, value) in raw.keys.into_iter().enumerate() {
        let key: RawJwk = serde_json::from_value(value)
            .map_err(|e| JwkError(format!("keys[{i}]: {}", first_clause(&e.to_string()))))?;
        let label = key.kid.clone().unwrap_or_else(|| format!("#{i}"));
        if key.use_.as_deref().is_some_and(|u| u != "sig") {
            set.skipped.push(format!("{label}: use is not sig"));
            continue;
        }
        match parse_key(key) {
            Ok(Some(jwk)) => set.keys.push(jwk),
            Ok(None) => set.skipped.push(format!("{label}: unsupported key type")),
            Err(reason) => return Err(JwkError(format!("keys[{i}] ({label}): {reason}"))),
        }
    }
    if set.keys.is_empty() {
        return Err(JwkError("no usable signature key".into()));
    }
    Ok(set)
}

fn first_clause(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

fn field(value: Option<String>, name: &str) -> Result<Vec<u8>, String> {
    let text = value.ok_or_else(|| format!("missing \"{name}\""))?;
    b64url_decode(&text).ok_or_else(|| format!("\"{name}\" is not base64url"))
}

fn parse_key(key: RawJwk) -> Result<Option<Jwk>, String> {
    let alg = match key.alg.as_deref() {
        None => None,
        Some(name) => match Algorithm::from_name(name) {
            Some(a) => Some(a),
            // e.g. RSA-OAEP on a key without `use`: not a signature key.
            None if !name.starts_with(['H', 'R', 'P', 'E']) || name == "none" => {
                return Err(format!("algorithm \"{name}\" is not a signature algorithm"))
            }
            None => return Err(format!("unsupported algorithm \"{name}\"")),
        },
    };
    let material = match key.kty.as_str() {
        "oct" => {
            let k = field(key.k, "k")?;
            if k.len() < MIN_HMAC_BYTES {
                return Err(format!("HMAC key shorter than {MIN_HMAC_BYTES} bytes"));
            }
            KeyMaterial::Hmac(k)
        }
        "RSA" => {
            let n = rsa::BigUint::from_bytes_be(&field(key.n, "n")?);
            let e = rsa::BigUint::from_bytes_be(&field(key.e, "e")?);
            if n.bits() < MIN_RSA_BITS {
                return Err(format!("RSA key shorter than {MIN_RSA_BITS} bits"));
            }
            // `rsa` checks the key (size, exponent); ring verifies with it.
            let public = rsa::RsaPublicKey::new_with_max_size(n, e, MAX_RSA_BITS)
                .map_err(|e| format!("invalid RSA key: {e}"))?;
            KeyMaterial::Rsa(super::rsa_ring::RsaKey {
                n: rsa::traits::PublicKeyParts::n(&public).to_bytes_be(),
                e: rsa::traits::PublicKeyParts::e(&public).to_bytes_be(),
            })
        }
        "EC" => {
            let x = field(key.x, "x")?;
            let y = field(key.y, "y")?;
            let (size, crv) = match key.crv.as_deref() {
                Some("P-256") => (32, "P-256"),
                Some("P-384") => (48, "P-384"),
                Some("P-521") => (66, "P-521"),
                Some(_) => return Ok(None),
                None => return Err("missing \"crv\"".into()),
            };
            // RFC 7518 §6.2.1.2: coordinates MUST be full length.
            if x.len() != size || y.len() != size {
                return Err(format!("{crv} coordinates must be {size} bytes"));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let off_curve = || format!("point is not on {crv}");
            match crv {
                // p256 checks the point is on the curve; ring verifies with it.
                "P-256" => {
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| off_curve())?;
                    KeyMaterial::P256(super::ecdsa::es256_ring::P256Point(point))
                }
                "P-384" => KeyMaterial::P384(
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| off_curve())?,
                ),
                _ => KeyMaterial::P521(
                    p521::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| off_curve())?,
                ),
            }
        }
        "OKP" => match key.crv.as_deref() {
            Some("Ed25519") => {
                let x: [u8; 32] = field(key.x, "x")?
                    .try_into()
                    .map_err(|_| "Ed25519 key must be 32 bytes".to_string())?;
                KeyMaterial::Ed25519(
                    ed25519_compact::PublicKey::from_slice(&x)
                        .map_err(|_| "invalid Ed25519 key".to_string())?,
                )
            }
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    if let Some(a) = alg {
        if !a.fits(&material) {
            return Err(format!("alg {} does not fit a {} key", a.name(), key.kty));
        }
    }
    Ok(Some(Jwk {
        kid: key.kid,
        alg,
        material,
    }))
}

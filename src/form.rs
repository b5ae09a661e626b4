//! `application/x-www-form-urlencoded` parsing (query strings and POST
//! bodies) and HTTP `Basic` credentials, as RFC 6749 uses them.

use base64::Engine;

/// Why a parameter string could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// A parameter the caller asked for appears more than once
    /// (RFC 6749 §3.2: parameters MUST NOT be included more than once).
    Repeated(&'static str),
    /// Bad percent-encoding or not UTF-8.
    Malformed,
}

/// Decodes one form component: `+` is a space, `%XX` a byte; the result must
/// be UTF-8.
pub fn decode_component(raw: &str) -> Result<String, FormError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|h| hex_value(*h));
                let lo = bytes.get(i + 2).and_then(|l| hex_value(*l));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(FormError::Malformed),
                }
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| FormError::Malformed)
}

/// The value of one hex digit (either case).
fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Picks the named parameters out of `input` (`a=1&b=2`), decoded, in the
/// order of `names`. Other parameters are ignored (RFC 6749 §3.1); a named one
/// that appears twice is an error. An empty value counts as absent.
pub fn pick<const N: usize>(
    input: &str,
    names: [&'static str; N],
) -> Result<[Option<String>; N], FormError> {
    let mut found: [Option<String>; N] = std::array::from_fn(|_| None);
    for pair in input.split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode_component(raw_key)?;
        let Some(slot) = names
            .iter()
            .position(|n| *n == key)
            .and_then(|i| found.get_mut(i).map(|slot| (i, slot)))
        else {
            continue;
        };
        let (i, slot) = slot;
        if slot.is_some() {
            return Err(FormError::Repeated(names.get(i).copied().unwrap_or("")));
        }
        let value = decode_component(raw_value)?;
        *slot = Some(value);
    }
    for slot in found.iter_mut() {
        if slot.as_deref() == Some("") {
            *slot = None;
        }
    }
    Ok(found)
}

/// The first value of parameter `name` in `input`, decoded; `None` when
/// absent or badly encoded.
pub fn first(input: &str, name: &str) -> Option<String> {
    input
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| decode_component(k).is_ok_and(|k| k == name))
        .and_then(|(_, v)| decode_component(v).ok())
}

/// Every value of `name` in a query string, in order (a value that does not
/// decode counts too, as an empty string: it is still a second value).
pub fn all(input: &str, name: &str) -> Vec<String> {
    input
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| decode_component(k).is_ok_and(|k| k == name))
        .map(|(_, v)| decode_component(v).unwrap_or_default())
        .collect()
}

/// Client credentials from `Authorization: Basic ...` (RFC 6749 §2.3.1: the
/// id and secret are form-encoded before base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub client_id: String,
    pub client_secret: String,
}

/// `None` when the header is not a Basic one; `Some(Err)` when it is but
/// cannot be decoded.
pub fn basic_credentials(header: &str) -> Option<Result<BasicCredentials, FormError>> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    Some(decode_basic(rest.trim()))
}

fn decode_basic(encoded: &str) -> Result<BasicCredentials, FormError> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| FormError::Malformed)?;
    let text = std::str::from_utf8(&decoded).map_err(|_| FormError::Malformed)?;
    let (id, secret) = text.split_once(':').ok_or(FormError::Malformed)?;
    Ok(BasicCredentials {
        client_id: decode_component(id)?,
        client_secret: decode_component(secret)?,
    })
}

/// The path part of `:path`, without query or fragment.
pub fn path_only(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

/// The query part of `:path` (after `?`, before `#`), if any.
pub fn query(path: &str) -> Option<&str> {
    let (_, rest) = path.split_once('?')?;
    Some(rest.split_once('#').map_or(rest, |(q, _)| q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_components() {
        assert_eq!(decode_component("a+b%20c%2Bd").unwrap(), "a b c+d");
        assert_eq!(decode_component("%e2%82%ac").unwrap(), "€");
        assert_eq!(decode_component("%zz"), Err(FormError::Malformed));
        assert_eq!(decode_component("%4"), Err(FormError::Malformed));
        assert_eq!(decode_component("%ff"), Err(FormError::Malformed));
        assert_eq!(decode_component("").unwrap(), "");
    }

    #[test]
    fn picks_parameters() {
        let [g, id, s] = pick(
            "grant_type=client_credentials&x=1&client_id=a%20b&&client_secret=",
            ["grant_type", "client_id", "client_secret"],
        )
        .unwrap();
        assert_eq!(g.as_deref(), Some("client_credentials"));
        assert_eq!(id.as_deref(), Some("a b"));
        assert_eq!(s, None);
        assert_eq!(pick("a=1&a=2", ["a"]), Err(FormError::Repeated("a")));
        // Repeats of parameters nobody asked for are not our business.
        assert_eq!(pick("x=1&x=2&a=3", ["a"]).unwrap()[0].as_deref(), Some("3"));
        assert_eq!(pick("a", ["a"]).unwrap()[0], None);
        assert_eq!(pick("a=%", ["a"]), Err(FormError::Malformed));
    }

    #[test]
    fn basic_credentials_rfc6749() {
        // "id%3Ax:s+cret" → id "id:x", secret "s cret"
        let b64 = base64::engine::general_purpose::STANDARD.encode("id%3Ax:s+cret");
        let creds = basic_credentials(&format!("Basic {b64}")).unwrap().unwrap();
        assert_eq!(creds.client_id, "id:x");
        assert_eq!(creds.client_secret, "s cret");
        assert!(basic_credentials(&format!("bAsIc {b64}")).is_some());
        assert_eq!(basic_credentials("Bearer abc"), None);
        assert_eq!(basic_credentials("Basic"), None);
        assert_eq!(
            basic_credentials("Basic !!!"),
            Some(Err(FormError::Malformed))
        );
        let no_colon = base64::engine::general_purpose::STANDARD.encode("nocolon");
        assert_eq!(
            basic_credentials(&format!("Basic {no_colon}")),
            Some(Err(FormError::Malformed))
        );
    }

    #[test]
    fn splits_path() {
        assert_eq!(path_only("/a/b?x=1#f"), "/a/b");
        assert_eq!(path_only("/a#f?x"), "/a");
        assert_eq!(query("/a?x=1#f"), Some("x=1"));
        assert_eq!(query("/a"), None);
    }
}

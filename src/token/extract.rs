//! Finding a token in a request: headers with a prefix, query parameters,
//! cookies, tried in the configured order.

use crate::config::TokenLocation;
use crate::form;
use crate::host::Host;

/// A token taken from one configured location.
#[derive(Debug, PartialEq, Eq)]
pub struct Presented<'l> {
    /// Position of the location in the scope's list (part of the
    /// verified-token cache key: where a token was found can change the
    /// decision).
    pub index: usize,
    pub location: &'l TokenLocation,
    pub token: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Found<'l> {
    /// No location holds a token.
    Nothing,
    /// Every token present, in the configured order; all of them must
    /// verify (Envoy jwt_authn's rule), so a valid token in one place
    /// cannot carry an unchecked one in another to the upstream.
    Tokens(Vec<Presented<'l>>),
    /// The place exists but what it holds cannot be a token (e.g. `Bearer`
    /// with nothing after it).
    Malformed(&'l TokenLocation),
    /// The place holds more than one value (a header sent twice,
    /// `?access_token=a&access_token=b`, two cookies of that name). Only one
    /// could be checked, and an upstream may read the other: refused.
    Repeated(&'l TokenLocation),
}

pub fn find_tokens<'l, H: Host>(locations: &'l [TokenLocation], host: &H) -> Found<'l> {
    let mut found: Vec<Presented<'l>> = Vec::new();
    for (index, location) in locations.iter().enumerate() {
        // One header value is one presentation: when a location already
        // took a token from this header, another prefix for the same
        // header (say "" after "Bearer ") reads nothing new.
        if let TokenLocation::Header { name, .. } = location {
            let taken = found
                .iter()
                .any(|p| matches!(p.location, TokenLocation::Header { name: n, .. } if n == name));
            if taken {
                continue;
            }
        }
        let values = match values_at(location, host) {
            Ok(values) => values,
            // Envoy would not list the headers: nothing can be vouched for.
            Err(()) => return Found::Malformed(location),
        };
        if values.len() > 1 {
            return Found::Repeated(location);
        }
        let value = match (location, values.into_iter().next()) {
            (_, None) => None,
            (TokenLocation::Header { prefix, .. }, Some(v)) => strip_prefix(&v, prefix),
            (_, Some(v)) => Some(v),
        };
        match value {
            None => continue,
            Some(token) if token.is_empty() || has_whitespace(&token) => {
                return Found::Malformed(location)
            }
            Some(token) => found.push(Presented {
                index,
                location,
                token,
            }),
        }
    }
    if found.is_empty() {
        Found::Nothing
    } else {
        Found::Tokens(found)
    }
}

/// Does `text` hold any character Rust calls white space? The same answer
/// as `text.contains(char::is_whitespace)`, which decodes every character of
/// an 800-byte token one by one (15% of a cached verification natively).
/// Every white-space character is either an ASCII byte below `!` or starts
/// with a byte of 0x80 or more, so text with neither, eight bytes at a time,
/// has none; only other text is checked character by character.
fn has_whitespace(text: &str) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let below_bang_or_high = |word: u64| (word.wrapping_sub(ONES * 0x21) | word) & HIGH != 0;
    let bytes = text.as_bytes();
    let mut words = bytes.chunks_exact(8);
    let suspicious = words
        .by_ref()
        .filter_map(|w| <[u8; 8]>::try_from(w).ok())
        .any(|w| below_bang_or_high(u64::from_ne_bytes(w)))
        || words.remainder().iter().any(|b| !(b'!'..0x80).contains(b));
    suspicious && text.contains(char::is_whitespace)
}

/// Every value this location holds in the request, in order.
fn values_at<H: Host>(location: &TokenLocation, host: &H) -> Result<Vec<String>, ()> {
    Ok(match location {
        TokenLocation::Header { name, .. } => host.request_header_values(name).map_err(|_| ())?,
        TokenLocation::Param(name) => host
            .request_header(":path")
            .and_then(|path| form::query(&path).map(|q| form::all(q, name)))
            .unwrap_or_default(),
        TokenLocation::Cookie(name) => host
            .request_header_values("cookie")
            .map_err(|_| ())?
            .iter()
            .flat_map(|header| cookies(header, name))
            .map(str::to_string)
            .collect(),
    })
}

/// `Bearer ` style prefixes (a word and a space) match the scheme
/// case-insensitively with any amount of white space; other prefixes are
/// literal. A value without the prefix holds no token for this location.
fn strip_prefix(value: &str, prefix: &str) -> Option<String> {
    let value = value.trim();
    if prefix.is_empty() {
        return Some(value.to_string());
    }
    let scheme = prefix.trim_end();
    if scheme.len() < prefix.len() && !scheme.contains(' ') {
        let (word, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
        return word
            .eq_ignore_ascii_case(scheme)
            .then(|| rest.trim().to_string());
    }
    value.strip_prefix(prefix).map(|t| t.trim().to_string())
}

/// The first cookie called `name` in a `Cookie` header.
pub fn cookie<'c>(header: &'c str, name: &str) -> Option<&'c str> {
    cookies(header, name).next()
}

/// Every value of the cookie `name` in a `Cookie` header, in order.
fn cookies<'c, 'n>(header: &'c str, name: &'n str) -> impl Iterator<Item = &'c str> + use<'c, 'n> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn white_space_is_found_as_char_is_whitespace_finds_it() {
        // Every white-space character, ASCII or not, alone and inside a
        // token-like string; and every other ASCII character is not.
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let inside = format!("eyJ.a{c}b.sig");
            assert_eq!(has_whitespace(&inside), c.is_whitespace(), "{:?}", c);
        }
        // At every offset of the eight-byte words and of the rest.
        for at in 0..=19 {
            for c in [
                '\t', '\n', '\u{0B}', '\u{0C}', '\r', ' ', '\u{85}', '\u{A0}', '\u{2028}',
            ] {
                let mut token: String = "x".repeat(19);
                token.insert(at, c);
                assert!(has_whitespace(&token), "{c:?} at {at}");
            }
            let mut token: String = "x".repeat(19);
            token.insert(at, 'é');
            assert!(!has_whitespace(&token), "é at {at}");
        }
        assert!(!has_whitespace("eyJhbGciOiJSUzI1NiJ9.e30.c2ln-_"));
        assert!(!has_whitespace(""));
        assert!(has_whitespace("\u{3000}"));
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            strip_prefix("Bearer abc", "Bearer ").as_deref(),
            Some("abc")
        );
        assert_eq!(
            strip_prefix("bearer   abc ", "Bearer ").as_deref(),
            Some("abc")
        );
        assert_eq!(strip_prefix("Bearer", "Bearer ").as_deref(), Some(""));
        assert_eq!(strip_prefix("Basic abc", "Bearer "), None);
        assert_eq!(strip_prefix("abc", ""), Some("abc".into()));
        assert_eq!(strip_prefix("JWT=abc", "JWT=").as_deref(), Some("abc"));
        assert_eq!(strip_prefix("jwt=abc", "JWT="), None);
    }

    #[test]
    fn cookies() {
        assert_eq!(cookie("a=1; jwt=tok; b=2", "jwt"), Some("tok"));
        assert_eq!(cookie("a=1;jwt=\"tok\"", "jwt"), Some("tok"));
        assert_eq!(cookie("xjwt=1", "jwt"), None);
        assert_eq!(cookie("", "jwt"), None);
    }
}

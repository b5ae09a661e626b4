//! Finding the bearer token in a request header.

/// What the configured auth header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No header, or a scheme other than Bearer: no token was presented
    /// (RFC 6750 §3.1: the challenge then carries no error code).
    Missing,
    /// `Bearer <token>`; the scheme is case-insensitive.
    Bearer(&'a str),
    /// `Bearer` with no token, or a token with inner whitespace.
    Malformed,
}

pub fn parse_bearer(header: Option<&str>) -> Credential<'_> {
    let Some(value) = header.map(str::trim) else {
        return Credential::Missing;
    };
    let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Credential::Missing;
    }
    let token = rest.trim();
    if token.is_empty() || token.contains([' ', '\t']) {
        Credential::Malformed
    } else {
        Credential::Bearer(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_table() {
        let table = [
            (None, Credential::Missing),
            (Some(""), Credential::Missing),
            (Some("Basic abc"), Credential::Missing),
            (Some("Bearerabc"), Credential::Missing),
            (Some("Bearer abc"), Credential::Bearer("abc")),
            (Some("bearer abc"), Credential::Bearer("abc")),
            (Some("BEARER   abc  "), Credential::Bearer("abc")),
            (Some("Bearer\tabc"), Credential::Bearer("abc")),
            (Some("Bearer"), Credential::Malformed),
            (Some("Bearer "), Credential::Malformed),
            (Some("Bearer a b"), Credential::Malformed),
        ];
        for (header, expected) in table {
            assert_eq!(parse_bearer(header), expected, "{header:?}");
        }
    }
}

//! `claims_to_headers`, for JWT consumers and single sign-on alike: which
//! upstream headers a token's claims may be written into.

use super::error::ConfigError;
use super::patterns::is_header_name;
use super::raw::RawClaimToHeader;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimHeader {
    pub claim: String,
    /// Lower-case.
    pub header: String,
    /// true replaces, false appends.
    pub replace: bool,
}

/// Headers a claim may not be copied into: the identity header this plugin
/// sets, credentials, and headers whose meaning to Envoy (routing, framing,
/// hop-by-hop) or to the upstream must not come from token contents.
/// Compared after folding `_` into `-`: upstreams that do the same (CGI,
/// WSGI, many frameworks) read `x_mse_consumer` as `x-mse-consumer`.
const RESERVED_HEADERS: &[&str] = &[
    "x-mse-consumer",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-request-id",
];

/// Envoy acts on these request headers itself (e.g. the router's
/// `x-envoy-upstream-rq-timeout-ms`, `x-envoy-retry-on`).
const RESERVED_PREFIXES: &[&str] = &["x-envoy-"];

/// Compiles one `claims_to_headers` list; `field` is its JSON path. Every
/// error names the entry (`…claims_to_headers[1].header`).
pub fn compile_claim_headers<'a>(
    raw: impl IntoIterator<Item = &'a RawClaimToHeader>,
    field: &str,
) -> Result<Vec<ClaimHeader>, ConfigError> {
    let mut out = Vec::new();
    for (j, entry) in raw.into_iter().enumerate() {
        let at = format!("{field}[{j}]");
        if entry.claim.is_empty() {
            return Err(ConfigError::new(format!("{at}.claim"), "must not be empty"));
        }
        // `is_header_name` refuses `:` and with it every pseudo-header.
        let header = entry.header.to_ascii_lowercase();
        if !is_header_name(&header) {
            return Err(ConfigError::new(
                format!("{at}.header"),
                "not a valid HTTP header name",
            ));
        }
        if is_reserved(&header) {
            return Err(ConfigError::new(
                format!("{at}.header"),
                format!("\"{header}\" cannot be set from a claim"),
            ));
        }
        out.push(ClaimHeader {
            claim: entry.claim.clone(),
            header,
            replace: entry.override_.unwrap_or(true),
        });
    }
    Ok(out)
}

/// Whether `header` (lower case) names a reserved header in any spelling.
pub fn is_reserved(header: &str) -> bool {
    let folded = header.replace('_', "-");
    RESERVED_HEADERS.contains(&folded.as_str())
        || RESERVED_PREFIXES.iter().any(|p| folded.starts_with(p))
}

/// The index of the first entry that writes into `token_header` (the
/// scope's configured auth header, where gateway tokens are read), in any
/// spelling: a claim must not become a credential upstream.
pub fn writes_token_header(headers: &[ClaimHeader], token_header: &str) -> Option<usize> {
    let token_header = token_header.to_ascii_lowercase().replace('_', "-");
    headers
        .iter()
        .position(|h| h.header.replace('_', "-") == token_header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(header: &str) -> RawClaimToHeader {
        RawClaimToHeader {
            claim: "sub".into(),
            header: header.into(),
            override_: None,
        }
    }

    #[test]
    fn reserved_names_in_any_spelling_are_refused() {
        for header in [
            "x-mse-consumer",
            "X-Mse-Consumer",
            "x_mse_consumer",
            "X_MSE-consumer",
            "authorization",
            "Proxy-Authorization",
            "cookie",
            "host",
            "content-length",
            "content_length",
            "transfer-encoding",
            "connection",
            "te",
            "upgrade",
            "x-envoy-upstream-rq-timeout-ms",
            "x_envoy_retry_on",
        ] {
            let err = compile_claim_headers([&entry(header)], "oidc.claims_to_headers")
                .expect_err(header);
            assert_eq!(err.field, "oidc.claims_to_headers[0].header", "{header}");
            assert!(err.reason.contains("cannot be set from a claim"), "{err}");
        }
    }

    #[test]
    fn header_syntax_is_checked() {
        for header in [":authority", ":path", "", "x user", "x-a:b", "x\u{e9}"] {
            let err = compile_claim_headers([&entry(header)], "c").expect_err(header);
            assert_eq!(err.field, "c[0].header");
            assert_eq!(err.reason, "not a valid HTTP header name");
        }
        let empty_claim = RawClaimToHeader {
            claim: String::new(),
            header: "x-user".into(),
            override_: None,
        };
        let err = compile_claim_headers([&entry("x-a"), &empty_claim], "c").unwrap_err();
        assert_eq!(err.field, "c[1].claim");
    }

    #[test]
    fn ordinary_headers_pass_lower_cased() {
        let out = compile_claim_headers([&entry("X-User-Email"), &entry("x_tenant")], "c").unwrap();
        assert_eq!(out[0].header, "x-user-email");
        assert_eq!(out[1].header, "x_tenant");
        assert!(out[0].replace);
        assert_eq!(writes_token_header(&out, "X-Tenant"), Some(1));
        assert_eq!(writes_token_header(&out, "x-token"), None);
    }
}

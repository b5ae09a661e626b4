//! Where a browser may be sent after login or sign-out. Anything not clearly
//! same-host or on an allowed domain becomes `/`: open redirects are the
//! classic hole in gateway SSO (oauth2-proxy's payload list is the test).

use crate::form::decode_component;

/// `target` if it is safe to redirect to, else `None` (use `/`).
/// - a path: starts with one `/`, never `//` or `/\` (also percent-encoded),
///   no backslash or control character anywhere (browsers drop tabs and
///   newlines inside URLs, so `/\t/evil.com` would become `//evil.com`);
///   an encoded space is an ordinary character;
/// - an `http(s)://host[:port]/…` URL whose host is `request_host` or an
///   allowed domain (`example.com` exactly, `.example.com` for subdomains).
pub fn safe_redirect(
    target: &str,
    request_host: &str,
    allowed_domains: &[String],
) -> Option<String> {
    if target.is_empty() || target.len() > 2048 {
        return None;
    }
    // Decode twice: a target may travel encoded inside a query parameter.
    let once = decode_component(target).ok()?;
    let twice = decode_component(&once).unwrap_or_else(|_| once.clone());
    for form in [target, once.as_str(), twice.as_str()] {
        if form.contains('\\') || form.chars().any(char::is_control) {
            return None;
        }
        if form.starts_with("//") || form.starts_with("/\\") {
            return None;
        }
    }
    if target.starts_with('/') {
        return Some(target.to_string());
    }
    let rest = target
        .strip_prefix("https://")
        .or_else(|| target.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') || authority.is_empty() {
        return None;
    }
    let host = crate::rules::strip_port(authority).to_ascii_lowercase();
    let request_host = crate::rules::strip_port(request_host).to_ascii_lowercase();
    let allowed = host == request_host
        || allowed_domains.iter().any(|d| {
            let d = d.to_ascii_lowercase();
            match d.strip_prefix('.') {
                Some(suffix) => host == suffix || host.ends_with(&d),
                None => host == d,
            }
        });
    allowed.then(|| target.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Payloads in the spirit of oauth2-proxy's open-redirect test data.
    #[test]
    fn open_redirect_payloads_are_refused() {
        let allowed = vec![".example.com".to_string(), "partner.net".to_string()];
        let bad = [
            "//evil.com",
            "//evil.com/",
            "///evil.com",
            "/\\evil.com",
            "\\/\\/evil.com",
            "/\\/evil.com",
            "https:evil.com",
            "http:/evil.com",
            "https://evil.com",
            "http://evil.com/path",
            "https://gw.example.org.evil.com/",
            "https://gw.example.org@evil.com/",
            "https://evil.com#@gw.example.org",
            "javascript:alert(1)",
            "data:text/html,hi",
            "/%2F%2Fevil.com",
            "/%2f%2fevil.com",
            "%2F%2Fevil.com",
            "/%5Cevil.com",
            "/%5cevil.com",
            "%2f%5cevil.com",
            "/%252F%252Fevil.com",
            "/%09/evil.com",
            "/\t/evil.com",
            "/%0d%0aSet-Cookie:x=y",
            "https://notexample.com/",
            "https://partner.net.evil.com/",
            "evil.com",
            "",
        ];
        for payload in bad {
            assert_eq!(
                safe_redirect(payload, "gw.example.org:8443", &allowed),
                None,
                "{payload:?}"
            );
        }
    }

    #[test]
    fn same_host_and_allowed_domains_pass() {
        let allowed = vec![".example.com".to_string(), "partner.net".to_string()];
        let good = [
            "/",
            "/orders?id=1&x=%2F",
            "/app/a%20b",
            "/app/search?q=a%20b",
            "/a/b#frag",
            "https://gw.example.org/after",
            "http://GW.example.org:8443/x",
            "https://app.example.com/",
            "https://example.com/",
            "https://partner.net/welcome",
        ];
        for target in good {
            assert_eq!(
                safe_redirect(target, "gw.example.org:8443", &allowed).as_deref(),
                Some(target),
                "{target}"
            );
        }
    }
}

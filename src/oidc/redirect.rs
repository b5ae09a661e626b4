//! Where a browser may be sent after login or sign-out. Anything not clearly
//! same-host or on an allowed domain becomes `/`: open redirects are the
//! classic hole in gateway SSO (oauth2-proxy's payload list is the test).
//!
//! The decision is made on the URL a browser would follow: the target is
//! resolved against the request's origin with the `url` crate (WHATWG), and
//! what is returned is that resolved URL, so what was checked is what is sent.

use url::Url;

use crate::form::decode_component;
use crate::http_url::{parse_absolute, MAX_URL_BYTES};

/// `target` (as it should be put in `Location`) if it is safe to redirect
/// to, else `None` (use `/`). Accepted:
/// - a path on the request's host: one `/`, then no `/` or `\`;
/// - an `http(s)://` URL whose host is the request's host or an allowed
///   domain (`example.com` exactly, `.example.com` also for subdomains).
///
/// Refused, in the target as given and decoded once or twice (a target may
/// travel encoded inside a query parameter and be decoded again later):
/// backslashes and control characters (browsers read `\` as `/` and drop
/// tabs and newlines, so `/\t/evil.com` would become `//evil.com`), spaces,
/// user info, `//` or `/\` at the start, and empty or dot segments in the
/// path (`/a//b`, `/./`, `/%2e%2e/`).
pub fn safe_redirect(
    target: &str,
    request_host: &str,
    allowed_domains: &[String],
) -> Option<String> {
    if target.is_empty() || target.len() > MAX_URL_BYTES {
        return None;
    }
    if target.chars().any(char::is_whitespace) {
        return None;
    }
    let once = decode_component(target).ok()?;
    let twice = decode_component(&once).unwrap_or_else(|_| once.clone());
    for form in [target, once.as_str(), twice.as_str()] {
        if form.contains('\\') || form.chars().any(char::is_control) {
            return None;
        }
        if form.starts_with("//")
            || !clean_path(crate::form::path_only(after_authority(form)))
            || has_slash_trick(form)
        {
            return None;
        }
    }
    let origin = request_origin(request_host)?;
    let resolved = if target.starts_with('/') {
        origin.join(target).ok()?
    } else {
        parse_absolute(target).ok()?
    };
    if !matches!(resolved.scheme(), "http" | "https")
        || !resolved.username().is_empty()
        || resolved.password().is_some()
    {
        return None;
    }
    let host = resolved.host()?;
    let allowed = origin.host() == Some(host.clone())
        || allowed_domains
            .iter()
            .any(|domain| domain_allows(domain, &host.to_string()));
    if !allowed {
        return None;
    }
    Some(if target.starts_with('/') {
        let mut path = crate::http_url::path_and_query(&resolved);
        if let Some(fragment) = resolved.fragment() {
            path.push('#');
            path.push_str(fragment);
        }
        path
    } else {
        resolved.into()
    })
}

/// `https://<request host>/`, the base a browser resolves a relative
/// `Location` against (the scheme does not matter: only paths starting
/// with one `/` are resolved against it). `None` when the `:authority` is
/// not a plain `host[:port]`.
fn request_origin(request_host: &str) -> Option<Url> {
    if request_host.is_empty() || request_host.contains(['/', '\\', '@', '?', '#']) {
        return None;
    }
    let origin = parse_absolute(&format!("https://{request_host}/")).ok()?;
    (origin.path() == "/").then_some(origin)
}

/// An `allowed_redirect_domains` entry (lower case, checked at config time)
/// against a host as `url` serializes it (lower case, punycode).
pub fn domain_allows(domain: &str, host: &str) -> bool {
    match domain.strip_prefix('.') {
        Some(suffix) => {
            host == suffix
                || host
                    .strip_suffix(suffix)
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1)
        }
        None => host == domain,
    }
}

/// What follows the authority: a relative target as it is; an absolute one
/// from the first `/` after `scheme://` (empty when there is none).
fn after_authority(form: &str) -> &str {
    match form.find("://") {
        Some(i) if !form.starts_with('/') => {
            let rest = form.get(i + 3..).unwrap_or("");
            rest.find('/').and_then(|j| rest.get(j..)).unwrap_or("")
        }
        _ => form,
    }
}

/// oauth2-proxy's rule, over the whole target after the authority (query
/// included: an application behind may redirect on `?next=//evil.com`): no
/// `/` followed by optional whitespace or one or two dots and another `/`.
fn has_slash_trick(form: &str) -> bool {
    let rest = after_authority(form);
    rest.match_indices('/').any(|(i, _)| {
        let next = rest.get(i + 1..).unwrap_or("").trim_start();
        next.starts_with('/') || next.starts_with("./") || next.starts_with("../")
    })
}

/// No empty (`//`), blank (`/ /`) or dot (`/./`, `/../`) segment, except a
/// trailing `/`.
fn clean_path(path: &str) -> bool {
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        let blank = segment.trim().is_empty();
        if (blank && !(last && segment.is_empty())) || segment == "." || segment == ".." {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec![".example.com".to_string(), "partner.net".to_string()]
    }

    /// Payloads in the spirit of oauth2-proxy's open-redirect test data.
    #[test]
    fn open_redirect_payloads_are_refused() {
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
            // What WHATWG repairs and a lenient check might not see.
            " //evil.com",
            "//evil.com ",
            "/ /evil.com",
            "/%20/evil.com",
            "\t//evil.com",
            "https:///evil.com",
            "https:\\\\evil.com",
            "HTTPS://evil.com/",
            "https://gw.example.org:443@evil.com/",
            "https://gw.example.org%2f%2f.evil.com/",
            "https://gw.example.org%2eevil.com/",
            "https://evil.com%23.gw.example.org/",
            "https://evil.com\\@gw.example.org/",
            "https://%5cevil.com/",
            "https://2130706433/",
            "https://[::1]/",
            "https://gw.example.org./",
            "https://.example.com/",
            "/./\\evil.com",
            "/a/../\\evil.com",
            "/x/%2e%2e/%2f%2fevil.com",
            "/?next=//evil.com",
            "/?next=https://evil.com/",
            "/a?b=/./c",
            "https://gw.example.org/?next=//evil.com",
        ];
        for payload in bad {
            assert_eq!(
                safe_redirect(payload, "gw.example.org:8443", &allowed()),
                None,
                "{payload:?}"
            );
        }
    }

    /// oauth2-proxy's own list, unescaped as its test does, with its allowed
    /// domains (the ones this plugin's syntax can express).
    #[test]
    fn oauth2_proxy_open_redirect_list_is_refused() {
        let allowed: Vec<String> = [
            "foo.bar",
            ".bar.foo",
            "www.whitelisteddomain.tld",
            ".wildcard.bar",
        ]
        .map(String::from)
        .to_vec();
        let list = include_str!("testdata/openredirects.txt");
        let mut checked = 0;
        for line in list.lines().filter(|l| !l.starts_with("# ")) {
            let unescaped = decode_component(line).unwrap_or_else(|_| line.to_string());
            for payload in [line, unescaped.as_str()] {
                assert_eq!(
                    safe_redirect(payload, "gw.example.org", &allowed),
                    None,
                    "{payload:?}"
                );
            }
            checked += 1;
        }
        assert!(checked > 500, "only {checked} payloads read");
    }

    #[test]
    fn same_host_and_allowed_domains_pass() {
        let good = [
            ("/", "/"),
            ("/orders?id=1&x=%2F", "/orders?id=1&x=%2F"),
            ("/orders?next=%2Fapp", "/orders?next=%2Fapp"),
            ("/app/a%20b", "/app/a%20b"),
            ("/app/search?q=a%20b", "/app/search?q=a%20b"),
            ("/a/b#frag", "/a/b#frag"),
            ("/a/b/", "/a/b/"),
            ("/caf\u{e9}", "/caf%C3%A9"),
            (
                "https://gw.example.org/after",
                "https://gw.example.org/after",
            ),
            (
                "http://GW.example.org:8443/x",
                "http://gw.example.org:8443/x",
            ),
            (
                "https://gw.example.org:9999/x",
                "https://gw.example.org:9999/x",
            ),
            ("https://app.example.com/", "https://app.example.com/"),
            (
                "https://a.b.example.com/x?y=1",
                "https://a.b.example.com/x?y=1",
            ),
            ("https://example.com/", "https://example.com/"),
            ("https://example.com", "https://example.com/"),
            ("https://partner.net/welcome", "https://partner.net/welcome"),
        ];
        for (target, sent) in good {
            assert_eq!(
                safe_redirect(target, "gw.example.org:8443", &allowed()).as_deref(),
                Some(sent),
                "{target}"
            );
        }
    }

    #[test]
    fn an_unusable_request_host_allows_no_target() {
        for host in [
            "",
            "gw.example.org/x",
            "evil.com@gw.example.org",
            "gw example",
        ] {
            assert_eq!(safe_redirect("/x", host, &[]), None, "{host:?}");
        }
        assert_eq!(
            safe_redirect("https://[::1]:8443/x", "[::1]:8443", &[]).as_deref(),
            Some("https://[::1]:8443/x")
        );
    }

    #[test]
    fn allowed_domain_patterns() {
        assert!(domain_allows(".example.com", "example.com"));
        assert!(domain_allows(".example.com", "a.example.com"));
        assert!(!domain_allows(".example.com", "aexample.com"));
        assert!(!domain_allows("example.com", "a.example.com"));
        assert!(domain_allows("example.com", "example.com"));
    }
}

//! The pages a browser sees when single sign-on cannot finish: the sign-in
//! error page (403), the bad-address page (400) and "identity provider
//! unreachable" (503). Each says what happened in plain words, links back to
//! where the user was going (a same-origin path checked by
//! [`safe_redirect`], never a URL from the request taken as it is) and shows
//! the request id. The technical reason is the reply's verdict: the access
//! log and the audit record carry it, the page does not.

use super::redirect::safe_redirect;
use crate::audit::Verdict;
use crate::decision::{keys_unavailable, page, PageLinks, Reply};
use crate::host::Host;
use crate::http_url::form_encode_component;

/// The reason code of a signed-in user an `allow` list refuses.
pub const NOT_ALLOWED: &str = "consumer_not_allowed";

/// `target` as a same-origin path to link to, or `/`: only what
/// `safe_redirect` accepts with no other domain allowed, and only a path.
pub fn retry_path(target: Option<&str>, authority: &str) -> String {
    target
        .and_then(|t| safe_redirect(t, authority, &[]))
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/".into())
}

/// 403: the sign-in failed (`reason` is the stable code for the log).
/// `return_to` is where the login started, when known.
pub fn sign_in_failed<H: Host>(
    host: &H,
    reason: &'static str,
    return_to: Option<&str>,
    authority: &str,
    cookies: Vec<String>,
) -> Reply {
    let retry = retry_path(return_to, authority);
    let request_id = PageLinks::request_id(host);
    let links = PageLinks {
        retry: Some(("Sign in again", &retry)),
        request_id: request_id.as_deref(),
    };
    page(
        403,
        "Sign-in failed",
        "Signing in did not work. Please sign in again.",
        &links,
        cookies,
    )
    .because(Verdict::new("sso_refused", reason))
}

/// 400: the address has no canonical form (it cannot be a login's return
/// address).
pub fn bad_address<H: Host>(host: &H) -> Reply {
    let request_id = PageLinks::request_id(host);
    let links = PageLinks {
        retry: Some(("Go to the start page", "/")),
        request_id: request_id.as_deref(),
    };
    page(
        400,
        "Bad request",
        "This address cannot be used: its path is ambiguous.",
        &links,
        Vec::new(),
    )
    .because(crate::audit::denied("unsafe_path"))
}

/// 503 while the identity provider cannot be reached (its endpoints or keys
/// never arrived, or a call to it could not be made): a page for a browser
/// navigation, the plain answer for everyone else. `path` is the request's
/// own `:path`, the page to try again.
pub fn idp_unreachable<H: Host>(host: &H, navigation: bool, path: &str, authority: &str) -> Reply {
    let plain = keys_unavailable().because(crate::audit::denied("idp_unreachable"));
    if !navigation {
        return plain;
    }
    let retry = retry_path(Some(path), authority);
    let request_id = PageLinks::request_id(host);
    let links = PageLinks {
        retry: Some(("Try again", &retry)),
        request_id: request_id.as_deref(),
    };
    let mut reply = page(
        503,
        "Sign-in is unavailable",
        "The sign-in service cannot be reached right now. Please try again in a moment.",
        &links,
        Vec::new(),
    )
    .because(crate::audit::denied("idp_unreachable"));
    reply.headers.push(("retry-after", "5".into()));
    reply
}

/// A signed-in browser whose account the rule's `allow` refuses: a 403
/// page whose "Sign in again" goes through sign-out (`logout_path`, with
/// `rd` back to this page) so another account can be used. Any other
/// refusal, and every answer to a non-navigation, stays as it is.
pub fn access_denied_for_browser<H: Host>(
    reply: Reply,
    host: &H,
    navigation: bool,
    path: &str,
    authority: &str,
    logout_path: &str,
) -> Reply {
    if !navigation || reply.verdict != crate::audit::denied(NOT_ALLOWED) {
        return reply;
    }
    let back = retry_path(Some(path), authority);
    let sign_in_again = format!("{logout_path}?rd={}", form_encode_component(&back));
    let request_id = PageLinks::request_id(host);
    let links = PageLinks {
        retry: Some(("Sign in again", &sign_in_again)),
        request_id: request_id.as_deref(),
    };
    page(
        403,
        "Access denied",
        "You are signed in, but this account may not open this page. \
         Sign in again with another account.",
        &links,
        Vec::new(),
    )
    .because(reply.verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_host::FakeHost;

    const GW: &str = "gw.example.org";

    fn host_with_id(id: &str) -> FakeHost {
        FakeHost::new(0)
            .request("GET", GW, "/app")
            .with_header("x-request-id", id)
    }

    /// The `href` of the page's one link.
    fn link(body: &str) -> &str {
        let start = body.find("<a href=\"").map(|i| i + 9).unwrap();
        let end = start + body[start..].find('"').unwrap();
        &body[start..end]
    }

    #[test]
    fn the_link_goes_back_to_a_same_origin_path_only() {
        let host = host_with_id("id-1");
        for (target, expected) in [
            (
                "/app/orders?page=2&sort=asc",
                "/app/orders?page=2&amp;sort=asc",
            ),
            ("//evil.example/x", "/"),
            ("https://evil.example/x", "/"),
            // Same host, but absolute: still only a path is linked.
            ("https://gw.example.org/x", "/"),
            ("/\\evil.example", "/"),
            ("/%2f%2fevil.example", "/"),
            ("javascript:alert(1)", "/"),
            ("/a/../b", "/"),
            ("/\t/evil.example", "/"),
            // Quotes and brackets arrive percent-encoded (the URL the
            // browser would follow), so the attribute cannot be left.
            (
                "/x\"><script>alert(1)</script>",
                "/x%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
            ),
        ] {
            let reply = sign_in_failed(&host, "code_refused", Some(target), GW, Vec::new());
            assert_eq!(reply.status, 403);
            assert_eq!(link(&reply.body), expected, "{target:?}: {}", reply.body);
            assert!(!reply.body.contains("<script>"), "{target:?}");
            assert_eq!(reply.verdict, Verdict::new("sso_refused", "code_refused"));
        }
        // No known return address: the start page.
        let reply = sign_in_failed(&host, "idp_error", None, GW, Vec::new());
        assert_eq!(link(&reply.body), "/");
        assert!(reply.body.contains(">Sign in again</a>"));
    }

    #[test]
    fn the_request_id_is_shown_escaped_and_bounded() {
        let reply = sign_in_failed(
            &host_with_id("\"><script>alert(1)</script>"),
            "idp_error",
            None,
            GW,
            Vec::new(),
        );
        assert!(
            reply.body.contains(
                "<p>Request ID: <code>&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</code></p>"
            ),
            "{}",
            reply.body
        );
        assert!(!reply.body.contains("<script>"));
        let uuid = "6c1f7f0e-7f1a-4c38-9d1c-2f7b1d7f0a11";
        let reply = sign_in_failed(&host_with_id(uuid), "idp_error", None, GW, Vec::new());
        assert!(reply.body.contains(&format!("<code>{uuid}</code>")));
        // Too long to be an id: not shown at all.
        let long = "x".repeat(crate::decision::MAX_REQUEST_ID_LEN + 1);
        let reply = sign_in_failed(&host_with_id(&long), "idp_error", None, GW, Vec::new());
        assert!(!reply.body.contains("Request ID"));
        // None sent (Envoy always sets one; the fake host does not).
        let reply = sign_in_failed(&FakeHost::new(0), "idp_error", None, GW, Vec::new());
        assert!(!reply.body.contains("Request ID"));
    }

    #[test]
    fn pages_carry_no_technical_text() {
        let host = host_with_id("id-2");
        let reply = sign_in_failed(&host, "nonce_mismatch", Some("/app"), GW, Vec::new());
        assert!(!reply.body.contains("nonce"));
        assert_eq!(
            reply.header_value("content-type"),
            Some("text/html; charset=utf-8")
        );
    }

    #[test]
    fn idp_unreachable_is_a_page_for_browsers_only() {
        let host = host_with_id("id-3");
        let api = idp_unreachable(&host, false, "/api/x", GW);
        assert_eq!(api.status, 503);
        assert_eq!(api.body, keys_unavailable().body);
        assert_eq!(api.verdict, crate::audit::denied("idp_unreachable"));

        let page = idp_unreachable(&host, true, "/app/x?y=1", GW);
        assert_eq!(page.status, 503);
        assert_eq!(link(&page.body), "/app/x?y=1");
        assert!(page.body.contains("<code>id-3</code>"));
        assert!(page.body.contains(">Try again</a>"));
        assert_eq!(page.header_value("retry-after"), Some("5"));
        assert!(!page.body.contains("keys"));
        let evil = idp_unreachable(&host, true, "//evil.example/", GW);
        assert_eq!(link(&evil.body), "/");
    }

    fn not_allowed() -> Reply {
        page(403, "x", "x", &PageLinks::default(), Vec::new())
            .because(crate::audit::denied(NOT_ALLOWED))
    }

    #[test]
    fn a_refused_account_gets_a_page_that_signs_out_and_comes_back() {
        let host = host_with_id("id-4");
        let reply = access_denied_for_browser(
            not_allowed(),
            &host,
            true,
            "/app/x?a=1&b=2",
            GW,
            "/oauth2/sign_out",
        );
        assert_eq!(reply.status, 403);
        assert_eq!(
            link(&reply.body),
            "/oauth2/sign_out?rd=%2Fapp%2Fx%3Fa%3D1%26b%3D2"
        );
        assert!(reply.body.contains("<code>id-4</code>"));
        assert_eq!(reply.verdict, crate::audit::denied(NOT_ALLOWED));
        // An attacker's path cannot become the return address.
        let reply = access_denied_for_browser(
            not_allowed(),
            &host,
            true,
            "//evil.example/",
            GW,
            "/oauth2/sign_out",
        );
        assert_eq!(link(&reply.body), "/oauth2/sign_out?rd=%2F");
        // Not a browser navigation, or another refusal: unchanged.
        let api =
            access_denied_for_browser(not_allowed(), &host, false, "/app", GW, "/oauth2/sign_out");
        assert_eq!(api, not_allowed());
        let other = keys_unavailable();
        assert_eq!(
            access_denied_for_browser(other.clone(), &host, true, "/app", GW, "/oauth2/sign_out"),
            other
        );
    }
}

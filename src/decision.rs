//! The vocabulary of decisions: forward (with header edits), reply locally,
//! or wait (for whatever the deciding feature names), and [`apply`], which
//! carries out a forward or a reply through the host. Also the shared reply
//! shapes (challenges, redirects, pages, 500/503). Imports only `host` and
//! `headers`: the features above produce decisions, `stream` applies them.

use crate::audit::{self, ConsumerKind, Verdict};
use crate::headers::CONSUMER_HEADER;
use crate::host::{Host, HostError, LogLevel};

/// A local answer; the request never reaches the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// What this answer stands for: the audit record's decision and reason,
    /// and Envoy's response code details.
    pub verdict: Verdict,
    /// Whom the answer is about, when it is about someone.
    pub who: Option<Box<audit::Who>>,
}

impl Reply {
    /// The first value of a header of this reply.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The same reply, standing for `verdict`.
    pub fn because(mut self, verdict: Verdict) -> Self {
        self.verdict = verdict;
        self
    }
}

/// Let the request through, after these header edits (in this order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forward<'c> {
    /// Every header the plugin may set: a client's values never pass.
    pub scrub: &'c [String],
    /// The header that carried the token, removed when `keep_token` is false.
    pub strip_header: Option<String>,
    /// Announced upstream as `X-Mse-Consumer`; `None` on open routes.
    pub consumer: Option<String>,
    /// Claims copied into headers: (header, value, replace).
    pub claim_headers: Vec<(String, String, bool)>,
    /// The `Cookie` header upstream, when the plugin's own cookies must go.
    pub upstream_cookie: CookieEdit,
    /// `Set-Cookie` lines for the response (e.g. a refreshed session).
    pub response_cookies: Vec<String>,
    /// For the audit trail: how `consumer` was identified, and the
    /// token's `sub` and `jti` (never the token).
    pub kind: Option<ConsumerKind>,
    pub sub: Option<String>,
    pub jti: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CookieEdit {
    #[default]
    Keep,
    /// Take this cookie family (`cookie::jar::in_family`) out of the
    /// request's `Cookie` values.
    StripFamily(String),
}

impl<'c> Forward<'c> {
    /// No identity: only scrub what a client may have forged.
    pub fn anonymous(scrub: &'c [String]) -> Self {
        Forward {
            scrub,
            ..Forward::default()
        }
    }
}

/// What happens to a request. `W` is what a stream may wait for; each
/// feature names its own (the token endpoint a body, single sign-on a call
/// to the IdP), so this vocabulary imports none of them.
#[derive(Debug)]
pub enum Decision<'c, W> {
    Forward(Forward<'c>),
    Reply(Reply),
    /// Hold the request (headers included: they are never continued alone)
    /// until `W` arrives; the stream keeps it and decides then. Nothing of a
    /// held request reaches the upstream before that decision.
    Wait(W),
}

impl<'c, W> Decision<'c, W> {
    /// The same decision, waiting for `f(w)` instead of `w`.
    pub fn map_wait<V>(self, f: impl FnOnce(W) -> V) -> Decision<'c, V> {
        match self {
            Decision::Forward(forward) => Decision::Forward(forward),
            Decision::Reply(reply) => Decision::Reply(reply),
            Decision::Wait(w) => Decision::Wait(f(w)),
        }
    }
}

/// Why the plugin holds a request: its headers were paused and never
/// continued. With `allow_on_headers_stop_iteration` Envoy still delivers
/// the body of a held request, and letting that body continue would send
/// the held headers on with it, before the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Not held: the request went on; its body passes.
    Nothing,
    /// Waiting for a call to the IdP (code exchange, refresh, keys).
    Call,
    /// A token POST waiting for its body.
    TokenBody,
    /// Answered locally: whatever still arrives stays here.
    Answered,
}

/// What to do with body (or trailers) that arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFlow {
    /// Let it go on with the request.
    PassOn,
    /// Keep it (Envoy buffers it); it goes on, if ever, with the request.
    Buffer,
    /// It is the token request's body: see `token_endpoint`.
    ReadTokenBody,
}

impl Hold {
    pub fn body_flow(self) -> BodyFlow {
        match self {
            Hold::Nothing => BodyFlow::PassOn,
            Hold::Call | Hold::Answered => BodyFlow::Buffer,
            Hold::TokenBody => BodyFlow::ReadTokenBody,
        }
    }
}

/// Whether Envoy should go on with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Carries out a forward or a reply. A client-sent `X-Mse-Consumer` is
/// removed before anything else, so it can never reach the backend; if Envoy
/// refuses that edit the request is stopped rather than forwarded.
pub fn apply<H: Host, W>(host: &mut H, decision: Decision<'_, W>) -> Flow {
    match decision {
        Decision::Forward(forward) => match edit_headers(host, &forward) {
            Ok(()) => Flow::Continue,
            Err(e) => {
                host.log(
                    LogLevel::Error,
                    &format!("edge-auth: header edit failed ({}); request refused", e.0),
                );
                send(host, &server_error())
            }
        },
        Decision::Reply(reply) => send(host, &reply),
        // The stream keeps what it waits for; the request is held.
        Decision::Wait(_) => Flow::Stop,
    }
}

/// Do two header names read the same to upstreams that fold `_` into `-`
/// (CGI, WSGI, many frameworks) and compare case-insensitively? Compared in
/// place: this runs for every header of every forwarded request.
fn same_folded_name(a: &str, b: &str) -> bool {
    let fold = |c: u8| match c {
        b'_' => b'-',
        c => c.to_ascii_lowercase(),
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// Removes every spelling of every identity header the client sent: any
/// case, `_` or `-` in any position (`x_mse_consumer`, `X-Mse_Consumer`).
/// Envoy passes names with underscores by default
/// (`headers_with_underscores_action: ALLOW`); this does not depend on it.
fn remove_identity_spellings<H: Host>(
    host: &mut H,
    forward: &Forward<'_>,
) -> Result<(), HostError> {
    let is_identity = |name: &str| {
        std::iter::once(CONSUMER_HEADER)
            .chain(forward.scrub.iter().map(String::as_str))
            .chain(forward.claim_headers.iter().map(|(h, _, _)| h.as_str()))
            .any(|identity| same_folded_name(identity, name))
    };
    for name in host.request_header_names_where(&is_identity)? {
        host.remove_request_header(&name)?;
    }
    Ok(())
}

fn edit_headers<H: Host>(host: &mut H, forward: &Forward<'_>) -> Result<(), HostError> {
    // Every spelling of every identity header goes (the consumer header even
    // with an empty scrub list: it is ours), found in one listing of the
    // request's headers rather than one removal per name.
    remove_identity_spellings(host, forward)?;
    if let Some(name) = &forward.strip_header {
        host.remove_request_header(name)?;
    }
    if let Some(name) = &forward.consumer {
        host.set_request_header(CONSUMER_HEADER, name)?;
    }
    if let CookieEdit::StripFamily(family) = &forward.upstream_cookie {
        let values = host.request_header_values_bytes("cookie")?;
        match crate::cookie::jar::without_family(&values, family) {
            None => {}
            Some(rest) if rest.is_empty() => host.remove_request_header("cookie")?,
            Some(rest) => host.set_request_header_bytes("cookie", &rest)?,
        }
    }
    for (header, value, replace) in &forward.claim_headers {
        if *replace {
            host.set_request_header(header, value)?;
        } else {
            host.add_request_header(header, value)?;
        }
    }
    Ok(())
}

fn send<H: Host>(host: &mut H, reply: &Reply) -> Flow {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let details = reply.verdict.details();
    if let Err(e) = host.send_reply(reply.status, &details, &headers, reply.body.as_bytes()) {
        host.log(
            LogLevel::Error,
            &format!("edge-auth: local reply failed ({})", e.0),
        );
    }
    Flow::Stop
}

/// Longest realm we echo back; the rest of a long URL is cut.
pub const MAX_REALM_LEN: usize = 256;

/// `scheme://host/path` for the challenge. Request-controlled, so quotes,
/// backslashes and control characters are percent-encoded (they would break
/// out of the quoted-string) and the length is capped.
pub fn realm(scheme: &str, authority: &str, path: &str) -> String {
    let mut out = String::with_capacity(MAX_REALM_LEN);
    for part in [scheme, "://", authority, path] {
        for c in part.chars() {
            let encoded_len = if c.is_ascii_graphic() && c != '"' && c != '\\' {
                1
            } else {
                3 * c.len_utf8()
            };
            if out.len() + encoded_len > MAX_REALM_LEN {
                return out;
            }
            if encoded_len == 1 {
                out.push(c);
            } else {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
}

/// An RFC 6750 challenge; with `error="invalid_token"` and a short
/// description when a token was presented and refused.
pub fn bearer_challenge(realm: &str, invalid_token: Option<&str>) -> String {
    match invalid_token {
        Some(reason) => format!(
            "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{reason}\""
        ),
        None => format!("Bearer realm=\"{realm}\""),
    }
}

/// Keys needed to check the token have never arrived: fail closed, but say
/// it is temporary.
pub fn keys_unavailable() -> Reply {
    Reply {
        status: 503,
        headers: vec![
            ("content-type", "text/plain".into()),
            ("retry-after", "5".into()),
        ],
        body: "Authentication keys are not available yet.".into(),
        verdict: audit::denied("keys_unavailable"),
        who: None,
    }
}

/// A redirect that is never cached, optionally setting cookies.
pub fn redirect(location: &str, cookies: Vec<String>) -> Reply {
    let mut headers = vec![
        ("location", location.to_string()),
        ("cache-control", "no-store".to_string()),
    ];
    headers.extend(cookies.into_iter().map(|c| ("set-cookie", c)));
    Reply {
        status: 302,
        headers,
        body: String::new(),
        verdict: Verdict::new("redirect", ""),
        who: None,
    }
}

/// Longest request id shown on a page (Envoy's are 36-character UUIDs; a
/// client may send its own).
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// What a browser page offers besides its message: a link to try again
/// (label, same-origin path) and the request id to quote to support.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageLinks<'a> {
    pub retry: Option<(&'a str, &'a str)>,
    pub request_id: Option<&'a str>,
}

impl PageLinks<'_> {
    /// The request's `x-request-id` (Envoy sets one on every request).
    pub fn request_id<H: Host>(host: &H) -> Option<String> {
        host.request_header("x-request-id")
            .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN)
    }
}

/// Text for HTML content and quoted attribute values.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// A link target a page may carry: a path on this origin only (`/x`, never
/// `//host`, `/\host` or a scheme). Callers validate first (the SSO pages
/// with `oidc::redirect`); this is the last check before the HTML.
fn same_origin_path(href: &str) -> bool {
    href.starts_with('/')
        && !href.starts_with("//")
        && !href.starts_with("/\\")
        && href.chars().all(|c| c.is_ascii_graphic())
}

/// A small HTML page for people: a title and a plain message (escaped; no
/// technical detail, which goes to the log and the audit record), then the
/// retry link and the request id when there are.
pub fn page(
    status: u32,
    title: &str,
    message: &str,
    links: &PageLinks<'_>,
    cookies: Vec<String>,
) -> Reply {
    let mut headers = vec![
        ("content-type", "text/html; charset=utf-8".to_string()),
        ("cache-control", "no-store".to_string()),
    ];
    headers.extend(cookies.into_iter().map(|c| ("set-cookie", c)));
    let title = escape_html(title);
    let mut body = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>{title}</title><h1>{title}</h1><p>{}</p>\n",
        escape_html(message)
    );
    if let Some((label, href)) = links.retry.filter(|(_, href)| same_origin_path(href)) {
        body.push_str(&format!(
            "<p><a href=\"{}\">{}</a></p>\n",
            escape_html(href),
            escape_html(label)
        ));
    }
    if let Some(id) = links.request_id {
        let id: String = id.chars().take(MAX_REQUEST_ID_LEN).collect();
        body.push_str(&format!(
            "<p>Request ID: <code>{}</code></p>\n",
            escape_html(&id)
        ));
    }
    Reply {
        status,
        headers,
        body,
        verdict: Verdict::new("page", ""),
        who: None,
    }
}

pub fn server_error() -> Reply {
    Reply {
        status: 500,
        headers: vec![("content-type", "text/plain".into())],
        body: "Internal Server Error.".into(),
        verdict: audit::error("internal"),
        who: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_host::FakeHost;

    fn identity_scrub() -> Vec<String> {
        vec![CONSUMER_HEADER.to_string(), "x-user-email".to_string()]
    }

    /// A request carrying forged identity headers in spellings Envoy treats
    /// as other names (its header map ignores case only).
    fn forged_host() -> FakeHost {
        FakeHost::new(0)
            .request("GET", "gw", "/a")
            .with_raw_header("x_mse_consumer", "mallory")
            .with_raw_header("X-Mse_Consumer", "mallory")
            .with_raw_header("X_MSE_CONSUMER", "mallory")
            .with_raw_header("x-mse-consumer", "mallory")
            .with_raw_header("x_user-email", "mallory@evil.test")
            .with_raw_header("X-User_Email", "mallory@evil.test")
            .with_raw_header("x-mse-consumerx", "kept")
            .with_raw_header("x_request_id", "kept")
    }

    fn names(host: &FakeHost) -> Vec<String> {
        host.headers.iter().map(|(k, _)| k.clone()).collect()
    }

    #[test]
    fn every_spelling_of_an_identity_header_is_removed() {
        let scrub = identity_scrub();
        for consumer in [Some("alice".to_string()), None] {
            let mut host = forged_host();
            let forward = Forward {
                consumer: consumer.clone(),
                claim_headers: vec![("x-user-email".into(), "alice@example.test".into(), true)],
                ..Forward::anonymous(&scrub)
            };
            assert_eq!(
                apply(&mut host, Decision::<()>::Forward(forward)),
                Flow::Continue
            );
            assert_eq!(
                names(&host),
                [
                    ":method",
                    ":authority",
                    ":path",
                    ":scheme",
                    "x-mse-consumerx",
                    "x_request_id"
                ]
                .iter()
                .map(|s| s.to_string())
                .chain(consumer.iter().map(|_| "x-mse-consumer".to_string()))
                .chain(std::iter::once("x-user-email".to_string()))
                .collect::<Vec<_>>()
            );
            assert_eq!(host.header("x-mse-consumer"), consumer.as_deref());
            assert_eq!(host.header("x-user-email"), Some("alice@example.test"));
        }
    }

    #[test]
    fn identity_headers_are_scrubbed_even_with_an_empty_scrub_list() {
        let mut host = forged_host();
        assert_eq!(
            apply(&mut host, Decision::<()>::Forward(Forward::anonymous(&[]))),
            Flow::Continue
        );
        assert!(!names(&host)
            .iter()
            .any(|n| n.eq_ignore_ascii_case("x_mse_consumer")
                || n.eq_ignore_ascii_case("x-mse-consumer")
                || n == "X-Mse_Consumer"));
    }

    #[test]
    fn a_request_whose_headers_cannot_be_listed_is_refused() {
        let scrub = identity_scrub();
        let mut host = forged_host();
        host.fail_header_list = true;
        assert_eq!(
            apply(
                &mut host,
                Decision::<()>::Forward(Forward::anonymous(&scrub))
            ),
            Flow::Stop
        );
        assert_eq!(host.reply.as_ref().map(|r| r.status), Some(500));
    }

    #[test]
    fn the_body_of_a_held_request_never_passes_on() {
        assert_eq!(Hold::Nothing.body_flow(), BodyFlow::PassOn);
        assert_eq!(Hold::Call.body_flow(), BodyFlow::Buffer);
        assert_eq!(Hold::TokenBody.body_flow(), BodyFlow::ReadTokenBody);
        assert_eq!(Hold::Answered.body_flow(), BodyFlow::Buffer);
    }

    #[test]
    fn realm_is_escaped_and_bounded() {
        assert_eq!(realm("https", "h:8443", "/a/b"), "https://h:8443/a/b");
        assert_eq!(realm("http", "h", "/a\"b\\c d"), "http://h/a%22b%5Cc%20d");
        assert_eq!(realm("http", "h", "/é"), "http://h/%C3%A9");
        let long = "/".to_string() + &"x".repeat(1000);
        assert_eq!(realm("http", "h", &long).len(), MAX_REALM_LEN);
    }
}

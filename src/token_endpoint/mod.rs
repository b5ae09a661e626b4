//! The OAuth2 token endpoint at `auth_path`: client-credentials grant
//! (RFC 6749 §4.4), drop-in for the MSE/Higress `oauth` plugin, with its
//! holes closed (other methods, empty bodies, mixed client authentication).
//!
//! A request on the token endpoint never reaches the upstream. A POST whose
//! form body is still to come is held (headers paused) while the body is
//! read; [`BodyWaits`] bounds how long, so a body that arrives late, never,
//! or cannot reach the plugin at all (Envoy without
//! `allow_on_headers_stop_iteration`) is answered locally too.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::json;
use subtle::ConstantTimeEq;

use crate::audit::{self, ConsumerKind, Who};
use crate::config::{Consumer, Scope};
use crate::decision::{server_error, Decision, Reply};
use crate::form::{self, basic_credentials, FormError};
use crate::host::{Host, LogLevel};
use crate::token::issue::{issue_access_token, uuid_v4, AccessTokenRequest};

/// Form bodies bigger than this are refused before parsing.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
use crate::token::GLOBAL_AUDIENCE as DEFAULT_AUDIENCE;
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// The request line and headers of a token request.
pub struct TokenRequestHead<'r> {
    pub method: &'r str,
    /// `:path` with its query.
    pub path: &'r str,
    pub content_type: Option<&'r str>,
    pub authorization: Option<String>,
    pub route_name: String,
    /// The request has no body (`end_of_stream` on the headers).
    pub end_of_stream: bool,
}

/// A POST whose form body is still on its way.
#[derive(Debug)]
pub struct PendingTokenRequest {
    scope: Rc<Scope>,
    route_name: String,
    authorization: Option<String>,
}

/// What to do with a held token POST when more of its body has arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyStep {
    /// Keep holding the request (Envoy buffers the body meanwhile).
    KeepWaiting,
    /// The whole body is in: read it and call [`on_body`].
    ReadBody,
    /// Answer now (the body is too large); counted.
    Answer(Reply),
}

impl PendingTokenRequest {
    /// `buffered`: body bytes Envoy holds so far; `end_of_stream`: that is
    /// all of it.
    pub fn on_body_progress<H: Host>(
        &self,
        buffered: usize,
        end_of_stream: bool,
        host: &H,
    ) -> BodyStep {
        if buffered > MAX_FORM_BYTES {
            BodyStep::Answer(counted(body_too_large(), host))
        } else if end_of_stream {
            BodyStep::ReadBody
        } else {
            BodyStep::KeepWaiting
        }
    }
}

/// The token POSTs of one worker whose headers are held while their body is
/// awaited, each with the moment it is given up on. The worker checks it on a
/// timer and answers every overdue request with [`body_not_received`]; an
/// entry leaves when its request is answered or its stream ends.
#[derive(Debug, Default)]
pub struct BodyWaits {
    /// stream (context id) → deadline, milliseconds since the Unix epoch.
    deadlines: BTreeMap<u32, u64>,
}

impl BodyWaits {
    /// A token POST's headers are now held (counted as `token_body_waits`).
    pub fn start<H: Host>(&mut self, stream: u32, now_ms: u64, timeout_ms: u64, host: &H) {
        host.count("token_body_waits");
        self.deadlines
            .insert(stream, now_ms.saturating_add(timeout_ms));
    }

    /// Whether `stream` is still waiting for its body (it was not answered
    /// by the timeout yet).
    pub fn is_waiting(&self, stream: u32) -> bool {
        self.deadlines.contains_key(&stream)
    }

    /// The stream is answered or gone; true if it was still waiting.
    pub fn finish(&mut self, stream: u32) -> bool {
        self.deadlines.remove(&stream).is_some()
    }

    /// Removes and returns the streams whose deadline has passed.
    pub fn take_overdue(&mut self, now_ms: u64) -> Vec<u32> {
        let overdue: Vec<u32> = self
            .deadlines
            .iter()
            .filter(|(_, deadline)| **deadline <= now_ms)
            .map(|(stream, _)| *stream)
            .collect();
        for stream in &overdue {
            self.deadlines.remove(stream);
        }
        overdue
    }

    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }

    pub fn len(&self) -> usize {
        self.deadlines.len()
    }
}

/// The answer to a token POST whose body did not reach the plugin in time:
/// the client was too slow, or Envoy cannot deliver a body to a filter that
/// holds the headers (no `allow_on_headers_stop_iteration`). Counted.
pub fn body_not_received<H: Host>(timeout_ms: u64, host: &H) -> Reply {
    let description = format!(
        "request body not received within {timeout_ms} ms; send the client credentials \
         with HTTP Basic (or in the query) on a GET, or enable allow_on_headers_stop_iteration \
         in the gateway's Wasm plugin configuration"
    );
    counted(error(400, TokenError::BodyNotReceived, &description), host)
}

pub fn on_headers<'c, H: Host>(
    scope: &Rc<Scope>,
    head: TokenRequestHead<'_>,
    host: &mut H,
) -> Decision<'c, PendingTokenRequest> {
    match head_answer(scope, head, host) {
        Ok(pending) => Decision::Wait(pending),
        Err(answer) => Decision::Reply(counted(answer, host)),
    }
}

/// Everything decided from the request head: an answer, or wait for the body.
fn head_answer<H: Host>(
    scope: &Rc<Scope>,
    head: TokenRequestHead<'_>,
    host: &mut H,
) -> Result<PendingTokenRequest, Answer> {
    match head.method {
        "GET" => {
            let params = form::query(head.path).unwrap_or("");
            Err(issue(
                scope,
                &head.route_name,
                params,
                head.authorization.as_deref(),
                host,
            ))
        }
        "POST" => {
            let is_form = head.content_type.is_some_and(|ct| {
                ct.split(';')
                    .next()
                    .is_some_and(|mime| mime.trim().eq_ignore_ascii_case(FORM_CONTENT_TYPE))
            });
            if !is_form {
                return Err(error(
                    400,
                    TokenError::InvalidRequest,
                    "content-type must be application/x-www-form-urlencoded",
                ));
            }
            if head.end_of_stream {
                return Err(error(
                    400,
                    TokenError::InvalidRequest,
                    "request body is missing",
                ));
            }
            Ok(PendingTokenRequest {
                scope: Rc::clone(scope),
                route_name: head.route_name,
                authorization: head.authorization,
            })
        }
        _ => {
            let mut answer = error(
                405,
                TokenError::MethodNotAllowed,
                "method not allowed, use GET or POST",
            );
            answer.reply.headers.push(("allow", "GET, POST".into()));
            Err(answer)
        }
    }
}

/// Finishes a POST once the whole body is in (the answer is counted).
pub fn on_body<H: Host>(pending: &PendingTokenRequest, body: &[u8], host: &mut H) -> Reply {
    let answer = body_answer(pending, body, host);
    counted(answer, host)
}

fn body_answer<H: Host>(pending: &PendingTokenRequest, body: &[u8], host: &mut H) -> Answer {
    if body.is_empty() {
        return error(400, TokenError::InvalidRequest, "request body is missing");
    }
    if body.len() > MAX_FORM_BYTES {
        return body_too_large();
    }
    let Ok(params) = std::str::from_utf8(body) else {
        return error(400, TokenError::InvalidRequest, "malformed parameters");
    };
    issue(
        &pending.scope,
        &pending.route_name,
        params,
        pending.authorization.as_deref(),
        host,
    )
}

fn body_too_large() -> Answer {
    error(413, TokenError::BodyTooLarge, "request body too large")
}

/// Why the token endpoint refused: a stable code for metrics and logs (never
/// derived from the reply's text), and the RFC 6749 §5.2 `error` it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    InvalidRequest,
    InvalidClient,
    InvalidScope,
    UnsupportedGrantType,
    MethodNotAllowed,
    BodyTooLarge,
    BodyNotReceived,
    ServerError,
}

impl TokenError {
    /// Counted as `token_endpoint_errors_<code>`.
    pub fn code(self) -> &'static str {
        match self {
            TokenError::InvalidRequest => "invalid_request",
            TokenError::InvalidClient => "invalid_client",
            TokenError::InvalidScope => "invalid_scope",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::MethodNotAllowed => "method_not_allowed",
            TokenError::BodyTooLarge => "body_too_large",
            TokenError::BodyNotReceived => "body_not_received",
            TokenError::ServerError => "server_error",
        }
    }

    /// The `error` member of the JSON reply.
    pub fn rfc6749_error(self) -> &'static str {
        match self {
            TokenError::InvalidClient => "invalid_client",
            TokenError::InvalidScope => "invalid_scope",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::ServerError => "server_error",
            TokenError::InvalidRequest
            | TokenError::MethodNotAllowed
            | TokenError::BodyTooLarge
            | TokenError::BodyNotReceived => "invalid_request",
        }
    }
}

/// How a token request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Issued,
    Refused(TokenError),
}

/// A reply together with the outcome it stands for.
#[derive(Debug)]
struct Answer {
    outcome: Outcome,
    reply: Reply,
}

/// Counts the outcome (`tokens_issued` or `token_endpoint_errors_<code>`)
/// and hands over the reply.
fn counted<H: Host>(answer: Answer, host: &H) -> Reply {
    let verdict = match answer.outcome {
        Outcome::Issued => {
            host.count("tokens_issued");
            audit::Verdict::new("token_issued", "")
        }
        Outcome::Refused(e) => {
            host.count(&format!("token_endpoint_errors_{}", e.code()));
            audit::Verdict::new("token_refused", e.code())
        }
    };
    answer.reply.because(verdict)
}

fn issue<H: Host>(
    scope: &Scope,
    route_name: &str,
    params: &str,
    authorization: Option<&str>,
    host: &mut H,
) -> Answer {
    let [grant_type, client_id, client_secret, requested_scope] = match form::pick(
        params,
        ["grant_type", "client_id", "client_secret", "scope"],
    ) {
        Ok(found) => found,
        Err(FormError::Repeated(name)) => {
            return error(
                400,
                TokenError::InvalidRequest,
                &format!("{name} is repeated"),
            )
        }
        Err(FormError::Malformed) => {
            return error(400, TokenError::InvalidRequest, "malformed parameters")
        }
    };
    match grant_type.as_deref() {
        None => return error(400, TokenError::InvalidRequest, "grant_type is missing"),
        Some("client_credentials") => {}
        Some(_) => {
            return error(
                400,
                TokenError::UnsupportedGrantType,
                "grant_type is not supported, only client_credentials is",
            )
        }
    }

    // RFC 6749 §2.3: a client MUST NOT use more than one authentication method.
    let basic = authorization.and_then(basic_credentials);
    let (client_id, client_secret, via_basic) = match basic {
        None => (client_id, client_secret, false),
        Some(_) if client_id.is_some() || client_secret.is_some() => {
            return error(
                400,
                TokenError::InvalidRequest,
                "client credentials must be sent either in Authorization: Basic or as parameters, not both",
            )
        }
        Some(Err(_)) => return invalid_client(true),
        Some(Ok(creds)) => (Some(creds.client_id), Some(creds.client_secret), true),
    };
    let Some(client_id) = client_id.filter(|s| !s.is_empty()) else {
        return error(400, TokenError::InvalidRequest, "client_id is missing");
    };
    let Some(client_secret) = client_secret.filter(|s| !s.is_empty()) else {
        return error(400, TokenError::InvalidRequest, "client_secret is missing");
    };
    let Some(consumer) = authenticate_client(scope, &client_id, &client_secret) else {
        host.log(
            LogLevel::Debug,
            "edge-auth: token request refused: invalid client credentials",
        );
        return invalid_client(via_basic);
    };
    if let Some(s) = requested_scope.as_deref() {
        if !is_valid_scope(s) {
            return error(
                400,
                TokenError::InvalidScope,
                "scope has invalid characters",
            );
        }
    }

    let mut jti_random = [0u8; 16];
    if let Err(e) = host.random_bytes(&mut jti_random) {
        host.log(
            LogLevel::Error,
            &format!(
                "edge-auth: no random bytes for jti ({}); token not issued",
                e.0
            ),
        );
        return Answer {
            outcome: Outcome::Refused(TokenError::ServerError),
            reply: server_error(),
        };
    }
    let audience = if scope.global_credentials {
        DEFAULT_AUDIENCE
    } else {
        route_name
    };
    let token = issue_access_token(&AccessTokenRequest {
        consumer,
        issuer: &scope.issuer,
        audience,
        scope: requested_scope.as_deref(),
        now: host.now_unix_seconds(),
        ttl: scope.token_ttl,
        jti_random,
    });
    let mut reply = json_reply(
        200,
        json!({"token_type": "bearer", "access_token": token, "expires_in": scope.token_ttl}),
    );
    // The audit trail names the client and the token's jti, never the token.
    reply.who = Some(Box::new(Who {
        consumer: consumer.name.clone(),
        kind: ConsumerKind::Gateway,
        sub: Some(consumer.name.clone()),
        jti: Some(uuid_v4(jti_random)),
    }));
    Answer {
        outcome: Outcome::Issued,
        reply,
    }
}

/// Looks the client up and compares the secret in constant time.
fn authenticate_client<'s>(
    scope: &'s Scope,
    client_id: &str,
    secret: &str,
) -> Option<&'s Consumer> {
    let consumer = scope.consumers.by_client_id(client_id)?;
    bool::from(consumer.secret.as_slice().ct_eq(secret.as_bytes())).then_some(consumer)
}

/// RFC 6749 §3.3: space-separated NQCHAR tokens.
fn is_valid_scope(scope: &str) -> bool {
    scope
        .bytes()
        .all(|b| b == b' ' || b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn invalid_client(via_basic: bool) -> Answer {
    let description = "invalid client_id or client_secret";
    if via_basic {
        // RFC 6749 §5.2: 401 with a challenge for the scheme the client used.
        let mut answer = error(401, TokenError::InvalidClient, description);
        answer
            .reply
            .headers
            .push(("www-authenticate", "Basic realm=\"oauth2\"".into()));
        answer
    } else {
        error(400, TokenError::InvalidClient, description)
    }
}

fn error(status: u32, why: TokenError, description: &str) -> Answer {
    Answer {
        outcome: Outcome::Refused(why),
        reply: json_reply(
            status,
            json!({"error": why.rfc6749_error(), "error_description": description}),
        ),
    }
}

fn json_reply(status: u32, body: serde_json::Value) -> Reply {
    Reply {
        status,
        headers: vec![
            ("content-type", "application/json".into()),
            ("cache-control", "no-store".into()),
            ("pragma", "no-cache".into()),
        ],
        body: body.to_string(),
        verdict: audit::Verdict::new("token_refused", ""),
        who: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{apply, Flow};
    use crate::fake_host::FakeHost;
    use crate::request::on_request_headers;
    use crate::tests::{config, NOW, SECRET1};
    use crate::verified::cache::TokenCache;

    const FORM: &str = "application/x-www-form-urlencoded";

    fn body() -> String {
        format!("grant_type=client_credentials&client_id=id1&client_secret={SECRET1}")
    }

    fn post(path: &str) -> FakeHost {
        FakeHost::new(NOW)
            .request("POST", "gw.example.com", path)
            .with_header("content-type", FORM)
            .with_header("authorization", "Bearer not-for-upstream")
            .with_property("route_name", "route-a")
    }

    /// The headers of a POST whose body is still to come.
    fn held(host: &mut FakeHost) -> PendingTokenRequest {
        let cfg = Box::leak(Box::new(config("")));
        match on_request_headers(cfg, &TokenCache::new(0), host, false) {
            Decision::Wait(crate::request::Wait::ReadBody(pending)) => pending,
            other => panic!("expected to wait for the body, got {other:?}"),
        }
    }

    fn json(reply: &Reply) -> serde_json::Value {
        serde_json::from_str(&reply.body).unwrap()
    }

    #[test]
    fn a_post_whose_body_is_to_come_is_held_not_forwarded() {
        for path in ["/oauth2/token", "/a/internal/admin/oauth2/token"] {
            let mut host = post(path);
            let pending = held(&mut host);
            let before = host.headers.clone();
            // The old shell continued the headers (without Authorization);
            // now the request stops and nothing is edited or answered yet.
            assert_eq!(
                apply(
                    &mut host,
                    Decision::<'_, PendingTokenRequest>::Wait(pending)
                ),
                Flow::Stop
            );
            assert_eq!(host.headers, before);
            assert!(host.reply.is_none());
        }
    }

    #[test]
    fn body_progress_waits_then_reads_then_issues() {
        let mut host = post("/oauth2/token");
        let pending = held(&mut host);
        assert_eq!(
            pending.on_body_progress(5, false, &host),
            BodyStep::KeepWaiting
        );
        assert_eq!(
            pending.on_body_progress(MAX_FORM_BYTES, false, &host),
            BodyStep::KeepWaiting
        );
        assert_eq!(
            pending.on_body_progress(40, true, &host),
            BodyStep::ReadBody
        );
        assert_eq!(host.counters.borrow().len(), 0, "nothing counted yet");
        let reply = on_body(&pending, body().as_bytes(), &mut host);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(json(&reply)["token_type"], "bearer");
        assert_eq!(host.counter("tokens_issued"), 1);
    }

    #[test]
    fn oversize_body_is_413_and_counted() {
        let mut host = post("/oauth2/token");
        let pending = held(&mut host);
        let BodyStep::Answer(reply) = pending.on_body_progress(MAX_FORM_BYTES + 1, false, &host)
        else {
            panic!("expected an answer");
        };
        assert_eq!(reply.status, 413);
        assert_eq!(
            json(&reply),
            serde_json::json!({"error": "invalid_request", "error_description": "request body too large"})
        );
        assert_eq!(host.counter("token_endpoint_errors_body_too_large"), 1);
        // The same limit when the whole body is handed over at once.
        let reply = on_body(&pending, &vec![b'a'; MAX_FORM_BYTES + 1], &mut host);
        assert_eq!(reply.status, 413);
        assert_eq!(host.counter("token_endpoint_errors_body_too_large"), 2);
    }

    #[test]
    fn every_error_is_counted_from_its_code() {
        let mut host = post("/oauth2/token");
        let pending = held(&mut host);
        let empty = on_body(&pending, b"", &mut host);
        assert_eq!(
            (empty.status, json(&empty)["error"].as_str()),
            (400, Some("invalid_request"))
        );
        let bad_utf8 = on_body(&pending, b"grant_type=\xff", &mut host);
        assert_eq!(bad_utf8.status, 400);
        assert_eq!(host.counter("token_endpoint_errors_invalid_request"), 2);

        let cfg = config("");
        let cache = TokenCache::new(0);
        let mut host = FakeHost::new(NOW).request("DELETE", "gw", "/oauth2/token");
        let Decision::Reply(reply) = on_request_headers(&cfg, &cache, &mut host, true) else {
            panic!("405 expected");
        };
        assert_eq!(reply.status, 405);
        assert_eq!(json(&reply)["error"], "invalid_request");
        assert_eq!(host.counter("token_endpoint_errors_method_not_allowed"), 1);

        let mut host = FakeHost::new(NOW)
            .request("POST", "gw", "/oauth2/token")
            .with_header("content-type", "text/plain");
        let Decision::Reply(reply) = on_request_headers(&cfg, &cache, &mut host, false) else {
            panic!("400 expected");
        };
        assert_eq!(reply.status, 400);
        assert_eq!(host.counter("token_endpoint_errors_invalid_request"), 1);

        let mut host = FakeHost::new(NOW).request("GET", "gw", "/oauth2/token?grant_type=password");
        let _ = on_request_headers(&cfg, &cache, &mut host, true);
        assert_eq!(
            host.counter("token_endpoint_errors_unsupported_grant_type"),
            1
        );
    }

    #[test]
    fn body_waits_run_out_at_their_deadline() {
        let host = FakeHost::new(NOW);
        let mut waits = BodyWaits::default();
        waits.start(7, 1_000, 500, &host);
        waits.start(9, 1_200, 500, &host);
        assert_eq!(host.counter("token_body_waits"), 2);
        assert_eq!(waits.len(), 2);
        assert!(waits.take_overdue(1_499).is_empty());
        assert_eq!(waits.take_overdue(1_500), vec![7]);
        assert!(!waits.is_waiting(7), "answered once, never twice");
        assert!(waits.is_waiting(9));
        // The body arrived (or the stream ended) first: no timeout answer.
        assert!(waits.finish(9));
        assert!(!waits.finish(9));
        assert!(waits.take_overdue(u64::MAX).is_empty());
        assert!(waits.is_empty());
    }

    #[test]
    fn body_not_received_says_how_to_fix_it_and_is_counted() {
        let host = FakeHost::new(NOW);
        let reply = body_not_received(5_000, &host);
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.headers.iter().find(|(k, _)| *k == "content-type"),
            Some(&("content-type", "application/json".to_string()))
        );
        let body = json(&reply);
        assert_eq!(body["error"], "invalid_request");
        let description = body["error_description"].as_str().unwrap();
        for hint in ["5000 ms", "HTTP Basic", "allow_on_headers_stop_iteration"] {
            assert!(description.contains(hint), "{description}");
        }
        assert_eq!(host.counter("token_endpoint_errors_body_not_received"), 1);
    }

    #[test]
    fn token_body_timeout_is_a_validated_top_level_key() {
        use crate::config::compile_json;
        let ok = |v: &str| {
            compile_json(format!(r#"{{"token_body_timeout_ms":{v}}}"#).as_bytes())
                .map(|c| c.token_body_timeout_ms)
        };
        assert_eq!(config("").token_body_timeout_ms, 5_000);
        assert_eq!(ok("100").unwrap(), 100);
        assert_eq!(ok("60000").unwrap(), 60_000);
        for bad in ["99", "60001", "0"] {
            let e = ok(bad).unwrap_err();
            assert_eq!(e.field, "token_body_timeout_ms", "{e}");
        }
        let e =
            compile_json(br#"{"_rules_":[{"_match_route_":["r"],"token_body_timeout_ms":1000}]}"#)
                .unwrap_err();
        assert_eq!(e.field, "_rules_[0].token_body_timeout_ms", "{e}");
    }
}

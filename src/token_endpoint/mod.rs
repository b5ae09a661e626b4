//! The OAuth2 token endpoint at `auth_path`: client-credentials grant
//! (RFC 6749 §4.4), drop-in for the MSE/Higress `oauth` plugin, with its
//! holes closed (other methods, empty bodies, mixed client authentication).
//!
//! A request on the token endpoint never reaches the upstream. A POST whose
//! form body is still to come is held (headers paused) while the body is
//! read; [`BodyWaits`] bounds how long, so a body that arrives late, never,
//! or cannot reach the plugin at all (Envoy without
//! `allow_on_headers_stop_iteration`) is answered locally too.
//!
//! The parts: `grant` (the client-credentials parameters and client
//! authentication), `issue` (the token and its reply), `answer` (refusal
//! codes, JSON replies, counting), `body_waits` (deadlines of held POSTs).

mod answer;
mod body_waits;
mod grant;
mod issue;

pub use answer::{Outcome, TokenError};
pub use body_waits::{body_not_received, BodyWaits};

use std::rc::Rc;

use crate::config::Scope;
use crate::decision::{Decision, Reply};
use crate::form;
use crate::host::Host;

use answer::{body_too_large, counted, error, Answer};
use issue::issue_token;

/// Form bodies bigger than this are refused before parsing.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
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
            Err(answer_params(
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
    answer_params(
        &pending.scope,
        &pending.route_name,
        params,
        pending.authorization.as_deref(),
        host,
    )
}

/// Answers a token request's parameters: a token, or why not.
fn answer_params<H: Host>(
    scope: &Scope,
    route_name: &str,
    params: &str,
    authorization: Option<&str>,
    host: &mut H,
) -> Answer {
    match grant::validate(scope, params, authorization, &*host) {
        Ok(grant) => issue_token(scope, route_name, grant, host),
        Err(answer) => answer,
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

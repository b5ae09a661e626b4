//! One HTTP stream's state machine: request headers, body pieces,
//! trailers, the answer to its call to the IdP, response headers. Each
//! callback returns the next [`Flow`]; a decision carried out is audited
//! once, in `settle`.
//!
//! A stream is *held* while it waits for something (a token POST for its
//! body, an SSO request for the IdP's answer): its headers are paused and
//! never continued alone, and any body that arrives meanwhile is kept (see
//! [`Hold::body_flow`]).

use std::cell::RefCell;
use std::rc::Rc;

use super::call_answer::read_call_answer;
use super::tick::{TickPeriod, BODY_WAIT_TICK_MS};
use crate::audit::{self, Placement, Subject, Who};
use crate::config::Config;
use crate::decision::{apply, server_error, BodyFlow, Decision, Flow, Hold, Reply};
use crate::host::{Host, LogLevel};
use crate::oidc::flow::Continuation;
use crate::oidc::pages::idp_unreachable;
use crate::request::{SsoFacts, Wait};
use crate::token_endpoint::{self, BodyStep, BodyWaits, PendingTokenRequest, MAX_FORM_BYTES};
use crate::verified::cache::TokenCache;

/// One HTTP stream.
pub struct Stream {
    /// This stream's context id (its key in `body_waits`).
    id: u32,
    config: Option<Rc<Config>>,
    cache: Rc<TokenCache>,
    /// This worker's token POSTs waiting for their body.
    body_waits: Rc<RefCell<BodyWaits>>,
    /// The worker's tick period in force.
    tick: Rc<TickPeriod>,
    /// A token request waiting for its body (its headers are held).
    pending: Option<PendingTokenRequest>,
    /// A call to the IdP in flight: its token and what to do with the answer.
    waiting: Option<(u32, Continuation)>,
    /// `Set-Cookie` lines to add to the response (refreshed session).
    response_cookies: Vec<String>,
    /// Answered locally (or refused): nothing of it may go on any more.
    answered: bool,
    /// Where the request fell in the configuration (for the audit record).
    placement: Placement,
}

impl Stream {
    /// A new stream on a worker: the worker's config, cache, body waits and
    /// tick, shared.
    pub(super) fn new(
        id: u32,
        config: Option<Rc<Config>>,
        cache: Rc<TokenCache>,
        body_waits: Rc<RefCell<BodyWaits>>,
        tick: Rc<TickPeriod>,
    ) -> Self {
        Stream {
            id,
            config,
            cache,
            body_waits,
            tick,
            pending: None,
            waiting: None,
            response_cookies: Vec::new(),
            answered: false,
            placement: Placement::default(),
        }
    }

    pub fn on_request_headers<H: Host>(&mut self, host: &mut H, end_of_stream: bool) -> Flow {
        let Some(config) = self.config.clone() else {
            // No valid configuration: fail closed.
            let reply = Reply {
                status: 503,
                headers: vec![("content-type", "text/plain".into())],
                body: "edge-auth is not configured.".into(),
                verdict: crate::audit::error("not_configured"),
                who: None,
            };
            return self.settle(host, Decision::Reply(reply));
        };
        let decision = crate::request::decide(
            &config,
            &self.cache,
            host,
            end_of_stream,
            &mut self.placement,
        );
        // Identities verified just now, for the other workers.
        self.cache.publish_shared(host);
        match decision {
            // Never continue the headers of a token request: with
            // allow_on_headers_stop_iteration the body still arrives.
            Decision::Wait(Wait::ReadBody(pending)) => self.wait_for_body(host, &config, pending),
            decision => self.carry_out(host, decision),
        }
    }

    /// `buffered`: the body bytes Envoy holds so far.
    pub fn on_request_body<H: Host>(
        &mut self,
        host: &mut H,
        buffered: usize,
        end_of_stream: bool,
    ) -> Flow {
        match self.hold().body_flow() {
            BodyFlow::PassOn => Flow::Continue,
            // Pausing makes Envoy buffer the body; resuming after the call
            // sends it on with the headers.
            BodyFlow::Buffer => Flow::Stop,
            BodyFlow::ReadTokenBody => self.on_token_body(host, buffered, end_of_stream),
        }
    }

    /// Trailers end the body.
    pub fn on_request_trailers<H: Host>(&mut self, host: &mut H) -> Flow {
        match self.hold().body_flow() {
            BodyFlow::PassOn => return Flow::Continue,
            BodyFlow::Buffer => return Flow::Stop,
            BodyFlow::ReadTokenBody => {}
        }
        let body = host.request_body(MAX_FORM_BYTES + 1).unwrap_or_default();
        self.finish_token_request(host, &body)
    }

    /// The answer to this stream's call to the IdP. `Flow::Continue` means
    /// the held request goes on now (the shell resumes it).
    pub fn on_call_response<H: Host>(
        &mut self,
        host: &mut H,
        token_id: u32,
        body_size: usize,
    ) -> Flow {
        let (Some(config), Some((expected, then))) = (self.config.clone(), self.waiting.take())
        else {
            return Flow::Stop;
        };
        if expected != token_id {
            host.log(
                LogLevel::Error,
                &format!(
                    "edge-auth: an answer to call {token_id} arrived while call {expected} was awaited; refused"
                ),
            );
            return self.settle(host, Decision::Reply(server_error()));
        }
        let (status, body) = read_call_answer(&*host, body_size);
        let path = host.request_header(":path").unwrap_or_default();
        let facts = SsoFacts::read(&*host);
        let req = facts.request(&path);
        let fetched_keys = then.fetches_keys();
        let decision = crate::oidc::flow::on_response(&config, then, status, &body, &req, host)
            .map_wait(Wait::CallOut);
        if fetched_keys {
            // As on the worker's fetches: nothing verified before stands.
            self.cache.clear();
        }
        self.carry_out(host, decision)
    }

    /// Adds the cookies a forwarded request set aside (a refreshed session).
    pub fn on_response_headers<H: Host>(&mut self, host: &mut H) -> Flow {
        for line in self.response_cookies.drain(..) {
            if host.add_response_header("set-cookie", &line).is_err() {
                host.log(
                    LogLevel::Warn,
                    "edge-auth: cannot add a Set-Cookie to the response",
                );
            }
        }
        Flow::Continue
    }

    /// Executes a decision; keeps what must outlive this callback
    /// (response cookies, a call's continuation).
    fn carry_out<H: Host>(&mut self, host: &mut H, mut decision: Decision<'_, Wait>) -> Flow {
        match decision {
            Decision::Wait(Wait::CallOut(call)) => {
                let headers: Vec<(&str, &str)> = call
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                match host.dispatch_http_call(&call.cluster, &headers, &call.body, call.timeout_ms)
                {
                    Ok(token) => {
                        self.waiting = Some((token, call.then));
                        Flow::Stop
                    }
                    Err(_) => {
                        host.log(
                            LogLevel::Warn,
                            &format!("edge-auth: cannot call cluster \"{}\"", call.cluster),
                        );
                        // Every call a stream makes is single sign-on's: a
                        // browser gets the same page as when the IdP's
                        // endpoints never arrived, an API call the plain 503.
                        let path = host.request_header(":path").unwrap_or_default();
                        let facts = SsoFacts::read(&*host);
                        let req = facts.request(&path);
                        let reply =
                            idp_unreachable(&*host, req.is_navigation(), req.path, req.authority);
                        self.settle(host, Decision::Reply(reply))
                    }
                }
            }
            Decision::Forward(ref mut forward) => {
                self.response_cookies = std::mem::take(&mut forward.response_cookies);
                self.settle(host, decision)
            }
            other => self.settle(host, other),
        }
    }

    /// Carries out a reply or a forward; a stream stopped by it (a local
    /// answer, or a forward whose header edits failed) is answered.
    /// Every decision carried out passes here, so the audit record is
    /// written here, once per decision.
    fn settle<H: Host>(&mut self, host: &mut H, decision: Decision<'_, Wait>) -> Flow {
        let forwarded = matches!(decision, Decision::Forward(_));
        audit_decision(host, &decision, &self.placement);
        let flow = apply(host, decision);
        if flow == Flow::Stop {
            self.answered = true;
            if forwarded {
                // The header edits failed and the request was refused.
                audit::record(
                    host,
                    audit::error("header_edit_failed"),
                    &self.placement,
                    &Subject::default(),
                );
            }
        }
        flow
    }

    /// Why this stream's headers are held, if they are.
    fn hold(&self) -> Hold {
        if self.answered {
            Hold::Answered
        } else if self.waiting.is_some() {
            Hold::Call
        } else if self.pending.is_some() {
            Hold::TokenBody
        } else {
            Hold::Nothing
        }
    }

    /// Holds a token POST until its body is in (or its wait runs out).
    fn wait_for_body<H: Host>(
        &mut self,
        host: &mut H,
        config: &Config,
        pending: PendingTokenRequest,
    ) -> Flow {
        let now = host.now_unix_millis();
        let started = self.body_waits.try_borrow_mut().map(|mut waits| {
            waits.start(self.id, now, config.token_body_timeout_ms, &*host);
        });
        if started.is_err() {
            return self.settle(host, Decision::Reply(server_error()));
        }
        if self.tick.set(host, BODY_WAIT_TICK_MS).is_err() {
            host.log(
                LogLevel::Warn,
                "edge-auth: cannot set the tick period; a token request without its body waits for Envoy's stream timeout",
            );
        }
        self.pending = Some(pending);
        Flow::Stop
    }

    /// This stream no longer waits for a body; true if it still did (it was
    /// not answered by the timeout meanwhile).
    fn end_wait(&mut self) -> bool {
        self.body_waits
            .try_borrow_mut()
            .is_ok_and(|mut waits| waits.finish(self.id))
    }

    /// More of a held token POST's body is in.
    fn on_token_body<H: Host>(
        &mut self,
        host: &mut H,
        buffered: usize,
        end_of_stream: bool,
    ) -> Flow {
        let waiting = self
            .body_waits
            .try_borrow()
            .is_ok_and(|waits| waits.is_waiting(self.id));
        let step = match (&self.pending, waiting) {
            (Some(pending), true) => pending.on_body_progress(buffered, end_of_stream, &*host),
            // Answered already (its wait ran out): nothing more to do, and
            // the request stays held.
            _ => return Flow::Stop,
        };
        match step {
            BodyStep::KeepWaiting => Flow::Stop,
            BodyStep::Answer(reply) => {
                self.pending = None;
                self.end_wait();
                self.settle(host, Decision::Reply(reply))
            }
            BodyStep::ReadBody => {
                let body = host.request_body(buffered).unwrap_or_default();
                self.finish_token_request(host, &body)
            }
        }
    }

    fn finish_token_request<H: Host>(&mut self, host: &mut H, body: &[u8]) -> Flow {
        let Some(pending) = self.pending.take() else {
            return Flow::Stop;
        };
        if !self.end_wait() {
            return Flow::Stop;
        }
        let reply = token_endpoint::on_body(&pending, body, host);
        self.settle(host, Decision::Reply(reply))
    }
}

/// The audit record of a decision about to be carried out.
fn audit_decision<H: Host>(host: &mut H, decision: &Decision<'_, Wait>, placement: &Placement) {
    match decision {
        Decision::Forward(forward) => {
            let subject = Subject {
                consumer: forward.consumer.as_deref(),
                kind: forward.kind,
                sub: forward.sub.as_deref(),
                jti: forward.jti.as_deref(),
            };
            let verdict = if forward.consumer.is_some() {
                audit::ALLOWED
            } else {
                audit::OPEN
            };
            audit::record(host, verdict, placement, &subject);
        }
        Decision::Reply(reply) => {
            let subject = reply.who.as_deref().map(Who::subject).unwrap_or_default();
            audit::record(host, reply.verdict, placement, &subject);
        }
        Decision::Wait(_) => {}
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // The stream is gone: its wait (if any) with it.
        self.end_wait();
    }
}

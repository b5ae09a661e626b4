//! The per-worker and per-stream state machines: what happens when Envoy
//! hands over request headers, body pieces, trailers, a call's answer,
//! response headers or a tick. Each callback returns the next [`Flow`];
//! everything else goes through [`Host`]. The shell in `plugin/` only
//! translates Envoy's callbacks into these calls.
//!
//! A stream is *held* while it waits for something (a token POST for its
//! body, an SSO request for the IdP's answer): its headers are paused and
//! never continued alone, and any body that arrives meanwhile is kept (see
//! [`Hold::body_flow`]).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::audit::{self, Placement, Subject, Who};
use crate::config::{compile_json, Config};
use crate::decision::{
    apply, keys_unavailable, server_error, BodyFlow, Decision, Flow, Hold, Reply,
};
use crate::host::{CallBody, Host, HostError, LogLevel};
use crate::keys::remote::{KeyFetcher, MAX_DOCUMENT_BYTES};
use crate::oidc::flow::Continuation;
use crate::request::{SsoFacts, Wait};
use crate::token_endpoint::{self, BodyStep, BodyWaits, PendingTokenRequest, MAX_FORM_BYTES};
use crate::verified::cache::TokenCache;
use crate::verified::shared_cache::SharedTokenCache;

/// Remote keys are looked after once a second (fetches themselves follow
/// their own schedule).
pub const KEY_TICK_MS: u64 = 1000;
/// While token POSTs wait for their body the worker ticks this often, to
/// answer those whose wait ran out.
pub const BODY_WAIT_TICK_MS: u64 = 200;

/// The tick period this worker last set. Envoy re-arms the tick timer from
/// now on every set, so a period set again on each token POST would keep it
/// from firing while POSTs arrive faster than the period: it is set only
/// when it changes.
#[derive(Debug, Default)]
struct TickPeriod(Cell<Option<u64>>);

impl TickPeriod {
    fn set<H: Host>(&self, host: &mut H, period_ms: u64) -> Result<(), HostError> {
        if self.0.get() == Some(period_ms) {
            return Ok(());
        }
        host.set_tick_period_ms(period_ms)?;
        self.0.set(Some(period_ms));
        Ok(())
    }
}

/// The status and body of the answer to an HTTP call being delivered: one
/// reader, one limit (`MAX_DOCUMENT_BYTES`) for key fetches and single
/// sign-on alike. An oversize answer is logged and handed on with an empty
/// body, so it fails like any unusable answer (never truncated).
fn read_call_answer<H: Host>(host: &H, body_size: usize) -> (Option<u32>, Vec<u8>) {
    let status = host.call_response_status();
    let body = CallBody::read(body_size, MAX_DOCUMENT_BYTES, |n| {
        host.call_response_body(n)
    });
    if let CallBody::TooLarge(size) = body {
        host.log(
            LogLevel::Warn,
            &format!(
                "edge-auth: an answer of {size} bytes from an identity provider or key server \
                 is over the {MAX_DOCUMENT_BYTES}-byte limit; refused"
            ),
        );
    }
    (status, body.into_usable())
}

/// One per worker VM: the compiled config, the worker's verified-token
/// cache, the background key fetches, and the token POSTs waiting for their
/// body (shared with the streams of this worker).
pub struct Worker {
    /// The worker's own context id: host calls go back to it after the
    /// tick acted for a stream.
    id: u32,
    config: Option<Rc<Config>>,
    cache: Rc<TokenCache>,
    fetcher: KeyFetcher,
    body_waits: Rc<RefCell<BodyWaits>>,
    /// The tick period in force (shared with the streams, which start the
    /// fast tick).
    tick: Rc<TickPeriod>,
    /// When the key fetcher last ran: it keeps its own pace while the tick
    /// runs faster for waiting token requests.
    last_key_tick_ms: u64,
}

impl Worker {
    pub fn new(id: u32) -> Self {
        Worker {
            id,
            config: None,
            cache: Rc::new(TokenCache::new(0)),
            fetcher: KeyFetcher::default(),
            body_waits: Rc::new(RefCell::new(BodyWaits::default())),
            tick: Rc::new(TickPeriod::default()),
            last_key_tick_ms: 0,
        }
    }

    /// The tick the worker needs when no token request waits.
    fn base_tick_ms(&self) -> u64 {
        match &self.config {
            Some(config) if !config.remote_sources.is_empty() => KEY_TICK_MS,
            _ => 0,
        }
    }

    /// A new plugin configuration; false refuses it (Envoy then rejects the
    /// filter: never half-configured).
    pub fn configure<H: Host>(&mut self, bytes: &[u8], host: &mut H) -> bool {
        match compile_json(bytes) {
            Ok(config) => {
                for warning in &config.warnings {
                    host.log(LogLevel::Warn, &format!("edge-auth: {warning}"));
                }
                self.cache = Rc::new(
                    TokenCache::with_budget(config.token_cache_size, config.token_cache_bytes)
                        .with_sharing(SharedTokenCache::for_budget(config.token_cache_bytes)),
                );
                self.fetcher = KeyFetcher::default();
                self.config = Some(Rc::new(config));
                // Envoy cannot dispatch calls during on_configure: the first
                // fetch starts on the first tick.
                let waiting = self.body_waits.try_borrow().map_or(true, |w| !w.is_empty());
                if !waiting {
                    let _ = self.tick.set(host, self.base_tick_ms());
                }
                true
            }
            Err(e) => {
                host.log(
                    LogLevel::Error,
                    &format!("edge-auth: invalid configuration: {e}"),
                );
                self.config = None;
                false
            }
        }
    }

    /// Answers every token POST whose body did not arrive in time (each on
    /// behalf of its stream), then looks after remote keys at their pace.
    pub fn on_tick<H: Host>(&mut self, host: &mut H) {
        let Some(config) = self.config.clone() else {
            return;
        };
        self.answer_overdue_body_waits(&config, host);
        let now = host.now_unix_millis();
        // A little early is fine: ticks are not exact.
        if now.saturating_sub(self.last_key_tick_ms) + 50 < KEY_TICK_MS {
            return;
        }
        self.last_key_tick_ms = now;
        if self
            .fetcher
            .on_tick(&config.remote_sources, host)
            .keys_replaced
        {
            self.cache.clear();
        }
    }

    fn answer_overdue_body_waits<H: Host>(&mut self, config: &Config, host: &mut H) {
        let overdue = match self.body_waits.try_borrow_mut() {
            Ok(mut waits) => waits.take_overdue(host.now_unix_millis()),
            Err(_) => return,
        };
        if !overdue.is_empty() {
            for stream in overdue {
                if host.act_for_context(stream).is_err() {
                    continue; // the stream is gone
                }
                let reply = token_endpoint::body_not_received(config.token_body_timeout_ms, &*host);
                // The stream's placement is its own; the token endpoint's
                // record says enough without it.
                audit::record(
                    host,
                    reply.verdict,
                    &Placement::default(),
                    &Subject::default(),
                );
                apply(host, Decision::<Wait>::Reply(reply));
            }
            // Back to the worker: key fetches dispatched next belong to it,
            // not to the last stream answered (their answers would go there).
            let _ = host.act_for_context(self.id);
        }
        // No token POST waits any more (answered here, or their bodies came):
        // back to the worker's own pace (a no-op when already there).
        let idle = self.body_waits.try_borrow().is_ok_and(|w| w.is_empty());
        if idle {
            let _ = self.tick.set(host, self.base_tick_ms());
        }
    }

    /// The answer to a key fetch this worker made. Nothing verified before
    /// stands once keys were replaced.
    pub fn on_call_response<H: Host>(&mut self, token_id: u32, body_size: usize, host: &mut H) {
        let Some(config) = self.config.clone() else {
            return;
        };
        let (status, body) = read_call_answer(&*host, body_size);
        let changes =
            self.fetcher
                .on_response(&config.remote_sources, token_id, status, &body, host);
        if changes.keys_replaced {
            self.cache.clear();
        }
    }

    /// The state of a new stream on this worker.
    pub fn new_stream(&self, id: u32) -> Stream {
        Stream {
            id,
            config: self.config.clone(),
            cache: Rc::clone(&self.cache),
            body_waits: Rc::clone(&self.body_waits),
            tick: Rc::clone(&self.tick),
            pending: None,
            waiting: None,
            response_cookies: Vec::new(),
            answered: false,
            placement: Placement::default(),
        }
    }
}

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
                        self.settle(host, Decision::Reply(keys_unavailable()))
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

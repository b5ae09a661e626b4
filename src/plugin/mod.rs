//! The proxy-wasm shell: translates Envoy's callbacks into calls on the core
//! and carries out its decisions. No decisions are made here.

mod wasm_host;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel as WasmLogLevel, MapType};

use crate::config::{compile_json, Config};
use crate::decision::{
    apply, keys_unavailable, server_error, BodyFlow, Decision, Flow, Hold, Reply,
};
use crate::host::{CallBody, Host, LogLevel};
use crate::keys::cache::TokenCache;
use crate::keys::remote::{KeyFetcher, MAX_DOCUMENT_BYTES};
use crate::keys::shared_cache::SharedTokenCache;
use crate::oidc::flow::Continuation;
use crate::request::SsoFacts;
use crate::token_endpoint::{self, BodyStep, BodyWaits, PendingTokenRequest, MAX_FORM_BYTES};
use wasm_host::WasmHost;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(WasmLogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(EdgeAuthRoot {
            config: None,
            cache: Rc::new(TokenCache::new(0)),
            fetcher: KeyFetcher::default(),
            body_waits: Rc::new(RefCell::new(BodyWaits::default())),
            last_key_tick_ms: 0,
        })
    });
}}

/// Remote keys are looked after once a second (fetches themselves follow
/// their own schedule).
const KEY_TICK: Duration = Duration::from_secs(1);
/// While token POSTs wait for their body the root ticks this often, to
/// answer those whose wait ran out.
const BODY_WAIT_TICK: Duration = Duration::from_millis(200);

/// The status and body of the answer to an HTTP call this context made: one
/// reader, one limit (`MAX_DOCUMENT_BYTES`) for key fetches and single
/// sign-on alike. An oversize answer is logged and handed on with an empty
/// body, so it fails like any unusable answer (never truncated).
fn read_call_answer(body_size: usize) -> (Option<u32>, Vec<u8>) {
    let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|s| s.parse::<u32>().ok());
    let body = CallBody::read(body_size, MAX_DOCUMENT_BYTES, |n| {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, n)
            .ok()
            .flatten()
    });
    if let CallBody::TooLarge(size) = body {
        WasmHost.log(
            LogLevel::Warn,
            &format!(
                "edge-auth: an answer of {size} bytes from an identity provider or key server \
                 is over the {MAX_DOCUMENT_BYTES}-byte limit; refused"
            ),
        );
    }
    (status, body.into_usable())
}

/// Milliseconds since the Unix epoch, from Envoy's clock.
fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One per worker VM: the compiled config, the worker's verified-token
/// cache, the background key fetches, and the token POSTs waiting for
/// their body (shared with the HTTP contexts of this worker).
struct EdgeAuthRoot {
    config: Option<Rc<Config>>,
    cache: Rc<TokenCache>,
    fetcher: KeyFetcher,
    body_waits: Rc<RefCell<BodyWaits>>,
    /// When the key fetcher last ran: it keeps its own pace while the tick
    /// runs faster for waiting token requests.
    last_key_tick_ms: u64,
}

impl EdgeAuthRoot {
    /// The tick the root needs when no token request waits.
    fn base_tick(&self) -> Duration {
        match &self.config {
            Some(config) if !config.remote_sources.is_empty() => KEY_TICK,
            _ => Duration::ZERO,
        }
    }

    /// Answers every token POST whose body did not arrive in time. Runs on
    /// the root's tick: each reply is sent on behalf of its stream.
    fn answer_overdue_body_waits(&mut self, config: &Config) {
        let overdue = match self.body_waits.try_borrow_mut() {
            Ok(mut waits) => waits.take_overdue(now_ms()),
            Err(_) => return,
        };
        let mut host = WasmHost;
        for stream in overdue {
            if hostcalls::set_effective_context(stream).is_err() {
                continue; // the stream is gone
            }
            let reply = token_endpoint::body_not_received(config.token_body_timeout_ms, &host);
            apply(&mut host, Decision::Reply(reply));
        }
        let idle = self.body_waits.try_borrow().is_ok_and(|w| w.is_empty());
        if idle {
            let _ = hostcalls::set_tick_period(self.base_tick());
        }
    }
}

impl Context for EdgeAuthRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(config) = self.config.clone() else {
            return;
        };
        let mut host = WasmHost;
        let (status, body) = read_call_answer(body_size);
        let changes =
            self.fetcher
                .on_response(&config.remote_sources, token_id, status, &body, &mut host);
        if changes.keys_replaced {
            self.cache.clear();
        }
    }
}

impl RootContext for EdgeAuthRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let host = WasmHost;
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        match compile_json(&bytes) {
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
                    let _ = hostcalls::set_tick_period(self.base_tick());
                }
                true
            }
            Err(e) => {
                // Refuse to start: Envoy rejects the filter; never half-configured.
                host.log(
                    LogLevel::Error,
                    &format!("edge-auth: invalid configuration: {e}"),
                );
                self.config = None;
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let Some(config) = self.config.clone() else {
            return;
        };
        self.answer_overdue_body_waits(&config);
        let now = now_ms();
        let key_tick_ms = u64::try_from(KEY_TICK.as_millis()).unwrap_or(1000);
        // A little early is fine: ticks are not exact.
        if now.saturating_sub(self.last_key_tick_ms) + 50 < key_tick_ms {
            return;
        }
        self.last_key_tick_ms = now;
        let mut host = WasmHost;
        let changes = self.fetcher.on_tick(&config.remote_sources, &mut host);
        if changes.keys_replaced {
            self.cache.clear();
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EdgeAuthHttp {
            id: context_id,
            config: self.config.clone(),
            cache: Rc::clone(&self.cache),
            body_waits: Rc::clone(&self.body_waits),
            pending: None,
            waiting: None,
            response_cookies: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct EdgeAuthHttp {
    /// This stream's context id (its key in `body_waits`).
    id: u32,
    config: Option<Rc<Config>>,
    cache: Rc<TokenCache>,
    /// This worker's token POSTs waiting for their body.
    body_waits: Rc<RefCell<BodyWaits>>,
    /// A token request waiting for its body (its headers are held).
    pending: Option<PendingTokenRequest>,
    /// A call to the IdP in flight: its token and what to do with the answer.
    waiting: Option<(u32, Continuation)>,
    /// `Set-Cookie` lines to add to the response (refreshed session).
    response_cookies: Vec<String>,
}

impl Context for EdgeAuthHttp {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let mut host = WasmHost;
        let (Some(config), Some((expected, then))) = (self.config.clone(), self.waiting.take())
        else {
            return;
        };
        if expected != token_id {
            let _ = hostcalls::send_http_response(500, vec![], Some(b"Internal Server Error."));
            return;
        }
        let (status, body) = read_call_answer(body_size);
        let path = host.request_header(":path").unwrap_or_default();
        let facts = SsoFacts::read(&host);
        let req = facts.request(&path);
        let fetched_keys = then.fetches_keys();
        let decision =
            crate::oidc::flow::on_response(&config, then, status, &body, &req, &mut host);
        if fetched_keys {
            // As on the root's fetches: nothing verified before stands.
            self.cache.clear();
        }
        if self.carry_out(&mut host, decision) == Action::Continue {
            let _ = hostcalls::resume_http_request();
        }
    }
}

fn to_action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Stop => Action::Pause,
    }
}

impl EdgeAuthHttp {
    /// Executes a decision; keeps what must outlive this callback
    /// (response cookies, a call's continuation).
    fn carry_out(&mut self, host: &mut WasmHost, mut decision: Decision<'_>) -> Action {
        match decision {
            Decision::CallOut(call) => {
                let headers: Vec<(&str, &str)> = call
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                match hostcalls::dispatch_http_call(
                    &call.cluster,
                    headers,
                    Some(&call.body),
                    vec![],
                    Duration::from_millis(call.timeout_ms),
                ) {
                    Ok(token) => {
                        self.waiting = Some((token, call.then));
                        Action::Pause
                    }
                    Err(_) => {
                        host.log(
                            LogLevel::Warn,
                            &format!("edge-auth: cannot call cluster \"{}\"", call.cluster),
                        );
                        to_action(apply(host, Decision::Reply(keys_unavailable())))
                    }
                }
            }
            Decision::Forward(ref mut forward) => {
                self.response_cookies = std::mem::take(&mut forward.response_cookies);
                to_action(apply(host, decision))
            }
            other => to_action(apply(host, other)),
        }
    }

    /// Why this stream's headers are held, if they are.
    fn hold(&self) -> Hold {
        if self.waiting.is_some() {
            Hold::Call
        } else if self.pending.is_some() {
            Hold::TokenBody
        } else {
            Hold::Nothing
        }
    }

    /// Holds a token POST until its body is in (or its wait runs out).
    fn wait_for_body(
        &mut self,
        host: &mut WasmHost,
        config: &Config,
        pending: PendingTokenRequest,
    ) -> Action {
        let started = self.body_waits.try_borrow_mut().map(|mut waits| {
            waits.start(self.id, now_ms(), config.token_body_timeout_ms, host);
        });
        if started.is_err() {
            return to_action(apply(host, Decision::Reply(server_error())));
        }
        if hostcalls::set_tick_period(BODY_WAIT_TICK).is_err() {
            host.log(
                LogLevel::Warn,
                "edge-auth: cannot set the tick period; a token request without its body waits for Envoy's stream timeout",
            );
        }
        self.pending = Some(pending);
        Action::Pause
    }

    /// This stream no longer waits for a body; true if it still did (it was
    /// not answered by the timeout meanwhile).
    fn end_wait(&mut self) -> bool {
        self.body_waits
            .try_borrow_mut()
            .is_ok_and(|mut waits| waits.finish(self.id))
    }

    /// More of a held token POST's body is in.
    fn on_token_body(&mut self, buffered: usize, end_of_stream: bool) -> Action {
        let mut host = WasmHost;
        let waiting = self
            .body_waits
            .try_borrow()
            .is_ok_and(|waits| waits.is_waiting(self.id));
        let step = match (&self.pending, waiting) {
            (Some(pending), true) => pending.on_body_progress(buffered, end_of_stream, &host),
            // Answered already (its wait ran out): nothing more to do, and
            // the request stays held.
            _ => return Action::Pause,
        };
        match step {
            BodyStep::KeepWaiting => Action::Pause,
            BodyStep::Answer(reply) => {
                self.pending = None;
                self.end_wait();
                to_action(apply(&mut host, Decision::Reply(reply)))
            }
            BodyStep::ReadBody => {
                let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, buffered)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                self.finish_token_request(&body)
            }
        }
    }

    fn finish_token_request(&mut self, body: &[u8]) -> Action {
        let mut host = WasmHost;
        let Some(pending) = self.pending.take() else {
            return Action::Pause;
        };
        if !self.end_wait() {
            return Action::Pause;
        }
        let reply = token_endpoint::on_body(&pending, body, &mut host);
        to_action(apply(&mut host, Decision::Reply(reply)))
    }
}

impl Drop for EdgeAuthHttp {
    fn drop(&mut self) {
        // The stream is gone: its wait (if any) with it.
        self.end_wait();
    }
}

impl HttpContext for EdgeAuthHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let mut host = WasmHost;
        let Some(config) = self.config.clone() else {
            // No valid configuration: fail closed.
            let reply = Reply {
                status: 503,
                headers: vec![("content-type", "text/plain".into())],
                body: "edge-auth is not configured.".into(),
            };
            return to_action(apply(&mut host, Decision::Reply(reply)));
        };
        let decision =
            crate::request::on_request_headers(&config, &self.cache, &mut host, end_of_stream);
        // Identities verified just now, for the other workers.
        self.cache.publish_shared(&mut host);
        match decision {
            // Never continue the headers of a token request: with
            // allow_on_headers_stop_iteration the body still arrives.
            Decision::ReadBody(pending) => self.wait_for_body(&mut host, &config, pending),
            decision => self.carry_out(&mut host, decision),
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for line in self.response_cookies.drain(..) {
            let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, "set-cookie", &line);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.hold().body_flow() {
            BodyFlow::PassOn => Action::Continue,
            // Pausing makes Envoy buffer the body; resuming after the call
            // sends it on with the headers.
            BodyFlow::Buffer => Action::Pause,
            BodyFlow::ReadTokenBody => self.on_token_body(body_size, end_of_stream),
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        match self.hold().body_flow() {
            BodyFlow::PassOn => return Action::Continue,
            BodyFlow::Buffer => return Action::Pause,
            BodyFlow::ReadTokenBody => {}
        }
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, MAX_FORM_BYTES + 1)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.finish_token_request(&body)
    }
}

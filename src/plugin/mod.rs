//! The proxy-wasm shell: translates Envoy's callbacks into calls on the core
//! and carries out its decisions. No decisions are made here.

mod wasm_host;

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel as WasmLogLevel, MapType};

use crate::config::{compile_json, Config};
use crate::decision::{
    apply, continue_without_credentials, keys_unavailable, Decision, Flow, Reply,
};
use crate::host::{Host, LogLevel};
use crate::keys::cache::TokenCache;
use crate::keys::remote::{KeyFetcher, MAX_DOCUMENT_BYTES};
use crate::oidc::flow::Continuation;
use crate::request::SsoFacts;
use crate::token_endpoint::{self, PendingTokenRequest, MAX_FORM_BYTES};
use wasm_host::WasmHost;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(WasmLogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(EdgeAuthRoot {
            config: None,
            cache: Rc::new(TokenCache::new(0)),
            fetcher: KeyFetcher::default(),
        })
    });
}}

/// Remote keys are looked after once a second (fetches themselves follow
/// their own schedule).
const TICK: Duration = Duration::from_secs(1);

/// One per worker VM: the compiled config, the worker's verified-token
/// cache, and the background key fetches.
struct EdgeAuthRoot {
    config: Option<Rc<Config>>,
    cache: Rc<TokenCache>,
    fetcher: KeyFetcher,
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
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u32>().ok());
        // Read one byte past the limit so an oversized body is recognised.
        let body = hostcalls::get_buffer(
            BufferType::HttpCallResponseBody,
            0,
            body_size.min(MAX_DOCUMENT_BYTES + 1),
        )
        .ok()
        .flatten()
        .unwrap_or_default();
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
                self.cache = Rc::new(TokenCache::new(config.token_cache_size));
                self.fetcher = KeyFetcher::default();
                // Envoy cannot dispatch calls during on_configure: the first
                // fetch starts on the first tick.
                if !config.remote_sources.is_empty() {
                    let _ = hostcalls::set_tick_period(TICK);
                }
                self.config = Some(Rc::new(config));
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
        let mut host = WasmHost;
        let changes = self.fetcher.on_tick(&config.remote_sources, &mut host);
        if changes.keys_replaced {
            self.cache.clear();
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EdgeAuthHttp {
            config: self.config.clone(),
            cache: Rc::clone(&self.cache),
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
    config: Option<Rc<Config>>,
    cache: Rc<TokenCache>,
    /// A token request waiting for its body.
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
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u32>().ok());
        let body = hostcalls::get_buffer(
            BufferType::HttpCallResponseBody,
            0,
            body_size.min(MAX_DOCUMENT_BYTES),
        )
        .ok()
        .flatten()
        .unwrap_or_default();
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

    fn finish_token_request(&mut self, body: &[u8]) -> Action {
        let mut host = WasmHost;
        let reply = match self.pending.take() {
            Some(pending) => token_endpoint::on_body(&pending, body, &mut host),
            None => return Action::Continue,
        };
        to_action(apply(&mut host, Decision::Reply(reply)))
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
        match crate::request::on_request_headers(&config, &self.cache, &mut host, end_of_stream) {
            Decision::ReadBody(pending) => {
                self.pending = Some(pending);
                to_action(continue_without_credentials(
                    &mut host,
                    &config.identity_headers,
                ))
            }
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
        if self.pending.is_none() {
            return Action::Continue;
        }
        if body_size > MAX_FORM_BYTES {
            self.pending = None;
            let mut host = WasmHost;
            return to_action(apply(
                &mut host,
                Decision::Reply(token_endpoint::body_too_large()),
            ));
        }
        if !end_of_stream {
            // Envoy buffers the body until we have all of it.
            return Action::Pause;
        }
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.finish_token_request(&body)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.pending.is_none() {
            return Action::Continue;
        }
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, MAX_FORM_BYTES + 1)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.finish_token_request(&body)
    }
}

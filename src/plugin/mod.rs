//! The proxy-wasm shell: translates Envoy's callbacks into calls on the core
//! and carries out its decisions. No decisions are made here.

mod wasm_host;

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel as WasmLogLevel, MapType};

use crate::config::{compile_json, Config};
use crate::decision::{apply, continue_without_credentials, Decision, Flow, Reply};
use crate::host::{Host, LogLevel};
use crate::keys::cache::TokenCache;
use crate::keys::remote::{KeyFetcher, MAX_DOCUMENT_BYTES};
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
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct EdgeAuthHttp {
    config: Option<Rc<Config>>,
    cache: Rc<TokenCache>,
    pending: Option<PendingTokenRequest>,
}

impl Context for EdgeAuthHttp {}

fn to_action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Stop => Action::Pause,
    }
}

impl EdgeAuthHttp {
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
                to_action(continue_without_credentials(&mut host))
            }
            decision => to_action(apply(&mut host, decision)),
        }
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

//! The proxy-wasm shell: translates Envoy's callbacks into calls on the core
//! and carries out its decisions. No decisions are made here.

mod wasm_host;

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel as WasmLogLevel};

use crate::config::{compile_json, Config};
use crate::decision::{apply, Decision, Flow, Reply};
use crate::host::{Host, LogLevel};
use crate::token_endpoint::{self, PendingTokenRequest, MAX_FORM_BYTES};
use wasm_host::WasmHost;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(WasmLogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(EdgeAuthRoot { config: None })
    });
}}

struct EdgeAuthRoot {
    config: Option<Rc<Config>>,
}

impl Context for EdgeAuthRoot {}

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

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EdgeAuthHttp {
            config: self.config.clone(),
            pending: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct EdgeAuthHttp {
    config: Option<Rc<Config>>,
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
        match crate::request::on_request_headers(&config, &mut host, end_of_stream) {
            Decision::ReadBody(pending) => {
                self.pending = Some(pending);
                Action::Pause
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

//! The proxy-wasm shell (wasm32 only): translates Envoy's callbacks into
//! calls on [`crate::stream`] and its [`Flow`] answers into Envoy's actions.
//! It decides nothing; every host call goes through [`WasmHost`].

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel as WasmLogLevel};

use crate::decision::Flow;
use crate::host::wasm::WasmHost;
use crate::stream::{Stream, Worker};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(WasmLogLevel::Trace);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(EdgeAuthRoot(Worker::new(context_id)))
    });
}}

fn to_action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Stop => Action::Pause,
    }
}

/// One per worker VM.
struct EdgeAuthRoot(Worker);

impl Context for EdgeAuthRoot {
    fn on_http_call_response(&mut self, token_id: u32, _: usize, body_size: usize, _: usize) {
        self.0
            .on_call_response(token_id, body_size, &mut WasmHost::default());
    }
}

impl RootContext for EdgeAuthRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let mut host = WasmHost::default();
        let bytes = host.plugin_configuration();
        self.0.configure(&bytes, &mut host)
    }

    fn on_tick(&mut self) {
        self.0.on_tick(&mut WasmHost::default());
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EdgeAuthHttp(self.0.new_stream(context_id))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One per HTTP stream.
struct EdgeAuthHttp(Stream);

impl Context for EdgeAuthHttp {
    fn on_http_call_response(&mut self, token_id: u32, _: usize, body_size: usize, _: usize) {
        // A held request the answer lets go on is resumed here.
        let mut host = WasmHost::default();
        if self.0.on_call_response(&mut host, token_id, body_size) == Flow::Continue {
            host.resume_request();
        }
    }
}

impl HttpContext for EdgeAuthHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        to_action(
            self.0
                .on_request_headers(&mut WasmHost::default(), end_of_stream),
        )
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        to_action(
            self.0
                .on_request_body(&mut WasmHost::default(), body_size, end_of_stream),
        )
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        to_action(self.0.on_request_trailers(&mut WasmHost::default()))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        to_action(self.0.on_response_headers(&mut WasmHost::default()))
    }
}

//! The functions Envoy calls (ABI 0.2.1), only those the plugin acts on.
//! Never entered: `proxy_on_vm_start`, response bodies and trailers, the
//! log phase, `proxy_on_done` (Envoy then deletes the context at once).

use std::cell::RefCell;

use crate::decision::Flow;
use crate::host::abi::{self, LogLevel};
use crate::host::wasm::{take_call_owner, WasmHost};
use crate::stream::{refuse_unknown_stream, Contexts, Stream};

/// The ABI's `Action`: 0 continue, 1 pause (stop iteration).
fn action(flow: Flow) -> u32 {
    match flow {
        Flow::Continue => 0,
        Flow::Stop => 1,
    }
}

thread_local! {
    static CONTEXTS: RefCell<Contexts> = RefCell::new(Contexts::default());
}

/// `None` if the contexts are in use (Envoy never re-enters a callback).
fn with_contexts<T>(act: impl FnOnce(&mut Contexts) -> T) -> Option<T> {
    CONTEXTS.with(|contexts| contexts.try_borrow_mut().ok().map(|mut c| act(&mut c)))
}

extern "C" {
    /// The module's static constructors (wasi-libc's setup among them).
    fn __wasm_call_ctors();
}

/// Envoy calls this once, before anything else.
#[no_mangle]
pub extern "C" fn _initialize() {
    // SAFETY: called once, first, as the reactor ABI requires.
    unsafe {
        __wasm_call_ctors();
    }
    // With panic = "abort" a panic ends the VM; say why in Envoy's log.
    std::panic::set_hook(Box::new(|panic| {
        abi::log(LogLevel::Critical, &format!("edge-auth: {panic}"));
    }));
}

/// The ABI this module speaks.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    abi::allocate(size)
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent_context_id: u32) {
    let _ = with_contexts(|contexts| contexts.create(context_id, parent_context_id));
}

/// A new plugin configuration; 0 makes Envoy reject it.
#[no_mangle]
pub extern "C" fn proxy_on_configure(context_id: u32, _configuration_size: usize) -> u32 {
    let mut host = WasmHost::acting_for(context_id);
    let bytes = host.plugin_configuration();
    let accepted = with_contexts(|contexts| contexts.configure(context_id, &bytes, &mut host));
    u32::from(accepted.unwrap_or(false))
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(context_id: u32) {
    let mut host = WasmHost::acting_for(context_id);
    let _ = with_contexts(|contexts| contexts.tick(context_id, &mut host));
}

/// A request-side stream callback (refused if the contexts are unreachable).
fn stream_callback(
    context_id: u32,
    callback: impl FnOnce(&mut Stream, &mut WasmHost) -> Flow,
) -> u32 {
    let mut host = WasmHost::acting_for(context_id);
    let flow = with_contexts(|contexts| contexts.on_stream(context_id, &mut host, callback))
        .unwrap_or_else(|| refuse_unknown_stream(&mut host));
    action(flow)
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(context_id: u32, _: usize, end_of_stream: u32) -> u32 {
    stream_callback(context_id, |stream, host| {
        stream.on_request_headers(host, end_of_stream != 0)
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(context_id: u32, size: usize, end_of_stream: u32) -> u32 {
    stream_callback(context_id, |stream, host| {
        stream.on_request_body(host, size, end_of_stream != 0)
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_request_trailers(context_id: u32, _: usize) -> u32 {
    stream_callback(context_id, |stream, host| stream.on_request_trailers(host))
}

/// Refreshed SSO sessions set their cookies here.
#[no_mangle]
pub extern "C" fn proxy_on_response_headers(context_id: u32, _: usize, _: u32) -> u32 {
    let mut host = WasmHost::acting_for(context_id);
    let flow = with_contexts(|contexts| contexts.on_response_headers(context_id, &mut host));
    action(flow.unwrap_or(Flow::Continue))
}

/// Envoy delivers every call's answer on the root context; it goes to the
/// context that made the call, and a held stream it lets go on resumes.
#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    _root_context_id: u32,
    token: u32,
    _headers: usize,
    body_size: usize,
    _trailers: usize,
) {
    let Some(owner) = take_call_owner(token) else {
        return;
    };
    let mut host = WasmHost::acting_for(owner);
    let flow =
        with_contexts(|contexts| contexts.on_call_response(owner, token, body_size, &mut host));
    if flow == Some(Flow::Continue) {
        host.resume_request();
    }
}

/// The stream ended, or the configuration was replaced.
#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    let _ = with_contexts(|contexts| contexts.delete(context_id));
}

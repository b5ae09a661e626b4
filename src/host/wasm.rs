//! [`Host`] over proxy-wasm host calls (wasm build only): the adapter behind
//! the one door to Envoy, which the shell in `plugin/` hands to the core.
//! Every failure becomes `None`/`Err`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel as WasmLogLevel, MapType, MetricType};

use super::{Host, HostError, LogLevel};

pub struct WasmHost;

thread_local! {
    /// Counter ids by name, defined on first use (one VM per worker thread).
    static COUNTERS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

/// The counter with exactly this name, defined on first use.
fn counter_id(full_name: &str) -> Option<u32> {
    COUNTERS.with(|ids| {
        let mut ids = ids.try_borrow_mut().ok()?;
        if let Some(id) = ids.get(full_name) {
            return Some(*id);
        }
        let id = hostcalls::define_metric(MetricType::Counter, full_name).ok()?;
        ids.insert(full_name.to_string(), id);
        Some(id)
    })
}

// The SDK's wrappers panic on an unexpected status (set_property) or pass no
// response code details (send_http_response), so these two ABI calls are
// made directly. Signatures as in proxy-wasm-rust-sdk 0.2.5 src/hostcalls.rs
// (ABI 0.2.1); the return value is the ABI status, 0 meaning Ok.
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
}

/// The ABI's header map: count, then each name and value length (u32,
/// little endian), then each name and value NUL-terminated.
fn serialize_headers(headers: &[(&str, &str)]) -> Vec<u8> {
    let size = 4 + headers
        .iter()
        .map(|(k, v)| k.len() + v.len() + 10)
        .sum::<usize>();
    let mut bytes = Vec::with_capacity(size);
    let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    bytes.extend_from_slice(&len32(headers.len()));
    for (name, value) in headers {
        bytes.extend_from_slice(&len32(name.len()));
        bytes.extend_from_slice(&len32(value.len()));
    }
    for (name, value) in headers {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
    }
    bytes
}

impl Host for WasmHost {
    fn now_unix_seconds(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs())
    }

    fn now_unix_millis(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn request_header(&self, name: &str) -> Option<String> {
        hostcalls::get_map_value(MapType::HttpRequestHeaders, name)
            .ok()
            .flatten()
    }

    fn request_header_values(&self, name: &str) -> Result<Vec<String>, HostError> {
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders)
            .map(|pairs| {
                pairs
                    .into_iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
                    .collect()
            })
            .map_err(|_| HostError("list request headers"))
    }

    fn request_header_names(&self) -> Result<Vec<String>, HostError> {
        // The byte variant: values may be any bytes (obs-text). Names are
        // tokens (Envoy's codecs refuse anything else), so they are text.
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders)
            .map(|pairs| pairs.into_iter().map(|(name, _)| name).collect())
            .map_err(|_| HostError("list request headers"))
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn random_bytes(&mut self, buf: &mut [u8]) -> Result<(), HostError> {
        getrandom::getrandom(buf).map_err(|_| HostError("random_get failed"))
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Debug => WasmLogLevel::Debug,
            LogLevel::Info => WasmLogLevel::Info,
            LogLevel::Warn => WasmLogLevel::Warn,
            LogLevel::Error => WasmLogLevel::Error,
        };
        let _ = hostcalls::log(level, message);
    }

    fn count(&self, name: &str) {
        self.count_metric(&format!("edge_auth_{name}"));
    }

    fn count_metric(&self, name: &str) {
        if let Some(id) = counter_id(name) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    fn set_filter_state(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        // A one-segment property path is the name itself (no separator).
        // SAFETY: both slices outlive the call; the host copies them.
        let status =
            unsafe { proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) };
        if status == 0 {
            Ok(())
        } else {
            Err(HostError("set filter state"))
        }
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
            .map_err(|_| HostError("set request header"))
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        hostcalls::remove_map_value(MapType::HttpRequestHeaders, name)
            .map_err(|_| HostError("remove request header"))
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        hostcalls::add_map_value(MapType::HttpRequestHeaders, name, value)
            .map_err(|_| HostError("add request header"))
    }

    fn dispatch_http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, HostError> {
        hostcalls::dispatch_http_call(
            cluster,
            headers.to_vec(),
            (!body.is_empty()).then_some(body),
            vec![],
            Duration::from_millis(timeout_ms),
        )
        .map_err(|_| HostError("dispatch_http_call refused (unknown cluster?)"))
    }

    fn request_body(&self, max_bytes: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, max_bytes)
            .ok()
            .flatten()
    }

    fn call_response_status(&self) -> Option<u32> {
        hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u32>().ok())
    }

    fn call_response_body(&self, size: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size)
            .ok()
            .flatten()
    }

    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        hostcalls::add_map_value(MapType::HttpResponseHeaders, name, value)
            .map_err(|_| HostError("add response header"))
    }

    fn set_tick_period_ms(&mut self, period_ms: u64) -> Result<(), HostError> {
        hostcalls::set_tick_period(Duration::from_millis(period_ms))
            .map_err(|_| HostError("set tick period"))
    }

    fn act_for_context(&mut self, context: u32) -> Result<(), HostError> {
        hostcalls::set_effective_context(context).map_err(|_| HostError("context gone"))
    }

    fn shared_data(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn set_shared_data(
        &mut self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<(), HostError> {
        hostcalls::set_shared_data(key, Some(value), cas)
            .map_err(|_| HostError("shared data CAS mismatch"))
    }

    fn send_reply(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        let headers = serialize_headers(headers);
        // SAFETY: every slice outlives the call; the host copies them.
        let result = unsafe {
            proxy_send_local_response(
                status,
                details.as_ptr(),
                details.len(),
                body.as_ptr(),
                body.len(),
                headers.as_ptr(),
                headers.len(),
                -1, // no gRPC status
            )
        };
        if result == 0 {
            Ok(())
        } else {
            Err(HostError("send local reply"))
        }
    }
}

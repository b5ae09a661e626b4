//! [`Host`] over proxy-wasm host calls. Every failure becomes `None`/`Err`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel as WasmLogLevel, MapType, MetricType};

use crate::host::{Host, HostError, LogLevel};

pub struct WasmHost;

thread_local! {
    /// Counter ids by name, defined on first use (one VM per worker thread).
    static COUNTERS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

fn counter_id(name: &str) -> Option<u32> {
    COUNTERS.with(|ids| {
        let mut ids = ids.try_borrow_mut().ok()?;
        if let Some(id) = ids.get(name) {
            return Some(*id);
        }
        let id =
            hostcalls::define_metric(MetricType::Counter, &format!("edge_auth_{name}")).ok()?;
        ids.insert(name.to_string(), id);
        Some(id)
    })
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
        if let Some(id) = counter_id(name) {
            let _ = hostcalls::increment_metric(id, 1);
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
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        hostcalls::send_http_response(status, headers.to_vec(), Some(body))
            .map_err(|_| HostError("send local reply"))
    }
}

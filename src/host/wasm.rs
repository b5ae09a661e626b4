//! [`Host`] over the proxy-wasm ABI (wasm build only): the adapter behind
//! the one door to Envoy, which the shell in `plugin/` hands to the core.
//! Every failure becomes `None`/`Err` (see `abi`: no call can panic).
//!
//! One `WasmHost` lives for one callback. It reads the request headers
//! from Envoy once, on first use, and answers every header question of the
//! callback from that copy (a bearer request used to read the whole map
//! twice and three single values besides); any change the plugin makes to
//! the request headers drops the copy.
//!
//! It also knows which context it acts for (the one Envoy entered, or the
//! one `act_for_context` switched to), because an HTTP call's answer comes
//! back on the root context and must be routed to the context that made
//! the call: [`take_call_owner`].

use std::cell::RefCell;
use std::collections::HashMap;

use super::abi::{self, BufferType, HeaderMap, LogLevel as WasmLogLevel};
use super::pairs::HeaderBlock;
use super::{Host, HostError, LogLevel};

pub struct WasmHost {
    /// The context host calls are made for.
    acting_for: u32,
    /// The request headers as Envoy listed them (names lower case), read
    /// on first use.
    request_headers: RefCell<Option<HeaderBlock>>,
}

thread_local! {
    /// Counter ids by full name, defined on first use (one VM per worker
    /// thread).
    static COUNTERS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
    /// The same ids by the short name `count` takes (no name built per call).
    static SHORT_COUNTERS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
    /// The context that made each HTTP call in flight, by the call's token.
    /// Envoy answers every call it accepted exactly once (success, failure
    /// or timeout), which removes its entry.
    static CALL_OWNERS: RefCell<HashMap<u32, u32>> = RefCell::new(HashMap::new());
}

/// The context that made the call with this token (and forgets it); `None`
/// for a token this VM did not hand out.
pub fn take_call_owner(token: u32) -> Option<u32> {
    CALL_OWNERS.with(|owners| owners.try_borrow_mut().ok()?.remove(&token))
}

/// The counter with exactly this name, defined on first use.
fn counter_id(full_name: &str) -> Option<u32> {
    COUNTERS.with(|ids| {
        let mut ids = ids.try_borrow_mut().ok()?;
        if let Some(id) = ids.get(full_name) {
            return Some(*id);
        }
        let id = abi::define_counter(full_name).ok()?;
        ids.insert(full_name.to_string(), id);
        Some(id)
    })
}

/// `edge_auth_<name>`'s counter id.
fn short_counter_id(name: &str) -> Option<u32> {
    SHORT_COUNTERS.with(|ids| {
        let mut ids = ids.try_borrow_mut().ok()?;
        if let Some(id) = ids.get(name) {
            return Some(*id);
        }
        let id = counter_id(&format!("edge_auth_{name}"))?;
        ids.insert(name.to_string(), id);
        Some(id)
    })
}

impl WasmHost {
    /// A host for one callback Envoy made on `context`.
    pub fn acting_for(context: u32) -> Self {
        WasmHost {
            acting_for: context,
            request_headers: RefCell::new(None),
        }
    }

    /// Runs `read` over the request headers, listing them from Envoy first
    /// if this callback has not yet. `None` when Envoy has no request
    /// headers to give (the call failed).
    fn with_request_headers<T>(&self, read: impl FnOnce(&HeaderBlock) -> T) -> Option<T> {
        let mut cached = self.request_headers.try_borrow_mut().ok()?;
        if cached.is_none() {
            *cached = Some(abi::header_pairs(HeaderMap::Request).ok()?);
        }
        cached.as_ref().map(read)
    }

    /// Every value of a request header, each through `convert`.
    fn header_values<T>(
        &self,
        name: &str,
        convert: impl Fn(&[u8]) -> T,
    ) -> Result<Vec<T>, HostError> {
        self.with_request_headers(|headers| {
            headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| convert(v))
                .collect()
        })
        .ok_or(HostError("list request headers"))
    }

    /// The plugin changed the request headers: read them again when asked.
    fn forget_request_headers(&self) {
        if let Ok(mut cached) = self.request_headers.try_borrow_mut() {
            *cached = None;
        }
    }

    /// Lets a held request go on.
    pub fn resume_request(&mut self) {
        if abi::resume_request().is_err() {
            self.log(
                LogLevel::Warn,
                "edge-auth: cannot resume the request (stream gone?)",
            );
        }
    }

    /// The plugin's configuration as Envoy gave it.
    pub fn plugin_configuration(&self) -> Vec<u8> {
        abi::buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}

/// A header value as text: bytes that are not UTF-8 (obs-text) become
/// U+FFFD, so such a value matches nothing the configuration names and
/// parses as no token, cookie or form; it never aborts the VM.
fn text(value: &[u8]) -> String {
    // Valid UTF-8 (nearly every value) is checked a word at a time by
    // `from_utf8`; the lossy reading walks it in chunks, which in V8 cost
    // more than the rest of reading an 800-byte Authorization header.
    match std::str::from_utf8(value) {
        Ok(valid) => valid.to_owned(),
        Err(_) => String::from_utf8_lossy(value).into_owned(),
    }
}

impl Host for WasmHost {
    fn now_unix_seconds(&self) -> u64 {
        abi::current_time_nanos().map_or(0, |n| n / 1_000_000_000)
    }

    fn now_unix_millis(&self) -> u64 {
        abi::current_time_nanos().map_or(0, |n| n / 1_000_000)
    }

    fn request_header(&self, name: &str) -> Option<String> {
        // Envoy answers a single-value read with the first value too.
        self.with_request_headers(|headers| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| text(v))
        })
        .flatten()
    }

    fn request_header_values(&self, name: &str) -> Result<Vec<String>, HostError> {
        self.header_values(name, text)
    }

    fn request_header_values_bytes(&self, name: &str) -> Result<Vec<Vec<u8>>, HostError> {
        self.header_values(name, <[u8]>::to_vec)
    }

    fn request_header_names_where(
        &self,
        wanted: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>, HostError> {
        self.with_request_headers(|headers| {
            headers
                .iter()
                .map(|(k, _)| String::from_utf8_lossy(k))
                .filter(|k| wanted(k))
                .map(|k| k.into_owned())
                .collect()
        })
        .ok_or(HostError("list request headers"))
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        abi::property(path).ok().flatten()
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
        abi::log(level, message);
    }

    fn count(&self, name: &str) {
        if let Some(id) = short_counter_id(name) {
            let _ = abi::increment_counter(id);
        }
    }

    fn count_metric(&self, name: &str) {
        if let Some(id) = counter_id(name) {
            let _ = abi::increment_counter(id);
        }
    }

    fn set_filter_state(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        // A one-segment property path is the name itself (no separator).
        abi::set_property(name, value).map_err(|_| HostError("set filter state"))
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.forget_request_headers();
        abi::replace_header(HeaderMap::Request, name, value.as_bytes())
            .map_err(|_| HostError("set request header"))
    }

    fn set_request_header_bytes(&mut self, name: &str, value: &[u8]) -> Result<(), HostError> {
        self.forget_request_headers();
        abi::replace_header(HeaderMap::Request, name, value)
            .map_err(|_| HostError("set request header"))
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        self.forget_request_headers();
        abi::remove_header(HeaderMap::Request, name).map_err(|_| HostError("remove request header"))
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.forget_request_headers();
        abi::add_header(HeaderMap::Request, name, value)
            .map_err(|_| HostError("add request header"))
    }

    fn dispatch_http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, HostError> {
        let token = abi::http_call(cluster, headers, body, timeout_ms)
            .map_err(|_| HostError("dispatch_http_call refused (unknown cluster?)"))?;
        // The answer reaches the root context; the shell hands it to us.
        let owner = self.acting_for;
        let registered = CALL_OWNERS.with(|owners| {
            owners
                .try_borrow_mut()
                .map(|mut owners| owners.insert(token, owner))
                .is_ok()
        });
        if registered {
            Ok(token)
        } else {
            Err(HostError("cannot register the call's owner"))
        }
    }

    fn request_body(&self, max_bytes: usize) -> Option<Vec<u8>> {
        abi::buffer(BufferType::HttpRequestBody, 0, max_bytes)
            .ok()
            .flatten()
    }

    fn call_response_status(&self) -> Option<u32> {
        abi::header_value(HeaderMap::CallResponse, ":status")
            .ok()
            .flatten()
            .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u32>().ok())
    }

    fn call_response_body(&self, size: usize) -> Option<Vec<u8>> {
        abi::buffer(BufferType::HttpCallResponseBody, 0, size)
            .ok()
            .flatten()
    }

    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        abi::add_header(HeaderMap::Response, name, value)
            .map_err(|_| HostError("add response header"))
    }

    fn set_tick_period_ms(&mut self, period_ms: u64) -> Result<(), HostError> {
        abi::set_tick_period_ms(period_ms).map_err(|_| HostError("set tick period"))
    }

    fn act_for_context(&mut self, context: u32) -> Result<(), HostError> {
        // Another stream's headers from now on.
        self.forget_request_headers();
        abi::set_effective_context(context).map_err(|_| HostError("context gone"))?;
        self.acting_for = context;
        Ok(())
    }

    fn shared_data(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        abi::shared_data(key).unwrap_or((None, None))
    }

    fn set_shared_data(
        &mut self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<(), HostError> {
        abi::set_shared_data(key, value, cas).map_err(|_| HostError("shared data CAS mismatch"))
    }

    fn send_reply(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        abi::send_local_response(status, details, headers, body)
            .map_err(|_| HostError("send local reply"))
    }
}

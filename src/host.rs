//! The one door between the core and Envoy.
//!
//! `wasm` (wasm build only) implements [`Host`] over the proxy-wasm ABI
//! calls in `abi` (never the SDK's panicking wrappers); native tests
//! implement it with `fake_host::FakeHost`. Host calls report failure as
//! `None`/`Err`; nothing here may panic. `pairs` is the ABI's header-map
//! encoding.

#[cfg(target_arch = "wasm32")]
pub(crate) mod abi;
#[cfg(any(target_arch = "wasm32", test))]
pub(crate) mod pairs;
#[cfg(target_arch = "wasm32")]
pub(crate) mod wasm;

/// Log levels the core uses. Mapped to Envoy's levels by `wasm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// A host call failed (Envoy refused it or the value was unavailable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError(pub &'static str);

pub trait Host {
    /// Seconds since the Unix epoch, from Envoy's clock.
    fn now_unix_seconds(&self) -> u64;
    /// Milliseconds since the Unix epoch, from Envoy's clock.
    fn now_unix_millis(&self) -> u64;
    /// A request header by lower-case name (`:path`, `:authority`, ...).
    /// Envoy hands over the first value of a repeated header.
    fn request_header(&self, name: &str) -> Option<String>;
    /// Every value of a request header, in arrival order. Envoy keeps the
    /// values of a repeated header apart (except for a few it joins, such
    /// as `authorization`); `request_header` gives only the first.
    fn request_header_values(&self, name: &str) -> Result<Vec<String>, HostError>;
    /// Every value of a request header as bytes, exactly as they arrived
    /// (for rewriting a header whose other parts must pass unchanged).
    fn request_header_values_bytes(&self, name: &str) -> Result<Vec<Vec<u8>>, HostError>;
    /// The names of the request headers for which `wanted` says yes, as
    /// they arrived (repeats possible). Filtered here, not by the caller:
    /// forwarding asks on every request and usually wants none.
    fn request_header_names_where(
        &self,
        wanted: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>, HostError>;
    /// An Envoy attribute such as `["route_name"]` or `["cluster_name"]`.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// Fill `buf` from a cryptographically secure source.
    fn random_bytes(&mut self, buf: &mut [u8]) -> Result<(), HostError>;
    fn log(&self, level: LogLevel, message: &str);
    /// Adds one to the counter `edge_auth_<name>` (Envoy shows it as
    /// `wasmcustom.edge_auth_<name>` on `/stats`). Failures are ignored:
    /// metrics must never change a request's fate.
    fn count(&self, name: &str);
    /// Adds one to the counter with exactly this name (no prefix; Envoy
    /// shows it as `wasmcustom.<name>`). Failures are ignored.
    fn count_metric(&self, name: &str);
    /// Stores a string in the stream's filter state as `wasm.<name>`
    /// (Envoy's `set_property`), readable in the access log with
    /// `%FILTER_STATE(wasm.<name>:PLAIN)%`.
    fn set_filter_state(&mut self, name: &str, value: &str) -> Result<(), HostError>;

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Sets a header to bytes that may not be UTF-8 (kept as they are).
    fn set_request_header_bytes(&mut self, name: &str, value: &[u8]) -> Result<(), HostError>;
    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError>;
    /// Adds a value, keeping any already there.
    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Answer the request locally; it is not forwarded upstream. `details`
    /// become Envoy's response code details (`%RESPONSE_CODE_DETAILS%`).
    fn send_reply(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError>;

    /// Starts an HTTP call to an Envoy cluster (an empty `body` sends none);
    /// the answer arrives later on the context that made the call, tagged
    /// with the returned token.
    fn dispatch_http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, HostError>;
    /// The first `max_bytes` of the request body Envoy has buffered so far
    /// (`None` if there is none or the host refused).
    fn request_body(&self, max_bytes: usize) -> Option<Vec<u8>>;
    /// The `:status` of the call answer being delivered now.
    fn call_response_status(&self) -> Option<u32>;
    /// The first `size` bytes of the call answer being delivered now.
    fn call_response_body(&self, size: usize) -> Option<Vec<u8>>;
    /// Adds a response header (e.g. `Set-Cookie`), keeping any already there.
    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// How often the worker's tick runs (zero: never).
    fn set_tick_period_ms(&mut self, period_ms: u64) -> Result<(), HostError>;
    /// Later host calls of this callback act on `context` (a stream the
    /// worker answers from its tick, or the worker itself again); fails if
    /// that context is gone.
    fn act_for_context(&mut self, context: u32) -> Result<(), HostError>;

    /// Shared data visible to every worker of this VM: value and CAS token.
    fn shared_data(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Sets shared data; with `cas`, fails if another worker wrote since.
    fn set_shared_data(
        &mut self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<(), HostError>;
}

/// The body of an answer to an HTTP call (IdP discovery, JWKS, code
/// exchange, refresh), as `stream` reads it through the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallBody {
    Fits(Vec<u8>),
    /// Larger than the limit (its size): refused whole, never truncated into
    /// something that might still parse.
    TooLarge(usize),
}

impl CallBody {
    /// One reader and one limit for every call answer, on every path:
    /// `read(n)` reads the first `n` bytes, and is not called for an answer
    /// over `limit`.
    pub fn read(
        body_size: usize,
        limit: usize,
        read: impl FnOnce(usize) -> Option<Vec<u8>>,
    ) -> CallBody {
        if body_size > limit {
            return CallBody::TooLarge(body_size);
        }
        CallBody::Fits(read(body_size).unwrap_or_default())
    }

    /// What the core is given: an oversize answer becomes an empty body,
    /// which no parser (JWKS, discovery, token answer) accepts.
    pub fn into_usable(self) -> Vec<u8> {
        match self {
            CallBody::Fits(body) => body,
            CallBody::TooLarge(_) => Vec::new(),
        }
    }
}

/// A counter-name fragment from a human reason: `token expired` →
/// `token_expired`.
pub fn slug(reason: &str) -> String {
    reason
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_bodies_over_the_limit_are_refused_whole_and_never_read() {
        let read = |n: usize| Some(vec![b' '; n]);
        assert_eq!(CallBody::read(10, 10, read), CallBody::Fits(vec![b' '; 10]));
        assert_eq!(CallBody::read(0, 10, read), CallBody::Fits(Vec::new()));
        let never = |_: usize| -> Option<Vec<u8>> { panic!("an oversize answer is not read") };
        assert_eq!(CallBody::read(11, 10, never), CallBody::TooLarge(11));
        assert_eq!(
            CallBody::read(11, 10, never).into_usable(),
            Vec::<u8>::new()
        );
        // A host that fails to hand over the body: nothing usable either.
        assert_eq!(
            CallBody::read(5, 10, |_| None).into_usable(),
            Vec::<u8>::new()
        );
    }
}

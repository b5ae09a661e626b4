//! The one door between the core and Envoy.
//!
//! The wasm shell implements [`Host`] over proxy-wasm host calls; native tests
//! implement it with `fake_host::FakeHost`. Host calls report failure as
//! `None`/`Err`; nothing here may panic.

/// Log levels the core uses. Mapped to Envoy's levels by the shell.
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
    /// A request header by lower-case name (`:path`, `:authority`, ...).
    fn request_header(&self, name: &str) -> Option<String>;
    /// An Envoy attribute such as `["route_name"]` or `["cluster_name"]`.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// Fill `buf` from a cryptographically secure source.
    fn random_bytes(&mut self, buf: &mut [u8]) -> Result<(), HostError>;
    fn log(&self, level: LogLevel, message: &str);

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError>;
    /// Answer the request locally; it is not forwarded upstream.
    fn send_reply(
        &mut self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError>;
}

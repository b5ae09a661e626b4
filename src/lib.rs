//! edge-auth: authentication for Envoy-based gateways as one Proxy-Wasm plugin.
//!
//! The crate is a functional core with a thin shell. Everything that decides
//! (configuration, rule matching, tokens, the token endpoint, single sign-on,
//! the per-request decision and the per-stream state machine in [`stream`])
//! is plain Rust that talks to Envoy only through [`host::Host`], so it is
//! unit-tested natively with a fake host. The proxy-wasm shell in `plugin/`
//! and `host::wasm`, the [`host::Host`] it hands to the core, exist only in
//! the wasm build; the shell only translates Envoy's callbacks into
//! [`stream`] calls. Imports run bottom to top (`scripts/import_graph.py`
//! checks it in `make lint`): host, audit, headers, b64, http_url, canonical, form →
//! keys, cookie → config → token → decision → rules, token_endpoint, oidc →
//! request → stream → plugin.

// Request and IdP data must never be able to panic the plugin (a panic aborts
// the Wasm VM and with it every request on the worker). Tests may relax this.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod audit;
pub mod b64;
pub mod canonical;
pub mod config;
pub mod cookie;
pub mod decision;
pub mod form;
pub mod headers;
pub mod host;
pub mod http_url;
pub mod keys;
pub mod oidc;
pub mod request;
pub mod rules;
pub mod stream;
pub mod token;
pub mod token_endpoint;
pub mod verified;

// Also for examples/hot_path_bench.rs (feature `fake-host`), never in the plugin.
#[cfg(any(test, feature = "fake-host"))]
pub mod fake_host;

#[cfg(target_arch = "wasm32")]
mod plugin;

#[cfg(test)]
mod tests;

//! edge-auth: authentication for Envoy-based gateways as one Proxy-Wasm plugin.
//!
//! The crate is a functional core with a thin shell. Everything that decides
//! (configuration, rule matching, tokens, the token endpoint, the per-request
//! decision) is plain Rust that talks to Envoy only through [`host::Host`], so
//! it is unit-tested natively with a fake host. The proxy-wasm shell in
//! `plugin/` exists only in the wasm build and translates between Envoy's
//! callbacks and the core.

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

#[cfg(test)]
pub mod fake_host;

#[cfg(target_arch = "wasm32")]
mod plugin;

#[cfg(test)]
mod tests;

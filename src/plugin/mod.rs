//! The proxy-wasm shell (wasm32 only): Envoy's callbacks in, calls on
//! [`crate::stream`] made, its `Flow` answers out as Envoy's actions. It
//! decides nothing; every host call goes through `host::wasm::WasmHost`.
//!
//! Our own rather than the Rust SDK's dispatcher: Envoy enters the VM for
//! every `proxy_on_*` callback a module exports and the SDK exports them
//! all (a plain GET cost seven entries: context creation, request and
//! response headers, response body, log, done, delete). `exports` has only
//! those the plugin acts on (BENCHMARKS.md, "Per-request overhead").

mod exports;

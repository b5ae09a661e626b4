//! The per-worker and per-stream state machines: what happens when Envoy
//! hands over request headers, body pieces, trailers, a call's answer,
//! response headers or a tick. Each callback returns the next [`Flow`];
//! everything else goes through [`Host`](crate::host::Host). The shell in
//! `plugin/` only translates Envoy's callbacks into these calls.
//!
//! - [`Worker`] (`worker.rs`): one per worker VM, the root context's core:
//!   the config, the verified-token cache, key fetches, and the tick that
//!   answers token POSTs whose body is overdue.
//! - [`Stream`] (`http.rs`): one per HTTP stream, its state machine.
//! - [`Contexts`] (`contexts.rs`): the workers and streams by Envoy's
//!   context ids, and a call's answer to the context that made the call.
//! - `tick.rs`: the worker's tick periods and the one in force, which
//!   streams share; `call_answer.rs`: reading an HTTP call's answer.
//!
//! A stream is *held* while it waits for something (a token POST for its
//! body, an SSO request for the IdP's answer): its headers are paused and
//! never continued alone, and any body that arrives meanwhile is kept (see
//! [`Hold::body_flow`](crate::decision::Hold::body_flow)).
//!
//! [`Flow`]: crate::decision::Flow

mod call_answer;
mod contexts;
mod http;
mod tick;
mod worker;

pub use contexts::{refuse_unknown_stream, Contexts};
pub use http::Stream;
pub use tick::{BODY_WAIT_TICK_MS, KEY_TICK_MS};
pub use worker::Worker;

//! The VM's contexts by the ids Envoy gives them: one [`Worker`] per root
//! context (one per plugin configuration on this worker thread) and one
//! [`Stream`] per HTTP stream. The shell looks callbacks up here and hands
//! each call's answer to the context that made the call.

use std::collections::HashMap;

use super::{Stream, Worker};
use crate::decision::Flow;
use crate::host::{Host, LogLevel};

#[derive(Default)]
pub struct Contexts {
    workers: HashMap<u32, Worker>,
    streams: HashMap<u32, Stream>,
}

impl Contexts {
    /// `root == 0`: a new root context (a worker); otherwise a stream of
    /// the worker `root`. A stream of a worker this VM does not know gets
    /// an unconfigured stream, which refuses its request (fail closed).
    pub fn create(&mut self, context: u32, root: u32) {
        if root == 0 {
            self.workers.insert(context, Worker::new(context));
            return;
        }
        let stream = match self.workers.get(&root) {
            Some(worker) => worker.new_stream(context),
            None => Worker::new(root).new_stream(context),
        };
        self.streams.insert(context, stream);
    }

    /// A new configuration for the worker `root`; false refuses it.
    pub fn configure<H: Host>(&mut self, root: u32, bytes: &[u8], host: &mut H) -> bool {
        match self.workers.get_mut(&root) {
            Some(worker) => worker.configure(bytes, host),
            None => false,
        }
    }

    pub fn tick<H: Host>(&mut self, root: u32, host: &mut H) {
        if let Some(worker) = self.workers.get_mut(&root) {
            worker.on_tick(host);
        }
    }

    /// Runs one request-side callback of a stream; a context with no
    /// stream is answered 503 (never continued).
    pub fn on_stream<H: Host>(
        &mut self,
        context: u32,
        host: &mut H,
        callback: impl FnOnce(&mut Stream, &mut H) -> Flow,
    ) -> Flow {
        match self.streams.get_mut(&context) {
            Some(stream) => callback(stream, host),
            None => refuse_unknown_stream(host),
        }
    }

    /// The response side: nothing is decided there, so a context with no
    /// stream goes on.
    pub fn on_response_headers<H: Host>(&mut self, context: u32, host: &mut H) -> Flow {
        match self.streams.get_mut(&context) {
            Some(stream) => stream.on_response_headers(host),
            None => Flow::Continue,
        }
    }

    /// A call's answer for `owner`, the context that made the call: its
    /// worker, or a held stream (the host then acts for it). `Continue`:
    /// the stream's request goes on now (the shell resumes it). The answer
    /// to a context that is gone is dropped.
    pub fn on_call_response<H: Host>(
        &mut self,
        owner: u32,
        token: u32,
        body_size: usize,
        host: &mut H,
    ) -> Flow {
        if let Some(worker) = self.workers.get_mut(&owner) {
            worker.on_call_response(token, body_size, host);
            return Flow::Stop;
        }
        let Some(stream) = self.streams.get_mut(&owner) else {
            return Flow::Stop;
        };
        if host.act_for_context(owner).is_err() {
            return Flow::Stop; // the stream ended on Envoy's side
        }
        stream.on_call_response(host, token, body_size)
    }

    /// The context is gone on Envoy's side.
    pub fn delete(&mut self, context: u32) {
        if self.streams.remove(&context).is_none() {
            self.workers.remove(&context);
        }
    }

    /// How many streams are alive (for tests and leak checks).
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }
}

/// A stream callback for a context with no stream (or when the contexts
/// cannot be reached): answered 503, never continued.
pub fn refuse_unknown_stream<H: Host>(host: &mut H) -> Flow {
    host.log(
        LogLevel::Error,
        "edge-auth: a callback for an unknown HTTP context; refused",
    );
    let _ = host.send_reply(
        503,
        "edge_auth_unknown_context",
        &[("content-type", "text/plain")],
        b"edge-auth cannot handle this request.",
    );
    Flow::Stop
}

//! How long a held token POST waits for its body: the deadlines of one
//! worker's held requests, and the answer when one runs out.

use std::collections::BTreeMap;

use crate::decision::Reply;
use crate::host::Host;

use super::answer::{counted, error, TokenError};

/// The token POSTs of one worker whose headers are held while their body is
/// awaited, each with the moment it is given up on. The worker checks it on a
/// timer and answers every overdue request with [`body_not_received`]; an
/// entry leaves when its request is answered or its stream ends.
#[derive(Debug, Default)]
pub struct BodyWaits {
    /// stream (context id) → deadline, milliseconds since the Unix epoch.
    deadlines: BTreeMap<u32, u64>,
}

impl BodyWaits {
    /// A token POST's headers are now held (counted as `token_body_waits`).
    pub fn start<H: Host>(&mut self, stream: u32, now_ms: u64, timeout_ms: u64, host: &H) {
        host.count("token_body_waits");
        self.deadlines
            .insert(stream, now_ms.saturating_add(timeout_ms));
    }

    /// Whether `stream` is still waiting for its body (it was not answered
    /// by the timeout yet).
    pub fn is_waiting(&self, stream: u32) -> bool {
        self.deadlines.contains_key(&stream)
    }

    /// The stream is answered or gone; true if it was still waiting.
    pub fn finish(&mut self, stream: u32) -> bool {
        self.deadlines.remove(&stream).is_some()
    }

    /// Removes and returns the streams whose deadline has passed.
    pub fn take_overdue(&mut self, now_ms: u64) -> Vec<u32> {
        let overdue: Vec<u32> = self
            .deadlines
            .iter()
            .filter(|(_, deadline)| **deadline <= now_ms)
            .map(|(stream, _)| *stream)
            .collect();
        for stream in &overdue {
            self.deadlines.remove(stream);
        }
        overdue
    }

    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }

    pub fn len(&self) -> usize {
        self.deadlines.len()
    }
}

/// The answer to a token POST whose body did not reach the plugin in time:
/// the client was too slow, or Envoy cannot deliver a body to a filter that
/// holds the headers (no `allow_on_headers_stop_iteration`). Counted.
pub fn body_not_received<H: Host>(timeout_ms: u64, host: &H) -> Reply {
    let description = format!(
        "request body not received within {timeout_ms} ms; send the client credentials \
         with HTTP Basic (or in the query) on a GET, or enable allow_on_headers_stop_iteration \
         in the gateway's Wasm plugin configuration"
    );
    counted(error(400, TokenError::BodyNotReceived, &description), host)
}

//! An in-memory [`Host`] for native tests: headers, properties, a settable
//! clock, deterministic random bytes, a request body and call answers to
//! hand over, and a record of replies, calls, response headers and logs.
//!
//! It can also show the failures a real host causes: a cluster that cannot
//! be called (`fail_dispatch`), CAS contention with another worker
//! (`fail_next_cas`), a second reply on one stream (refused and recorded in
//! `replies`), a stream that is gone (`gone_contexts`), and repeated request
//! headers (`with_header` twice; `request_header` gives the first, as Envoy).

use std::cell::RefCell;
use std::collections::HashMap;

use crate::host::{Host, HostError, LogLevel};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReply {
    pub status: u32,
    /// Envoy's response code details for this reply.
    pub details: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl SentReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP call the code under test dispatched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchedCall {
    pub token: u32,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
    /// The context the call was made for (its answer goes there).
    pub context: u32,
}

#[derive(Debug, Default)]
pub struct FakeHost {
    pub calls: Vec<DispatchedCall>,
    pub fail_dispatch: bool,
    /// key → (value, cas version), as Envoy's shared data.
    pub shared: HashMap<String, (Vec<u8>, u32)>,
    pub now: u64,
    pub headers: Vec<(String, String)>,
    pub properties: HashMap<String, Vec<u8>>,
    pub random_counter: u8,
    pub fail_random: bool,
    /// `request_header_names` fails (Envoy refused to list the headers).
    pub fail_header_list: bool,
    /// The first reply sent on the current context.
    pub reply: Option<SentReply>,
    /// Every reply attempted, with the context it was sent for; a second
    /// one on the same context is refused (Envoy cannot answer twice).
    pub replies: Vec<(u32, SentReply)>,
    /// The context host calls act for (`act_for_context`); 0 by default.
    pub context: u32,
    /// Contexts that are gone (`act_for_context` fails for them).
    pub gone_contexts: Vec<u32>,
    /// Milliseconds past `now` (seconds) for `now_unix_millis`.
    pub extra_ms: u64,
    /// The request body Envoy has buffered so far.
    pub request_body: Vec<u8>,
    /// The call answer being delivered: `:status` and body.
    pub call_status: Option<u32>,
    pub call_body: Vec<u8>,
    /// How many bytes of a call answer the code under test read.
    pub call_body_read: RefCell<Option<usize>>,
    pub response_headers: Vec<(String, String)>,
    pub tick_period_ms: Option<u64>,
    /// How many times the tick period was set (each call re-arms Envoy's timer).
    pub tick_period_sets: u32,
    /// The next N CAS writes fail as if another worker wrote first (its
    /// write lands: the version moves on).
    pub fail_next_cas: u32,
    pub logs: RefCell<Vec<(LogLevel, String)>>,
    pub counters: RefCell<HashMap<String, u64>>,
    /// Counters by their full name (`count_metric`).
    pub exact_counters: RefCell<HashMap<String, u64>>,
    /// Filter state set on the stream, by name (without Envoy's `wasm.`).
    pub filter_state: HashMap<String, String>,
}

impl FakeHost {
    pub fn new(now: u64) -> Self {
        FakeHost {
            now,
            ..Default::default()
        }
    }

    pub fn request(mut self, method: &str, authority: &str, path: &str) -> Self {
        self.headers = vec![
            (":method".into(), method.into()),
            (":authority".into(), authority.into()),
            (":path".into(), path.into()),
            (":scheme".into(), "http".into()),
        ];
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// A header whose name keeps its case (as an HTTP/1 client sent it,
    /// before a codec lower-cases it).
    pub fn with_raw_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn with_property(mut self, name: &str, value: &str) -> Self {
        self.properties
            .insert(name.into(), value.as_bytes().to_vec());
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters.borrow().get(name).copied().unwrap_or(0)
    }

    pub fn counter_exact(&self, name: &str) -> u64 {
        self.exact_counters.borrow().get(name).copied().unwrap_or(0)
    }

    /// The messages logged at exactly `level`, in order.
    pub fn logged_at(&self, level: LogLevel) -> Vec<String> {
        self.logs
            .borrow()
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// The audit record written for this stream (`audit::record`).
    pub fn audit(&self) -> Option<&str> {
        self.filter_state
            .get(crate::audit::FILTER_STATE_NAME)
            .map(String::as_str)
    }

    /// Replies sent (or attempted) on `context`.
    pub fn replies_on(&self, context: u32) -> Vec<&SentReply> {
        self.replies
            .iter()
            .filter(|(c, _)| *c == context)
            .map(|(_, r)| r)
            .collect()
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(k, _)| k == name).count()
    }
}

impl Host for FakeHost {
    fn now_unix_seconds(&self) -> u64 {
        self.now
    }

    fn now_unix_millis(&self) -> u64 {
        self.now * 1000 + self.extra_ms
    }

    fn request_header(&self, name: &str) -> Option<String> {
        // As Envoy's get_header_map_value: the first of repeated values.
        self.header(name).map(str::to_string)
    }

    fn request_header_values(&self, name: &str) -> Result<Vec<String>, HostError> {
        if self.fail_header_list {
            return Err(HostError("cannot list request headers"));
        }
        Ok(self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect())
    }

    /// The fake keeps headers as text: bytes of the text.
    fn request_header_values_bytes(&self, name: &str) -> Result<Vec<Vec<u8>>, HostError> {
        Ok(self
            .request_header_values(name)?
            .into_iter()
            .map(String::into_bytes)
            .collect())
    }

    fn request_header_names_where(
        &self,
        wanted: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>, HostError> {
        if self.fail_header_list {
            return Err(HostError("cannot list request headers"));
        }
        Ok(self
            .headers
            .iter()
            .filter(|(k, _)| wanted(k))
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.properties.get(&path.join(".")).cloned()
    }

    fn random_bytes(&mut self, buf: &mut [u8]) -> Result<(), HostError> {
        if self.fail_random {
            return Err(HostError("random unavailable"));
        }
        for b in buf.iter_mut() {
            self.random_counter = self.random_counter.wrapping_add(1);
            *b = self.random_counter;
        }
        Ok(())
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }

    fn count(&self, name: &str) {
        *self
            .counters
            .borrow_mut()
            .entry(name.to_string())
            .or_default() += 1;
    }

    fn count_metric(&self, name: &str) {
        *self
            .exact_counters
            .borrow_mut()
            .entry(name.to_string())
            .or_default() += 1;
    }

    fn set_filter_state(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.filter_state.insert(name.into(), value.into());
        Ok(())
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.headers.retain(|(k, _)| k != name);
        self.headers.push((name.into(), value.into()));
        Ok(())
    }

    /// Kept as text: bytes that are not UTF-8 become U+FFFD here (the
    /// byte-exact path is tested in e2e against Envoy).
    fn set_request_header_bytes(&mut self, name: &str, value: &[u8]) -> Result<(), HostError> {
        self.set_request_header(name, &String::from_utf8_lossy(value))
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        // Envoy's header map ignores case; `_` and `-` are different names.
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        Ok(())
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.headers.push((name.into(), value.into()));
        Ok(())
    }

    fn dispatch_http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, HostError> {
        if self.fail_dispatch {
            return Err(HostError("no such cluster"));
        }
        let token = self.calls.len() as u32 + 1;
        self.calls.push(DispatchedCall {
            token,
            cluster: cluster.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
            timeout_ms,
            context: self.context,
        });
        Ok(token)
    }

    fn shared_data(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.shared.get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn set_shared_data(
        &mut self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<(), HostError> {
        let current = self.shared.get(key).map(|(_, c)| *c);
        if cas.is_some() && self.fail_next_cas > 0 {
            // Another worker wrote first: its write moves the version on.
            self.fail_next_cas -= 1;
            if let Some((_, version)) = self.shared.get_mut(key) {
                *version += 1;
            }
            return Err(HostError("cas mismatch"));
        }
        if let (Some(wanted), Some(have)) = (cas, current) {
            if wanted != 0 && wanted != have {
                return Err(HostError("cas mismatch"));
            }
        }
        let next = current.unwrap_or(0) + 1;
        self.shared.insert(key.into(), (value.to_vec(), next));
        Ok(())
    }

    fn send_reply(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        let reply = SentReply {
            status,
            details: details.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        };
        let second = self.replies.iter().any(|(c, _)| *c == self.context);
        self.replies.push((self.context, reply.clone()));
        if second {
            return Err(HostError("a second reply on one stream"));
        }
        self.reply = Some(reply);
        Ok(())
    }

    fn request_body(&self, max_bytes: usize) -> Option<Vec<u8>> {
        if self.request_body.is_empty() {
            return None;
        }
        Some(self.request_body.iter().take(max_bytes).copied().collect())
    }

    fn call_response_status(&self) -> Option<u32> {
        self.call_status
    }

    fn call_response_body(&self, size: usize) -> Option<Vec<u8>> {
        *self.call_body_read.borrow_mut() = Some(size);
        Some(self.call_body.iter().take(size).copied().collect())
    }

    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.response_headers.push((name.into(), value.into()));
        Ok(())
    }

    fn set_tick_period_ms(&mut self, period_ms: u64) -> Result<(), HostError> {
        self.tick_period_ms = Some(period_ms);
        self.tick_period_sets += 1;
        Ok(())
    }

    fn act_for_context(&mut self, context: u32) -> Result<(), HostError> {
        if self.gone_contexts.contains(&context) {
            return Err(HostError("context gone"));
        }
        self.context = context;
        Ok(())
    }
}

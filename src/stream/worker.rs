//! One worker VM's state, the root context's core: the compiled config,
//! the verified-token cache, the background key fetches, the token POSTs
//! waiting for their body, and the tick that answers those whose wait ran
//! out. Streams are created here and share part of it (see [`Stream`]).

use std::cell::RefCell;
use std::rc::Rc;

use super::call_answer::read_call_answer;
use super::http::Stream;
use super::tick::{TickPeriod, KEY_TICK_MS};
use crate::audit::{self, Placement, Subject};
use crate::config::{compile_json, Config};
use crate::decision::{apply, Decision};
use crate::host::{Host, LogLevel};
use crate::keys::remote::KeyFetcher;
use crate::request::Wait;
use crate::token_endpoint::{self, BodyWaits};
use crate::verified::cache::TokenCache;
use crate::verified::shared_cache::SharedTokenCache;

/// One per worker VM: the compiled config, the worker's verified-token
/// cache, the background key fetches, and the token POSTs waiting for their
/// body (shared with the streams of this worker).
pub struct Worker {
    /// The worker's own context id: host calls go back to it after the
    /// tick acted for a stream.
    id: u32,
    config: Option<Rc<Config>>,
    cache: Rc<TokenCache>,
    fetcher: KeyFetcher,
    body_waits: Rc<RefCell<BodyWaits>>,
    /// The tick period in force (shared with the streams, which start the
    /// fast tick).
    tick: Rc<TickPeriod>,
    /// When the key fetcher last ran: it keeps its own pace while the tick
    /// runs faster for waiting token requests.
    last_key_tick_ms: u64,
}

impl Worker {
    pub fn new(id: u32) -> Self {
        Worker {
            id,
            config: None,
            cache: Rc::new(TokenCache::disabled()),
            fetcher: KeyFetcher::default(),
            body_waits: Rc::new(RefCell::new(BodyWaits::default())),
            tick: Rc::new(TickPeriod::default()),
            last_key_tick_ms: 0,
        }
    }

    /// The tick the worker needs when no token request waits.
    fn base_tick_ms(&self) -> u64 {
        match &self.config {
            Some(config) if !config.remote_sources.is_empty() => KEY_TICK_MS,
            _ => 0,
        }
    }

    /// A new plugin configuration; false refuses it (Envoy then rejects the
    /// filter: never half-configured).
    pub fn configure<H: Host>(&mut self, bytes: &[u8], host: &mut H) -> bool {
        match compile_json(bytes) {
            Ok(config) => {
                for warning in &config.warnings {
                    host.log(LogLevel::Warn, &format!("edge-auth: {warning}"));
                }
                // Its key secret is drawn here, once per configuration (a
                // cache without one is off, logged).
                self.cache = Rc::new(
                    TokenCache::with_budget(
                        config.token_cache_size,
                        config.token_cache_bytes,
                        host,
                    )
                    .with_sharing(SharedTokenCache::for_budget(config.token_cache_bytes)),
                );
                self.fetcher = KeyFetcher::default();
                self.config = Some(Rc::new(config));
                // Envoy cannot dispatch calls during on_configure: the first
                // fetch starts on the first tick.
                let waiting = self.body_waits.try_borrow().map_or(true, |w| !w.is_empty());
                if !waiting {
                    let _ = self.tick.set(host, self.base_tick_ms());
                }
                true
            }
            Err(e) => {
                host.log(
                    LogLevel::Error,
                    &format!("edge-auth: invalid configuration: {e}"),
                );
                self.config = None;
                false
            }
        }
    }

    /// Answers every token POST whose body did not arrive in time (each on
    /// behalf of its stream), then looks after remote keys at their pace.
    pub fn on_tick<H: Host>(&mut self, host: &mut H) {
        let Some(config) = self.config.clone() else {
            return;
        };
        self.answer_overdue_body_waits(&config, host);
        let now = host.now_unix_millis();
        // A little early is fine: ticks are not exact.
        if now.saturating_sub(self.last_key_tick_ms) + 50 < KEY_TICK_MS {
            return;
        }
        self.last_key_tick_ms = now;
        if self
            .fetcher
            .on_tick(&config.remote_sources, host)
            .keys_replaced
        {
            self.cache.clear();
        }
    }

    fn answer_overdue_body_waits<H: Host>(&mut self, config: &Config, host: &mut H) {
        let overdue = match self.body_waits.try_borrow_mut() {
            Ok(mut waits) => waits.take_overdue(host.now_unix_millis()),
            Err(_) => return,
        };
        if !overdue.is_empty() {
            for stream in overdue {
                if host.act_for_context(stream).is_err() {
                    continue; // the stream is gone
                }
                let reply = token_endpoint::body_not_received(config.token_body_timeout_ms, &*host);
                // The stream's placement is its own; the token endpoint's
                // record says enough without it.
                audit::record(
                    host,
                    reply.verdict,
                    &Placement::default(),
                    &Subject::default(),
                );
                apply(host, Decision::<Wait>::Reply(reply));
            }
            // Back to the worker: key fetches dispatched next belong to it,
            // not to the last stream answered (their answers would go there).
            let _ = host.act_for_context(self.id);
        }
        // No token POST waits any more (answered here, or their bodies came):
        // back to the worker's own pace (a no-op when already there).
        let idle = self.body_waits.try_borrow().is_ok_and(|w| w.is_empty());
        if idle {
            let _ = self.tick.set(host, self.base_tick_ms());
        }
    }

    /// The answer to a key fetch this worker made. Nothing verified before
    /// stands once keys were replaced.
    pub fn on_call_response<H: Host>(&mut self, token_id: u32, body_size: usize, host: &mut H) {
        let Some(config) = self.config.clone() else {
            return;
        };
        let (status, body) = read_call_answer(&*host, body_size);
        let changes =
            self.fetcher
                .on_response(&config.remote_sources, token_id, status, &body, host);
        if changes.keys_replaced {
            self.cache.clear();
        }
    }

    /// The state of a new stream on this worker.
    pub fn new_stream(&self, id: u32) -> Stream {
        Stream::new(
            id,
            self.config.clone(),
            Rc::clone(&self.cache),
            Rc::clone(&self.body_waits),
            Rc::clone(&self.tick),
        )
    }
}

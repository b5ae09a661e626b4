//! The worker's fetch driver: claims due fetches (one worker per source,
//! by shared-data CAS), sends them through the source's Envoy cluster, and
//! hands the answers to the source (discovery first, then the JWKS).

use std::collections::HashMap;
use std::rc::Rc;

use super::discovery::parse_discovery;
use super::source::{accept_jwks, adopt_published, record_failure, KeyLocation, RemoteKeySource};
use crate::host::Host;
use crate::keys::schedule::{should_fetch, FetchState};

/// Bodies bigger than this are refused (a JWKS is a few KiB).
pub const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// What an outstanding call was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Discovery,
    Jwks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outstanding {
    pub source: usize,
    pub stage: Stage,
}

/// The root context's fetch driver: which calls are in flight.
#[derive(Debug, Default)]
pub struct KeyFetcher {
    in_flight: HashMap<u32, Outstanding>,
}

/// What a tick or a response changed, for the caller (cache invalidation).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub keys_replaced: bool,
}

impl KeyFetcher {
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Once a second: adopt keys other workers published, and start fetches
    /// that are due (only where this worker wins the shared-data CAS).
    pub fn on_tick<H: Host>(&mut self, sources: &[Rc<RemoteKeySource>], host: &mut H) -> Changes {
        let mut changes = Changes::default();
        let now = host.now_unix_seconds();
        for (index, source) in sources.iter().enumerate() {
            if adopt_published(source, host) {
                changes.keys_replaced = true;
            }
            if self.in_flight.values().any(|o| o.source == index) {
                continue;
            }
            let (raw_state, cas) = host.shared_data(&source.state_key());
            let state = raw_state
                .as_deref()
                .and_then(FetchState::decode)
                .unwrap_or_default();
            let wanted = source.refetch_wanted.get();
            if !should_fetch(
                &state,
                source.held_at.get(),
                wanted,
                source.refresh_seconds,
                now,
            ) {
                continue;
            }
            let claimed = FetchState {
                last_attempt: now,
                failures: state.failures,
                busy_until: now.saturating_add(source.timeout_ms / 1000 + 2),
            };
            // Compare-and-swap: exactly one worker claims this fetch.
            if host
                .set_shared_data(&source.state_key(), claimed.encode().as_bytes(), cas)
                .is_err()
            {
                continue;
            }
            source.refetch_wanted.set(false);
            let stage = match (
                &source.location,
                source.discovered.try_borrow().map(|d| d.is_some()),
            ) {
                (KeyLocation::Discovery { .. }, Ok(false)) => Stage::Discovery,
                _ => Stage::Jwks,
            };
            self.dispatch(index, source, stage, host);
        }
        changes
    }

    fn dispatch<H: Host>(
        &mut self,
        index: usize,
        source: &RemoteKeySource,
        stage: Stage,
        host: &mut H,
    ) {
        let (authority, path) = match (stage, &source.location) {
            (Stage::Jwks, _) => match source.jwks_location() {
                Some(found) => found,
                None => return record_failure(source, host, "jwks_uri not discovered yet"),
            },
            (
                Stage::Discovery,
                KeyLocation::Discovery {
                    authority, path, ..
                },
            ) => (authority.clone(), path.clone()),
            (Stage::Discovery, KeyLocation::Jwks { .. }) => return,
        };
        let headers = document_get(&authority, &path);
        match host.dispatch_http_call(&source.cluster, &headers, &[], source.timeout_ms) {
            Ok(token) => {
                self.in_flight.insert(
                    token,
                    Outstanding {
                        source: index,
                        stage,
                    },
                );
            }
            Err(e) => record_failure(
                source,
                host,
                &format!("cannot call cluster \"{}\": {}", source.cluster, e.0),
            ),
        }
    }

    /// An answer arrived. `status` is the HTTP status (None when the call
    /// failed: reset, timeout, no healthy upstream).
    pub fn on_response<H: Host>(
        &mut self,
        sources: &[Rc<RemoteKeySource>],
        token: u32,
        status: Option<u32>,
        body: &[u8],
        host: &mut H,
    ) -> Changes {
        let mut changes = Changes::default();
        let Some(call) = self.in_flight.remove(&token) else {
            return changes;
        };
        let Some(source) = sources.get(call.source) else {
            return changes;
        };
        let what = match call.stage {
            Stage::Discovery => "discovery document",
            Stage::Jwks => "JWKS",
        };
        if status != Some(200) {
            let got = status.map_or("no response".to_string(), |s| format!("status {s}"));
            record_failure(source, host, &format!("{what} fetch failed: {got}"));
            return changes;
        }
        if body.len() > MAX_DOCUMENT_BYTES {
            record_failure(
                source,
                host,
                &format!("{what} larger than {MAX_DOCUMENT_BYTES} bytes"),
            );
            return changes;
        }
        match call.stage {
            Stage::Discovery => match parse_discovery(source.expected_issuer(), body) {
                Ok(metadata) => {
                    source.learn(metadata);
                    let _ = host.set_shared_data(&source.discovery_key(), body, None);
                    self.dispatch(call.source, source, Stage::Jwks, host);
                }
                Err(reason) => record_failure(source, host, &reason),
            },
            Stage::Jwks => changes.keys_replaced = accept_jwks(source, body, host),
        }
        changes
    }
}

/// A GET of a source's JWKS, for a caller that makes the call itself.
pub struct JwksRequest {
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub timeout_ms: u64,
}

/// The GET that fetches this source's JWKS (its `jwks_uri`, once known).
pub fn jwks_request(source: &RemoteKeySource) -> Option<JwksRequest> {
    let (authority, path) = source.jwks_location()?;
    let headers = document_get(&authority, &path)
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some(JwksRequest {
        cluster: source.cluster.clone(),
        headers,
        timeout_ms: source.timeout_ms,
    })
}

/// The headers of a GET for a JSON document (discovery, JWKS).
fn document_get<'a>(authority: &'a str, path: &'a str) -> [(&'a str, &'a str); 4] {
    [
        (":method", "GET"),
        (":path", path),
        (":authority", authority),
        ("accept", "application/json"),
    ]
}

/// Records a JWKS fetch a caller made itself that got no usable answer.
pub fn jwks_fetch_failed<H: Host>(source: &RemoteKeySource, status: Option<u32>, host: &mut H) {
    let got = status.map_or("no response".to_string(), |s| format!("status {s}"));
    record_failure(source, host, &format!("JWKS fetch failed: {got}"));
}

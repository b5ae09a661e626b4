//! Remote key sets: a JWKS URL or an OpenID discovery document, fetched
//! through an Envoy cluster from the root context, shared across workers
//! through shared data, and swapped in without touching the request path.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use super::jwk::{parse_jwks, KeySet};
use super::schedule::{should_fetch, FetchState};
use crate::host::{Host, LogLevel};

/// Bodies bigger than this are refused (a JWKS is a few KiB).
pub const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// Where the keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLocation {
    Jwks {
        authority: String,
        path: String,
    },
    /// `<issuer>/.well-known/openid-configuration`, whose `jwks_uri` is then
    /// fetched through the same cluster.
    Discovery {
        issuer: String,
        authority: String,
        path: String,
    },
}

#[derive(Debug)]
pub struct RemoteKeySource {
    /// Names the shared-data entries; the same for every worker.
    pub id: String,
    pub cluster: String,
    pub location: KeyLocation,
    pub refresh_seconds: u64,
    pub timeout_ms: u64,
    keys: RefCell<Option<Rc<KeySet>>>,
    /// `fetched_at` of the copy this worker holds.
    held_at: Cell<Option<u64>>,
    /// SHA-256 of the JWKS body this worker holds: names this key set across
    /// workers (the shared verified-token cache is versioned by it).
    held_digest: Cell<Option<[u8; 32]>>,
    refetch_wanted: Cell<bool>,
    /// The `jwks_uri` a discovery document named (authority, path).
    discovered: RefCell<Option<(String, String)>>,
    /// The provider's endpoints, from its discovery document.
    metadata: RefCell<Option<Rc<ProviderMetadata>>>,
}

/// What OpenID Connect single sign-on needs from a discovery document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

impl RemoteKeySource {
    pub fn new(
        cluster: String,
        location: KeyLocation,
        refresh_seconds: u64,
        timeout_ms: u64,
    ) -> Self {
        let id = match &location {
            KeyLocation::Jwks { authority, path } => {
                format!("edge-auth/jwks/{cluster}/{authority}{path}")
            }
            KeyLocation::Discovery {
                authority, path, ..
            } => {
                format!("edge-auth/oidc/{cluster}/{authority}{path}")
            }
        };
        RemoteKeySource {
            id,
            cluster,
            location,
            refresh_seconds,
            timeout_ms,
            keys: RefCell::new(None),
            held_at: Cell::new(None),
            held_digest: Cell::new(None),
            refetch_wanted: Cell::new(false),
            discovered: RefCell::new(None),
            metadata: RefCell::new(None),
        }
    }

    /// The provider's discovery document, once fetched (here or by another
    /// worker).
    pub fn metadata(&self) -> Option<Rc<ProviderMetadata>> {
        self.metadata.try_borrow().ok().and_then(|m| m.clone())
    }

    fn learn(&self, metadata: ProviderMetadata) -> bool {
        let Some(jwks) = split_url(&metadata.jwks_uri) else {
            return false;
        };
        match (
            self.discovered.try_borrow_mut(),
            self.metadata.try_borrow_mut(),
        ) {
            (Ok(mut d), Ok(mut m)) => {
                *d = Some(jwks);
                *m = Some(Rc::new(metadata));
                true
            }
            _ => false,
        }
    }

    /// Where the JWKS is: configured, or named by the discovery document
    /// (None until that arrived).
    fn jwks_location(&self) -> Option<(String, String)> {
        match &self.location {
            KeyLocation::Jwks { authority, path } => Some((authority.clone(), path.clone())),
            KeyLocation::Discovery { .. } => self.discovered.try_borrow().ok()?.clone(),
        }
    }

    fn discovery_key(&self) -> String {
        format!("{}/discovery", self.id)
    }

    /// The keys this worker holds; `None` until a fetch ever succeeded.
    pub fn current(&self) -> Option<Rc<KeySet>> {
        self.keys.try_borrow().ok().and_then(|k| k.clone())
    }

    /// Holds keys (and, for discovery, the provider's metadata). Checked on
    /// every request, so it clones nothing.
    fn is_complete(&self) -> bool {
        let has_keys = self.keys.try_borrow().is_ok_and(|k| k.is_some());
        let has_metadata = matches!(self.location, KeyLocation::Jwks { .. })
            || self.metadata.try_borrow().is_ok_and(|m| m.is_some());
        has_keys && has_metadata
    }

    /// A token named a kid we lack: ask for an early (rate-limited) refetch.
    pub fn want_refetch(&self) {
        self.refetch_wanted.set(true);
    }

    /// SHA-256 of the JWKS body in use here, if any.
    pub fn key_set_digest(&self) -> Option<[u8; 32]> {
        self.held_digest.get()
    }

    fn install(&self, keys: KeySet, fetched_at: u64, body: &[u8]) -> bool {
        match self.keys.try_borrow_mut() {
            Ok(mut slot) => {
                *slot = Some(Rc::new(keys));
                self.held_at.set(Some(fetched_at));
                self.held_digest
                    .set(Some(<sha2::Sha256 as sha2::Digest>::digest(body).into()));
                true
            }
            Err(_) => false,
        }
    }

    fn keys_key(&self) -> String {
        format!("{}/keys", self.id)
    }

    fn state_key(&self) -> String {
        format!("{}/fetch", self.id)
    }
}

pub use crate::http_url::split_url;

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
        match host.dispatch_http_call(&source.cluster, &headers, source.timeout_ms) {
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
            Stage::Discovery => match parse_discovery(source, body) {
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

/// Installs a fetched JWKS body here and publishes it to the other workers;
/// whether this worker's keys changed. A body that is not a usable JWKS is
/// a failed fetch: the previous keys stay.
pub fn accept_jwks<H: Host>(source: &RemoteKeySource, body: &[u8], host: &mut H) -> bool {
    let keys = match parse_jwks(body) {
        Ok(keys) => keys,
        Err(e) => {
            record_failure(source, host, &format!("JWKS rejected: {e}"));
            return false;
        }
    };
    let now = host.now_unix_seconds();
    let mut record = format!("{now}\n").into_bytes();
    record.extend_from_slice(body);
    let _ = host.set_shared_data(&source.keys_key(), &record, None);
    let done = FetchState {
        last_attempt: now,
        failures: 0,
        busy_until: 0,
    };
    let _ = host.set_shared_data(&source.state_key(), done.encode().as_bytes(), None);
    for skipped in &keys.skipped {
        host.log(
            LogLevel::Debug,
            &format!("edge-auth: {}: skipped key {skipped}", source.id),
        );
    }
    host.log(
        LogLevel::Info,
        &format!("edge-auth: {}: {} keys loaded", source.id, keys.keys.len()),
    );
    host.count("jwks_fetch_ok");
    source.install(keys, now, body)
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

/// Takes what another worker, or this plugin under its previous
/// configuration, already published for sources this copy lacks. Called on
/// the request path, so a reloaded configuration or a new worker serves at
/// once instead of answering 503 until its first tick; costs a shared-data
/// read only while something is missing.
pub fn adopt_missing<H: Host>(sources: &[Rc<RemoteKeySource>], host: &H) {
    for source in sources {
        if !source.is_complete() {
            adopt_published(source, host);
        }
    }
}

/// Installs the key set (and discovery document) another worker published,
/// if newer than ours.
fn adopt_published<H: Host>(source: &RemoteKeySource, host: &H) -> bool {
    if source.metadata().is_none() && matches!(source.location, KeyLocation::Discovery { .. }) {
        if let (Some(doc), _) = host.shared_data(&source.discovery_key()) {
            if let Ok(metadata) = parse_discovery(source, &doc) {
                source.learn(metadata);
            }
        }
    }
    let (Some(record), _) = host.shared_data(&source.keys_key()) else {
        return false;
    };
    let Some(newline) = record.iter().position(|&b| b == b'\n') else {
        return false;
    };
    let (stamp, body) = record.split_at(newline);
    let Some(fetched_at) = std::str::from_utf8(stamp)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return false;
    };
    if source.held_at.get().is_some_and(|held| held >= fetched_at) {
        return false;
    }
    let body = body.get(1..).unwrap_or_default();
    match parse_jwks(body) {
        Ok(keys) => source.install(keys, fetched_at, body),
        Err(_) => false,
    }
}

fn parse_discovery(source: &RemoteKeySource, body: &[u8]) -> Result<ProviderMetadata, String> {
    let doc: ProviderMetadata = serde_json::from_slice(body)
        .map_err(|_| "discovery document lacks issuer or jwks_uri".to_string())?;
    if let KeyLocation::Discovery { issuer, .. } = &source.location {
        // OpenID Connect Discovery §4.3: the issuer MUST match exactly.
        if &doc.issuer != issuer {
            return Err(format!(
                "discovery issuer \"{}\" is not the configured \"{issuer}\"",
                doc.issuer
            ));
        }
    }
    let endpoints = [
        ("jwks_uri", Some(&doc.jwks_uri)),
        (
            "authorization_endpoint",
            doc.authorization_endpoint.as_ref(),
        ),
        ("token_endpoint", doc.token_endpoint.as_ref()),
        ("end_session_endpoint", doc.end_session_endpoint.as_ref()),
    ];
    for (name, value) in endpoints {
        if let Some(url) = value {
            if let Err(reason) = crate::http_url::parse_absolute(url) {
                return Err(format!("discovery {name} \"{url}\" {reason}"));
            }
        }
    }
    Ok(doc)
}

fn record_failure<H: Host>(source: &RemoteKeySource, host: &mut H, reason: &str) {
    host.count("jwks_fetch_failed");
    let (raw, _) = host.shared_data(&source.state_key());
    let state = raw
        .as_deref()
        .and_then(FetchState::decode)
        .unwrap_or_default();
    let failed = FetchState {
        last_attempt: host.now_unix_seconds(),
        failures: state.failures.saturating_add(1),
        busy_until: 0,
    };
    let _ = host.set_shared_data(&source.state_key(), failed.encode().as_bytes(), None);
    let keeping = if source.current().is_some() {
        "keeping the previous keys"
    } else {
        "no keys yet, requests needing them get 503"
    };
    host.log(
        LogLevel::Warn,
        &format!("edge-auth: {}: {reason}; {keeping}", source.id),
    );
}

//! The state of one remote key source on this worker (keys held, discovery
//! learnt, refetch wanted) and its shared-data records: keys published for
//! the other workers, adopted from them, and the fetch state with failures.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::discovery::{parse_discovery, ProviderMetadata};
use super::idp_backoff::IdpBackoff;
use crate::host::{Host, LogLevel};
use crate::http_url::split_url;
use crate::keys::jwk::{parse_jwks, KeySet};
use crate::keys::schedule::FetchState;

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
    pub(super) keys: RefCell<Option<Rc<KeySet>>>,
    /// `fetched_at` of the copy this worker holds.
    pub(super) held_at: Cell<Option<u64>>,
    /// SHA-256 of the JWKS body this worker holds: names this key set across
    /// workers (the shared verified-token cache is versioned by it).
    pub(super) held_digest: Cell<Option<[u8; 32]>>,
    pub(super) refetch_wanted: Cell<bool>,
    /// The `jwks_uri` a discovery document named (authority, path).
    pub(super) discovered: RefCell<Option<(String, String)>>,
    /// The provider's endpoints, from its discovery document.
    pub(super) metadata: RefCell<Option<Rc<ProviderMetadata>>>,
    /// When the request path last looked for a newer published key set.
    pub(super) checked_at: Cell<u64>,
    /// An OpenID provider's token endpoint as this worker saw it last
    /// (single sign-on refreshes back off while it does not answer).
    pub idp_backoff: IdpBackoff,
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
            checked_at: Cell::new(0),
            idp_backoff: IdpBackoff::default(),
        }
    }

    /// The provider's discovery document, once fetched (here or by another
    /// worker).
    pub fn metadata(&self) -> Option<Rc<ProviderMetadata>> {
        self.metadata.try_borrow().ok().and_then(|m| m.clone())
    }

    pub(super) fn learn(&self, metadata: ProviderMetadata) -> bool {
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
    pub(super) fn jwks_location(&self) -> Option<(String, String)> {
        match &self.location {
            KeyLocation::Jwks { authority, path } => Some((authority.clone(), path.clone())),
            KeyLocation::Discovery { .. } => self.discovered.try_borrow().ok()?.clone(),
        }
    }

    /// The issuer a discovery document must name (None for a plain JWKS URL).
    pub(super) fn expected_issuer(&self) -> Option<&str> {
        match &self.location {
            KeyLocation::Discovery { issuer, .. } => Some(issuer),
            KeyLocation::Jwks { .. } => None,
        }
    }

    pub(super) fn discovery_key(&self) -> String {
        format!("{}/discovery", self.id)
    }

    /// The keys this worker holds; `None` until a fetch ever succeeded.
    pub fn current(&self) -> Option<Rc<KeySet>> {
        self.keys.try_borrow().ok().and_then(|k| k.clone())
    }

    /// Holds keys (and, for discovery, the provider's metadata). Checked on
    /// every request, so it clones nothing.
    pub(super) fn is_complete(&self) -> bool {
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

    /// Holds `keys` (parsed from `body`, fetched at `fetched_at`); whether
    /// the key set changed. The same body again (every periodic refresh of
    /// an unchanged JWKS) is no change, so it does not cost the workers
    /// their verified-token caches.
    pub(super) fn install(&self, keys: KeySet, fetched_at: u64, body: &[u8]) -> bool {
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(body).into();
        match self.keys.try_borrow_mut() {
            Ok(mut slot) => {
                let changed = slot.is_none() || self.held_digest.get() != Some(digest);
                *slot = Some(Rc::new(keys));
                self.held_at.set(Some(fetched_at));
                self.held_digest.set(Some(digest));
                changed
            }
            Err(_) => false,
        }
    }

    pub(super) fn keys_key(&self) -> String {
        format!("{}/keys", self.id)
    }

    pub(super) fn state_key(&self) -> String {
        format!("{}/fetch", self.id)
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

/// Takes what another worker, or this plugin under its previous
/// configuration, already published for sources this copy lacks. Called on
/// the request path, so a reloaded configuration or a new worker serves at
/// once instead of answering 503 until its first tick; costs a shared-data
/// read only while something is missing.
/// How often a worker's request path looks for a key set another worker
/// published, besides its own tick (which runs late under load).
pub const ADOPT_CHECK_SECONDS: u64 = 1;

/// On the request path: takes the key sets other workers published that
/// this worker lacks (a reloaded config or a new worker serves at once), and
/// at most once a second per source a newer one (a rotation or a revoked key
/// reaches every worker within a second of its fetch, not at its next tick).
/// True when a key set was replaced: nothing verified before stands.
pub fn adopt_published_keys<H: Host>(sources: &[Rc<RemoteKeySource>], host: &H, now: u64) -> bool {
    let mut replaced = false;
    for source in sources {
        let due = now >= source.checked_at.get().saturating_add(ADOPT_CHECK_SECONDS);
        if !source.is_complete() || due {
            source.checked_at.set(now);
            replaced |= adopt_published(source, host);
        }
    }
    replaced
}

/// Installs the key set (and discovery document) another worker published,
/// if newer than ours.
pub(super) fn adopt_published<H: Host>(source: &RemoteKeySource, host: &H) -> bool {
    if source.metadata().is_none() && matches!(source.location, KeyLocation::Discovery { .. }) {
        if let (Some(doc), _) = host.shared_data(&source.discovery_key()) {
            if let Ok(metadata) = parse_discovery(source.expected_issuer(), &doc) {
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

pub(super) fn record_failure<H: Host>(source: &RemoteKeySource, host: &mut H, reason: &str) {
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

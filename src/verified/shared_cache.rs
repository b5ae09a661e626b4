//! The verified-token cache shared by a gateway's workers. Envoy runs one VM
//! per worker, so without it a token is verified once per worker; with it,
//! the worker that verifies a token publishes the identity in proxy-wasm
//! shared data and the others take it from there.
//!
//! Bounded: a fixed ring of slots (`edge-auth/verified/<n>`), a token's slot
//! chosen by its key; a newer entry overwrites whatever held the slot. Envoy
//! never deletes shared data, so the slot count is the bound on memory.
//!
//! Never trusted across key sets: an entry's key is the SHA-256 of the
//! key-set fingerprint (this configuration's text and the digest of every
//! remote JWKS body this worker holds), the scope, the token's location and
//! the token's own SHA-256 (not the local cache's keyed digest: that key is
//! secret to each VM, and every worker must name an entry alike). It is
//! computed only when the ring is read (a local miss) or written. A worker
//! only finds entries written under exactly the keys it holds itself: after
//! a rotation or a revocation (a key removed from the JWKS) it stops finding
//! the old entries as soon as it installs the new key set, which every
//! worker does within the refresh interval. An entry also carries its expiry
//! (the token's `exp` plus skew).

use sha2::{Digest, Sha256};

use super::identity::{CacheKey, Identity};
use crate::config::Config;
use crate::host::Host;

/// Largest identity (serialized) published; bigger ones stay local.
const MAX_SHARED_ENTRY_BYTES: usize = 4096;
/// Slot count per byte of `token_cache_bytes`: one slot per 512 bytes, so the
/// gateway-wide ring holds about as many identities as one worker's cache.
pub const BYTES_PER_SLOT: usize = 512;
/// At most this many slots whatever the budget.
pub const MAX_SLOTS: usize = 1 << 17;

/// Names the key set a worker verifies with: configuration text plus the
/// body digest of each remote key set it holds (or that it holds none).
pub fn key_set_fingerprint(config: &Config) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(config.digest);
    for source in &config.remote_sources {
        h.update((source.id.len() as u64).to_be_bytes());
        h.update(source.id.as_bytes());
        match source.key_set_digest() {
            Some(d) => {
                h.update([1]);
                h.update(d);
            }
            None => h.update([0]),
        }
    }
    h.finalize().into()
}

/// The shared ring of verified identities; `slots == 0` turns it off.
#[derive(Debug, Clone, Copy)]
pub struct SharedTokenCache {
    slots: usize,
}

/// What a lookup found.
pub struct SharedHit {
    pub identity: Identity,
    pub valid_until: u64,
}

impl SharedTokenCache {
    pub fn new(slots: usize) -> Self {
        SharedTokenCache {
            slots: slots.min(MAX_SLOTS),
        }
    }

    /// The ring sized for a per-worker byte budget.
    pub fn for_budget(token_cache_bytes: usize) -> Self {
        Self::new(token_cache_bytes / BYTES_PER_SLOT)
    }

    pub fn enabled(&self) -> bool {
        self.slots > 0
    }

    fn slot_name(&self, key: &[u8; 32]) -> String {
        let n = u64::from_be_bytes([
            key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
        ]);
        let slots = u64::try_from(self.slots.max(1)).unwrap_or(1);
        format!("edge-auth/verified/{}", n % slots)
    }

    /// The identity another worker (or this one) published for `key`, if
    /// it is still valid at `now`.
    pub fn get<H: Host>(&self, host: &H, key: &[u8; 32], now: u64) -> Option<SharedHit> {
        if !self.enabled() {
            return None;
        }
        let (Some(value), _) = host.shared_data(&self.slot_name(key)) else {
            return None;
        };
        let (stored_key, rest) = value.split_first_chunk::<32>()?;
        if stored_key != key {
            return None;
        }
        let (until, json) = rest.split_first_chunk::<8>()?;
        let valid_until = u64::from_be_bytes(*until);
        if now > valid_until {
            return None;
        }
        let identity = serde_json::from_slice(json).ok()?;
        Some(SharedHit {
            identity,
            valid_until,
        })
    }

    /// Publishes a verified identity for the other workers (best effort:
    /// a failed write only costs them a verification).
    pub fn put<H: Host>(
        &self,
        host: &mut H,
        key: &[u8; 32],
        identity: &Identity,
        valid_until: u64,
    ) {
        if !self.enabled() {
            return;
        }
        let Ok(json) = serde_json::to_vec(identity) else {
            return;
        };
        if json.len() > MAX_SHARED_ENTRY_BYTES {
            return;
        }
        let mut value = Vec::with_capacity(40 + json.len());
        value.extend_from_slice(key);
        value.extend_from_slice(&valid_until.to_be_bytes());
        value.extend_from_slice(&json);
        let _ = host.set_shared_data(&self.slot_name(key), &value, None);
    }
}

impl CacheKey {
    /// This key in the shared ring, under the key-set `fingerprint`, for
    /// `token` (the token this key was made from).
    pub fn shared(&self, fingerprint: &[u8; 32], token: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(fingerprint);
        h.update((self.scope as u64).to_be_bytes());
        h.update((self.location as u64).to_be_bytes());
        h.update(Sha256::digest(token.as_bytes()));
        h.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_host::FakeHost;

    fn identity(name: &str) -> Identity {
        Identity {
            consumer: name.into(),
            audience: vec!["default".into()],
            claim_headers: vec![("x-sub".into(), "s".into(), false)],
            strip_header: None,
            gateway_token: false,
            sub: None,
            jti: None,
        }
    }

    #[test]
    fn an_entry_is_found_under_its_key_until_it_expires() {
        let ring = SharedTokenCache::new(16);
        let mut host = FakeHost::new(100);
        let (k, other) = ([7u8; 32], [8u8; 32]);
        ring.put(&mut host, &k, &identity("a"), 200);
        let hit = ring.get(&host, &k, 200).unwrap();
        assert_eq!((hit.identity, hit.valid_until), (identity("a"), 200));
        assert!(ring.get(&host, &k, 201).is_none(), "expired");
        assert!(ring.get(&host, &other, 100).is_none(), "another key");
    }

    #[test]
    fn bounded_by_slots_newest_wins() {
        let ring = SharedTokenCache::new(4);
        let mut host = FakeHost::new(0);
        for i in 0..100u8 {
            ring.put(&mut host, &[i; 32], &identity("a"), 10);
        }
        assert!(host.shared.len() <= 4);
        assert!(ring.get(&host, &[99; 32], 0).is_some());
    }

    #[test]
    fn garbage_in_a_slot_is_a_miss() {
        let ring = SharedTokenCache::new(1);
        let mut host = FakeHost::new(0);
        let k = [1u8; 32];
        let name = ring.slot_name(&k);
        let mut value = k.to_vec();
        value.extend_from_slice(&u64::MAX.to_be_bytes());
        value.extend_from_slice(b"{not json");
        host.shared.insert(name.clone(), (value, 1));
        assert!(ring.get(&host, &k, 0).is_none());
        host.shared.insert(name, (vec![1, 2, 3], 2));
        assert!(ring.get(&host, &k, 0).is_none());
    }

    #[test]
    fn off_with_no_slots() {
        let ring = SharedTokenCache::new(0);
        let mut host = FakeHost::new(0);
        ring.put(&mut host, &[1; 32], &identity("a"), 10);
        assert!(host.shared.is_empty());
        assert!(ring.get(&host, &[1; 32], 0).is_none());
    }
}

//! The verified-token cache: a bounded LRU per worker, each entry good until
//! the token expires. A repeated RS256 token then costs a SHA-256 and a
//! lookup instead of an RSA verification.
//!
//! The cache must never change a decision, so its key holds everything the
//! decision depends on besides the clock: the token (hashed), the scope it
//! was verified under, the location it was found in (a gateway token is
//! only valid in the gateway header), and the key-set generation (bumped
//! whenever keys change, so nothing verified under old keys is ever hit).
//! Per-request facts that vary within a scope (the route a route-scoped
//! token is bound to, allow lists) are checked after the cache.

use std::cell::{Cell, RefCell};
use std::num::NonZeroUsize;

use lru::LruCache;
use sha2::{Digest, Sha256};

/// What verification established, reusable while the token is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub consumer: String,
    pub audience: Vec<String>,
    /// Headers from claims: (header, value, override).
    pub claim_headers: Vec<(String, String, bool)>,
    /// Header to remove before forwarding (`keep_token: false`).
    pub strip_header: Option<String>,
    /// Issued by this gateway (its `aud` may bind it to a route).
    pub gateway_token: bool,
}

#[derive(Debug)]
struct Entry {
    identity: Identity,
    /// Last second (inclusive) the token is accepted, skew included.
    valid_until: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    scope: usize,
    /// Index of the token location in the scope's list.
    location: usize,
    generation: u64,
    token: [u8; 32],
}

/// Disabled when created with capacity 0.
#[derive(Debug)]
pub struct TokenCache {
    entries: Option<RefCell<LruCache<CacheKey, Entry>>>,
    /// Bumped by [`TokenCache::clear`]; part of every key.
    generation: Cell<u64>,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            entries: NonZeroUsize::new(capacity).map(|c| RefCell::new(LruCache::new(c))),
            generation: Cell::new(0),
        }
    }

    /// The key for `token` found at `location` (its index in the scope's
    /// locations) in scope `scope_id`, under the current key generation.
    pub fn key(&self, scope_id: usize, location: usize, token: &str) -> CacheKey {
        CacheKey {
            scope: scope_id,
            location,
            generation: self.generation.get(),
            token: Sha256::digest(token.as_bytes()).into(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    pub fn get(&self, key: &CacheKey, now: u64) -> Option<Identity> {
        let mut entries = self.entries.as_ref()?.try_borrow_mut().ok()?;
        match entries.get(key) {
            Some(entry) if now <= entry.valid_until => Some(entry.identity.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, key: CacheKey, identity: Identity, valid_until: u64) {
        if let Some(Ok(mut entries)) = self.entries.as_ref().map(RefCell::try_borrow_mut) {
            entries.put(
                key,
                Entry {
                    identity,
                    valid_until,
                },
            );
        }
    }

    /// Keys changed (rotation, removal): nothing verified before may stand.
    /// The generation bump alone guarantees that, even if the entries
    /// cannot be dropped right now.
    pub fn clear(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        if let Some(Ok(mut entries)) = self.entries.as_ref().map(RefCell::try_borrow_mut) {
            entries.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.entries
            .as_ref()
            .and_then(|e| e.try_borrow().ok().map(|e| e.len()))
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str) -> Identity {
        Identity {
            consumer: name.into(),
            audience: vec![],
            claim_headers: vec![],
            strip_header: None,
            gateway_token: false,
        }
    }

    #[test]
    fn entries_expire_with_the_token() {
        let cache = TokenCache::new(4);
        let key = cache.key(0, 0, "tok");
        cache.insert(key, identity("a"), 100);
        assert_eq!(cache.get(&key, 100).unwrap().consumer, "a");
        assert_eq!(cache.get(&key, 101), None);
        assert!(cache.is_empty(), "expired entries are dropped");
    }

    #[test]
    fn bounded_lru() {
        let cache = TokenCache::new(2);
        let (a, b, c) = (
            cache.key(0, 0, "a"),
            cache.key(0, 0, "b"),
            cache.key(0, 0, "c"),
        );
        cache.insert(a, identity("a"), 10);
        cache.insert(b, identity("b"), 10);
        assert!(cache.get(&a, 0).is_some()); // a is now the most recent
        cache.insert(c, identity("c"), 10);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&b, 0).is_none(), "least recently used evicted");
        assert!(cache.get(&a, 0).is_some());
        assert!(cache.get(&c, 0).is_some());
    }

    #[test]
    fn scope_is_part_of_the_key_and_clear_empties() {
        let cache = TokenCache::new(8);
        cache.insert(cache.key(1, 0, "t"), identity("a"), 10);
        assert!(cache.get(&cache.key(2, 0, "t"), 0).is_none());
        cache.clear();
        assert!(cache.get(&cache.key(1, 0, "t"), 0).is_none());
    }

    #[test]
    fn location_and_key_generation_are_part_of_the_key() {
        let cache = TokenCache::new(8);
        let header = cache.key(1, 0, "t");
        cache.insert(header, identity("a"), 10);
        assert!(cache.get(&header, 0).is_some());
        // The same token from another place is another question.
        assert!(cache.get(&cache.key(1, 1, "t"), 0).is_none());
        // A key computed before a clear (keys changed) never hits after it,
        // even if the entry could not be dropped.
        let before = cache.key(1, 0, "u");
        cache.clear();
        cache.insert(before, identity("b"), 10);
        assert!(cache.get(&cache.key(1, 0, "u"), 0).is_none());
    }

    #[test]
    fn capacity_zero_disables() {
        let cache = TokenCache::new(0);
        assert!(!cache.enabled());
        cache.insert(cache.key(0, 0, "t"), identity("a"), 10);
        assert!(cache.get(&cache.key(0, 0, "t"), 0).is_none());
    }
}

//! The verified-token cache: an LRU per worker bounded by memory (a byte
//! budget, each entry accounted by its real size) and optionally by entry
//! count, each entry good until the token expires. A repeated RS256 token
//! then costs a SHA-256 and a lookup instead of an RSA verification.
//!
//! The cache must never change a decision, so its key holds everything the
//! decision depends on besides the clock: the token (hashed), the scope it
//! was verified under, the location it was found in (a gateway token is
//! only valid in the gateway header), and the key-set generation (bumped
//! whenever keys change, so nothing verified under old keys is ever hit).
//! Per-request facts that vary within a scope (the route a route-scoped
//! token is bound to, allow lists) are checked after the cache.

use std::cell::{Cell, RefCell};

use lru::LruCache;
use sha2::{Digest, Sha256};

pub use super::identity::{CacheKey, Identity};
use super::shared_cache::{key_set_fingerprint, SharedTokenCache};
use crate::config::Config;
use crate::host::Host;

#[derive(Debug)]
struct Entry {
    identity: Identity,
    /// Last second (inclusive) the token is accepted, skew included.
    valid_until: u64,
    /// What this entry costs, as accounted against the budget.
    bytes: usize,
}

/// Per-entry bookkeeping besides key and value: the LRU's node links and
/// allocation header, and the hash table slot at its load factor.
const ENTRY_OVERHEAD_BYTES: usize = 64;

impl Identity {
    /// What an entry holding this identity costs in the cache.
    pub fn entry_bytes(&self) -> usize {
        std::mem::size_of::<CacheKey>()
            + std::mem::size_of::<Entry>()
            + self.heap_bytes()
            + ENTRY_OVERHEAD_BYTES
    }
}

/// Disabled when created with an entry cap or a byte budget of 0.
#[derive(Debug)]
pub struct TokenCache {
    entries: Option<RefCell<LruCache<CacheKey, Entry>>>,
    /// Most entries kept (`token_cache_size`).
    max_entries: usize,
    /// Most bytes kept (`token_cache_bytes`), as [`Identity::entry_bytes`]
    /// accounts them.
    max_bytes: usize,
    bytes: Cell<usize>,
    /// Bumped by [`TokenCache::clear`]; part of every key.
    generation: Cell<u64>,
    /// The gateway-wide ring this worker reads on a miss and publishes to.
    shared: SharedTokenCache,
    /// Identities verified during this callback, published to the shared
    /// ring by [`TokenCache::publish_shared`] (the request path only reads
    /// the host; the shell writes).
    outbox: RefCell<Vec<([u8; 32], Identity, u64)>>,
}

/// Most identities waiting to be published (a request presents few tokens).
const MAX_OUTBOX: usize = 16;

/// Default byte budget when a test or caller gives only an entry count.
const UNBOUNDED_BYTES: usize = usize::MAX;

impl TokenCache {
    /// A cache of at most `capacity` entries (byte budget unbounded).
    pub fn new(capacity: usize) -> Self {
        Self::with_budget(capacity, UNBOUNDED_BYTES)
    }

    /// At most `max_entries` entries and `max_bytes` bytes, whichever binds
    /// first; the least recently used entries go.
    pub fn with_budget(max_entries: usize, max_bytes: usize) -> Self {
        let enabled = max_entries > 0 && max_bytes > 0;
        TokenCache {
            entries: enabled.then(|| RefCell::new(LruCache::unbounded())),
            max_entries,
            max_bytes,
            bytes: Cell::new(0),
            generation: Cell::new(0),
            shared: SharedTokenCache::new(0),
            outbox: RefCell::new(Vec::new()),
        }
    }

    /// Also reads and publishes through the workers' shared ring (only when
    /// this cache is enabled).
    pub fn with_sharing(mut self, shared: SharedTokenCache) -> Self {
        if self.enabled() {
            self.shared = shared;
        }
        self
    }

    /// The identity verified earlier for `key`: from this worker's cache,
    /// else from the shared ring under the key set this worker holds now.
    /// Counts `cache_hits`, `cache_shared_hits` or `cache_misses`.
    pub fn lookup<H: Host>(
        &self,
        config: &Config,
        host: &H,
        key: &CacheKey,
        now: u64,
    ) -> Option<Identity> {
        if let Some(identity) = self.get(key, now) {
            host.count("cache_hits");
            return Some(identity);
        }
        if self.shared.enabled() {
            let shared_key = key.shared(&key_set_fingerprint(config));
            if let Some(hit) = self.shared.get(host, &shared_key, now) {
                host.count("cache_shared_hits");
                self.insert_counted(host, *key, hit.identity.clone(), hit.valid_until);
                return Some(hit.identity);
            }
        }
        host.count("cache_misses");
        None
    }

    /// Keeps a freshly verified identity here and queues it for the shared
    /// ring; counts `cache_evictions`.
    pub fn store<H: Host>(
        &self,
        config: &Config,
        host: &H,
        key: CacheKey,
        identity: Identity,
        valid_until: u64,
    ) {
        if self.shared.enabled() {
            if let Ok(mut outbox) = self.outbox.try_borrow_mut() {
                if outbox.len() < MAX_OUTBOX {
                    let shared_key = key.shared(&key_set_fingerprint(config));
                    outbox.push((shared_key, identity.clone(), valid_until));
                }
            }
        }
        self.insert_counted(host, key, identity, valid_until);
    }

    /// Writes what this callback verified to the shared ring.
    pub fn publish_shared<H: Host>(&self, host: &mut H) {
        let pending = match self.outbox.try_borrow_mut() {
            Ok(mut outbox) => std::mem::take(&mut *outbox),
            Err(_) => return,
        };
        for (key, identity, valid_until) in pending {
            self.shared.put(host, &key, &identity, valid_until);
        }
    }

    fn insert_counted<H: Host>(&self, host: &H, key: CacheKey, identity: Identity, until: u64) {
        for _ in 0..self.insert(key, identity, until) {
            host.count("cache_evictions");
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
                if let Some(gone) = entries.pop(key) {
                    self.bytes.set(self.bytes.get().saturating_sub(gone.bytes));
                }
                None
            }
            None => None,
        }
    }

    /// Adds an entry, evicting the least recently used ones until both
    /// bounds hold; returns how many were evicted (an entry larger than the
    /// whole budget is not kept). Expired entries are dropped when met.
    pub fn insert(&self, key: CacheKey, identity: Identity, valid_until: u64) -> usize {
        let Some(Ok(mut entries)) = self.entries.as_ref().map(RefCell::try_borrow_mut) else {
            return 0;
        };
        let bytes = identity.entry_bytes();
        if bytes > self.max_bytes {
            return 0;
        }
        if let Some(old) = entries.put(
            key,
            Entry {
                identity,
                valid_until,
                bytes,
            },
        ) {
            self.bytes.set(self.bytes.get().saturating_sub(old.bytes));
        }
        self.bytes.set(self.bytes.get().saturating_add(bytes));
        let mut evicted = 0;
        while entries.len() > self.max_entries || self.bytes.get() > self.max_bytes {
            match entries.pop_lru() {
                Some((_, gone)) => {
                    self.bytes.set(self.bytes.get().saturating_sub(gone.bytes));
                    evicted += 1;
                }
                None => break,
            }
        }
        evicted
    }

    /// Bytes held, as accounted against the budget.
    pub fn bytes(&self) -> usize {
        self.bytes.get()
    }

    /// Keys changed (rotation, removal): nothing verified before may stand.
    /// The generation bump alone guarantees that, even if the entries
    /// cannot be dropped right now.
    pub fn clear(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        // Queued identities were verified under the old keys (their shared
        // keys name the old key set, so they could not be found; drop them).
        if let Ok(mut outbox) = self.outbox.try_borrow_mut() {
            outbox.clear();
        }
        if let Some(Ok(mut entries)) = self.entries.as_ref().map(RefCell::try_borrow_mut) {
            entries.clear();
            self.bytes.set(0);
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
            sub: None,
            jti: None,
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
    fn byte_budget_evicts_least_recently_used_and_counts() {
        let one = identity("a").entry_bytes();
        // Room for two entries of this size, not three.
        let cache = TokenCache::with_budget(1000, 2 * one + one / 2);
        let (a, b, c) = (
            cache.key(0, 0, "a"),
            cache.key(0, 0, "b"),
            cache.key(0, 0, "c"),
        );
        assert_eq!(cache.insert(a, identity("a"), 10), 0);
        assert_eq!(cache.insert(b, identity("b"), 10), 0);
        assert_eq!(cache.bytes(), 2 * one);
        assert!(cache.get(&a, 0).is_some()); // a is now the most recent
        assert_eq!(cache.insert(c, identity("c"), 10), 1, "one eviction");
        assert!(cache.get(&b, 0).is_none(), "least recently used evicted");
        assert!(cache.get(&a, 0).is_some());
        assert!(cache.get(&c, 0).is_some());
        assert_eq!(cache.bytes(), 2 * one);
        // Replacing an entry does not count it twice.
        cache.insert(c, identity("c"), 20);
        assert_eq!(cache.bytes(), 2 * one);
        cache.clear();
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn entries_are_accounted_by_their_real_size() {
        let small = identity("a");
        let mut big = identity("a");
        big.claim_headers = vec![("x-user".into(), "v".repeat(4000), false)];
        assert!(big.entry_bytes() >= small.entry_bytes() + 4000);
        // A large identity takes the room of many small ones.
        let cache = TokenCache::with_budget(1000, big.entry_bytes() + small.entry_bytes());
        for i in 0..3 {
            cache.insert(cache.key(0, 0, &i.to_string()), small.clone(), 10);
        }
        assert_eq!(cache.len(), 3);
        let evicted = cache.insert(cache.key(0, 0, "big"), big.clone(), 10);
        assert_eq!(evicted, 2, "two small entries make room for one big");
        assert_eq!(cache.len(), 2);
        // One larger than the whole budget is not kept at all.
        let tiny = TokenCache::with_budget(1000, small.entry_bytes());
        assert_eq!(tiny.insert(tiny.key(0, 0, "big"), big, 10), 0);
        assert!(tiny.is_empty());
    }

    #[test]
    fn expired_entries_give_back_their_bytes() {
        let cache = TokenCache::with_budget(10, usize::MAX);
        let key = cache.key(0, 0, "t");
        cache.insert(key, identity("a"), 5);
        assert!(cache.get(&key, 6).is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn capacity_zero_disables() {
        assert!(!TokenCache::with_budget(10, 0).enabled());
        let cache = TokenCache::new(0);
        assert!(!cache.enabled());
        cache.insert(cache.key(0, 0, "t"), identity("a"), 10);
        assert!(cache.get(&cache.key(0, 0, "t"), 0).is_none());
    }
}

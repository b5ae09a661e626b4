//! The verified-token cache: an LRU per worker bounded by memory (a byte
//! budget, each entry accounted by its real size) and optionally by entry
//! count, each entry good until the token expires. A repeated RS256 token
//! then costs a SipHash and a lookup instead of an RSA verification.
//!
//! The cache must never change a decision, so its key holds everything the
//! decision depends on besides the clock: the token (digested, below), the
//! scope it was verified under, the location it was found in (a gateway
//! token is only valid in the gateway header), and the key-set generation
//! (bumped whenever keys change, so nothing verified under old keys is ever
//! hit). Per-request facts that vary within a scope (the route a
//! route-scoped token is bound to, allow lists) are checked after the cache.
//!
//! The token's part of the key is SipHash-1-3 with a 128-bit output, keyed
//! with 16 random bytes drawn once per cache from the host: a PRF, cheaper
//! than a SHA-256 of the token on every request (in V8 the SHA-256 of an
//! 800-byte token was half the cost of a cached verification). With a secret
//! key, finding a token whose key equals a cached valid token's key is a
//! forgery of a 128-bit PRF: the attacker cannot compute the function, only
//! try tokens online, each matching with probability about 2^-128 per cached
//! entry. The key never leaves the VM (not logged, not shared, not in any
//! answer; `Debug` hides it). Without random bytes the key would be known and
//! the digest forgeable offline, so such a cache is off (fail closed), which
//! is logged once at warn when the cache is built. The shared ring cannot use
//! a per-VM secret (every worker must find the same entry), so it keeps
//! SHA-256, computed only when the ring is consulted or written
//! (`shared_cache.rs`).

use std::cell::{Cell, RefCell};
use std::hash::Hasher;

use lru::LruCache;
use siphasher::sip128::{Hasher128, SipHasher13};

use super::identity::CacheKeyHasher;
pub use super::identity::{CacheKey, Identity};
use super::shared_cache::{key_set_fingerprint, SharedTokenCache};
use crate::config::Config;
use crate::host::{Host, LogLevel};

#[derive(Debug)]
struct Entry {
    identity: Identity,
    /// Last second (inclusive) the token is accepted, skew included.
    valid_until: u64,
    /// What this entry costs, as accounted against the budget.
    bytes: usize,
}

type BuildKeyHasher = std::hash::BuildHasherDefault<CacheKeyHasher>;

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

/// The secret that keys the token digest of this worker's cache keys.
struct TokenKeySecret([u8; 16]);

impl std::fmt::Debug for TokenKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeySecret(..)")
    }
}

/// Disabled when created with an entry cap or a byte budget of 0, or when
/// the host gave no random bytes for its key.
#[derive(Debug)]
pub struct TokenCache {
    entries: Option<RefCell<LruCache<CacheKey, Entry, BuildKeyHasher>>>,
    /// Keys the token digest in [`TokenCache::key`].
    secret: TokenKeySecret,
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

/// Default byte budget when a test gives only an entry count.
#[cfg(test)]
const UNBOUNDED_BYTES: usize = usize::MAX;

impl TokenCache {
    /// A cache of at most `capacity` entries (byte budget unbounded), keyed
    /// by a test host's (predictable) random bytes: tests only.
    #[cfg(test)]
    pub fn new(capacity: usize) -> Self {
        Self::with_budget(
            capacity,
            UNBOUNDED_BYTES,
            &mut crate::fake_host::FakeHost::new(0),
        )
    }

    /// A cache that keeps nothing (no configuration yet).
    pub fn disabled() -> Self {
        Self::build(0, 0, TokenKeySecret([0; 16]))
    }

    /// At most `max_entries` entries and `max_bytes` bytes, whichever binds
    /// first; the least recently used entries go. Its key secret comes from
    /// `host`: without one the cache is off (logged at warn).
    pub fn with_budget<H: Host>(max_entries: usize, max_bytes: usize, host: &mut H) -> Self {
        if max_entries == 0 || max_bytes == 0 {
            return Self::disabled();
        }
        let mut secret = [0u8; 16];
        if host.random_bytes(&mut secret).is_err() {
            host.log(
                LogLevel::Warn,
                "edge-auth: verified-token cache off: the host gave no random bytes \
                 for its key (every token is verified in full)",
            );
            return Self::disabled();
        }
        Self::build(max_entries, max_bytes, TokenKeySecret(secret))
    }

    fn build(max_entries: usize, max_bytes: usize, secret: TokenKeySecret) -> Self {
        let enabled = max_entries > 0 && max_bytes > 0;
        TokenCache {
            entries: enabled
                .then(|| RefCell::new(LruCache::unbounded_with_hasher(BuildKeyHasher::default()))),
            secret,
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

    /// The identity verified earlier for `key`, made from `token`: from
    /// this worker's cache, else from the shared ring under the key set this
    /// worker holds now. Counts `cache_hits`, `cache_shared_hits` or
    /// `cache_misses`.
    pub fn lookup<H: Host>(
        &self,
        config: &Config,
        host: &H,
        key: &CacheKey,
        token: &str,
        now: u64,
    ) -> Option<Identity> {
        debug_assert_eq!(key.token, self.token_digest(token), "key of another token");
        if let Some(identity) = self.get(key, now) {
            host.count("cache_hits");
            return Some(identity);
        }
        if self.shared.enabled() {
            let shared_key = key.shared(&key_set_fingerprint(config), token);
            if let Some(hit) = self.shared.get(host, &shared_key, now) {
                host.count("cache_shared_hits");
                self.insert_counted(host, *key, hit.identity.clone(), hit.valid_until);
                return Some(hit.identity);
            }
        }
        host.count("cache_misses");
        None
    }

    /// Keeps a freshly verified identity (of `token`, whose key is `key`)
    /// here and queues it for the shared ring; counts `cache_evictions`.
    pub fn store<H: Host>(
        &self,
        config: &Config,
        host: &H,
        key: CacheKey,
        token: &str,
        identity: Identity,
        valid_until: u64,
    ) {
        debug_assert_eq!(key.token, self.token_digest(token), "key of another token");
        if self.shared.enabled() {
            if let Ok(mut outbox) = self.outbox.try_borrow_mut() {
                if outbox.len() < MAX_OUTBOX {
                    let shared_key = key.shared(&key_set_fingerprint(config), token);
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
            token: self.token_digest(token),
        }
    }

    /// The keyed 128-bit PRF of `token` (module comment).
    fn token_digest(&self, token: &str) -> [u8; 16] {
        let mut h = SipHasher13::new_with_key(&self.secret.0);
        h.write(token.as_bytes());
        h.finish128().as_bytes()
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
    use crate::fake_host::FakeHost;

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
        let cache = budget(1000, 2 * one + one / 2);
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
        let cache = budget(1000, big.entry_bytes() + small.entry_bytes());
        for i in 0..3 {
            cache.insert(cache.key(0, 0, &i.to_string()), small.clone(), 10);
        }
        assert_eq!(cache.len(), 3);
        let evicted = cache.insert(cache.key(0, 0, "big"), big.clone(), 10);
        assert_eq!(evicted, 2, "two small entries make room for one big");
        assert_eq!(cache.len(), 2);
        // One larger than the whole budget is not kept at all.
        let tiny = budget(1000, small.entry_bytes());
        assert_eq!(tiny.insert(tiny.key(0, 0, "big"), big, 10), 0);
        assert!(tiny.is_empty());
    }

    #[test]
    fn expired_entries_give_back_their_bytes() {
        let cache = budget(10, usize::MAX);
        let key = cache.key(0, 0, "t");
        cache.insert(key, identity("a"), 5);
        assert!(cache.get(&key, 6).is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn capacity_zero_disables() {
        assert!(!budget(10, 0).enabled());
        let cache = TokenCache::new(0);
        assert!(!cache.enabled());
        cache.insert(cache.key(0, 0, "t"), identity("a"), 10);
        assert!(cache.get(&cache.key(0, 0, "t"), 0).is_none());
    }

    fn budget(max_entries: usize, max_bytes: usize) -> TokenCache {
        TokenCache::with_budget(max_entries, max_bytes, &mut FakeHost::new(0))
    }

    /// A cache of 8 entries whose secret `host` draws.
    fn keyed_by(host: &mut FakeHost) -> TokenCache {
        TokenCache::with_budget(8, usize::MAX, host)
    }

    #[test]
    fn different_tokens_never_share_a_local_key() {
        let cache = keyed_by(&mut FakeHost::new(0));
        // Neighbours: a prefix, one more byte, a NUL, one bit flipped.
        let tokens = ["", "a", "a\0", "aa", "b", "ab", "ba", "a.b.c", "a.b.d"];
        let mut seen = std::collections::HashSet::new();
        for t in tokens
            .iter()
            .map(|t| t.to_string())
            .chain((0..2000).map(|i| format!("t{i}")))
        {
            assert!(seen.insert(cache.key(0, 0, &t).token), "{t:?} collides");
        }
        cache.insert(cache.key(0, 0, "a.b.c"), identity("a"), 10);
        assert!(cache.get(&cache.key(0, 0, "a.b.d"), 0).is_none());
        assert!(cache.get(&cache.key(0, 0, "a.b.c"), 0).is_some());
    }

    #[test]
    fn the_local_key_depends_on_the_caches_secret() {
        let mut host = FakeHost::new(0);
        let (one, two) = (keyed_by(&mut host), keyed_by(&mut host));
        // Stable within one cache, different under another secret.
        assert_eq!(one.key(0, 0, "t"), one.key(0, 0, "t"));
        assert_ne!(one.key(0, 0, "t").token, two.key(0, 0, "t").token);
        // Not the unkeyed SHA-256 of the token either (any of its bytes).
        use sha2::Digest;
        let sha: [u8; 32] = sha2::Sha256::digest(b"t").into();
        assert!(!sha.starts_with(&one.key(0, 0, "t").token));
        // And nothing in Debug output gives the secret away.
        let secret = format!("{:?}", one.secret.0);
        assert!(!format!("{one:?}").contains(&secret));
    }

    #[test]
    fn without_random_bytes_the_cache_is_off_and_says_so() {
        let config = crate::config::compile_json(b"{}").unwrap();
        let mut host = FakeHost::new(0);
        host.fail_random = true;
        let cache = TokenCache::with_budget(8, usize::MAX, &mut host)
            .with_sharing(SharedTokenCache::new(64));
        assert!(!cache.enabled());
        let warnings = host.logged_at(LogLevel::Warn);
        assert_eq!(
            warnings,
            [
                "edge-auth: verified-token cache off: the host gave no random bytes \
              for its key (every token is verified in full)"
            ]
        );
        // Nothing is kept, here or in the shared ring; nothing is found.
        let key = cache.key(0, 0, "t");
        cache.store(&config, &host, key, "t", identity("a"), 10);
        cache.publish_shared(&mut host);
        assert!(cache.is_empty());
        assert!(host.shared.is_empty(), "nothing published");
        assert!(cache.lookup(&config, &host, &key, "t", 0).is_none());
        assert_eq!(host.logs.borrow().len(), 1, "logged once");
    }

    #[test]
    fn a_token_is_a_shared_hit_on_a_cache_with_another_secret() {
        let config = crate::config::compile_json(b"{}").unwrap();
        let mut host = FakeHost::new(0);
        let (one, two) = (
            keyed_by(&mut host).with_sharing(SharedTokenCache::new(64)),
            keyed_by(&mut host).with_sharing(SharedTokenCache::new(64)),
        );
        one.store(&config, &host, one.key(1, 0, "t"), "t", identity("a"), 10);
        one.publish_shared(&mut host);
        assert_eq!(host.shared.len(), 1);
        let hit = two.lookup(&config, &host, &two.key(1, 0, "t"), "t", 0);
        assert_eq!(hit.map(|i| i.consumer).as_deref(), Some("a"));
        assert_eq!(host.counter("cache_shared_hits"), 1);
        // Then a local hit there, under its own key.
        assert!(two.get(&two.key(1, 0, "t"), 0).is_some());
        // The shared name still holds scope and location.
        assert!(two
            .lookup(&config, &host, &two.key(1, 1, "t"), "t", 0)
            .is_none());
        assert!(two
            .lookup(&config, &host, &two.key(2, 0, "t"), "t", 0)
            .is_none());
        assert!(two
            .lookup(&config, &host, &two.key(1, 0, "u"), "u", 0)
            .is_none());
    }
}

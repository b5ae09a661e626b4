//! What the verified-token cache stores and how it is keyed: the identity a
//! verification established, and the key that names one decision.

/// What verification established, reusable while the token is valid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub consumer: String,
    pub audience: Vec<String>,
    /// Headers from claims: (header, value, override).
    pub claim_headers: Vec<(String, String, bool)>,
    /// Header to remove before forwarding (`keep_token: false`).
    pub strip_header: Option<String>,
    /// Issued by this gateway (its `aud` may bind it to a route).
    pub gateway_token: bool,
    /// The token's `sub` and `jti`, for the audit trail.
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub jti: Option<String>,
}

impl Identity {
    /// Heap bytes this identity holds (capacities: what is allocated).
    pub(super) fn heap_bytes(&self) -> usize {
        let s = |v: &String| v.capacity();
        s(&self.consumer)
            + self.audience.capacity() * std::mem::size_of::<String>()
            + self.audience.iter().map(s).sum::<usize>()
            + self.claim_headers.capacity() * std::mem::size_of::<(String, String, bool)>()
            + self
                .claim_headers
                .iter()
                .map(|(h, v, _)| s(h) + s(v))
                .sum::<usize>()
            + self.strip_header.as_ref().map_or(0, s)
            + self.sub.as_ref().map_or(0, s)
            + self.jti.as_ref().map_or(0, s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheKey {
    pub(super) scope: usize,
    /// Index of the token location in the scope's list.
    pub(super) location: usize,
    pub(super) generation: u64,
    /// The token under this cache's secret key (`TokenCache::key`).
    pub(super) token: [u8; 16],
}

/// One word for the cache's hash table: the token digest's first 64 bits,
/// already the output of a keyed PRF (`TokenCache::key`), folded with the
/// small configuration numbers. Equal keys hash alike (every field goes in).
impl std::hash::Hash for CacheKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let [a, b, c, d, e, f, g, h, ..] = self.token;
        let digest = u64::from_le_bytes([a, b, c, d, e, f, g, h]);
        let place = (self.scope as u64).rotate_left(48) ^ (self.location as u64).rotate_left(56);
        state.write_u64(digest ^ place ^ self.generation.rotate_left(24));
    }
}

/// Hashes a [`CacheKey`] with one multiply. A general hasher
/// (SipHash with random keys) guards a table against keys an attacker
/// picks; these keys are a secret PRF of the token, which nobody outside
/// the VM can steer, so a second keyed hash over them buys nothing and
/// cost every lookup. Any other key is mixed the same way (FxHash's
/// multiply-rotate), so the hasher stays correct, only not hardened.
#[derive(Debug, Default, Clone, Copy)]
pub struct CacheKeyHasher(u64);

impl std::hash::Hasher for CacheKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
}

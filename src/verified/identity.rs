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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub(super) scope: usize,
    /// Index of the token location in the scope's list.
    pub(super) location: usize,
    pub(super) generation: u64,
    /// The token under this cache's secret key (`TokenCache::key`).
    pub(super) token: [u8; 16],
}

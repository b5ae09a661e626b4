//! When to fetch a remote key set: a pure function of the state all workers
//! share, so every worker reaches the same answer and only the one that wins
//! the compare-and-swap fetches.

/// Wait at least this long between refetches triggered by unknown `kid`s, so
/// a flood of random kids cannot become a flood of IdP calls.
pub const UNKNOWN_KID_REFETCH_SECONDS: u64 = 30;
/// Retry backoff after failures: 1, 2, 4, 8, then every 15 s.
const MAX_BACKOFF_SECONDS: u64 = 15;

/// Fetch bookkeeping shared by all workers of the VM (Envoy shared data).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchState {
    pub last_attempt: u64,
    /// Consecutive failures since the last success.
    pub failures: u32,
    /// A worker is fetching until then; others wait.
    pub busy_until: u64,
}

impl FetchState {
    pub fn encode(&self) -> String {
        format!(
            "{},{},{}",
            self.last_attempt, self.failures, self.busy_until
        )
    }

    pub fn decode(text: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(text).ok()?;
        let mut parts = text.split(',');
        let state = FetchState {
            last_attempt: parts.next()?.parse().ok()?,
            failures: parts.next()?.parse().ok()?,
            busy_until: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(state)
    }
}

pub fn backoff_seconds(failures: u32) -> u64 {
    match failures {
        0 => 0,
        n => 1u64
            .checked_shl(n.saturating_sub(1))
            .unwrap_or(MAX_BACKOFF_SECONDS)
            .min(MAX_BACKOFF_SECONDS),
    }
}

/// Whether a fetch should start now.
/// - `published_at`: when the key set all workers share was fetched, if ever.
/// - `refetch_wanted`: a token named a kid the current set lacks.
pub fn should_fetch(
    state: &FetchState,
    published_at: Option<u64>,
    refetch_wanted: bool,
    refresh_seconds: u64,
    now: u64,
) -> bool {
    if now < state.busy_until {
        return false;
    }
    let retry_at = state
        .last_attempt
        .saturating_add(backoff_seconds(state.failures));
    if state.failures > 0 && now < retry_at {
        return false;
    }
    match published_at {
        // Never had keys: keep trying (with backoff): requests get 503 until then.
        None => true,
        Some(at) => {
            let periodic = now >= at.saturating_add(refresh_seconds);
            let last = at.max(state.last_attempt);
            let refetch = refetch_wanted && now >= last.saturating_add(UNKNOWN_KID_REFETCH_SECONDS);
            periodic || refetch || state.failures > 0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_000_000;

    fn state(last_attempt: u64, failures: u32, busy_until: u64) -> FetchState {
        FetchState {
            last_attempt,
            failures,
            busy_until,
        }
    }

    #[test]
    fn encodes_and_decodes() {
        let s = state(T, 3, T + 5);
        assert_eq!(FetchState::decode(s.encode().as_bytes()), Some(s));
        assert_eq!(FetchState::decode(b"1,2"), None);
        assert_eq!(FetchState::decode(b"1,2,3,4"), None);
        assert_eq!(FetchState::decode(b"a,b,c"), None);
    }

    #[test]
    fn backoff_grows_then_caps() {
        let seq: Vec<u64> = (0..8).map(backoff_seconds).collect();
        assert_eq!(seq, vec![0, 1, 2, 4, 8, 15, 15, 15]);
        assert_eq!(backoff_seconds(u32::MAX), 15);
    }

    #[test]
    fn first_fetch_then_backoff_while_failing() {
        assert!(should_fetch(&FetchState::default(), None, false, 600, T));
        // Someone is fetching.
        assert!(!should_fetch(&state(T, 0, T + 5), None, false, 600, T + 1));
        // Failed twice: wait 2 s from the last attempt.
        assert!(!should_fetch(&state(T, 2, 0), None, false, 600, T + 1));
        assert!(should_fetch(&state(T, 2, 0), None, false, 600, T + 2));
    }

    #[test]
    fn periodic_refresh() {
        let ok = state(T, 0, 0);
        assert!(!should_fetch(&ok, Some(T), false, 600, T + 599));
        assert!(should_fetch(&ok, Some(T), false, 600, T + 600));
        // A failed refresh keeps the old keys and retries with backoff.
        let failed = state(T + 600, 1, 0);
        assert!(!should_fetch(&failed, Some(T), false, 600, T + 600));
        assert!(should_fetch(&failed, Some(T), false, 600, T + 601));
    }

    #[test]
    fn unknown_kid_refetch_is_rate_limited() {
        let ok = state(T, 0, 0);
        assert!(!should_fetch(&ok, Some(T), true, 600, T + 29));
        assert!(should_fetch(&ok, Some(T), true, 600, T + 30));
        // Without a wish for a refetch nothing happens before the interval.
        assert!(!should_fetch(&ok, Some(T), false, 600, T + 30));
        // The limit counts from the last attempt, even a recent failed one
        // that has since succeeded again.
        assert!(!should_fetch(
            &state(T + 20, 0, 0),
            Some(T),
            true,
            600,
            T + 40
        ));
        assert!(should_fetch(
            &state(T + 20, 0, 0),
            Some(T),
            true,
            600,
            T + 50
        ));
    }

    /// A flood of unknown kids over ten minutes yields at most one fetch per
    /// 30 s when every fetch succeeds.
    #[test]
    fn flood_of_unknown_kids_is_bounded() {
        let mut s = FetchState::default();
        let mut published = Some(T);
        let mut fetches = 0;
        for now in T..T + 600 {
            if should_fetch(&s, published, true, 3600, now) {
                fetches += 1;
                s = state(now, 0, 0);
                published = Some(now);
            }
        }
        assert_eq!(fetches, 19, "one per 30 s after the first 30 s");
    }
}

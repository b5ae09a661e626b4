//! A worker's memory of its IdP's token endpoint not answering: after a
//! refresh or code exchange got no usable answer (no answer at all, or
//! Envoy's 502/503/504: connect failure, reset, call timeout; or the IdP's
//! own 502/503/504), session refreshes are refused at once with 503 +
//! `Retry-After` for [`IDP_BACKOFF_MS`] instead of each holding its stream
//! (and a connection to the IdP) for the whole call timeout. Then one
//! refresh goes out as a probe; the others are still refused until it is
//! answered (or its timeout passes). Nothing is let through meanwhile: a
//! refresh that is not made is a refused request.
//!
//! Without it a slow IdP holds `refresh rate × call timeout` streams per
//! worker (the soak's slow-IdP fault: 173 held requests after 18 s, each
//! about 50 KB of Envoy's heap); with it, at most those of one timeout.

use std::cell::Cell;

/// How long refreshes are refused after the IdP failed to answer one (the
/// `Retry-After` of the answer, in seconds, says the same).
pub const IDP_BACKOFF_MS: u64 = 5_000;

/// The state of one provider's token endpoint, as one worker saw it last.
#[derive(Debug, Default)]
pub struct IdpBackoff {
    /// No refresh call before this time (unix ms); `None`: the IdP answers.
    closed_until_ms: Cell<Option<u64>>,
}

impl IdpBackoff {
    /// Whether a refresh may call the IdP now. After a failure, the first
    /// request once the backoff is over is the probe: it may call, and the
    /// others wait for its answer (until `timeout_ms` from now at most).
    pub fn may_call(&self, now_ms: u64, timeout_ms: u64) -> bool {
        match self.closed_until_ms.get() {
            None => true,
            Some(until) if now_ms < until => false,
            Some(_) => {
                self.closed_until_ms
                    .set(Some(now_ms.saturating_add(timeout_ms)));
                true
            }
        }
    }

    /// The IdP's token endpoint answered a call (`status`; `None`: no answer
    /// at all): remembered as answering, or as failing from `now_ms`.
    pub fn record(&self, status: Option<u32>, now_ms: u64) {
        if unavailable(status) {
            self.closed_until_ms
                .set(Some(now_ms.saturating_add(IDP_BACKOFF_MS)));
        } else {
            self.closed_until_ms.set(None);
        }
    }

    /// Seconds until a refresh may call again (for `Retry-After`; at least 1).
    pub fn retry_after_seconds(&self, now_ms: u64) -> u64 {
        let left = self
            .closed_until_ms
            .get()
            .map_or(0, |until| until.saturating_sub(now_ms));
        left.div_ceil(1000).max(1)
    }
}

/// An answer that says the IdP could not answer (rather than refused): none
/// at all, or a gateway error (Envoy's own for a connect failure, a reset or
/// the call timeout, or the IdP's when it is overloaded).
pub fn unavailable(status: Option<u32>) -> bool {
    matches!(status, None | Some(502..=504))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_after_a_failure_then_one_probe() {
        let b = IdpBackoff::default();
        assert!(b.may_call(1_000, 5_000));
        b.record(Some(504), 1_000);
        assert!(!b.may_call(1_001, 5_000));
        assert_eq!(b.retry_after_seconds(1_001), 5);
        assert!(!b.may_call(5_999, 5_000));
        // The probe, and nobody else while it is out.
        assert!(b.may_call(6_000, 5_000));
        assert!(!b.may_call(6_001, 5_000));
        // The probe is answered: open again.
        b.record(Some(200), 6_050);
        assert!(b.may_call(6_051, 5_000));
        // A probe that never comes back frees the way after its timeout.
        b.record(None, 7_000);
        assert!(b.may_call(12_000, 5_000));
        assert!(!b.may_call(16_999, 5_000));
        assert!(b.may_call(17_000, 5_000));
    }

    #[test]
    fn a_refusal_is_an_answer() {
        let b = IdpBackoff::default();
        for status in [Some(400), Some(401), Some(500), Some(200)] {
            b.record(status, 1_000);
            assert!(b.may_call(1_001, 5_000), "{status:?}");
        }
        for status in [None, Some(502), Some(503), Some(504)] {
            b.record(status, 1_000);
            assert!(!b.may_call(1_001, 5_000), "{status:?}");
        }
    }
}

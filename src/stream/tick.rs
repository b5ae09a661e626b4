//! The worker's tick: the periods it runs at and the one in force, which
//! the worker and its streams share (a token POST waiting for its body
//! starts the fast tick).

use std::cell::Cell;

use crate::host::{Host, HostError};

/// Remote keys are looked after once a second (fetches themselves follow
/// their own schedule).
pub const KEY_TICK_MS: u64 = 1000;
/// While token POSTs wait for their body the worker ticks this often, to
/// answer those whose wait ran out.
pub const BODY_WAIT_TICK_MS: u64 = 200;

/// The tick period this worker last set. Envoy re-arms the tick timer from
/// now on every set, so a period set again on each token POST would keep it
/// from firing while POSTs arrive faster than the period: it is set only
/// when it changes.
#[derive(Debug, Default)]
pub(super) struct TickPeriod(Cell<Option<u64>>);

impl TickPeriod {
    pub(super) fn set<H: Host>(&self, host: &mut H, period_ms: u64) -> Result<(), HostError> {
        if self.0.get() == Some(period_ms) {
            return Ok(());
        }
        host.set_tick_period_ms(period_ms)?;
        self.0.set(Some(period_ms));
        Ok(())
    }
}

//! What the publisher's lanes, the coordinator and the metrics share: each
//! zone's state, the publication counters, and the stopping service's deadline.

use super::error::PublishError;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where a zone's newest change is (SPEC 13's words, as `status` uses them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZoneState {
    /// Not yet in the zone file.
    #[default]
    Pending,
    /// In the zone file; the reload (or `verify_server`) has not succeeded yet.
    Written,
    /// The reload succeeded (and `verify_server` serves it, when configured).
    Published,
}

impl ZoneState {
    pub const ALL: [ZoneState; 3] = [ZoneState::Published, ZoneState::Written, ZoneState::Pending];

    pub fn as_str(self) -> &'static str {
        match self {
            ZoneState::Pending => "pending",
            ZoneState::Written => "written",
            ZoneState::Published => "published",
        }
    }
}

/// One zone's publication as its lane last saw it (for metrics).
#[derive(Clone, Debug, Default)]
pub struct ZoneStats {
    pub state: ZoneState,
    /// Unix time of the last proven publication.
    pub last_success: Option<i64>,
    /// Unix time since which a change has been waiting (`None`: nothing waits).
    pub pending_since: Option<i64>,
    pub failures: u64,
    /// Rows left out of the latest rendering because they would break the zone
    /// (SPEC 17), and their sum over every rendering.
    pub rows_left_out: u64,
    pub rows_left_out_total: u64,
}

/// Publication counters (for logs and metrics).
#[derive(Default)]
pub struct PublishStats {
    pub publications: AtomicU64,
    pub failures: AtomicU64,
    pub last_duration_us: AtomicU64,
    /// Sum over every attempt, successful or not (with `publications + failures`
    /// it is the metrics' duration summary).
    pub duration_us_total: AtomicU64,
    /// Lanes restarted after they died.
    pub restarts: AtomicU64,
    /// Attempts given up for a newer change, during the reload or the
    /// `verify_server` wait (also counted in `failures`; SPEC 17).
    pub superseded: AtomicU64,
    /// Zone → its publication state.
    pub zones: Mutex<BTreeMap<String, ZoneStats>>,
}

impl PublishStats {
    /// Change one zone's entry.
    pub(super) fn zone(&self, zone: &str, f: impl FnOnce(&mut ZoneStats)) {
        let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        f(zones.entry(zone.to_string()).or_default());
    }

    /// A copy of every zone's entry.
    pub fn zones(&self) -> BTreeMap<String, ZoneStats> {
        self.zones.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// SPEC 17: SIGTERM finishes within `reload_timeout_secs` + 2 s whatever the
/// reload command does. Set once the service starts stopping; from then on every
/// reload and `verify_server` wait that starts ends by that deadline (one that
/// started before ends by its own timeout, which is earlier).
#[derive(Default)]
pub(crate) struct StopClock(Mutex<Option<Instant>>);

impl StopClock {
    pub(super) fn stop_by(&self, deadline: Instant) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(deadline);
    }

    /// `limit`, or what is left of the stopping service's time if that is
    /// shorter; `Stopping` once nothing is left.
    pub(super) fn budget(&self, limit: Duration) -> Result<Duration, PublishError> {
        match *self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            None => Ok(limit),
            Some(deadline) => match deadline.saturating_duration_since(Instant::now()) {
                left if left.is_zero() => Err(PublishError::Stopping),
                left => Ok(left.min(limit)),
            },
        }
    }
}

//! The events thread's counters, read by the metrics listener.

use std::sync::atomic::AtomicU64;

#[derive(Default, Debug)]
pub struct EventStats {
    /// Events the command took (exit 0).
    pub delivered: AtomicU64,
    /// Runs of the command that failed, timed out or could not start.
    pub failed: AtomicU64,
    /// Changes committed but not delivered yet (a gauge).
    pub pending: AtomicU64,
    /// Names stale now (a gauge).
    pub stale: AtomicU64,
    /// History entries pruned.
    pub pruned: AtomicU64,
}

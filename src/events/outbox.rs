//! The events thread's port, implemented by the store: the history read as an
//! outbox (changes after a delivered-up-to mark), the mark itself, stale names
//! and the history's pruning. The thread holds an `Outbox`, never the store.

use std::fmt;

/// One committed change of one name and family, as the history keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Its place in commit order (never reused).
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    pub name: String,
    /// `A` or `AAAA`.
    pub rtype: String,
    /// The addresses before and after, in numeric order (`new` empty: removed).
    pub old: Vec<String>,
    pub new: Vec<String>,
    /// `http`, `dns-update` or `cli`.
    pub via: String,
    pub client: Option<String>,
    pub token: Option<i64>,
    /// The zone serial of the publication that contains it.
    pub serial: u32,
}

/// A name found stale: its records were not updated for `stale_after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleName {
    pub name: String,
    /// Its last authenticated update (unix seconds).
    pub last_seen: i64,
    /// When it was found stale.
    pub since: i64,
}

/// What the history keeps (`[history]`), and up to where pruning may go: with
/// events on, no change is pruned before it was delivered.
#[derive(Clone, Copy, Debug)]
pub struct Keep {
    pub per_name: u32,
    /// Entries written before this (unix seconds) go.
    pub older_than: i64,
    /// History ids above this stay whatever their age or number (the
    /// delivered-up-to mark with events on; never past what is indexed).
    pub up_to: i64,
}

/// The outbox could not answer or record (the database failed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxError(pub String);

impl fmt::Display for OutboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OutboxError {}

/// What the events thread reads and records.
pub trait Outbox {
    /// The delivered-up-to mark (a history id); `None`: never set.
    fn delivered(&self) -> Result<Option<i64>, OutboxError>;

    /// Move the mark (never backwards); `None` removes it (events are off).
    fn set_delivered(&mut self, id: Option<i64>) -> Result<(), OutboxError>;

    /// The newest history id, 0 when there is none.
    fn newest(&self) -> Result<i64, OutboxError>;

    /// Changes committed after history id `after`, oldest first, at most `limit`.
    fn changes_after(&self, after: i64, limit: usize) -> Result<Vec<Change>, OutboxError>;

    /// Up to which history id `index_names` has indexed (0: none).
    fn indexed(&self) -> Result<i64, OutboxError>;

    /// Index the history rows written since the last call by name (a batch,
    /// one short transaction): the update itself only appends its row.
    /// Returns how many rows were indexed.
    fn index_names(&mut self) -> Result<u64, OutboxError>;

    /// Prune the names of the history rows after `cursor` (at most a small batch,
    /// one short transaction) to `keep.per_name` entries; returns the new cursor
    /// and how many rows went.
    fn prune_names(&mut self, cursor: i64, keep: &Keep) -> Result<(i64, u64), OutboxError>;

    /// Remove at most a small batch of entries older than `keep.older_than`, in
    /// one short transaction; returns how many went.
    fn prune_age(&mut self, keep: &Keep) -> Result<u64, OutboxError>;

    /// Mark the names with records last seen before `cutoff` stale (at `now`);
    /// with `notify` false their events count as delivered at once. Returns how
    /// many names are stale now.
    fn mark_stale(&mut self, cutoff: i64, now: i64, notify: bool) -> Result<u64, OutboxError>;

    /// The oldest stale name whose event was not delivered yet.
    fn next_stale(&self) -> Result<Option<StaleName>, OutboxError>;

    /// Its event was delivered (unless the name was updated meanwhile).
    fn stale_delivered(&mut self, s: &StaleName) -> Result<(), OutboxError>;
}

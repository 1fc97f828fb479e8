//! The only place with SQL, and no rules: each part is one job of the store, all
//! over the one `Store` of `db.rs`; this file only names them for the rest of the crate.

mod accounts;
mod acme;
mod backup;
mod db;
mod group;
mod heartbeat;
mod history;
mod message;
mod update;
mod zones;

pub use accounts::{Batch, NewToken, Overlap, TokenInfo};
pub use backup::{check_restorable, ensure_not_in_use, BackupInfo};
#[cfg(test)]
pub(crate) use db::ScratchDb;
pub use db::{Store, StoreError, LOCK_WAIT, MAX_CLI_HOLD};
pub use group::WriteGroup;
pub use heartbeat::{promoted_and_not_served_since, read_copy, CopyState, Heartbeat, Promotion};
pub use history::NameState;
pub use zones::{Counts, Publication};

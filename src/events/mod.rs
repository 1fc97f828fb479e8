//! What happened to a name, told to the operator's program (SPEC 15): the events
//! thread delivers each committed change from the history (the outbox) in commit
//! order, finds stale names and prunes the history, over the port `Outbox`.

pub mod command;
pub mod json;
pub mod outbox;
pub mod run;
pub mod stats;

pub use outbox::{Change, Outbox, OutboxError, StaleName};
pub use run::{spawn, Events};
pub use stats::EventStats;

//! The one table from why a DNS message is refused to its rcode (SPEC 14), as
//! `update/refusal.rs` is for HTTP: the rules' refusals, the ledger's errors
//! and the message's own faults each map here and nowhere else.

use super::translate::Unfit;
use crate::dns::wire::Rcode;
use crate::update::ledger::{LedgerError, Unmet};
use crate::update::Refusal;

/// A rule of the HTTP API refused: every one is REFUSED over DNS (the
/// database failing is the server's fault: SERVFAIL).
pub fn of_refusal(r: &Refusal) -> Rcode {
    match r {
        Refusal::Database(_) => Rcode::ServFail,
        _ => Rcode::Refused,
    }
}

/// The write did not happen.
pub fn of_ledger(e: &LedgerError) -> Rcode {
    match e {
        LedgerError::Unmet(u) => of_unmet(*u),
        LedgerError::Failed(_) => Rcode::ServFail,
        LedgerError::Revoked | LedgerError::Gone(_) | LedgerError::OverLimit(_) => Rcode::Refused,
    }
}

pub fn of_unmet(u: Unmet) -> Rcode {
    match u {
        Unmet::NxDomain => Rcode::NxDomain,
        Unmet::YxDomain => Rcode::YxDomain,
        Unmet::NxRrset => Rcode::NxRrset,
        Unmet::YxRrset => Rcode::YxRrset,
    }
}

pub fn of_unfit(u: Unfit) -> Rcode {
    match u {
        Unfit::FormErr(_) => Rcode::FormErr,
        Unfit::NotOurs => Rcode::NotAuth,
        Unfit::NotZone => Rcode::NotZone,
    }
}

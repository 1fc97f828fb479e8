//! What happened to one family of one name (SPEC 8's `X-Update-Result`), decided
//! from the action and the record sets before and after.

use super::address::{self, AddressAction, Family};
use super::plan::NamePlan;
use std::net::IpAddr;

/// What happened to one family of one name (SPEC 8's `X-Update-Result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Set,
    Unchanged,
    Deleted,
    Preserved,
    Guarded,
}

impl Outcome {
    pub fn decide(action: &AddressAction, before: &[IpAddr], after: &[IpAddr]) -> Outcome {
        match action {
            AddressAction::Preserve => Outcome::Preserved,
            AddressAction::Guard(_) => Outcome::Guarded,
            _ if before == after => Outcome::Unchanged,
            _ if after.is_empty() => Outcome::Deleted,
            _ => Outcome::Set,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Set => "set",
            Outcome::Unchanged => "unchanged",
            Outcome::Deleted => "deleted",
            Outcome::Preserved => "preserved",
            Outcome::Guarded => "guarded",
        }
    }
}

/// The decision the store asks for, for one family of one name given the
/// records stored now: the records after the update and the outcome to report.
pub fn decide(n: &NamePlan, f: Family, before: &[IpAddr]) -> (Vec<IpAddr>, Outcome) {
    let action = n.action(f);
    let after = address::apply(action, before);
    let outcome = Outcome::decide(action, before, &after);
    (after, outcome)
}

//! What the pipeline decided, before anything is written: per name, what
//! happens to each address family (`NamePlan`), and the whole request's `Plan`
//! with the trace `explain` shows.

use super::address::{AddressAction, Family, FamilyPlan};
use super::auth::AuthMethod;

/// One name to update and what happens to each family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamePlan {
    pub name: String,
    pub domain_id: i64,
    pub domain: String,
    pub zone: String,
    pub v4: FamilyPlan,
    pub v6: FamilyPlan,
}

impl NamePlan {
    pub fn family(&self, f: Family) -> &FamilyPlan {
        match f {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    pub fn action(&self, f: Family) -> &AddressAction {
        &self.family(f).action
    }
}

/// The outcome of the pipeline before anything is written.
#[derive(Clone, Debug)]
pub struct Plan {
    pub token_id: i64,
    pub owner: i64,
    pub method: AuthMethod,
    pub names: Vec<NamePlan>,
    /// Step by step, which rule decided what (for `explain`).
    pub trace: Vec<String>,
}

impl Plan {
    /// The registered domains this request touches (each counts for rate limiting).
    pub fn domains(&self) -> Vec<i64> {
        let mut d: Vec<i64> = self.names.iter().map(|n| n.domain_id).collect();
        d.sort_unstable();
        d.dedup();
        d
    }
}

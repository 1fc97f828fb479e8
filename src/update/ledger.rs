//! The write the rules decide, as the port the store implements: what a worker
//! may do to the database beyond reading (`Directory`), and the words its
//! failures come back in. A worker holds a `Ledger`, never the whole store.

use super::address::Family;
use super::bounds::Bounds;
use super::directory::{Directory, Domain};
use super::outcome::Outcome;
use super::plan::NamePlan;
use super::refusal::Refusal;
use log::error;
use std::fmt;
use std::net::IpAddr;

/// What `apply` did: per name, the outcome of each family and its records before
/// and after; per changed zone, the serial of the publication that will contain
/// the change.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub outcomes: Vec<(String, [Outcome; 2])>,
    /// Per name, in the order of `outcomes`: A, then AAAA.
    pub records: Vec<[FamilyRecords; 2]>,
    pub serials: Vec<(String, u32)>,
}

impl Applied {
    pub fn changed(&self) -> bool {
        !self.serials.is_empty()
    }
}

/// One family of one name: the records stored before the update and after it
/// (equal when nothing changes), each in numeric order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyRecords {
    pub before: Vec<IpAddr>,
    pub after: Vec<IpAddr>,
}

/// The rules' part of a write: the records stored now for one name and family
/// in, the records after the update and the outcome to report out. The ledger
/// only reads and writes.
pub type Decide = dyn Fn(&NamePlan, Family, &[IpAddr]) -> (Vec<IpAddr>, Outcome);

/// The way a change came in (SPEC 15's `via`), as the history records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The HTTP update API (and acme-dns's call).
    Http,
    /// DNS UPDATE (RFC 2136, SPEC 14).
    DnsUpdate,
    /// An admin command (`domain remove`, `user remove`).
    Cli,
}

impl Via {
    /// The word in the history and in events: `http`, `dns-update`, `cli`.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Http => "http",
            Via::DnsUpdate => "dns-update",
            Via::Cli => "cli",
        }
    }
}

/// Who made a change, recorded with it in the history (SPEC 15): the way in,
/// the client's address and the token it authenticated with. With a token,
/// `apply` also re-checks under the write lock that it still exists; an intake
/// that authenticates otherwise (DNS UPDATE's TSIG key) passes `None` and
/// re-checks its own credential.
#[derive(Clone, Copy, Debug)]
pub struct Provenance {
    pub via: Via,
    pub client: Option<IpAddr>,
    pub token: Option<i64>,
}

/// Who asks for an `_acme-challenge` write: a token (re-checked under the write
/// lock, as for address updates) or the operator on the command line.
#[derive(Clone, Copy, Debug)]
pub enum AcmeWriter {
    Token { id: i64, owner: i64 },
    Operator,
}

/// Why a write did not happen; nothing was written in every case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerError {
    /// Between planning and writing, the token was revoked (or its owner removed).
    Revoked,
    /// Between planning and writing, this domain was removed or changed hands.
    Gone(String),
    /// A `[limits]` bound would be exceeded (SPEC 13); the message names it.
    OverLimit(String),
    /// The database failed; the message is the store's.
    Failed(String),
    /// A DNS UPDATE's prerequisite does not hold (RFC 2136 §3.2); nothing written.
    Unmet(Unmet),
}

/// A prerequisite that does not hold, in RFC 2136 §2.4's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmet {
    /// "Name is in use" but it is not.
    NxDomain,
    /// "Name is not in use" but it is.
    YxDomain,
    /// "RRset exists" (value independent or dependent) but it does not, or differs.
    NxRrset,
    /// "RRset does not exist" but it does.
    YxRrset,
}

/// What the store holds for one owner name of a DNS UPDATE: its addresses (each
/// family in numeric order) and, for an `_acme-challenge` name, its live TXT
/// values (oldest first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    pub v4: Vec<IpAddr>,
    pub v6: Vec<IpAddr>,
    pub txt: Vec<String>,
}

impl Holding {
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty() && self.txt.is_empty()
    }
}

/// One owner name a DNS UPDATE reads (a prerequisite) or writes. `domain` is
/// set when the rules let the message's token write it: the registered domain
/// holding it (for an `_acme-challenge.NAME`, the one holding NAME).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageName {
    /// The DNS owner name, lower case, without trailing dot.
    pub name: String,
    pub zone: String,
    pub domain: Option<Domain>,
}

/// The DNS intake's part of a message write: what the store holds for each of
/// the message's names in (read under the write lock, in the order given), the
/// holdings after the message out, or the prerequisite that does not hold.
pub type Judge<'a> = dyn Fn(&[Holding]) -> Result<Vec<Holding>, Unmet> + 'a;

/// What a message write did: per name, before and after; the serials of the
/// zones it changed (empty: nothing changed, nothing written).
#[derive(Clone, Debug, Default)]
pub struct MessageApplied {
    pub before: Vec<Holding>,
    pub after: Vec<Holding>,
    pub serials: Vec<(String, u32)>,
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerError::Revoked => f.write_str("the token was revoked during the update"),
            LedgerError::Gone(d) => write!(f, "domain {d} was removed during the update"),
            LedgerError::OverLimit(m) | LedgerError::Failed(m) => f.write_str(m),
            LedgerError::Unmet(u) => write!(f, "prerequisite not met: {u:?}"),
        }
    }
}

impl std::error::Error for LedgerError {}

impl LedgerError {
    /// The refusal the client gets: the token or a domain vanished between plan
    /// and write, a `[limits]` bound would be exceeded (`400` naming it), or the
    /// database failed (`911`, logged). `explain` uses it too, so that it predicts
    /// the same answer, and the acme-dns call (`during` "call", `action`
    /// "acme-dns update"); an address update is `during` "update", `action` "update".
    pub fn refusal(self, during: &str, action: &str, names: &str) -> Refusal {
        match self {
            LedgerError::Revoked => Refusal::BadAuth {
                counted: false,
                reason: format!("token revoked during the {during}"),
            },
            LedgerError::Gone(d) => Refusal::NoHost(format!("{d} was removed during the {during}")),
            LedgerError::OverLimit(m) => Refusal::BadRequest(m),
            LedgerError::Failed(e) => {
                error!("{action} of {names} failed: {e}");
                Refusal::Database(e)
            }
            // Only a DNS UPDATE has prerequisites; it answers them itself.
            LedgerError::Unmet(u) => Refusal::BadRequest(format!("prerequisite not met: {u:?}")),
        }
    }
}

/// What a worker may do to the database: read what the rules need
/// (`Directory`) and write what they decided, each write one transaction, all of
/// it or nothing.
pub trait Ledger: Directory {
    /// Apply an update plan atomically: all names or none, re-checked under the
    /// write lock (`from`'s token and the domains still held by `owner`) and held
    /// to `limits`. Each changed name and family gets its history row, from
    /// `from`, in the same transaction. Nothing is written when nothing changes.
    fn apply(
        &mut self,
        names: &[NamePlan],
        from: &Provenance,
        owner: i64,
        decide: &Decide,
        limits: &Bounds,
    ) -> Result<Applied, LedgerError>;

    /// What `apply` would do with the same `decide` and `limits`, without writing
    /// (`explain`); the serials are those the change would be published under.
    fn dry_run(
        &mut self,
        names: &[NamePlan],
        decide: &Decide,
        limits: &Bounds,
    ) -> Result<Applied, LedgerError>;

    /// Write `value` as the newest `_acme-challenge` value of `name` (held through
    /// `domain`), keeping the newest per the rules; returns the serial of the
    /// publication that will contain it.
    fn acme_set(
        &mut self,
        domain: &Domain,
        name: &str,
        value: &str,
        who: AcmeWriter,
        limits: &Bounds,
    ) -> Result<u32, LedgerError>;

    /// One DNS UPDATE message (RFC 2136 §3.2–3.4), all of it or nothing, in one
    /// write transaction: the token re-checked, each writable name's domain
    /// still the owner's, `judge` run on what the store holds now, the
    /// difference written (addresses; `_acme-challenge` values with the time of
    /// this write) and held to `limits`; each changed A/AAAA set gets its history
    /// row (SPEC 15, `from`). Nothing is written when nothing changes.
    fn apply_message(
        &mut self,
        token: i64,
        owner: i64,
        names: &[MessageName],
        judge: &Judge<'_>,
        limits: &Bounds,
        from: &Provenance,
    ) -> Result<MessageApplied, LedgerError>;

    /// What `names` hold now (one read), for a query's answer.
    fn holdings(&mut self, names: &[MessageName]) -> Result<Vec<Holding>, LedgerError>;

    /// The serial the zone's SOA carries now (the last proven publication; the
    /// pending one before the first), for an SOA query's answer.
    fn soa_serial(&mut self, zone: &str) -> Result<Option<u32>, LedgerError>;
}

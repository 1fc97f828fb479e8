//! What the publisher reads and records, as the port the store implements: a
//! lane and the coordinator hold a `ZoneFeed`, never the whole store, so a
//! signature says what a publishing thread may touch (and a test can hand it a
//! fake).

use crate::update::address::Family;
use std::fmt;
use std::net::IpAddr;

/// One publication attempt: the serial it carries and the generation (change
/// counter) whose changes it contains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub serial: u32,
    pub generation: i64,
}

/// A stored address row whose blob is neither 4 nor 16 bytes long: its type and
/// the length it has (the publisher names it, leaves it out and counts it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAddr {
    pub family: Family,
    pub len: usize,
}

/// A name seen in an authenticated update (changed or not), for its last seen
/// (SPEC 15): kept in memory by the workers, written in batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub name: String,
    pub zone: String,
    /// The id of the domain that holds it.
    pub domain: i64,
    /// Unix seconds.
    pub at: i64,
    /// When an update last changed its records, if one did since the last batch.
    pub changed: Option<i64>,
}

/// The feed could not answer or record (the database failed); the message is
/// the store's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedError(pub String);

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FeedError {}

/// How a lane (re)started by the coordinator gets its own connection.
pub type OpenFeed = dyn Fn() -> Result<Box<dyn ZoneFeed + Send>, FeedError> + Send + Sync;

/// What a publishing lane and the coordinator read and record.
pub trait ZoneFeed {
    /// The zone's change counter and the one its last proven publication
    /// contained (`None`: the zone has no row). They differ while a change is
    /// unpublished.
    fn generations(&self, zone: &str) -> Result<Option<(i64, i64)>, FeedError>;

    /// Take the next serial for a publication of `zone`, with the generation it
    /// contains; read the records afterwards. Nothing counts as published yet.
    fn start_publication(&mut self, zone: &str) -> Result<Attempt, FeedError>;

    /// A publication the lane proved (reloaded, and served when verified); never
    /// moves backwards.
    fn record_published(&mut self, zone: &str, a: Attempt) -> Result<(), FeedError>;

    /// A failed publication, for `status`: its error, and the attempt whose file
    /// it wrote if it got that far. Bookkeeping only.
    fn record_failure(
        &mut self,
        zone: &str,
        error: &str,
        written: Option<Attempt>,
    ) -> Result<(), FeedError>;

    /// Every address record of `zone` in stable order (name, A before AAAA,
    /// numeric), in one read; a malformed row comes as `Err`. Returns how many.
    fn for_each_record(
        &self,
        zone: &str,
        f: &mut dyn FnMut(&str, Result<IpAddr, BadAddr>),
    ) -> Result<usize, FeedError>;

    /// Every `_acme-challenge` value of `zone` live at `now` (name, value), in
    /// stable order. Returns how many.
    fn for_each_acme_value(
        &self,
        zone: &str,
        now: i64,
        f: &mut dyn FnMut(&str, &str),
    ) -> Result<usize, FeedError>;

    /// Remove the `_acme-challenge` values expired at `now`; returns the zones
    /// that changed (marked for publication).
    fn expire_acme(&mut self, now: i64) -> Result<Vec<String>, FeedError>;

    /// Record when tokens were last used (token id, unix time) and names last
    /// seen, one write for the batch.
    fn touch(&mut self, used: &[(i64, i64)], seen: &[Seen]) -> Result<(), FeedError>;

    /// The registered domains of `zone` with a TTL of their own (`domain set
    /// --ttl`): their records and those of the names below them carry it.
    fn domain_ttls(&self, zone: &str) -> Result<Vec<(String, u32)>, FeedError>;
}

/// A feed in memory for the publisher's unit tests: one zone's rows and
/// counters, and what the publisher recorded.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;

    #[derive(Default)]
    pub(crate) struct FakeFeed {
        pub generation: i64,
        pub published: i64,
        pub next_serial: u32,
        pub rows: Vec<(String, Result<IpAddr, BadAddr>)>,
        pub acme: Vec<(String, String)>,
        pub ttls: Vec<(String, u32)>,
        /// `start_publication` fails with this when set.
        pub broken: Option<String>,
        pub recorded: Vec<Attempt>,
        pub failures: Vec<(String, Option<Attempt>)>,
    }

    impl ZoneFeed for FakeFeed {
        fn generations(&self, _zone: &str) -> Result<Option<(i64, i64)>, FeedError> {
            Ok(Some((self.generation, self.published)))
        }

        fn start_publication(&mut self, _zone: &str) -> Result<Attempt, FeedError> {
            if let Some(e) = &self.broken {
                return Err(FeedError(e.clone()));
            }
            self.next_serial += 1;
            Ok(Attempt {
                serial: self.next_serial - 1,
                generation: self.generation,
            })
        }

        fn record_published(&mut self, _zone: &str, a: Attempt) -> Result<(), FeedError> {
            self.published = self.published.max(a.generation);
            self.recorded.push(a);
            Ok(())
        }

        fn record_failure(
            &mut self,
            _zone: &str,
            error: &str,
            written: Option<Attempt>,
        ) -> Result<(), FeedError> {
            self.failures.push((error.to_string(), written));
            Ok(())
        }

        fn for_each_record(
            &self,
            _zone: &str,
            f: &mut dyn FnMut(&str, Result<IpAddr, BadAddr>),
        ) -> Result<usize, FeedError> {
            for (name, row) in &self.rows {
                f(name, *row);
            }
            Ok(self.rows.len())
        }

        fn for_each_acme_value(
            &self,
            _zone: &str,
            _now: i64,
            f: &mut dyn FnMut(&str, &str),
        ) -> Result<usize, FeedError> {
            for (name, value) in &self.acme {
                f(name, value);
            }
            Ok(self.acme.len())
        }

        fn expire_acme(&mut self, _now: i64) -> Result<Vec<String>, FeedError> {
            Ok(Vec::new())
        }

        fn touch(&mut self, _used: &[(i64, i64)], _seen: &[Seen]) -> Result<(), FeedError> {
            Ok(())
        }

        fn domain_ttls(&self, _zone: &str) -> Result<Vec<(String, u32)>, FeedError> {
            Ok(self.ttls.clone())
        }
    }
}

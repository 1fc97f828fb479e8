//! One zone's publishing lane (its own thread): batches its changes, renders and
//! writes the file, reloads, verifies, and records the publication only once proved.
//!
//! The rules it keeps (SPEC 13): the published generation is written only after
//! the reload succeeded (and `verify_server` serves the serial), in one statement
//! (`ZoneFeed::record_published`); a failure records nothing that matters (its error
//! text, best-effort), so the zone simply stays dirty and is tried again; backoff
//! holds only while nothing new arrived — a newer change goes at once, and
//! (SPEC 17) one that arrives while a reload or a `verify_server` wait has run
//! past its patience (1 s, or twice the last success) ends that attempt as
//! superseded: no backoff, the next attempt starts at once.

use super::error::PublishError;
use super::feed::{Attempt, ZoneFeed};
use super::reload::{run_reload, wait_until_served, SUPERSEDE_AFTER};
use super::render::render_zone;
use super::state::{PublishStats, StopClock, ZoneState};
use super::zone::write_atomically;
use crate::config::settings::{Config, Zone};
use crate::os::clock::now_unix;
use log::{error, info, warn};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the database is polled for changes made by other processes (admin
/// commands), and how often the coordinator looks after its lanes: well inside
/// SPEC 2's "published within 2 seconds".
pub(super) const POLL: Duration = Duration::from_millis(250);

/// What the coordinator tells a lane.
pub(super) enum Msg {
    /// A change committed at this instant.
    Changed(Instant),
    Shutdown,
}

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A `verify_server` wait is given up for a newer change only after this long
/// (or twice the last successful wait, if longer): a working nameserver has
/// loaded a small zone well before.
const PATIENCE_MIN: Duration = Duration::from_secs(1);

/// After a failed attempt: when to try again if nothing changes.
struct Retry {
    at: Instant,
    backoff: Duration,
    /// The generation the failed attempt contained: a higher one is a new change.
    generation: i64,
}

pub(super) struct Lane {
    zone: Zone,
    config: Arc<Config>,
    feed: Box<dyn ZoneFeed + Send>,
    stats: Arc<PublishStats>,
    /// When the stopping service must be done with reloads (SPEC 17).
    stop: Arc<StopClock>,
    retry: Option<Retry>,
    /// The earliest next attempt: a zone is republished at most as often as it
    /// takes to render and write it (at most half the lane's time), so under a
    /// steady stream of updates a large zone is not re-rendered back to back.
    paced_until: Option<Instant>,
    /// The newest generation this lane wrote to the file (for the state).
    written: Option<i64>,
    /// The rendering buffer, kept between publications.
    buf: Vec<u8>,
    /// How long the last render and write took.
    last_work: Duration,
    /// How long the nameserver took to serve the last successful publication.
    last_verify: Duration,
    /// How long the last successful reload command ran.
    last_reload: Duration,
}

impl Lane {
    pub(super) fn new(
        zone: Zone,
        config: Arc<Config>,
        feed: Box<dyn ZoneFeed + Send>,
        stats: Arc<PublishStats>,
        stop: Arc<StopClock>,
    ) -> Lane {
        Lane {
            zone,
            config,
            feed,
            stats,
            stop,
            retry: None,
            paced_until: None,
            written: None,
            buf: Vec::new(),
            last_work: Duration::ZERO,
            last_verify: Duration::ZERO,
            last_reload: Duration::ZERO,
        }
    }

    /// Publish once (SPEC 5: on start, every zone), then whenever the zone is
    /// dirty and may go, until `Shutdown` — which publishes what is pending first.
    pub(super) fn run(mut self, rx: Receiver<Msg>) {
        let generation = self.generations().map_or(-1, |(g, _)| g);
        self.attempt(generation);
        loop {
            let now = Instant::now();
            let wake = [self.retry.as_ref().map(|r| r.at), self.paced_until]
                .into_iter()
                .flatten()
                .filter(|t| *t > now)
                .min();
            let wait = wake.map_or(POLL, |t| (t - now).min(POLL));
            let shutdown = match rx.recv_timeout(wait) {
                Ok(Msg::Changed(at)) => self.gather(&rx, at),
                Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => true,
                // Also how a change by another process (the CLI) is noticed.
                Err(RecvTimeoutError::Timeout) => false,
            };
            if let Some((generation, published)) = self.generations() {
                if generation != published && (shutdown || self.may_go(generation)) {
                    self.attempt(generation);
                }
            }
            if shutdown {
                return;
            }
        }
    }

    /// The zone's (generation, published generation), and its state for the
    /// metrics; `None` when the database cannot say (logged).
    fn generations(&mut self) -> Option<(i64, i64)> {
        match self.feed.generations(&self.zone.name) {
            Ok(Some((g, p))) => {
                let state = if g == p {
                    ZoneState::Published
                } else if self.written.is_some_and(|w| w >= g) {
                    ZoneState::Written
                } else {
                    ZoneState::Pending
                };
                self.stats.zone(&self.zone.name, |z| {
                    z.state = state;
                    if state == ZoneState::Published {
                        z.pending_since = None;
                    } else if z.pending_since.is_none() {
                        z.pending_since = Some(now_unix());
                    }
                });
                Some((g, p))
            }
            Ok(None) => None, // no row: `serve` creates them before the lanes start
            Err(e) => {
                warn!("zone {}: cannot read its state: {e}", self.zone.name);
                None
            }
        }
    }

    /// Batch: wait until `publish_delay` after the first change, collecting more.
    /// The window runs from when that change was committed, not from when this
    /// thread got to it: a change that arrived during the previous publication
    /// has waited already. True if told to shut down.
    fn gather(&self, rx: &Receiver<Msg>, first: Instant) -> bool {
        let until = first + self.config.dns.publish_delay;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match rx.recv_timeout(left) {
                Ok(Msg::Changed(_)) => continue,
                Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => return true,
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    }

    /// Whether a dirty zone at `generation` may be attempted now: not while paced;
    /// after a failure, at once if something new arrived since, else after the backoff.
    fn may_go(&self, generation: i64) -> bool {
        let now = Instant::now();
        if self.paced_until.is_some_and(|t| t > now) {
            return false;
        }
        match &self.retry {
            None => true,
            Some(r) => generation != r.generation || r.at <= now,
        }
    }

    /// One publication attempt, its bookkeeping and its log line. `generation` is
    /// the zone's as last read (the attempt's own, once it has one, is better).
    fn attempt(&mut self, generation: i64) {
        let name = self.zone.name.clone();
        let started = Instant::now();
        let mut attempt = None;
        let result = self.try_publish(&mut attempt);
        let took = started.elapsed();
        self.paced_until = Some(Instant::now() + self.last_work);
        let us = took.as_micros() as u64;
        self.stats.last_duration_us.store(us, Ordering::Relaxed);
        self.stats
            .duration_us_total
            .fetch_add(us, Ordering::Relaxed);
        match result {
            Ok(a) => {
                self.stats.publications.fetch_add(1, Ordering::Relaxed);
                // What waited is out; a change that arrived meanwhile starts its
                // wait when `generations` below sees it (off by this attempt's time).
                self.stats.zone(&name, |z| {
                    z.last_success = Some(now_unix());
                    z.pending_since = None;
                });
                self.retry = None;
                info!(
                    "published zone {name} serial {} in {} ms ({} ms rendering and writing)",
                    a.serial,
                    took.as_millis(),
                    self.last_work.as_millis()
                );
                // Proved; now recorded. If this fails the zone stays dirty and is
                // published again (harmless), after a backoff so a failing database
                // does not make us reload in a tight loop.
                if let Err(e) = self.feed.record_published(&name, a) {
                    error!("zone {name} serial {} is published but recording it failed: {e}; publishing it again", a.serial);
                    self.back_off(a.generation);
                }
                self.generations(); // the state and lag for the metrics
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                self.stats.zone(&name, |z| z.failures += 1);
                let written = attempt.filter(|a| self.written == Some(a.generation));
                // Only for `status`: whether or not this is written, the zone stays dirty.
                if let Err(re) = self.feed.record_failure(&name, &e.to_string(), written) {
                    error!("zone {name}: cannot record the failure ({re}); the zone stays pending and is retried");
                }
                if e.is_superseded() {
                    // Not a fault to back off from: the newer change goes at once (SPEC 17).
                    self.stats.superseded.fetch_add(1, Ordering::Relaxed);
                    warn!("publishing zone {name} superseded: {e}");
                    return;
                }
                let backoff = self.back_off(attempt.map_or(generation, |a| a.generation));
                error!(
                    "publishing zone {name} failed: {e}; retrying in {} s, or at once when something changes",
                    backoff.as_secs()
                );
            }
        }
    }

    /// Set (or double) the backoff after a failed attempt that contained `generation`.
    fn back_off(&mut self, generation: i64) -> Duration {
        let backoff = self
            .retry
            .as_ref()
            .map_or(BACKOFF_MIN, |r| (r.backoff * 2).min(BACKOFF_MAX));
        self.retry = Some(Retry {
            at: Instant::now() + backoff,
            backoff,
            generation,
        });
        backoff
    }

    /// Render, write, reload, verify. `attempt` is set as soon as the serial is
    /// taken, so that a failure can say which generation it was about.
    fn try_publish(&mut self, attempt: &mut Option<Attempt>) -> Result<Attempt, PublishError> {
        let work_started = Instant::now();
        let a = self.feed.start_publication(&self.zone.name)?;
        *attempt = Some(a);
        let mut text = std::mem::take(&mut self.buf);
        text.clear();
        let read = render_zone(
            &self.zone,
            self.config.dns.ttl,
            a.serial,
            &*self.feed,
            &mut text,
        );
        if let Ok(r) = &read {
            let n = r.left_out.len() as u64;
            self.stats.zone(&self.zone.name, |z| {
                z.rows_left_out = n;
                z.rows_left_out_total += n;
            });
        }
        let written = read.and_then(|_| {
            write_atomically(&self.zone.file, &text).map_err(|error| PublishError::Write {
                file: self.zone.file.clone(),
                error,
            })
        });
        // The buffer keeps its capacity: the next publication of a large zone
        // does not grow it again.
        self.buf = text;
        self.last_work = work_started.elapsed();
        written?;
        self.written = Some(a.generation);
        self.stats
            .zone(&self.zone.name, |z| z.state = ZoneState::Written);
        let dns = &self.config.dns;
        let (feed, zone) = (&self.feed, &self.zone.name);
        // A newer change: the generation moved past this attempt's.
        let mut newer = || {
            feed.generations(zone)
                .is_ok_and(|g| g.is_some_and(|(g, _)| g > a.generation))
        };
        if !dns.reload_command.is_empty() {
            // Twice the usual reload time, at least 1 s: a reload that normally
            // takes longer is not superseded forever by a steady stream of changes.
            let patience = (self.last_reload * 2).max(SUPERSEDE_AFTER);
            let reload_started = Instant::now();
            run_reload(
                &dns.reload_command,
                zone,
                &self.zone.file,
                self.stop.budget(dns.reload_timeout)?,
                patience,
                &mut newer,
            )?;
            self.last_reload = reload_started.elapsed();
        }
        if let Some(server) = dns.verify_server {
            let patience = (self.last_verify * 2).max(PATIENCE_MIN);
            let verify_started = Instant::now();
            wait_until_served(
                server,
                zone,
                a.serial,
                self.stop.budget(dns.reload_timeout)?,
                patience,
                &mut newer,
            )?;
            self.last_verify = verify_started.elapsed();
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::feed::fake::FakeFeed;
    use crate::publish::feed::{BadAddr, FeedError};
    use std::net::IpAddr;
    use std::path::{Path, PathBuf};
    use std::sync::{mpsc, Mutex};

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dedyn-lane-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    /// A lane over `fake` for one zone whose file is in `dir`, run until the
    /// `Shutdown` already queued: it publishes once (SPEC 5), then stops.
    /// Returns the fake as the lane left it, the stats and the zone file.
    fn run_once(
        dir: &Path,
        fake: FakeFeed,
        reload: &str,
    ) -> (FakeFeed, Arc<PublishStats>, PathBuf) {
        let file = dir.join("dedyn.example.zone");
        let text = format!(
            "[dns]\nreload_command = \"{reload}\"\n[[zone]]\nname = \"dedyn.example\"\nfile = \"{}\"\n",
            file.display()
        );
        let config = Arc::new(Config::parse(&text, None).expect("config"));
        let out = Arc::new(Mutex::new(None));
        let feed = Recording {
            inner: fake,
            out: out.clone(),
        };
        let (tx, rx) = mpsc::channel();
        tx.send(Msg::Shutdown).expect("queued");
        let stats = Arc::new(PublishStats::default());
        let zone = config.zones[0].clone();
        Lane::new(zone, config, Box::new(feed), stats.clone(), Arc::default()).run(rx);
        let fake = out
            .lock()
            .unwrap()
            .take()
            .expect("the lane dropped its feed");
        (fake, stats, file)
    }

    /// SPEC 13: a publication is recorded only once the reload proved it, and
    /// with the serial the file carries.
    #[test]
    fn a_dirty_zone_is_written_reloaded_and_then_recorded() {
        let dir = scratch("ok");
        let fake = FakeFeed {
            generation: 7,
            published: 6,
            next_serial: 2026120701,
            rows: vec![("a.dedyn.example".into(), Ok("192.0.2.1".parse().unwrap()))],
            ..FakeFeed::default()
        };
        let (fake, stats, file) = run_once(&dir, fake, "true");
        let attempt = Attempt {
            serial: 2026120701,
            generation: 7,
        };
        assert_eq!(fake.recorded, vec![attempt]);
        assert!(fake.failures.is_empty(), "{:?}", fake.failures);
        let zone = std::fs::read_to_string(&file).expect("the zone file");
        assert!(zone.contains("2026120701"), "{zone}");
        assert!(zone.contains("192.0.2.1"), "{zone}");
        assert_eq!(stats.publications.load(Ordering::Relaxed), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A reload that fails records the failure (with the file it wrote) and
    /// never the publication: the zone stays dirty.
    #[test]
    fn a_failed_reload_records_the_failure_and_never_the_publication() {
        let dir = scratch("fail");
        let fake = FakeFeed {
            generation: 3,
            published: 2,
            next_serial: 10,
            ..FakeFeed::default()
        };
        let (fake, stats, _) = run_once(&dir, fake, "exit 3");
        assert!(fake.recorded.is_empty(), "{:?}", fake.recorded);
        assert_eq!(fake.published, 2);
        let (error, written) = fake.failures.first().expect("a failure recorded");
        assert!(error.contains('3'), "{error}");
        let attempt = Attempt {
            serial: 10,
            generation: 3,
        };
        assert_eq!(*written, Some(attempt));
        assert!(stats.failures.load(Ordering::Relaxed) >= 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A database that cannot start a publication: nothing written, nothing recorded.
    #[test]
    fn a_feed_that_cannot_start_a_publication_records_nothing_published() {
        let dir = scratch("broken");
        let fake = FakeFeed {
            generation: 3,
            published: 2,
            broken: Some("database error: disk I/O error".into()),
            ..FakeFeed::default()
        };
        let (fake, _, file) = run_once(&dir, fake, "true");
        assert!(fake.recorded.is_empty(), "{:?}", fake.recorded);
        let (error, written) = fake.failures.first().expect("a failure recorded");
        assert!(error.contains("disk I/O error"), "{error}");
        assert_eq!(*written, None);
        assert!(!file.exists(), "no zone file without a serial");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Hands the fake back when the lane drops it, so a test can read what was recorded.
    struct Recording {
        inner: FakeFeed,
        out: Arc<Mutex<Option<FakeFeed>>>,
    }

    impl Drop for Recording {
        fn drop(&mut self) {
            let inner = std::mem::take(&mut self.inner);
            *self.out.lock().unwrap() = Some(inner);
        }
    }

    impl ZoneFeed for Recording {
        fn generations(&self, z: &str) -> Result<Option<(i64, i64)>, FeedError> {
            self.inner.generations(z)
        }
        fn start_publication(&mut self, z: &str) -> Result<Attempt, FeedError> {
            self.inner.start_publication(z)
        }
        fn record_published(&mut self, z: &str, a: Attempt) -> Result<(), FeedError> {
            self.inner.record_published(z, a)
        }
        fn record_failure(
            &mut self,
            z: &str,
            e: &str,
            w: Option<Attempt>,
        ) -> Result<(), FeedError> {
            self.inner.record_failure(z, e, w)
        }
        fn for_each_record(
            &self,
            z: &str,
            f: &mut dyn FnMut(&str, Result<IpAddr, BadAddr>),
        ) -> Result<usize, FeedError> {
            self.inner.for_each_record(z, f)
        }
        fn for_each_acme_value(
            &self,
            z: &str,
            now: i64,
            f: &mut dyn FnMut(&str, &str),
        ) -> Result<usize, FeedError> {
            self.inner.for_each_acme_value(z, now, f)
        }
        fn expire_acme(&mut self, now: i64) -> Result<Vec<String>, FeedError> {
            self.inner.expire_acme(now)
        }
        fn touch(
            &mut self,
            u: &[(i64, i64)],
            s: &[crate::publish::feed::Seen],
        ) -> Result<(), FeedError> {
            self.inner.touch(u, s)
        }
        fn domain_ttls(&self, z: &str) -> Result<Vec<(String, u32)>, FeedError> {
            self.inner.domain_ttls(z)
        }
    }
}

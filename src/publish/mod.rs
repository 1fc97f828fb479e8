//! The background publisher: one thread per zone (a "lane") renders and atomically
//! replaces its zone file and reloads it, and a coordinator fans changes out to them.
//!
//! Why a thread per zone: a reload that fails, hangs or is ignored in one zone must
//! never delay another (SPEC 13), and a blocking reload with a timeout is simplest
//! when nothing else waits behind it. The coordinator restarts a lane that died
//! (a panic) and writes token last-used and name last-seen times. A zone counts as published only
//! once its lane proved it (`lane.rs`); see "Publishing" in docs/architecture.md.

pub mod check;
mod error;
pub mod feed;
mod lane;
mod last_used;
pub(crate) mod reload;
pub mod render;
pub mod state;
pub mod zone;

pub use error::PublishError;
pub use last_used::{flush_every, LastUsed};
pub use reload::{run_reload, wait_until_served};

use crate::config::settings::{Config, Zone};
use crate::os::clock::now_unix;
use feed::{OpenFeed, ZoneFeed};
use lane::{Msg, POLL};
use log::{error, info, warn};
use state::{PublishStats, StopClock};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A lane that died is restarted at most this often (a lane that cannot even open
/// the database must not spin).
const RESTART_EVERY: Duration = Duration::from_secs(1);

/// The handle the workers use to say "something changed".
#[derive(Clone)]
pub struct Publisher {
    tx: Sender<Msg>,
    stop: Arc<StopClock>,
    reload_timeout: Duration,
}

impl Publisher {
    pub fn changed(&self) {
        let _ = self.tx.send(Msg::Changed(Instant::now()));
    }

    /// The service starts stopping (SIGTERM): from now on, reloads and
    /// `verify_server` waits get `reload_timeout_secs` in all (SPEC 17).
    pub fn stopping(&self) {
        self.stop.stop_by(Instant::now() + self.reload_timeout);
    }

    /// Publish what is pending (within the stopping time), write last-used
    /// times, and stop the threads.
    pub fn shutdown(&self) {
        self.stopping();
        let _ = self.tx.send(Msg::Shutdown);
    }
}

/// Start the coordinator and one lane per zone. Every zone is published once
/// first (by its lane, all in parallel). `feed` is the coordinator's; each lane
/// opens its own connection with `open`.
pub fn spawn(
    config: Arc<Config>,
    feed: Box<dyn ZoneFeed + Send>,
    open: Arc<OpenFeed>,
    last_used: Arc<LastUsed>,
    stats: Arc<PublishStats>,
) -> std::io::Result<(Publisher, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(StopClock::default());
    let publisher = Publisher {
        tx,
        stop: stop.clone(),
        reload_timeout: config.dns.reload_timeout,
    };
    let mut lanes = Vec::new();
    for z in &config.zones {
        let body = lane_body(&config, &open, &stats, &stop, z);
        lanes.push(LaneHandle::spawn(&z.name, body)?);
    }
    let handle = std::thread::Builder::new()
        .name("publisher".into())
        .spawn(move || {
            let mut feed = feed;
            let respawn = |name: &str| {
                config
                    .zone(name)
                    .map(|z| lane_body(&config, &open, &stats, &stop, z))
            };
            let flush = flush_every(config.events.stale_after);
            coordinate(rx, lanes, &respawn, &stats, &mut *feed, &last_used, flush);
        })?;
    Ok((publisher, handle))
}

type LaneBody = Box<dyn FnOnce(Receiver<Msg>) + Send>;

/// What a lane thread runs: open its own feed, then publish `zone` until told to stop.
fn lane_body(
    config: &Arc<Config>,
    open: &Arc<OpenFeed>,
    stats: &Arc<PublishStats>,
    stop: &Arc<StopClock>,
    zone: &Zone,
) -> LaneBody {
    let (config, open, stats, stop, zone) = (
        config.clone(),
        open.clone(),
        stats.clone(),
        stop.clone(),
        zone.clone(),
    );
    Box::new(move |rx| {
        match open() {
            Ok(feed) => lane::Lane::new(zone, config, feed, stats, stop).run(rx),
            // Returning counts as dying: the coordinator restarts the lane.
            Err(e) => error!(
                "publisher for zone {}: cannot open the database: {e}",
                zone.name
            ),
        }
    })
}

/// One lane as the coordinator holds it.
struct LaneHandle {
    zone: String,
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    started: Instant,
}

impl LaneHandle {
    fn spawn(zone: &str, body: LaneBody) -> std::io::Result<LaneHandle> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("publish {zone}"))
            .spawn(move || body(rx))?;
        Ok(LaneHandle {
            zone: zone.to_string(),
            tx,
            thread: Some(thread),
            started: Instant::now(),
        })
    }
}

/// The coordinator's loop: fan changes out, restart dead lanes, flush last-used
/// times; on shutdown let every lane publish what is pending and wait for them.
fn coordinate(
    rx: Receiver<Msg>,
    mut lanes: Vec<LaneHandle>,
    respawn: &dyn Fn(&str) -> Option<LaneBody>,
    stats: &PublishStats,
    feed: &mut dyn ZoneFeed,
    last_used: &LastUsed,
    flush: Duration,
) {
    let mut last_flush = Instant::now();
    let mut last_expire = Instant::now();
    loop {
        match rx.recv_timeout(POLL) {
            Ok(Msg::Changed(at)) => {
                // Each lane checks whether its own zone changed: cheap, and the
                // workers need not know which zones a change touched.
                for l in &lanes {
                    let _ = l.tx.send(Msg::Changed(at));
                }
            }
            Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        supervise(&mut lanes, respawn, stats);
        // Every POLL, not on every change signal: values live an hour.
        if last_expire.elapsed() >= POLL {
            last_expire = Instant::now();
            if expire_acme(feed) {
                for l in &lanes {
                    let _ = l.tx.send(Msg::Changed(Instant::now()));
                }
            }
        }
        if last_flush.elapsed() >= flush {
            flush_last_used(feed, last_used);
            last_flush = Instant::now();
        }
    }
    for l in &lanes {
        let _ = l.tx.send(Msg::Shutdown);
    }
    for l in &mut lanes {
        if let Some(Err(p)) = l.thread.take().map(JoinHandle::join) {
            error!(
                "publisher for zone {} died while stopping: {}",
                l.zone,
                panic_text(&*p)
            );
        }
    }
    flush_last_used(feed, last_used);
    info!("publisher stopped");
}

/// SPEC 10: `_acme-challenge` values are removed an hour after they were
/// written, with no call; their zones are then dirty like any other change.
/// One indexed EXISTS every POLL when nothing expired.
/// Returns whether anything was removed.
fn expire_acme(feed: &mut dyn ZoneFeed) -> bool {
    match feed.expire_acme(now_unix()) {
        Ok(zones) if !zones.is_empty() => {
            info!("expired _acme-challenge values in {}", zones.join(", "));
            true
        }
        Ok(_) => false,
        Err(e) => {
            error!("cannot remove expired _acme-challenge values: {e}");
            false
        }
    }
}

fn flush_last_used(feed: &mut dyn ZoneFeed, last_used: &LastUsed) {
    let (tokens, names) = last_used.take();
    if let Err(e) = feed.touch(&tokens, &names) {
        warn!("could not record token last-used and name last-seen times: {e}");
    }
}

/// Restart every lane whose thread ended (a panic, or a database it could not
/// open), at most once per `RESTART_EVERY` each. Its zone stays dirty meanwhile:
/// nothing a dead lane did counts as published.
fn supervise(
    lanes: &mut [LaneHandle],
    respawn: &dyn Fn(&str) -> Option<LaneBody>,
    stats: &PublishStats,
) {
    for l in lanes.iter_mut() {
        if let Some(t) = l.thread.take_if(|t| t.is_finished()) {
            match t.join() {
                Err(p) => error!(
                    "publisher for zone {} panicked: {}; restarting it",
                    l.zone,
                    panic_text(&*p)
                ),
                Ok(()) => error!("publisher for zone {} stopped; restarting it", l.zone),
            }
        }
        if l.thread.is_some() || l.started.elapsed() < RESTART_EVERY {
            continue;
        }
        let Some(body) = respawn(&l.zone) else {
            error!(
                "cannot restart the publisher for zone {}: zone {} is not configured",
                l.zone, l.zone
            );
            l.started = Instant::now();
            continue;
        };
        match LaneHandle::spawn(&l.zone, body) {
            Ok(new) => {
                stats.restarts.fetch_add(1, Ordering::Relaxed);
                *l = new;
            }
            Err(e) => {
                error!(
                    "cannot restart the publisher for zone {}: cannot start a thread: {e}",
                    l.zone
                );
                l.started = Instant::now();
            }
        }
    }
}

/// A panic's message, if it has one.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Whether opening `path` makes a new, empty database: no file there (a path
/// we may not even look at counts as there), or an empty one.
pub fn is_new_database(path: &std::path::Path) -> bool {
    match std::fs::metadata(path) {
        Ok(m) => m.len() == 0,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// SPEC 17: an empty database never silently empties a published zone. A new
/// database (by `serve` or a command that writes) is created only when none of the zone files its first publication
/// would replace holds names published from a database (a lost or moved
/// database, a wrong `database.path`); else the start refuses, naming the file.
pub fn refuse_to_empty_published_zones(
    config: &crate::config::settings::Config,
) -> Result<(), PublishError> {
    for (i, z) in config.zones.iter().enumerate() {
        let text = match std::fs::read(&z.file) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            // No file, or a path where none can be (a component is not a
            // directory: `check` names that): nothing published there.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                continue
            }
            Err(e) => {
                return Err(PublishError::WouldEmpty(format!(
                    "no database at {} yet, and zone[{i}].file {} cannot be read to tell whether it holds published names ({e}); nothing was created",
                    config.database.path.display(),
                    z.file.display()
                )))
            }
        };
        if zone::holds_published_names(&z.name, &text) {
            return Err(PublishError::WouldEmpty(format!(
                "no database at {} ({}), but zone[{i}].file {} holds names published from one: \
                 a new, empty database would remove them from DNS. Restore the database \
                 (or fix database.path); to start afresh on purpose, move the zone file away. \
                 Nothing was created or written",
                config.database.path.display(),
                config.origin(),
                z.file.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// SPEC 17: once the service is stopping, reloads and verify waits get what
    /// is left of `reload_timeout_secs`, and nothing once it is used up.
    #[test]
    fn a_stopping_service_gives_reloads_only_what_is_left() {
        let clock = StopClock::default();
        let limit = Duration::from_secs(10);
        assert_eq!(clock.budget(limit).ok(), Some(limit));
        clock.stop_by(Instant::now() + Duration::from_secs(2));
        let left = clock.budget(limit).expect("time left");
        assert!(left <= Duration::from_secs(2) && left > Duration::from_secs(1));
        // A second SIGTERM does not move the deadline.
        clock.stop_by(Instant::now() + Duration::from_secs(60));
        assert!(clock.budget(limit).expect("time left") <= Duration::from_secs(2));
        let over = StopClock::default();
        over.stop_by(Instant::now());
        assert!(matches!(over.budget(limit), Err(PublishError::Stopping)));
    }

    /// A lane that panics is restarted (once its restart interval passed), and
    /// the restart is counted; a lane that runs on is left alone.
    #[test]
    fn a_panicking_lane_is_restarted() {
        let runs = Arc::new(AtomicUsize::new(0));
        let body = |runs: Arc<AtomicUsize>| -> LaneBody {
            Box::new(move |rx: Receiver<Msg>| {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("injected");
                }
                let _ = rx.recv(); // runs until told to stop
            })
        };
        let mut lanes = vec![LaneHandle::spawn("z", body(runs.clone())).unwrap()];
        let stats = PublishStats::default();
        let r = runs.clone();
        let respawn = move |_: &str| Some(body(r.clone()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            supervise(&mut lanes, &respawn, &stats);
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(stats.restarts.load(Ordering::Relaxed), 1);
        supervise(&mut lanes, &respawn, &stats);
        assert_eq!(
            stats.restarts.load(Ordering::Relaxed),
            1,
            "a live lane was restarted"
        );
        let _ = lanes[0].tx.send(Msg::Shutdown);
        lanes[0].thread.take().unwrap().join().unwrap();
    }
}

//! The events thread: delivers each committed change (the history is the outbox,
//! a delivered-up-to mark in the database) in commit order, at least once, to
//! `[events] command`; finds stale names; prunes the history in small batches.
//! It has its own connection and never holds up an update: a command that
//! fails, hangs or is slow only delays the events after it.

use super::command::{self, RunError};
use super::json;
use super::outbox::{Keep, Outbox, OutboxError, StaleName};
use super::stats::EventStats;
use crate::config::settings::{Events as EventsConfig, History};
use crate::os::clock::now_unix;
use log::{error, info, warn};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the history is looked at for new changes (CLI changes come from
/// another process, so it is polled, as the publisher polls).
const POLL: Duration = Duration::from_millis(200);
/// Changes read from the outbox at once.
const BATCH: usize = 100;
/// The history is indexed by name and pruned this often.
const PRUNE_EVERY: Duration = Duration::from_secs(1);
/// Batches of indexing and of pruning per round at most.
const CATCH_UP: usize = 4;
/// The longest wait between two tries of a failing event.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The running thread and its stop flag.
pub struct Events {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Events {
    /// Stop: a command still running is killed (its event is delivered again
    /// after the next start), then wait for the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start the events thread over `outbox` (its own connection).
pub fn spawn(
    events: EventsConfig,
    history: History,
    outbox: Box<dyn Outbox + Send>,
    stats: Arc<EventStats>,
) -> std::io::Result<Events> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("events".into())
        .spawn(move || {
            let mut outbox = outbox;
            Worker::new(events, history, &mut *outbox, &stats, &flag).run();
        })?;
    Ok(Events {
        stop,
        thread: Some(thread),
    })
}

/// The stale check runs this often: every 60 s at most (SPEC 15), more often
/// with a short `stale_after` (half of it, at least every second).
pub fn stale_check_every(stale_after: Duration) -> Duration {
    (stale_after / 2).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// A run of failures of one event: how many, and when to try again.
struct Failing {
    count: u64,
    retry_at: Instant,
}

struct Worker<'a> {
    events: EventsConfig,
    history: History,
    outbox: &'a mut dyn Outbox,
    stats: &'a EventStats,
    stop: &'a AtomicBool,
    failing: Option<Failing>,
    /// Where name pruning continues (a history id).
    prune_cursor: i64,
}

impl<'a> Worker<'a> {
    fn new(
        events: EventsConfig,
        history: History,
        outbox: &'a mut dyn Outbox,
        stats: &'a EventStats,
        stop: &'a AtomicBool,
    ) -> Worker<'a> {
        Worker {
            events,
            history,
            outbox,
            stats,
            stop,
            failing: None,
            prune_cursor: 0,
        }
    }

    fn run(&mut self) {
        if let Err(e) = self.start_mark() {
            error!("events: cannot read the delivered-up-to mark: {e}; no events are delivered until the next start");
            self.events.command = None;
        }
        let mut next_prune = Instant::now();
        let mut next_stale = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            if self.events.command.is_some() {
                self.deliver();
            }
            if let Some(after) = self.events.stale_after {
                if Instant::now() >= next_stale {
                    next_stale = Instant::now() + stale_check_every(after);
                    self.check_stale(after);
                }
                if self.events.command.is_some() {
                    self.deliver_stale();
                }
            }
            if Instant::now() >= next_prune {
                next_prune = Instant::now() + PRUNE_EVERY;
                // One batch a second: fewer, larger write transactions beside
                // the workers' (history NAME reads the unindexed tail meanwhile).
                self.index();
                self.prune();
            }
            std::thread::sleep(POLL);
        }
    }

    /// Events on: deliver from the mark, which starts at the newest change when
    /// events are first turned on (the history before is not replayed). Events
    /// off: the mark goes, so that turning them on later starts afresh.
    fn start_mark(&mut self) -> Result<(), OutboxError> {
        match (&self.events.command, self.outbox.delivered()?) {
            (Some(_), None) => {
                let newest = self.outbox.newest()?;
                self.outbox.set_delivered(Some(newest))
            }
            (None, Some(_)) => self.outbox.set_delivered(None),
            _ => Ok(()),
        }
    }

    /// Whether a failing event may be tried now.
    fn may_try(&self) -> bool {
        self.failing
            .as_ref()
            .is_none_or(|f| Instant::now() >= f.retry_at)
    }

    /// Deliver the pending changes in commit order, each once the one before
    /// it was taken; stops at the first failure (retried with backoff).
    fn deliver(&mut self) {
        if !self.may_try() {
            return;
        }
        let (mark, newest) = match (self.outbox.delivered(), self.outbox.newest()) {
            (Ok(m), Ok(n)) => (m.unwrap_or(n), n),
            (Err(e), _) | (_, Err(e)) => return self.outbox_failed(&e),
        };
        self.stats
            .pending
            .store(newest.saturating_sub(mark).max(0) as u64, Ordering::Relaxed);
        if newest <= mark {
            return;
        }
        let changes = match self.outbox.changes_after(mark, BATCH) {
            Ok(c) => c,
            Err(e) => return self.outbox_failed(&e),
        };
        for c in changes {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            if self
                .send(
                    &json::changed(&c),
                    &format!("change {} of {}", c.id, c.name),
                )
                .is_err()
            {
                return;
            }
            if let Err(e) = self.outbox.set_delivered(Some(c.id)) {
                // Delivered again later: at least once.
                return self.outbox_failed(&e);
            }
            let left = newest.saturating_sub(c.id).max(0) as u64;
            self.stats.pending.store(left, Ordering::Relaxed);
        }
    }

    /// Run the command with one event; count and log the outcome (a run of
    /// failures is logged at its first failure and when it ends).
    fn send(&mut self, event: &str, what: &str) -> Result<(), ()> {
        let Some(program) = self.events.command.clone() else {
            return Ok(());
        };
        match command::run(&program, event.as_bytes(), self.events.timeout, self.stop) {
            Ok(()) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(f) = self.failing.take() {
                    info!(
                        "events: {} delivers again, after {} failed runs",
                        program.display(),
                        f.count
                    );
                }
                Ok(())
            }
            Err(RunError::Stopped) => Err(()),
            Err(e) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let count = self.failing.as_ref().map_or(0, |f| f.count) + 1;
                if count == 1 {
                    warn!(
                        "events: {} for {what}: {e}; retrying with backoff (logged again when it delivers)",
                        program.display()
                    );
                }
                let wait = Duration::from_secs(1u64 << (count - 1).min(6)).min(MAX_BACKOFF);
                self.failing = Some(Failing {
                    count,
                    retry_at: Instant::now() + wait,
                });
                Err(())
            }
        }
    }

    fn outbox_failed(&mut self, e: &OutboxError) {
        error!("events: the history cannot be read or marked: {e}; retrying");
        let count = self.failing.as_ref().map_or(1, |f| f.count);
        self.failing = Some(Failing {
            count,
            retry_at: Instant::now() + Duration::from_secs(1),
        });
    }

    /// Mark the names not updated for `after` stale (SPEC 15).
    fn check_stale(&mut self, after: Duration) {
        let now = now_unix();
        let cutoff = now.saturating_sub(after.as_secs() as i64);
        let notify = self.events.command.is_some();
        match self.outbox.mark_stale(cutoff, now, notify) {
            Ok(n) => self.stats.stale.store(n, Ordering::Relaxed),
            Err(e) => error!("events: cannot look for stale names: {e}"),
        }
    }

    /// One `stale` event per name, after the changes before it.
    fn deliver_stale(&mut self) {
        if !self.may_try() || self.stats.pending.load(Ordering::Relaxed) > 0 {
            return;
        }
        for _ in 0..BATCH {
            let next: Option<StaleName> = match self.outbox.next_stale() {
                Ok(n) => n,
                Err(e) => return self.outbox_failed(&e),
            };
            let Some(s) = next else { return };
            if self
                .send(&json::stale(&s), &format!("stale {}", s.name))
                .is_err()
            {
                return;
            }
            if let Err(e) = self.outbox.stale_delivered(&s) {
                return self.outbox_failed(&e);
            }
        }
    }

    /// Index the new history rows by name: a few batches, each its own short
    /// transaction.
    fn index(&mut self) {
        for _ in 0..CATCH_UP {
            match self.outbox.index_names() {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) => return error!("events: cannot index the history by name: {e}"),
            }
        }
    }

    /// Prune the history to `[history]`, one small batch each, never a change
    /// not delivered yet.
    fn prune(&mut self) {
        let indexed = match self.outbox.indexed() {
            Ok(m) => m,
            Err(e) => return error!("events: cannot prune the history: {e}"),
        };
        let up_to = if self.events.command.is_some() {
            match self.outbox.delivered() {
                Ok(m) => m.unwrap_or(0).min(indexed),
                Err(e) => return error!("events: cannot prune the history: {e}"),
            }
        } else {
            indexed
        };
        let keep = Keep {
            per_name: self.history.per_name,
            older_than: now_unix().saturating_sub(self.history.max_age.as_secs() as i64),
            up_to,
        };
        let mut pruned = 0;
        // A few batches, each its own short transaction, so that a burst of
        // changes is caught up with within seconds.
        for _ in 0..CATCH_UP {
            match self.outbox.prune_names(self.prune_cursor, &keep) {
                Ok((cursor, n)) => {
                    let done = cursor == self.prune_cursor;
                    self.prune_cursor = cursor;
                    pruned += n;
                    if done {
                        break;
                    }
                }
                Err(e) => {
                    error!("events: cannot prune the history: {e}");
                    break;
                }
            }
        }
        match self.outbox.prune_age(&keep) {
            Ok(n) => pruned += n,
            Err(e) => error!("events: cannot prune the history: {e}"),
        }
        self.stats.pruned.fetch_add(pruned, Ordering::Relaxed);
    }
}

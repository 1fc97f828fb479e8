//! The connection budget: at most `max_connections` client connections, eviction of
//! the one waiting longest without a complete request, and the file-descriptor limit.
//!
//! Every connection holds a `Slot` while it lives. A slot is either waiting
//! (stalled handshake, half-sent request, idle keep-alive: evictable, oldest
//! first) or serving (a complete request is with tiny_http: never evicted). When
//! the budget is spent and nothing is evictable, the acceptor blocks and new
//! clients wait in the listen backlog (SPEC 9).

use super::stream::ClientStream;
use crate::os::sys;
use std::collections::{BTreeSet, HashMap};
use std::net::Shutdown;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// File descriptors one client connection costs: its socket. (The connections
/// to tiny_http are pooled and counted apart, `FDS_PER_INTERNAL_CONNECTION`.)
pub const FDS_PER_CONNECTION: u64 = 1;
/// File descriptors one pooled connection to tiny_http costs: the edge's end,
/// and tiny_http's end, which tiny_http duplicates (`try_clone`) into a read and
/// a write half.
pub const FDS_PER_INTERNAL_CONNECTION: u64 = 3;
/// File descriptors kept for everything else: listeners, the database, zone
/// files, the reload command, logging.
pub const RESERVED_FDS: u64 = 64;

/// How often the "limit reached" warning may repeat during a flood.
const EVICTION_LOG_INTERVAL: Duration = Duration::from_secs(10);

pub(crate) struct Limits {
    max: usize,
    state: Mutex<Registry>,
    /// Signalled when a slot is released or becomes evictable.
    changed: Condvar,
}

struct Registry {
    next_id: u64,
    slots: HashMap<u64, Entry>,
    /// Evictable slots by the time they started waiting, oldest first.
    waiting: BTreeSet<(Instant, u64)>,
    closing: bool,
    /// Evicted slots whose threads have not finished yet.
    leaving: usize,
    evictions: u64,
    evictions_logged: u64,
    last_log: Option<Instant>,
}

struct Entry {
    /// A second handle on the client socket (shared, not a new descriptor):
    /// shutting it down wakes the connection's thread, which then ends.
    stream: Arc<ClientStream>,
    waiting_since: Option<Instant>,
    /// Closed to make room; the slot is freed when its thread has finished.
    evicted: bool,
}

impl Limits {
    pub(crate) fn new(max: usize) -> Arc<Limits> {
        Arc::new(Limits {
            max: max.max(1),
            state: Mutex::new(Registry {
                next_id: 0,
                slots: HashMap::new(),
                waiting: BTreeSet::new(),
                closing: false,
                leaving: 0,
                evictions: 0,
                evictions_logged: 0,
                last_log: None,
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot for a connection accepted at `now`, evicting the oldest
    /// waiting connection if the budget is spent. Blocks while every slot is
    /// serving; `None` once the edge is shutting down.
    pub(crate) fn admit(
        self: &Arc<Self>,
        stream: &Arc<ClientStream>,
        now: Instant,
    ) -> Option<Slot> {
        let mut reg = self.lock();
        loop {
            if reg.closing {
                return None;
            }
            if reg.slots.len() < self.max {
                break;
            }
            if reg.leaving > 0 {
                // A victim is on its way out (microseconds): wait for its slot
                // rather than evict another connection.
                reg = self
                    .changed
                    .wait_timeout(reg, Duration::from_millis(50))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            if let Some((_, victim)) = reg.waiting.pop_first() {
                if let Some(entry) = reg.slots.get_mut(&victim) {
                    // The victim's thread sees EOF or an error and ends. Its
                    // slot stays taken until it has closed its sockets, so the
                    // budget bounds descriptors exactly (tiny_http in this
                    // process must never meet EMFILE); the check above waits for that.
                    entry.evicted = true;
                    entry.waiting_since = None;
                    let _ = entry.stream.shutdown(Shutdown::Both);
                    reg.leaving += 1;
                }
                reg.evictions += 1;
                self.log_evictions(&mut reg);
                continue;
            }
            // Everyone is being served: leave further clients in the backlog.
            reg = self
                .changed
                .wait_timeout(reg, Duration::from_millis(500))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let id = reg.next_id;
        reg.next_id += 1;
        reg.slots.insert(
            id,
            Entry {
                stream: Arc::clone(stream),
                waiting_since: Some(now),
                evicted: false,
            },
        );
        reg.waiting.insert((now, id));
        Some(Slot {
            id,
            limits: Arc::clone(self),
        })
    }

    fn log_evictions(&self, reg: &mut Registry) {
        let now = Instant::now();
        if reg
            .last_log
            .is_none_or(|t| now.duration_since(t) >= EVICTION_LOG_INTERVAL)
        {
            log::warn!(
                "connection limit ({}) reached: closed {} connection(s) that had not sent a complete request",
                self.max,
                reg.evictions - reg.evictions_logged
            );
            reg.evictions_logged = reg.evictions;
            reg.last_log = Some(now);
        }
    }

    pub(crate) fn open(&self) -> usize {
        self.lock().slots.len()
    }

    pub(crate) fn evictions(&self) -> u64 {
        self.lock().evictions
    }

    /// Shutdown: admit nobody, close every waiting connection now; serving ones
    /// close after their response.
    pub(crate) fn close(&self) {
        let mut reg = self.lock();
        reg.closing = true;
        while let Some((_, id)) = reg.waiting.pop_first() {
            if let Some(entry) = reg.slots.get_mut(&id) {
                entry.evicted = true;
                entry.waiting_since = None;
                let _ = entry.stream.shutdown(Shutdown::Both);
                reg.leaving += 1;
            }
        }
        self.changed.notify_all();
    }

    /// Waits until no connection is open, at most `timeout`.
    pub(crate) fn wait_empty(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut reg = self.lock();
        while !reg.slots.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            reg = self
                .changed
                .wait_timeout(reg, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// A connection's place in the budget; released on drop.
pub(crate) struct Slot {
    id: u64,
    limits: Arc<Limits>,
}

impl Slot {
    /// The connection waits for a request head since `since`: it may now be
    /// evicted. `false` if it already was, or the edge is shutting down.
    pub(crate) fn waiting(&self, since: Instant) -> bool {
        let mut reg = self.limits.lock();
        let closing = reg.closing;
        let Some(entry) = reg.slots.get_mut(&self.id) else {
            return false;
        };
        if entry.evicted {
            return false;
        }
        if closing {
            // Shutting down: an idle connection ends now, like an evicted one.
            entry.evicted = true;
            if let Some(t) = entry.waiting_since.take() {
                reg.waiting.remove(&(t, self.id));
            }
            reg.leaving += 1;
            return false;
        }
        let old = entry.waiting_since.replace(since);
        if let Some(t) = old {
            reg.waiting.remove(&(t, self.id));
        }
        reg.waiting.insert((since, self.id));
        self.limits.changed.notify_all();
        true
    }

    /// The connection has a complete request: it may no longer be evicted.
    /// `false` if it was evicted before it got here.
    pub(crate) fn serving(&self) -> bool {
        let mut reg = self.limits.lock();
        let Some(entry) = reg.slots.get_mut(&self.id) else {
            return false;
        };
        if entry.evicted {
            return false;
        }
        if let Some(t) = entry.waiting_since.take() {
            reg.waiting.remove(&(t, self.id));
        }
        true
    }
}

#[cfg(test)]
impl Slot {
    fn is_evicted(&self) -> bool {
        let reg = self.limits.lock();
        reg.slots.get(&self.id).is_none_or(|e| e.evicted)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut reg = self.limits.lock();
        if let Some(entry) = reg.slots.remove(&self.id) {
            if let Some(t) = entry.waiting_since {
                reg.waiting.remove(&(t, self.id));
            }
            if entry.evicted {
                reg.leaving -= 1;
            }
        }
        self.limits.changed.notify_all();
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the soft limit
/// now in force.
///
/// Each client connection costs a descriptor, and the usual soft limit of
/// 1024 would cap the service below 1000 connections although the hard limit
/// (often 524288 under systemd) allows far more. Raising soft up to hard needs
/// no privilege. If it cannot be raised the current limit is returned and a
/// warning logged.
pub fn raise_nofile_limit() -> u64 {
    let (soft, hard) = match sys::nofile_limits() {
        Ok(l) => l,
        Err(e) => {
            log::warn!("cannot read the open-file limit (RLIMIT_NOFILE): {e}");
            return 1024;
        }
    };
    // Linux refuses RLIM_INFINITY for NOFILE; its real ceiling is fs.nr_open.
    let target = if hard == sys::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    } else {
        hard
    };
    if soft >= target {
        return soft;
    }
    match sys::set_nofile_soft(target, hard) {
        Ok(()) => target,
        Err(e) => {
            log::warn!("cannot raise the open-file limit from {soft} to {target}: {e}");
            soft
        }
    }
}

/// The largest `max_connections` not above `requested` whose descriptors fit
/// under `nofile` next to `internal` pooled connections to tiny_http (see
/// `FDS_PER_CONNECTION`, `FDS_PER_INTERNAL_CONNECTION`, `RESERVED_FDS`); logs
/// when it is lower than asked for, so the operator knows which limit to raise.
///
/// This matters beyond the edge: tiny_http, in the same process, ends its
/// accept loop on an accept error and panics it when `try_clone` fails, so the
/// process must never reach its descriptor limit. Clients beyond the budget
/// wait in the kernel's listen backlog, which costs no descriptor.
pub fn fit_max_connections(requested: usize, nofile: u64, internal: usize) -> usize {
    let reserved = RESERVED_FDS + internal as u64 * FDS_PER_INTERNAL_CONNECTION;
    let fits = (nofile.saturating_sub(reserved) / FDS_PER_CONNECTION).max(1);
    let fits = usize::try_from(fits).unwrap_or(usize::MAX);
    if fits < requested {
        log::warn!(
            "max_connections lowered from {requested} to {fits}: the open-file limit is {nofile}, \
             {reserved} are reserved (internal connections, files) and each client connection \
             needs {FDS_PER_CONNECTION} (raise LimitNOFILE= in the systemd unit)"
        );
        return fits;
    }
    requested
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn pair(l: &TcpListener) -> (TcpStream, Arc<ClientStream>) {
        let client = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (server, _) = l.accept().expect("accept");
        (client, Arc::new(ClientStream::Tcp(server)))
    }

    #[test]
    fn oldest_waiting_connection_is_evicted_first() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let limits = Limits::new(2);
        let t0 = Instant::now();
        let (_c1, s1) = pair(&l);
        let (_c2, s2) = pair(&l);
        let (_c3, s3) = pair(&l);
        let slot1 = limits.admit(&s1, t0).expect("slot 1");
        let slot2 = limits
            .admit(&s2, t0 + Duration::from_millis(1))
            .expect("slot 2");
        // The victim's thread: it learns it was evicted, ends, and frees its slot.
        let victim = std::thread::spawn(move || eventually_evicted(&slot1));
        let _slot3 = limits
            .admit(&s3, t0 + Duration::from_millis(2))
            .expect("slot 3");
        assert!(victim.join().expect("victim"), "slot 1 was the oldest");
        assert_eq!(limits.open(), 2);
        assert!(slot2.serving(), "slot 2 was kept");
        assert_eq!(limits.evictions(), 1);
    }

    fn eventually_evicted(slot: &Slot) -> bool {
        (0..1000).any(|_| {
            std::thread::sleep(Duration::from_millis(1));
            slot.is_evicted()
        })
    }

    #[test]
    fn serving_connections_are_not_evicted() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let limits = Limits::new(1);
        let (_c1, s1) = pair(&l);
        let (_c2, s2) = pair(&l);
        let slot1 = limits.admit(&s1, Instant::now()).expect("slot 1");
        assert!(slot1.serving());
        let waiter = {
            let limits = Arc::clone(&limits);
            std::thread::spawn(move || limits.admit(&s2, Instant::now()).is_some())
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !waiter.is_finished(),
            "admission must wait while the only slot serves"
        );
        // Going back to waiting (keep-alive) makes it evictable.
        assert!(slot1.waiting(Instant::now()));
        assert!(eventually_evicted(&slot1));
        drop(slot1);
        assert!(waiter.join().expect("join"));
    }

    #[test]
    fn max_connections_fit_the_descriptor_limit() {
        assert_eq!(fit_max_connections(1024, 20_000, 8), 1024);
        assert_eq!(fit_max_connections(1024, 1024, 0), 1024 - 64);
        assert_eq!(fit_max_connections(1024, 256, 8), 256 - 64 - 8 * 3);
        assert_eq!(fit_max_connections(1024, 10, 8), 1);
    }
}

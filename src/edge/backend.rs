//! The edge's pool of long-lived connections to tiny_http: at most a fixed number, reused
//! across clients one request at a time, so tiny_http's threads are bounded by the pool.
//!
//! tiny_http runs one thread per connection. With a connection per client it
//! ran as many threads as there were clients; with this pool it runs at most
//! `InternalHop::connections`, whatever the number of clients, and each
//! request's client travels in its own header (`hop`). A connection is taken
//! for one request and its whole response, then given back; one that broke,
//! or whose response was cut short, is dropped and a new one is made on demand.
//!
//! New connections are made one at a time: the next only after the previous
//! one's first exchange has ended. tiny_http 0.12 hands each accepted
//! connection to a thread pool that can lose a task when two arrive before a
//! woken thread has run (it counts that thread as idle twice); the lost
//! connection then waits until another connection closes, which with
//! long-lived pooled connections may be never. Serialising the creations, each
//! proven served by its first response, leaves no second arrival to lose.
//!
//! Clients that find every connection busy queue up and are served in arrival
//! order: a connection given back goes straight to the longest waiting client
//! (through that client's own one-shot channel), so no client is overtaken
//! again and again (tail latency) and only the one served is woken.

use crate::os::sys;
use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::hop::InternalHop;

/// Writes to tiny_http that block this long mean it is stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct BackendPool {
    hop: Arc<InternalHop>,
    state: Mutex<PoolState>,
}

/// What a waiting client is handed.
enum Grant {
    /// A connection that was given back.
    Idle(UnixStream),
    /// Room for a new connection (already counted in `open` and `creating`).
    Create,
}

struct PoolState {
    /// Connections waiting for a request, most recently used last.
    idle: Vec<UnixStream>,
    /// Connections that exist: idle plus lent out.
    open: usize,
    /// A new connection is on its first exchange: no other may be made now.
    creating: bool,
    /// Clients waiting for a connection, longest waiting first. A sender whose
    /// client gave up is skipped (its receiver is gone).
    waiters: VecDeque<SyncSender<Grant>>,
    closed: bool,
}

/// Why no connection could be had.
#[derive(Debug)]
pub(crate) enum CheckoutError {
    /// Every connection stayed busy until the deadline.
    Busy,
    /// Connecting to tiny_http failed.
    Connect(io::Error),
    /// The edge is shutting down.
    Closed,
}

impl std::fmt::Display for CheckoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckoutError::Busy => f.write_str("every internal connection stayed busy"),
            CheckoutError::Connect(e) => write!(f, "cannot connect: {e}"),
            CheckoutError::Closed => f.write_str("shutting down"),
        }
    }
}

impl BackendPool {
    pub(crate) fn new(hop: Arc<InternalHop>) -> Arc<BackendPool> {
        Arc::new(BackendPool {
            hop,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
                creating: false,
                waiters: VecDeque::new(),
                closed: false,
            }),
        })
    }

    pub(crate) fn hop(&self) -> &InternalHop {
        &self.hop
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection for one request: an idle one if there is one, else a new
    /// one while fewer than the maximum exist, else the next one given back
    /// (in arrival order), waiting at most until `deadline`.
    pub(crate) fn checkout(self: &Arc<Self>, deadline: Instant) -> Result<Lease, CheckoutError> {
        let rx = {
            let mut state = self.lock();
            if state.closed {
                return Err(CheckoutError::Closed);
            }
            // `dispatch` hands out whatever frees up while anyone waits, so an
            // idle connection or room to make one means nobody is waiting.
            if let Some(stream) = state.idle.pop() {
                drop(state);
                return self.take(Grant::Idle(stream), deadline);
            }
            if state.open < self.hop.connections() && !state.creating {
                state.open += 1;
                state.creating = true;
                drop(state);
                return self.take(Grant::Create, deadline);
            }
            let (tx, rx) = mpsc::sync_channel(1);
            state.waiters.push_back(tx);
            rx
        };
        self.wait(rx, deadline)
    }

    /// Waits for this client's turn.
    fn wait(
        self: &Arc<Self>,
        rx: Receiver<Grant>,
        deadline: Instant,
    ) -> Result<Lease, CheckoutError> {
        let now = Instant::now();
        if let Ok(grant) = rx.recv_timeout(deadline.saturating_duration_since(now)) {
            return self.take(grant, deadline);
        }
        // Timed out, or the pool closed. A grant may have been sent just now:
        // grants are only sent under the lock, so look once more and give up
        // the receiver while holding it; nothing can be lost in between.
        let state = self.lock();
        match rx.try_recv() {
            Ok(grant) => {
                drop(state);
                self.take(grant, deadline)
            }
            Err(_) if state.closed => Err(CheckoutError::Closed),
            Err(_) => Err(CheckoutError::Busy),
        }
    }

    /// Turns a grant into a lease: checks an idle connection, makes a new one.
    fn take(self: &Arc<Self>, grant: Grant, deadline: Instant) -> Result<Lease, CheckoutError> {
        match grant {
            Grant::Idle(stream) => {
                // Between requests tiny_http has nothing to say: readable means
                // it closed (or misbehaved), so do not send a request into it.
                if sys::wait_readable(stream.as_raw_fd(), Duration::ZERO).unwrap_or(true) {
                    drop(stream);
                    self.forget(false);
                    return self.checkout(deadline);
                }
                Ok(self.lease(stream, true))
            }
            Grant::Create => match self.connect() {
                Ok(stream) => Ok(self.lease(stream, false)),
                Err(e) => {
                    self.forget(true);
                    Err(CheckoutError::Connect(e))
                }
            },
        }
    }

    /// Hands idle connections, and room for a new one, to waiting clients in
    /// arrival order. Called with the lock held whenever something frees up.
    fn dispatch(&self, state: &mut PoolState) {
        while let Some(waiter) = state.waiters.pop_front() {
            let grant = if let Some(stream) = state.idle.pop() {
                Grant::Idle(stream)
            } else if state.open < self.hop.connections() && !state.creating {
                state.open += 1;
                state.creating = true;
                Grant::Create
            } else {
                state.waiters.push_front(waiter);
                return;
            };
            match waiter.try_send(grant) {
                Ok(()) => {}
                // That client gave up (or, impossibly, already has a grant):
                // take the grant back and try the next one.
                Err(TrySendError::Disconnected(g) | TrySendError::Full(g)) => match g {
                    Grant::Idle(stream) => state.idle.push(stream),
                    Grant::Create => {
                        state.open -= 1;
                        state.creating = false;
                    }
                },
            }
        }
    }

    fn connect(&self) -> io::Result<UnixStream> {
        let stream = UnixStream::connect(self.hop.socket())?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        Ok(stream)
    }

    fn lease(self: &Arc<Self>, stream: UnixStream, reused: bool) -> Lease {
        Lease {
            pool: Arc::clone(self),
            stream: Some(stream),
            reused,
        }
    }

    /// A lent connection is gone: make room for a new one. `first`: it was on
    /// its first exchange, so another may be made now.
    fn forget(&self, first: bool) {
        let mut state = self.lock();
        state.open -= 1;
        if first {
            state.creating = false;
        }
        self.dispatch(&mut state);
    }

    /// Connections that exist now (idle and lent out), for tests and monitoring.
    pub(crate) fn open(&self) -> usize {
        self.lock().open
    }

    /// Shutdown: close idle connections now, lent ones when given back; clients
    /// still waiting get `Closed`.
    pub(crate) fn close(&self) {
        let (idle, waiters) = {
            let mut state = self.lock();
            state.closed = true;
            let idle = std::mem::take(&mut state.idle);
            state.open -= idle.len();
            (idle, std::mem::take(&mut state.waiters))
        };
        drop(idle);
        drop(waiters);
    }
}

/// One connection lent for one request. Dropped without `give_back` (an error,
/// a response cut short), the connection is closed: it may hold a half-read
/// response that must not reach the next client.
pub(crate) struct Lease {
    pool: Arc<BackendPool>,
    stream: Option<UnixStream>,
    /// It served an earlier request: tiny_http may have closed it meanwhile.
    pub reused: bool,
}

impl Lease {
    pub(crate) fn stream(&mut self) -> &mut UnixStream {
        match self.stream.as_mut() {
            Some(s) => s,
            // `stream` is only taken by `give_back` and `drop`, which consume the lease.
            None => unreachable!("a lease always holds its stream until it ends"),
        }
    }

    /// The response was read to its end and tiny_http keeps the connection:
    /// back to the pool for the next request.
    pub(crate) fn give_back(mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let mut state = self.pool.lock();
        if !self.reused {
            state.creating = false;
        }
        if state.closed {
            state.open -= 1;
        } else {
            state.idle.push(stream);
            self.pool.dispatch(&mut state);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            drop(stream);
            self.pool.forget(!self.reused);
        }
    }
}

//! The fixed worker pool behind the internal tiny_http server.

use super::intake;
use super::service::Service;
use crate::update::ledger::{Ledger, LedgerError};
use log::error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often an idle worker looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);

/// A fixed number of worker threads (`[server] workers`), each with its own SQLite
/// connection, taking requests from the internal tiny_http server's queue.
///
/// Threading model: tiny_http reads each of the edge's pooled connections (at
/// most 8 × `workers`) on a thread of its own and queues complete requests; a
/// worker takes one, runs the whole request (auth → hostname → addresses →
/// SQLite write → reply) and takes the next. So at most `workers` requests touch
/// the database at once and tiny_http runs a bounded number of threads, whatever
/// the number of clients; the edge in front bounds the clients. A panic in one request is caught
/// and logged: the worker, its connection and the other workers go on. `stop`
/// lets every worker finish its request and return.
pub struct WorkerPool {
    threads: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
}

impl WorkerPool {
    /// Start `n` workers; `open` gives each its own connection to the ledger.
    pub fn start(
        n: usize,
        internal: Arc<tiny_http::Server>,
        service: Arc<Service>,
        mut open: impl FnMut() -> Result<Box<dyn Ledger + Send>, LedgerError>,
    ) -> Result<WorkerPool, PoolError> {
        let stopping = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let mut ledger = open().map_err(PoolError::Open)?;
            let (internal, service, stopping) =
                (internal.clone(), service.clone(), stopping.clone());
            let t = std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || work(&internal, &service, &mut *ledger, &stopping))
                .map_err(PoolError::Thread)?;
            threads.push(t);
        }
        Ok(WorkerPool { threads, stopping })
    }

    /// Let every worker finish the request it has, then wait for all of them.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Why the pool could not start: a worker's connection or its thread.
#[derive(Debug)]
pub enum PoolError {
    Open(LedgerError),
    Thread(std::io::Error),
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolError::Open(e) => write!(f, "{e}"),
            PoolError::Thread(e) => write!(f, "cannot start worker: {e}"),
        }
    }
}

impl std::error::Error for PoolError {}

/// One worker's loop: take a request, answer it, until told to stop.
fn work(
    internal: &tiny_http::Server,
    service: &Service,
    ledger: &mut dyn Ledger,
    stopping: &AtomicBool,
) {
    loop {
        match internal.recv_timeout(POLL) {
            Ok(Some(rq)) => {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    intake::handle(service, ledger, rq)
                }));
                if r.is_err() {
                    error!("a request handler panicked; the worker goes on");
                }
            }
            Ok(None) if stopping.load(Ordering::SeqCst) => return,
            Ok(None) => {}
            Err(e) => {
                error!("receiving a request failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

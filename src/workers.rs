//! The fixed worker pool both intakes share: `server.workers` threads, each
//! with its own ledger connection, answer HTTP requests from the internal
//! tiny_http server's queue and DNS messages from the DNS UPDATE listeners'
//! queue, one at a time.

use crate::dnsupdate::intake::DnsService;
use crate::dnsupdate::job::DnsJob;
use crate::http::intake;
use crate::http::service::Service;
use crate::update::ledger::{Ledger, LedgerError};
use log::error;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often an idle worker looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);

/// DNS messages waiting beyond this many jobs are dropped (the client
/// retries): a flood of UDP cannot grow the queue without bound. HTTP is
/// bounded before it gets here, by the edge.
const DNS_QUEUE_BOUND: usize = 1024;

/// One unit of work for a worker.
enum Job {
    Http(tiny_http::Request),
    Dns(DnsJob),
}

/// The DNS messages waiting for a worker (HTTP requests wait in tiny_http's
/// own queue, which the workers read directly).
#[derive(Default)]
struct DnsQueue {
    jobs: Mutex<VecDeque<DnsJob>>,
    /// Workers between looking at this queue and waiting on tiny_http's:
    /// only then does a new message need to wake one (`Server::unblock`).
    idle: AtomicUsize,
}

impl DnsQueue {
    fn pop(&self) -> Option<DnsJob> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }
}

/// A fixed number of worker threads (`[server] workers`), each with its own SQLite
/// connection, answering HTTP requests and DNS messages.
///
/// Threading model: tiny_http reads each of the edge's pooled connections (at
/// most 8 × `workers`) on a thread of its own and queues complete requests; the
/// workers take them from that queue directly (no thread in between: a hop
/// would cost every request a wake-up). A DNS listener puts its message in the
/// pool's DNS queue and wakes one worker waiting on tiny_http's queue
/// (`Server::unblock`) if any waits; a worker looks at the DNS queue before
/// each wait, and after each DNS message takes one waiting HTTP request. A
/// worker runs a job whole (auth → hostname → addresses → SQLite write →
/// reply) and takes the next, so at most `workers` jobs touch the database at
/// once, whichever way they came in. A panic in one job is caught and logged:
/// the worker, its connection and the other workers go on. `stop` lets every
/// worker finish what is queued and return.
pub struct WorkerPool {
    threads: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    internal: Arc<tiny_http::Server>,
    dns: Arc<DnsQueue>,
}

/// Why the pool could not start: a worker's connection or a thread.
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

/// What the workers answer with.
pub struct Services {
    pub http: Arc<Service>,
    /// `None` while `[dns_update] listen` is empty.
    pub dns: Option<Arc<DnsService>>,
}

impl WorkerPool {
    /// Start `n` workers; `open` gives each worker its own connection to the ledger.
    pub fn start(
        n: usize,
        internal: Arc<tiny_http::Server>,
        services: Services,
        mut open: impl FnMut() -> Result<Box<dyn Ledger + Send>, LedgerError>,
    ) -> Result<WorkerPool, PoolError> {
        let stopping = Arc::new(AtomicBool::new(false));
        let dns = Arc::new(DnsQueue::default());
        let services = Arc::new(services);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let mut ledger = open().map_err(PoolError::Open)?;
            let (internal, dns, services, stopping) = (
                internal.clone(),
                dns.clone(),
                services.clone(),
                stopping.clone(),
            );
            let t = std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || work(&internal, &dns, &services, &mut *ledger, &stopping))
                .map_err(PoolError::Thread)?;
            threads.push(t);
        }
        Ok(WorkerPool {
            threads,
            stopping,
            internal,
            dns,
        })
    }

    /// How a DNS listener hands a message to the workers (`false`: the queue
    /// is full and the message dropped).
    pub fn dns_submitter(&self) -> Arc<crate::dnsupdate::job::Submit> {
        let (queue, internal) = (self.dns.clone(), self.internal.clone());
        Arc::new(move |job: DnsJob| {
            let mut jobs = queue.jobs.lock().unwrap_or_else(|e| e.into_inner());
            if jobs.len() >= DNS_QUEUE_BOUND {
                return false;
            }
            jobs.push_back(job);
            drop(jobs);
            // A worker that may be waiting on tiny_http's queue is woken (one
            // that counted itself idle after this push finds the message
            // itself); busy workers look here before they next wait.
            if queue.idle.load(Ordering::SeqCst) > 0 {
                internal.unblock();
            }
            true
        })
    }

    /// Let every worker finish what is queued, then wait for all of them.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        for _ in &self.threads {
            self.internal.unblock();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// One worker's loop: the waiting DNS message first, else the next HTTP
/// request (waiting at most `POLL`), until told to stop with nothing queued.
fn work(
    internal: &tiny_http::Server,
    dns: &DnsQueue,
    services: &Services,
    ledger: &mut dyn Ledger,
    stopping: &AtomicBool,
) {
    loop {
        dns.idle.fetch_add(1, Ordering::SeqCst);
        if let Some(job) = dns.pop() {
            dns.idle.fetch_sub(1, Ordering::SeqCst);
            run_caught(Job::Dns(job), services, ledger);
            // Then one HTTP request, if one waits: a steady stream of DNS
            // messages must not keep HTTP from its turn (this also takes a
            // wake-up left in tiny_http's queue for a message already done).
            if let Ok(Some(rq)) = internal.try_recv() {
                run_caught(Job::Http(rq), services, ledger);
            }
            continue;
        }
        let job = match internal.recv_timeout(POLL) {
            Ok(rq) => rq.map(Job::Http),
            Err(e) => {
                error!("receiving a request failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                None
            }
        };
        dns.idle.fetch_sub(1, Ordering::SeqCst);
        match job {
            Some(job) => run_caught(job, services, ledger),
            None if stopping.load(Ordering::SeqCst) => {
                // Finish what is queued: HTTP requests already in tiny_http's
                // queue, then DNS messages.
                match internal.try_recv() {
                    Ok(Some(rq)) => run_caught(Job::Http(rq), services, ledger),
                    _ => match dns.pop() {
                        Some(job) => run_caught(Job::Dns(job), services, ledger),
                        None => return,
                    },
                }
            }
            None => {}
        }
    }
}

/// `run`, a panic caught and logged: the worker goes on.
fn run_caught(job: Job, services: &Services, ledger: &mut dyn Ledger) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(job, services, &mut *ledger)
    }));
    if r.is_err() {
        error!("a request handler panicked; the worker goes on");
    }
}

fn run(job: Job, services: &Services, ledger: &mut dyn Ledger) {
    match job {
        Job::Http(rq) => intake::handle(&services.http, ledger, rq),
        Job::Dns(job) => {
            let answer = services
                .dns
                .as_ref()
                .and_then(|d| d.answer(ledger, &job.message, job.source, job.transport));
            (job.reply)(answer);
        }
    }
}

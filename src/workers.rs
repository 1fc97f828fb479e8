//! The fixed worker pool both intakes share: HTTP requests from the internal
//! tiny_http server and DNS messages from the DNS UPDATE listeners go into one
//! queue, and `server.workers` threads, each with its own ledger connection,
//! answer them one at a time.

use crate::dnsupdate::intake::DnsService;
use crate::dnsupdate::job::DnsJob;
use crate::http::intake;
use crate::http::service::Service;
use crate::update::ledger::{Ledger, LedgerError};
use log::error;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often an idle worker (and the HTTP feeder) looks at the stop flag.
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

#[derive(Default)]
struct Queue {
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
}

impl Queue {
    fn push(&self, job: Job) {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(job);
        self.ready.notify_one();
    }

    /// The next job, waiting at most `POLL`.
    fn pop(&self) -> Option<Job> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.is_empty() {
            jobs = self
                .ready
                .wait_timeout(jobs, POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        jobs.pop_front()
    }
}

/// A fixed number of worker threads (`[server] workers`), each with its own SQLite
/// connection, taking jobs from one queue.
///
/// Threading model: tiny_http reads each of the edge's pooled connections (at
/// most 8 × `workers`) on a thread of its own and queues complete requests; a
/// feeder thread moves them into the pool's queue, where the DNS listeners put
/// their messages too; a worker takes one, runs it whole (auth → hostname →
/// addresses → SQLite write → reply) and takes the next. So at most `workers`
/// jobs touch the database at once, whichever way they came in. A panic in one
/// job is caught and logged: the worker, its connection and the other workers
/// go on. `stop` lets every worker finish the queue and return.
pub struct WorkerPool {
    threads: Vec<JoinHandle<()>>,
    feeder: Option<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    queue: Arc<Queue>,
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
    /// Start `n` workers and the HTTP feeder; `open` gives each worker its own
    /// connection to the ledger.
    pub fn start(
        n: usize,
        internal: Arc<tiny_http::Server>,
        services: Services,
        mut open: impl FnMut() -> Result<Box<dyn Ledger + Send>, LedgerError>,
    ) -> Result<WorkerPool, PoolError> {
        let stopping = Arc::new(AtomicBool::new(false));
        let queue = Arc::new(Queue::default());
        let services = Arc::new(services);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let mut ledger = open().map_err(PoolError::Open)?;
            let (queue, services, stopping) = (queue.clone(), services.clone(), stopping.clone());
            let t = std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || work(&queue, &services, &mut *ledger, &stopping))
                .map_err(PoolError::Thread)?;
            threads.push(t);
        }
        let (q, s) = (queue.clone(), stopping.clone());
        let feeder = std::thread::Builder::new()
            .name("http-feeder".into())
            .spawn(move || feed(&internal, &q, &s))
            .map_err(PoolError::Thread)?;
        Ok(WorkerPool {
            threads,
            feeder: Some(feeder),
            stopping,
            queue,
        })
    }

    /// How a DNS listener hands a message to the workers (`false`: the queue
    /// is full and the message dropped).
    pub fn dns_submitter(&self) -> Arc<crate::dnsupdate::job::Submit> {
        let queue = self.queue.clone();
        Arc::new(move |job: DnsJob| {
            let mut jobs = queue.jobs.lock().unwrap_or_else(|e| e.into_inner());
            if jobs.len() >= DNS_QUEUE_BOUND {
                return false;
            }
            jobs.push_back(Job::Dns(job));
            drop(jobs);
            queue.ready.notify_one();
            true
        })
    }

    /// Let every worker finish the queue, then wait for all of them.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(f) = self.feeder.take() {
            let _ = f.join();
        }
        self.queue.ready.notify_all();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Move tiny_http's complete requests into the queue until told to stop.
fn feed(internal: &tiny_http::Server, queue: &Queue, stopping: &AtomicBool) {
    loop {
        match internal.recv_timeout(POLL) {
            Ok(Some(rq)) => queue.push(Job::Http(rq)),
            Ok(None) if stopping.load(Ordering::SeqCst) => return,
            Ok(None) => {}
            Err(e) => {
                error!("receiving a request failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// One worker's loop: take a job, answer it, until told to stop and the queue is empty.
fn work(queue: &Queue, services: &Services, ledger: &mut dyn Ledger, stopping: &AtomicBool) {
    loop {
        match queue.pop() {
            Some(job) => {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(job, services, &mut *ledger)
                }));
                if r.is_err() {
                    error!("a request handler panicked; the worker goes on");
                }
            }
            None if stopping.load(Ordering::SeqCst) => return,
            None => {}
        }
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

//! Prometheus metrics: request, latency and publication counters (plain atomics),
//! and the small bounded listener on `[server] metrics_listen` that serves them.
//!
//! The listener is deliberately not the update API: it is one thread answering one
//! connection at a time, with a read deadline and a request-size cap, and it only
//! knows `GET /metrics`. The update ports keep owning every path (SPEC 4), so
//! `/metrics` there is an update request like any other.

use crate::events::EventStats;
use crate::publish::state::{PublishStats, ZoneState, ZoneStats};
use log::{info, warn};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Request counters, bumped by the workers and read by the metrics page.
#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub requests_by_status: RequestStats,
    pub updates_applied: AtomicU64,
    pub updates_unchanged: AtomicU64,
    pub rate_limited: AtomicU64,
    pub failed_auth: AtomicU64,
    /// acme-dns calls that wrote a `_acme-challenge` value (SPEC 10).
    pub acme_updates: AtomicU64,
    /// acme-dns calls refused (any 4xx/5xx of `POST /update` and `/register`).
    pub acme_refused: AtomicU64,
}

/// Upper bounds (seconds) of the request latency histogram, fixed at compile time.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// A metrics request must arrive whole within this, and its answer leave within it.
const METRICS_DEADLINE: Duration = Duration::from_secs(2);
/// Larger request heads are cut off: a scraper sends a few hundred bytes.
const METRICS_MAX_REQUEST: usize = 4096;
/// Status codes are counted in a fixed array (100..=599); anything else is "other".
const STATUS_MIN: u16 = 100;
const STATUS_SLOTS: usize = 500;

/// Requests by status and their latency; lock-free, updated by every worker.
pub struct RequestStats {
    by_status: [AtomicU64; STATUS_SLOTS],
    other_status: AtomicU64,
    /// Per bucket (not cumulative), plus one for +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

impl Default for RequestStats {
    fn default() -> Self {
        RequestStats {
            by_status: [const { AtomicU64::new(0) }; STATUS_SLOTS],
            other_status: AtomicU64::new(0),
            buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS.len() + 1],
            sum_us: AtomicU64::new(0),
        }
    }
}

impl RequestStats {
    /// Count one answered request.
    pub fn observe(&self, status: u16, took: Duration) {
        match status
            .checked_sub(STATUS_MIN)
            .and_then(|i| self.by_status.get(usize::from(i)))
        {
            Some(c) => c.fetch_add(1, Ordering::Relaxed),
            None => self.other_status.fetch_add(1, Ordering::Relaxed),
        };
        let secs = took.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

/// What the metrics page is made of. `open_connections` is a closure so that the
/// edge can report its own count (its connection budget's open slots); `more`
/// appends families rendered elsewhere (the DNS intake's, SPEC 14), so that
/// this room needs no import of theirs.
pub struct Sources {
    pub counters: Arc<Counters>,
    pub publish: Arc<PublishStats>,
    pub events: Arc<EventStats>,
    pub open_connections: Box<dyn Fn() -> usize + Send + Sync>,
    pub more: Box<dyn Fn() -> String + Send + Sync>,
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP dedyn_update_{name} {help}");
    let _ = writeln!(out, "# TYPE dedyn_update_{name} {kind}");
}

fn sample(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "dedyn_update_{name} {value}");
}

/// Label values are zone names and status codes; escape anyway (text format 0.0.4).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics page in Prometheus text format 0.0.4.
pub fn render(src: &Sources) -> String {
    let mut out = String::with_capacity(4096);
    render_requests(&mut out, src);
    render_latency(&mut out, &src.counters.requests_by_status);
    render_publications(&mut out, &src.publish);
    render_events(&mut out, &src.events);
    out.push_str(&(src.more)());
    out
}

/// SPEC 15: the event command's deliveries and failures, what waits, stale
/// names, the history's pruning.
fn render_events(out: &mut String, e: &EventStats) {
    for (name, kind, help, value) in [
        (
            "events_delivered_total",
            "counter",
            "Events the [events] command took (exit 0).",
            load(&e.delivered),
        ),
        (
            "events_failed_total",
            "counter",
            "Runs of the [events] command that failed, timed out or did not start (each retried).",
            load(&e.failed),
        ),
        (
            "events_pending",
            "gauge",
            "Committed changes whose event is not delivered yet.",
            load(&e.pending),
        ),
        (
            "stale_names",
            "gauge",
            "Names with records not updated for [events] stale_after.",
            load(&e.stale),
        ),
        (
            "history_pruned_total",
            "counter",
            "History entries pruned to [history] per_name and max_age.",
            load(&e.pruned),
        ),
    ] {
        family(out, name, kind, help);
        sample(out, name, value);
    }
}

/// Requests by status, the update and refusal counters, open connections.
fn render_requests(out: &mut String, src: &Sources) {
    let c = &src.counters;
    let r = &c.requests_by_status;
    family(
        out,
        "requests_total",
        "counter",
        "Answered update-port requests by HTTP status.",
    );
    for (i, n) in r.by_status.iter().enumerate() {
        let n = load(n);
        if n > 0 {
            let _ = writeln!(
                out,
                "dedyn_update_requests_total{{status=\"{}\"}} {n}",
                i + usize::from(STATUS_MIN)
            );
        }
    }
    let other = load(&r.other_status);
    if other > 0 {
        let _ = writeln!(
            out,
            "dedyn_update_requests_total{{status=\"other\"}} {other}"
        );
    }
    for (name, help, v) in [
        (
            "updates_applied_total",
            "Updates that changed records.",
            &c.updates_applied,
        ),
        (
            "updates_unchanged_total",
            "Successful updates that changed nothing.",
            &c.updates_unchanged,
        ),
        (
            "rate_limited_total",
            "Requests refused with 429.",
            &c.rate_limited,
        ),
        (
            "failed_auth_total",
            "Requests whose credentials failed.",
            &c.failed_auth,
        ),
        (
            "acme_updates_total",
            "acme-dns calls that wrote an _acme-challenge TXT value.",
            &c.acme_updates,
        ),
        (
            "acme_refused_total",
            "acme-dns calls (POST /update, /register) refused.",
            &c.acme_refused,
        ),
    ] {
        family(out, name, "counter", help);
        sample(out, name, load(v));
    }
    family(
        out,
        "open_connections",
        "gauge",
        "Client connections open right now.",
    );
    sample(out, "open_connections", (src.open_connections)());
}

/// The request latency histogram (cumulative buckets, as Prometheus wants them).
fn render_latency(out: &mut String, r: &RequestStats) {
    family(
        out,
        "request_duration_seconds",
        "histogram",
        "Time from request received to response written.",
    );
    let mut cumulative = 0;
    for (i, b) in r.buckets.iter().enumerate() {
        cumulative += load(b);
        let le = LATENCY_BUCKETS
            .get(i)
            .map_or("+Inf".to_string(), |b| b.to_string());
        let _ = writeln!(
            out,
            "dedyn_update_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    sample(
        out,
        "request_duration_seconds_sum",
        load(&r.sum_us) as f64 / 1e6,
    );
    sample(out, "request_duration_seconds_count", cumulative);
}

/// Publications, their failures and durations, and the last success per zone.
fn render_publications(out: &mut String, p: &PublishStats) {
    let (ok, failed) = (load(&p.publications), load(&p.failures));
    family(
        out,
        "publications_total",
        "counter",
        "Zone publications (file written, reload command succeeded).",
    );
    sample(out, "publications_total", ok);
    family(
        out,
        "publish_failures_total",
        "counter",
        "Zone publications that failed (retried with backoff).",
    );
    sample(out, "publish_failures_total", failed);
    family(
        out,
        "publish_superseded_total",
        "counter",
        "Failed publications given up for a newer change while the reload ran or verify_server was awaited (SPEC 17).",
    );
    sample(out, "publish_superseded_total", load(&p.superseded));
    family(
        out,
        "publish_duration_seconds",
        "summary",
        "Time per publication attempt: render, write, reload.",
    );
    sample(
        out,
        "publish_duration_seconds_sum",
        load(&p.duration_us_total) as f64 / 1e6,
    );
    sample(out, "publish_duration_seconds_count", ok + failed);
    family(
        out,
        "publish_last_duration_seconds",
        "gauge",
        "Duration of the latest publication attempt.",
    );
    sample(
        out,
        "publish_last_duration_seconds",
        load(&p.last_duration_us) as f64 / 1e6,
    );
    family(
        out,
        "publisher_restarts_total",
        "counter",
        "Zone publisher threads restarted after they died.",
    );
    sample(out, "publisher_restarts_total", load(&p.restarts));
    render_zones(out, &p.zones(), crate::os::clock::now_unix());
}

/// Per zone: last proven publication, how long a change has waited, the state.
fn render_zones(out: &mut String, zones: &BTreeMap<String, ZoneStats>, now: i64) {
    family(
        out,
        "last_publish_timestamp_seconds",
        "gauge",
        "Unix time of the last successful publication, per zone.",
    );
    for (zone, z) in zones {
        if let Some(at) = z.last_success {
            let _ = writeln!(
                out,
                "dedyn_update_last_publish_timestamp_seconds{{zone=\"{}\"}} {at}",
                label(zone)
            );
        }
    }
    family(
        out,
        "zone_pending_seconds",
        "gauge",
        "How long the zone's oldest unpublished change has waited (0: none waits).",
    );
    for (zone, z) in zones {
        let lag = z.pending_since.map_or(0, |t| (now - t).max(0));
        let _ = writeln!(
            out,
            "dedyn_update_zone_pending_seconds{{zone=\"{}\"}} {lag}",
            label(zone)
        );
    }
    per_zone(
        out,
        zones,
        "zone_publish_failures_total",
        "counter",
        "Failed publication attempts, per zone.",
        |z| z.failures,
    );
    per_zone(
        out,
        zones,
        "zone_rows_left_out",
        "gauge",
        "Database rows left out of the zone's latest rendering because they would break the zone (each logged as an ERROR).",
        |z| z.rows_left_out,
    );
    per_zone(
        out,
        zones,
        "zone_rows_left_out_total",
        "counter",
        "Database rows left out of renderings of the zone, summed over every rendering.",
        |z| z.rows_left_out_total,
    );
    family(
        out,
        "zone_state",
        "gauge",
        "1 for the zone's current publication state (published, written, pending).",
    );
    for (zone, z) in zones {
        for s in ZoneState::ALL {
            let _ = writeln!(
                out,
                "dedyn_update_zone_state{{zone=\"{}\",state=\"{}\"}} {}",
                label(zone),
                s.as_str(),
                u8::from(z.state == s)
            );
        }
    }
}

/// One metric family with a sample per zone: `value` of its entry.
fn per_zone(
    out: &mut String,
    zones: &BTreeMap<String, ZoneStats>,
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&ZoneStats) -> u64,
) {
    family(out, name, kind, help);
    for (zone, z) in zones {
        let _ = writeln!(
            out,
            "dedyn_update_{name}{{zone=\"{}\"}} {}",
            label(zone),
            value(z)
        );
    }
}

/// Why the metrics listener could not start; `serve` stops with it.
#[derive(Debug)]
pub enum MetricsError {
    /// `server.metrics_listen` cannot be bound: the message names the key.
    Bind { addr: SocketAddr, error: io::Error },
    /// The bound socket has no local address.
    LocalAddr(io::Error),
    /// The serving thread could not be started.
    Thread(io::Error),
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsError::Bind { addr, error } => {
                write!(f, "server.metrics_listen: cannot listen on {addr}: {error}")
            }
            MetricsError::LocalAddr(e) => write!(f, "{e}"),
            MetricsError::Thread(e) => write!(f, "cannot start the metrics thread: {e}"),
        }
    }
}

impl std::error::Error for MetricsError {}

/// Bind `addr` for the metrics listener; the error names the key. `serve`
/// binds it with the public listeners, before it writes anything (SPEC 17).
pub fn bind(addr: SocketAddr) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(addr).map_err(|error| MetricsError::Bind { addr, error })
}

/// Serve `/metrics` on `listener` from one thread.
pub fn spawn(listener: TcpListener, src: Sources) -> Result<SocketAddr, MetricsError> {
    let local = listener.local_addr().map_err(MetricsError::LocalAddr)?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || loop {
            match listener.accept() {
                Ok((stream, _)) => answer(stream, &src),
                Err(e) => {
                    // Out of file descriptors and the like: log, breathe, go on.
                    warn!("metrics listener: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
        .map_err(MetricsError::Thread)?;
    info!("metrics on http://{local}/metrics");
    Ok(local)
}

/// Read one request head (bounded in size and time) and answer it; then close.
fn answer(mut stream: TcpStream, src: &Sources) {
    let deadline = Instant::now() + METRICS_DEADLINE;
    let _ = stream.set_write_timeout(Some(METRICS_DEADLINE));
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    let complete = loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || head.len() > METRICS_MAX_REQUEST {
            break false;
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            break false;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    };
    if !complete {
        return; // too slow, too big or gone: just close
    }
    let line = head
        .split(|b| *b == b'\r')
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", render(src)),
        ("GET", _) => ("404 Not Found", "only /metrics here\n".to_string()),
        _ => ("405 Method Not Allowed", "GET /metrics only\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if let Err(e) = stream.write_all(response.as_bytes()) {
        log::debug!("metrics client went away: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> Sources {
        Sources {
            counters: Arc::new(Counters::default()),
            publish: Arc::new(PublishStats::default()),
            events: Arc::new(EventStats::default()),
            open_connections: Box::new(|| 3),
            more: Box::new(|| "dedyn_update_more 1\n".into()),
        }
    }

    #[test]
    fn latency_lands_in_its_bucket_and_buckets_are_cumulative() {
        let s = sources();
        s.counters
            .requests_by_status
            .observe(200, Duration::from_micros(700));
        s.counters
            .requests_by_status
            .observe(401, Duration::from_secs(9));
        let text = render(&s);
        // Families rendered elsewhere (the DNS intake's) come last, as given.
        assert!(text.ends_with("\ndedyn_update_more 1\n"), "{text}");
        assert!(
            text.contains("dedyn_update_request_duration_seconds_bucket{le=\"0.0005\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("dedyn_update_request_duration_seconds_bucket{le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("dedyn_update_request_duration_seconds_bucket{le=\"5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("dedyn_update_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("dedyn_update_request_duration_seconds_count 2\n"),
            "{text}"
        );
        assert!(
            text.contains("dedyn_update_requests_total{status=\"200\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("dedyn_update_requests_total{status=\"401\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("dedyn_update_open_connections 3\n"), "{text}");
    }

    #[test]
    fn odd_status_codes_count_as_other() {
        let s = sources();
        s.counters.requests_by_status.observe(42, Duration::ZERO);
        s.counters.requests_by_status.observe(600, Duration::ZERO);
        assert!(render(&s).contains("dedyn_update_requests_total{status=\"other\"} 2\n"));
    }

    #[test]
    fn zone_publication_times_are_labelled() {
        let s = sources();
        s.publish.zones.lock().unwrap().insert(
            "dedyn.example".into(),
            ZoneStats {
                last_success: Some(1_700_000_000),
                ..ZoneStats::default()
            },
        );
        assert!(render(&s).contains(
            "dedyn_update_last_publish_timestamp_seconds{zone=\"dedyn.example\"} 1700000000\n"
        ));
    }

    #[test]
    fn zone_lag_and_state_are_labelled() {
        let mut zones = BTreeMap::new();
        zones.insert(
            "a.example".to_string(),
            ZoneStats {
                state: ZoneState::Written,
                pending_since: Some(1_000),
                failures: 3,
                rows_left_out: 1,
                rows_left_out_total: 5,
                ..ZoneStats::default()
            },
        );
        let mut out = String::new();
        render_zones(&mut out, &zones, 1_042);
        for line in [
            "dedyn_update_zone_pending_seconds{zone=\"a.example\"} 42\n",
            "dedyn_update_zone_publish_failures_total{zone=\"a.example\"} 3\n",
            "dedyn_update_zone_rows_left_out{zone=\"a.example\"} 1\n",
            "dedyn_update_zone_rows_left_out_total{zone=\"a.example\"} 5\n",
            "dedyn_update_zone_state{zone=\"a.example\",state=\"written\"} 1\n",
            "dedyn_update_zone_state{zone=\"a.example\",state=\"published\"} 0\n",
        ] {
            assert!(out.contains(line), "{line} missing:\n{out}");
        }
        assert!(!out.contains("last_publish_timestamp_seconds{"), "{out}");
    }
}

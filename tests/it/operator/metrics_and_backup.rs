//! Operations: the Prometheus metrics listener (what it shows, and that it is not
//! the update API), and `backup`/`restore` of the live database under load.

use crate::common::server::{free_tcp, metric as value, request, scrape, token, Server, Setup};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);

/// A server with metrics on a free loopback port; returns it and the metrics address.
fn with_metrics() -> (Server, SocketAddr) {
    let m = free_tcp("127.0.0.1").expect("a free port for metrics");
    let s = Server::start_with(Setup {
        server: vec![format!("metrics_listen = \"{m}\"")],
        ..Setup::default()
    });
    (s, m)
}

#[test]
fn metrics_name_every_family_with_help_and_type() {
    let (s, m) = with_metrics();
    // One publication happens at start; wait for it so the per-zone gauge exists.
    s.wait_until("the start-up publication", DEADLINE, || {
        value(&scrape(m), "dedyn_update_publications_total").is_some_and(|v| v >= 1.0)
    });
    let text = scrape(m);
    for family in [
        "requests_total",
        "updates_applied_total",
        "updates_unchanged_total",
        "rate_limited_total",
        "failed_auth_total",
        "acme_updates_total",
        "acme_refused_total",
        "open_connections",
        "request_duration_seconds",
        "publications_total",
        "publish_failures_total",
        "publish_superseded_total",
        "publish_duration_seconds",
        "publish_last_duration_seconds",
        "last_publish_timestamp_seconds",
    ] {
        assert!(
            text.contains(&format!("# HELP dedyn_update_{family} "))
                && text.contains(&format!("# TYPE dedyn_update_{family} ")),
            "no HELP/TYPE for {family}:\n{text}"
        );
    }
    let published = value(
        &text,
        "dedyn_update_last_publish_timestamp_seconds{zone=\"dedyn.example\"}",
    )
    .expect("last publication time of dedyn.example");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - published).abs() < 60.0, "{published} vs {now}");
    assert!(value(
        &text,
        "dedyn_update_request_duration_seconds_bucket{le=\"+Inf\"}"
    )
    .is_some());
}

#[test]
fn metrics_counters_move_after_updates() {
    let (s, m) = with_metrics();
    let tok = s.provision("alice@example.org", "alice.dedyn.example");
    let before = scrape(m);
    let v = |t: &str, n: &str| value(t, n).unwrap_or(0.0);

    let auth = token(&tok);
    let r = s.get("/?myipv4=192.0.2.1&myipv6=", &[("Authorization", &auth)]);
    assert_eq!((r.status, r.body.as_str()), (200, "good"));
    let r = s.get("/?myipv4=192.0.2.1&myipv6=", &[("Authorization", &auth)]);
    assert_eq!(
        (r.status, r.header("X-Zone-Serial")),
        (200, None),
        "unchanged"
    );
    let r = s.get("/", &[("Authorization", "Token wrong-secret")]);
    assert_eq!(r.status, 401);

    // The worker counts after writing the response: poll.
    let mut after = String::new();
    s.wait_until("the counters to move", DEADLINE, || {
        after = scrape(m);
        v(&after, "dedyn_update_request_duration_seconds_count")
            >= v(&before, "dedyn_update_request_duration_seconds_count") + 3.0
            && v(&after, "dedyn_update_publications_total")
                > v(&before, "dedyn_update_publications_total")
    });
    let delta = |n: &str| v(&after, n) - v(&before, n);
    assert_eq!(
        delta("dedyn_update_requests_total{status=\"200\"}"),
        2.0,
        "{after}"
    );
    assert_eq!(
        delta("dedyn_update_requests_total{status=\"401\"}"),
        1.0,
        "{after}"
    );
    assert_eq!(delta("dedyn_update_updates_applied_total"), 1.0, "{after}");
    assert_eq!(
        delta("dedyn_update_updates_unchanged_total"),
        1.0,
        "{after}"
    );
    assert_eq!(delta("dedyn_update_failed_auth_total"), 1.0, "{after}");
    assert_eq!(delta("dedyn_update_rate_limited_total"), 0.0, "{after}");
    assert!(
        delta("dedyn_update_publish_duration_seconds_count") >= 1.0,
        "{after}"
    );
}

#[test]
fn metrics_port_does_not_answer_update_requests() {
    let (s, m) = with_metrics();
    let tok = s.provision("alice@example.org", "alice.dedyn.example");
    let auth = token(&tok);
    let r = request(
        m,
        "GET",
        "/?hostname=alice.dedyn.example&myipv4=192.0.2.9",
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = request(m, "POST", "/metrics", &[]);
    assert_eq!(r.status, 405, "{}", r.body);
    assert!(s.records("alice.dedyn.example").is_empty());
}

#[test]
fn update_port_treats_slash_metrics_as_an_update_request() {
    let (s, _m) = with_metrics();
    let r = s.get("/metrics", &[]);
    assert_eq!((r.status, r.body.as_str()), (401, "badauth"));
    assert!(r.header("WWW-Authenticate").is_some());
    assert!(!r.body.contains("dedyn_update_"));
    // With credentials it is simply an update.
    let tok = s.provision("alice@example.org", "alice.dedyn.example");
    let r = s.get(
        "/metrics?myipv4=192.0.2.7&myipv6=",
        &[("Authorization", &token(&tok))],
    );
    assert_eq!((r.status, r.body.as_str()), (200, "good"));
    assert_eq!(s.records("alice.dedyn.example"), ["A 192.0.2.7"]);
}

#[test]
fn metrics_listener_cuts_off_a_stalled_client() {
    let (_s, m) = with_metrics();
    // Connect and send half a request: the one metrics thread must not wait forever.
    let mut stalled = TcpStream::connect(m).expect("connect to metrics");
    std::io::Write::write_all(&mut stalled, b"GET /metr").unwrap();
    let started = Instant::now();
    let r = request(m, "GET", "/metrics", &[]);
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a stalled client held the metrics listener for {:?}",
        started.elapsed()
    );
}

// ---- backup and restore ----

/// Sends updates with changing addresses until told to stop; counts the outcomes.
struct Load {
    stop: Arc<AtomicBool>,
    good: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(addr: SocketAddr, tok: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let good = Arc::new(AtomicU64::new(0));
        let (st, gd, auth) = (stop.clone(), good.clone(), token(tok));
        let thread = std::thread::spawn(move || {
            let mut failures = Vec::new();
            let end = Instant::now() + Duration::from_secs(60);
            for i in 0u32..100_000 {
                if st.load(Ordering::Relaxed) || Instant::now() > end {
                    break;
                }
                let target = format!("/?myipv4=10.0.{}.{}&myipv6=", (i / 250) % 250, i % 250 + 1);
                let r = request(addr, "GET", &target, &[("Authorization", &auth)]);
                if r.status == 200 {
                    gd.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.push(format!("{target}: {} {}", r.status, r.body));
                }
            }
            failures
        });
        Load {
            stop,
            good,
            thread: Some(thread),
        }
    }

    fn good(&self) -> u64 {
        self.good.load(Ordering::Relaxed)
    }

    /// Stop and return the failed requests.
    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("load thread"))
            .unwrap_or_default()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn backup_under_load_restores_to_a_working_instance() {
    let s = Server::start();
    let tok = s.provision("alice@example.org", "alice.dedyn.example");
    s.provision("bob@example.org", "bob.dedyn.example");
    let load = Load::start(s.http, &tok);
    s.wait_until("the load to get going", DEADLINE, || load.good() >= 20);

    let backup = s.dir.path().join("backup.sqlite3");
    for round in 0..3 {
        let at = load.good();
        let out = s.cli(&["backup", backup.to_str().unwrap()]);
        assert_eq!(out.code, 0, "backup {round} failed: {}", out.stderr);
        assert!(out.stdout.contains("written to"), "{}", out.stdout);
        // Let a few updates commit between backups, so each one races fresh writes.
        s.wait_until("more updates", DEADLINE, || load.good() >= at + 5);
    }
    let failures = load.finish();
    assert!(
        failures.is_empty(),
        "updates failed during backup: {failures:?}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".backup.sqlite3.")
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A fresh instance, stopped, gets the backup; then it serves what was backed up.
    let mut t = Server::start();
    assert_eq!(t.stop(), Some(0));
    let out = t.cli(&["restore", backup.to_str().unwrap()]);
    assert_eq!(out.code, 0, "restore failed: {}", out.stderr);
    assert!(out.stdout.contains("2 users, 2 domains"), "{}", out.stdout);
    let db = t.dir.path().join("db.sqlite3");
    for stale in ["db.sqlite3-wal", "db.sqlite3-shm"] {
        assert!(!t.dir.path().join(stale).exists(), "{stale} left behind");
    }
    assert!(db.exists());
    t.spawn();
    let recs = t.records("alice.dedyn.example");
    assert!(
        recs.len() == 1 && recs[0].starts_with("A 10.0."),
        "restored records: {recs:?}"
    );
    assert_eq!(t.cli_ok(&["user", "list"]).lines().count(), 2);
    // The restored token works, updates are written and published.
    let r = t.get(
        "/?myipv4=198.51.100.42&myipv6=",
        &[("Authorization", &token(&tok))],
    );
    assert_eq!((r.status, r.body.as_str()), (200, "good"), "{}", t.log());
    assert_eq!(t.records("alice.dedyn.example"), ["A 198.51.100.42"]);
    t.wait_until("the zone file to carry the update", DEADLINE, || {
        crate::common::server::read(&t.zone_file()).contains("198.51.100.42")
    });
    assert_eq!(t.stop(), Some(0));
}

#[test]
fn restore_refuses_while_the_server_runs() {
    let s = Server::start();
    s.provision("alice@example.org", "alice.dedyn.example");
    let backup = s.dir.path().join("b.sqlite3");
    s.cli_ok(&["backup", backup.to_str().unwrap()]);
    let out = s.cli(&["restore", backup.to_str().unwrap()]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("in use"), "{}", out.stderr);
}

fn refused(t: &Server, file: &Path, why: &str) {
    let out = t.cli(&["restore", file.to_str().unwrap()]);
    assert_ne!(out.code, 0, "restore of {} succeeded", file.display());
    assert!(
        out.stderr.contains(why),
        "expected '{why}' in: {}",
        out.stderr
    );
}

#[test]
fn restore_refuses_files_that_are_not_a_known_dedyn_update_database() {
    let mut t = Server::start();
    t.provision("carol@example.org", "carol.dedyn.example");
    let good = t.dir.path().join("good.sqlite3");
    t.cli_ok(&["backup", good.to_str().unwrap()]);
    assert_eq!(t.stop(), Some(0));
    let d = t.dir.path();

    let garbage = d.join("garbage");
    std::fs::write(&garbage, "this is not sqlite\n".repeat(100)).unwrap();
    refused(&t, &garbage, "not a dedyn-update database");

    let foreign = d.join("foreign.sqlite3");
    let c = rusqlite::Connection::open(&foreign).unwrap();
    c.execute_batch("CREATE TABLE t(x); PRAGMA user_version = 1;")
        .unwrap();
    drop(c);
    refused(&t, &foreign, "no table users");

    let future = d.join("future.sqlite3");
    std::fs::copy(&good, &future).unwrap();
    let c = rusqlite::Connection::open(&future).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    refused(&t, &future, "schema version 99");

    refused(&t, &d.join("missing.sqlite3"), "no such file");

    // Nothing above touched the database; the good backup still restores.
    let out = t.cli(&["restore", good.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(t.cli_ok(&["user", "list"]).trim(), "carol@example.org");
}

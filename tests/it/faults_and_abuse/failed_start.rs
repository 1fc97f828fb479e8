//! SPEC 13 under faults: what a failed start leaves behind, and the CLI's small
//! failure paths.
use crate::common::proc::{run_with_timeout, TempDir};
use crate::common::server::{free_tcp, BIN};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A config whose zone file and reload marker live in `dir`, plus `server` lines.
fn config(dir: &Path, server: &str) -> std::path::PathBuf {
    let text = format!(
        "[server]\n{server}\n\n[database]\npath = \"{db}\"\n\n[dns]\nreload_command = \"touch {marker}\"\n\n[[zone]]\nname = \"dedyn.example\"\nfile = \"{zone}\"\n",
        db = dir.join("db.sqlite3").display(),
        marker = dir.join("reloaded").display(),
        zone = dir.join("zones/dedyn.example.zone").display(),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// `serve` must exit non-zero naming the problem, and leave no database, no
/// zone file and no trace of the reload command.
fn start_fails_and_touches_nothing(dir: &Path, server: &str, says: &str) {
    let cfg = config(dir, server);
    let mut cmd = Command::new(BIN);
    cmd.args(["--config", cfg.to_str().expect("utf8"), "serve"]);
    // Bounded: a regression that lets `serve` start must fail, not hang.
    let scratch = TempDir::new("faults-out");
    let out = run_with_timeout(cmd, scratch.path(), Duration::from_secs(10));
    let stderr = out.text;
    let status = out
        .status
        .expect("serve did not exit within 10 s: it started");
    assert_ne!(status.code(), Some(0), "serve started: {stderr}");
    assert!(
        stderr.contains(says),
        "stderr does not say {says:?}: {stderr}"
    );
    for left in ["zones/dedyn.example.zone", "reloaded", "db.sqlite3"] {
        assert!(
            !dir.join(left).exists(),
            "a failed start left {left}: {stderr}"
        );
    }
}

#[test]
fn a_start_that_fails_on_a_bad_certificate_touches_nothing() {
    let dir = TempDir::new("start-cert");
    let port = free_tcp("127.0.0.1").expect("free port");
    let bad = dir.path().join("not-a-cert.pem");
    std::fs::write(&bad, "not a certificate\n").expect("write");
    let server = format!(
        "http_listen = []\nhttps_listen = [\"{port}\"]\ntls_cert = \"{b}\"\ntls_key = \"{b}\"",
        b = bad.display()
    );
    start_fails_and_touches_nothing(dir.path(), &server, "not-a-cert.pem");
}

#[test]
fn a_start_that_fails_on_a_listen_address_touches_nothing() {
    let dir = TempDir::new("start-listen");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let server = format!("http_listen = [\"{addr}\"]");
    start_fails_and_touches_nothing(dir.path(), &server, "cannot listen on");
}

/// E8 (SPEC 17): `serve` binds every listener, the metrics one too, before it
/// writes a zone or runs the reload command.
#[test]
fn a_start_that_fails_on_the_metrics_listener_touches_nothing() {
    let dir = TempDir::new("start-metrics");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let http = free_tcp("127.0.0.1").expect("free port");
    let server = format!("http_listen = [\"{http}\"]\nmetrics_listen = \"{addr}\"");
    start_fails_and_touches_nothing(dir.path(), &server, "server.metrics_listen");
}

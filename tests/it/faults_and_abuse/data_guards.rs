//! SPEC 17 through the real binary: no config line and no vanished file may
//! destroy data. A zone file on the database or the config file, a database
//! removed while serving, and what `check` tries before `serve` would fail
//! (listeners, a sticky zone directory, a zone directory that cannot exist).
use crate::common::proc::{require_root, run_with_timeout, TempDir};
use crate::common::server::{
    as_nobody, cli_in, free_tcp, nobody_sandbox, token, CliOutput, Server, BIN,
};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const EMAIL: &str = "alice@example.org";
const ALICE: &str = "alice.dedyn.example";

/// `check` failed: exit 1 and a stderr line that names all of `parts`.
#[track_caller]
fn assert_check_names(o: &CliOutput, parts: &[&str]) {
    assert_eq!(o.code, 1, "check should fail: {}{}", o.stdout, o.stderr);
    assert!(
        o.stderr
            .lines()
            .any(|l| parts.iter().all(|p| l.contains(p))),
        "no stderr line names all of {parts:?}:\n{}",
        o.stderr
    );
}

/// `serve` with `config`, bounded: it must exit non-zero (a regression that
/// lets it start is killed after 10 s and fails here). Returns its output.
#[track_caller]
fn serve_refuses(dir: &Path, config: &Path) -> String {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .arg("serve")
        .current_dir(dir)
        .env("RUST_LOG", "info");
    let scratch = TempDir::new("guards-out");
    let out = run_with_timeout(cmd, scratch.path(), Duration::from_secs(10));
    let status = out
        .status
        .unwrap_or_else(|| panic!("serve did not exit within 10 s: it started\n{}", out.text));
    assert_ne!(status.code(), Some(0), "serve started: {}", out.text);
    out.text
}

/// A config in `d` on a free port with `zone_file` as the zone's file.
fn write_config(d: &Path, zone_file: &str) -> std::path::PathBuf {
    let port = free_tcp("127.0.0.1").expect("a free port");
    let cfg = d.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nhttp_listen = [\"{port}\"]\n[database]\npath = \"db.sqlite3\"\n\
             [[zone]]\nname = \"dedyn.example\"\nfile = \"{zone_file}\"\n"
        ),
    )
    .unwrap();
    cfg
}

/// E2: a zone file that is the database or the config file is a config error
/// naming both keys; `check` and `serve` refuse and the file keeps its bytes.
#[test]
fn a_zone_file_on_the_database_or_the_config_file_is_refused() {
    let dir = TempDir::new("guards-e2");
    let d = dir.path();
    let cfg = write_config(d, "zones/dedyn.example.zone");
    let c = cfg.to_str().unwrap();
    for args in [
        &["user", "add", EMAIL][..],
        &["domain", "add", ALICE, "--owner", EMAIL],
        &["token", "add", "--owner", EMAIL],
    ] {
        let mut all = vec!["--config", c];
        all.extend_from_slice(args);
        let o = cli_in(d, &all, &[]);
        assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
    }
    let db = d.join("db.sqlite3");
    for (zone_file, other) in [
        ("db.sqlite3", "database.path"),
        ("config.toml", "the config file"),
    ] {
        let cfg = write_config(d, zone_file);
        let db_bytes = std::fs::read(&db).unwrap();
        let cfg_bytes = std::fs::read(&cfg).unwrap();
        let o = cli_in(d, &["--config", cfg.to_str().unwrap(), "check"], &[]);
        assert_check_names(&o, &["zone[0].file", other]);
        let out = serve_refuses(d, &cfg);
        assert!(
            out.contains("zone[0].file") && out.contains(other),
            "serve does not name both keys: {out}"
        );
        assert_eq!(
            std::fs::read(&db).unwrap(),
            db_bytes,
            "the database changed"
        );
        assert_eq!(
            std::fs::read(&cfg).unwrap(),
            cfg_bytes,
            "the config changed"
        );
    }
    let o = cli_in(
        d,
        &[
            "--config",
            write_config(d, "zones/dedyn.example.zone")
                .to_str()
                .unwrap(),
            "user",
            "list",
        ],
        &[],
    );
    assert_eq!(o.stdout, format!("{EMAIL}\n"), "{}", o.stderr);
}

/// E9: a database removed or replaced while serving makes the next update
/// `500 911` with an ERROR line, never `good`; the next start (and `user add`)
/// refuses to create an empty database over a zone file that holds names,
/// naming it; without that zone file it starts afresh.
#[test]
fn a_database_removed_while_serving_is_noticed_and_not_recreated_empty() {
    let mut s = Server::start();
    let tok = s.provision(EMAIL, ALICE);
    let auth = token(&tok);
    let update = |ip: &str| {
        s.get(
            &format!("/?myipv4={ip}&myipv6="),
            &[("Authorization", &auth)],
        )
    };
    let r = update("192.0.2.1");
    assert_eq!((r.status, r.body.as_str()), (200, "good"));
    s.wait_until(
        "the record to be published",
        Duration::from_secs(10),
        || s.zone_text().contains("192.0.2.1"),
    );

    // Replaced (a copy renamed over it): a new inode under the same path.
    let db = s.db_path();
    let copy = db.with_extension("copy");
    std::fs::copy(&db, &copy).unwrap();
    std::fs::rename(&copy, &db).unwrap();
    let r = update("192.0.2.2");
    assert_eq!((r.status, r.body.as_str()), (500, "911"), "after a replace");
    // Removed: also an update that changes nothing is refused, not `good`.
    std::fs::remove_file(&db).unwrap();
    for ip in ["192.0.2.1", "192.0.2.3"] {
        let r = update(ip);
        assert_eq!((r.status, r.body.as_str()), (500, "911"), "after rm, {ip}");
    }
    let log = s.log();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains(&db.display().to_string())),
        "no ERROR line naming the database:\n{log}"
    );
    s.stop();

    let zone_before = s.zone_text();
    assert!(zone_before.contains(ALICE), "{zone_before}");
    let _ = std::fs::remove_file(&db);
    let out = serve_refuses(s.dir.path(), &s.config);
    assert!(
        out.contains(&s.zone_file().display().to_string()),
        "the refusal does not name the zone file: {out}"
    );
    assert!(!db.exists(), "a refused start created the database");
    assert_eq!(s.zone_text(), zone_before, "the zone file changed");
    // Nor does a command that would create the database (`user add`).
    let o = s.cli(&["user", "add", "bob@example.org"]);
    assert_ne!(o.code, 0, "user add created an empty database");
    assert!(
        o.stderr.contains(&s.zone_file().display().to_string()),
        "{}",
        o.stderr
    );
    assert!(!db.exists(), "a refused user add created the database");

    // The way out the message gives: move the zone file away, start afresh.
    std::fs::rename(s.zone_file(), s.zone_file().with_extension("old")).unwrap();
    s.spawn();
    assert!(db.exists());
    s.wait_until("the new zone", Duration::from_secs(10), || {
        s.zone_text().contains("SOA")
    });
    assert!(!s.zone_text().contains(ALICE), "{}", s.zone_text());
}

/// `check` binds every listener as `serve` would: a port held by another
/// socket is a problem naming the key and the address.
#[test]
fn check_tries_every_listener() {
    let dir = TempDir::new("guards-listen");
    let d = dir.path();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let held = taken.local_addr().unwrap();
    let free = free_tcp("127.0.0.1").expect("a free port");
    let cfg = d.join("config.toml");
    let write = |http: String, metrics: String| {
        std::fs::write(
            &cfg,
            format!(
                "[server]\nhttp_listen = [\"{http}\"]\nmetrics_listen = \"{metrics}\"\n\
                 [database]\npath = \"db.sqlite3\"\n"
            ),
        )
        .unwrap();
    };
    let check = || cli_in(d, &["--config", cfg.to_str().unwrap(), "check"], &[]);
    write(free.to_string(), "127.0.0.1:0".into());
    let o = cli_in(
        d,
        &["--config", cfg.to_str().unwrap(), "user", "add", EMAIL],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = check();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("listeners"), "{}", o.stdout);

    write(held.to_string(), "127.0.0.1:0".into());
    assert_check_names(&check(), &["server.http_listen", &held.to_string()]);
    write(free.to_string(), held.to_string());
    assert_check_names(&check(), &["server.metrics_listen", &held.to_string()]);
}

/// While a `serve` runs on the same database its listeners are in use: `check`
/// does not try them, and says so.
#[test]
fn check_skips_the_listeners_while_serve_runs_and_says_so() {
    let s = Server::start();
    let o = s.cli(&["check"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout
            .lines()
            .any(|l| l.starts_with("listeners:") && l.contains("not tried")),
        "{}",
        o.stdout
    );
}

/// Issue 20: a zone file below a regular file can never be written; `check`
/// says which component is not a directory.
#[test]
fn check_finds_a_zone_directory_that_cannot_exist() {
    let dir = TempDir::new("guards-notdir");
    let d = dir.path();
    std::fs::write(d.join("plain"), "a file\n").unwrap();
    let cfg = write_config(d, "plain/zones/dedyn.example.zone");
    let c = cfg.to_str().unwrap();
    let o = cli_in(d, &["--config", c, "user", "add", EMAIL], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = cli_in(d, &["--config", c, "check"], &[]);
    assert_check_names(
        &o,
        &[
            "zone[0].file",
            &d.join("plain").display().to_string(),
            "not a directory",
        ],
    );
}

/// A sticky zone directory owned by another user (like /tmp): the service
/// user may create files there but not rename one over a zone file it does not
/// own, so every publication would fail. `check`, run as that user, says so;
/// once the zone file is the user's own, it passes.
#[test]
fn check_finds_a_sticky_zone_directory_the_user_cannot_replace_files_in() {
    if !require_root(
        "check_finds_a_sticky_zone_directory_the_user_cannot_replace_files_in",
        "to act as another user",
    ) {
        return;
    }
    let dir = TempDir::new("guards-sticky");
    let d = dir.path();
    let bin = nobody_sandbox(d);
    let zones = d.join("zones");
    std::fs::create_dir(&zones).unwrap();
    std::fs::set_permissions(&zones, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let zone_file = zones.join("dedyn.example.zone");
    std::fs::write(&zone_file, "; published by root\n").unwrap();
    let port = free_tcp("127.0.0.1").expect("a free port");
    let cfg = d.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nhttp_listen = [\"{port}\"]\n[database]\npath = \"state/db.sqlite3\"\n\
             [[zone]]\nname = \"dedyn.example\"\nfile = \"zones/dedyn.example.zone\"\n"
        ),
    )
    .unwrap();
    let dedyn = |args: &[&str]| {
        let mut all = vec!["--config", cfg.to_str().unwrap()];
        all.extend_from_slice(args);
        as_nobody(d, &bin, &all)
    };
    // The kernel's rule, as the publisher meets it: nobody can create a file
    // here but not rename it over root's.
    let tmp = zones.join(".probe");
    let o = as_nobody(
        d,
        Path::new("/bin/sh"),
        &[
            "-c",
            &format!(
                "touch {t} && mv -f {t} {z}",
                t = tmp.display(),
                z = zone_file.display()
            ),
        ],
    );
    assert_ne!(o.code, 0, "the rename should be refused: {}", o.stderr);
    let _ = std::fs::remove_file(&tmp);

    let o = dedyn(&["user", "add", EMAIL]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = dedyn(&["check"]);
    assert_check_names(
        &o,
        &["zone[0].file", &zones.display().to_string(), "sticky"],
    );
    let st = Command::new("chown")
        .arg("nobody")
        .arg(&zone_file)
        .status()
        .unwrap();
    assert!(st.success());
    let o = dedyn(&["check"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
}

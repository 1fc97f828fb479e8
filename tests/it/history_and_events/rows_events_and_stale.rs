//! SPEC 15, what happened to a name: the history written with each change,
//! events delivered to `[events] command` (in commit order, at least once, across
//! a SIGKILL, never delaying an update), pruning, stale names, and `status`.

use crate::common::proc::TempDir;
use crate::common::server::{metric, Response, Server, Setup};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const EMAIL: &str = "alice@example.org";
const ALICE: &str = "alice.dedyn.example";
const BOB: &str = "bob.dedyn.example";
/// How long an event may take to arrive (generous: a loaded test machine).
const ARRIVE: Duration = Duration::from_secs(20);

fn update(s: &Server, tok: &str, query: &str) -> Response {
    s.get(
        &format!("/?{query}"),
        &[("Authorization", &format!("Token {tok}"))],
    )
}

/// An executable shell script `name` in `dir` with `body`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

/// A command that appends each event to `events.jsonl` in `dir`, and fails
/// (exit 1, nothing kept) while `dir/fail` exists.
fn recorder(dir: &Path) -> (PathBuf, PathBuf) {
    let out = dir.join("events.jsonl");
    let cmd = script(
        dir,
        "record-event",
        &format!(
            "[ -e '{d}/fail' ] && exit 1\ncat >> '{o}'",
            d = dir.display(),
            o = out.display()
        ),
    );
    (cmd, out)
}

fn events_setup(command: &Path, more: &[&str]) -> Setup {
    let mut section = format!("[events]\ncommand = \"{}\"", command.display());
    for l in more {
        section.push('\n');
        section.push_str(l);
    }
    Setup {
        sections: vec![section],
        ..Setup::default()
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The event lines about `name`.
fn events_of(path: &Path, name: &str) -> Vec<String> {
    let key = format!("\"name\":\"{name}\"");
    lines(path)
        .into_iter()
        .filter(|l| l.contains(&key))
        .collect()
}

/// Poll until `path` holds at least `n` lines.
fn wait_lines(s: &Server, path: &Path, n: usize) -> Vec<String> {
    s.wait_until(&format!("{n} events in {}", path.display()), ARRIVE, || {
        lines(path).len() >= n
    });
    lines(path)
}

/// The fields of a `changed` event (SPEC 15), `at` and `serial` checked for form.
fn assert_changed(line: &str, name: &str, rtype: &str, old: &str, new: &str, via: &str) {
    let head = format!(
        "{{\"event\":\"changed\",\"name\":\"{name}\",\"type\":\"{rtype}\",\"old\":{old},\"new\":{new},\"via\":\"{via}\",\"client\":"
    );
    assert!(line.starts_with(&head), "{line}\nwanted it to start {head}");
    let at = line
        .split("\"at\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no at in {line}"));
    assert!(
        at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "at is not RFC 3339: {at}"
    );
    let serial = line
        .rsplit("\"serial\":")
        .next()
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or_else(|| panic!("no serial at the end of {line}"));
    assert!(serial.parse::<u32>().is_ok_and(|s| s > 0), "{line}");
    // Exactly these keys, in this order.
    let keys: Vec<&str> = line
        .split("\":")
        .filter_map(|p| p.rsplit(['{', ',']).next())
        .filter_map(|k| k.strip_prefix('"'))
        .collect();
    assert_eq!(
        keys,
        ["event", "name", "type", "old", "new", "via", "client", "at", "serial"],
        "{line}"
    );
}

/// Done-when: two changes and one unchanged update give exactly two history
/// rows and two events, with the SPEC's fields.
#[test]
fn two_changes_and_an_unchanged_update_give_two_history_rows_and_two_events() {
    let d = TempDir::new("events");
    let (cmd, out) = recorder(d.path());
    let mut s = Server::start_with(events_setup(&cmd, &[]));
    let tok = s.provision(EMAIL, ALICE);
    for ip in ["192.0.2.1", "192.0.2.1", "192.0.2.2"] {
        let r = update(&s, &tok, &format!("hostname={ALICE}&myipv4={ip}"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Later changes of another name, each committed after the one before was
    // delivered: once the second is there, every event before it in commit
    // order is too, and a round of the thread that repeated one would show.
    let bob_tok = s.provision("bob@example.org", BOB);
    for (i, ip) in ["192.0.2.9", "192.0.2.10"].into_iter().enumerate() {
        update(&s, &bob_tok, &format!("hostname={BOB}&myipv4={ip}"));
        s.wait_until("bob's event", ARRIVE, || events_of(&out, BOB).len() > i);
    }
    let alice = events_of(&out, ALICE);
    assert_eq!(alice.len(), 2, "{alice:#?}");
    assert_changed(&alice[0], ALICE, "A", "[]", "[\"192.0.2.1\"]", "http");
    assert_changed(
        &alice[1],
        ALICE,
        "A",
        "[\"192.0.2.1\"]",
        "[\"192.0.2.2\"]",
        "http",
    );
    assert!(
        alice[0].contains("\"client\":\"127.0.0.1\""),
        "{}",
        alice[0]
    );
    let history = s.cli_ok(&["history", ALICE, "--json"]);
    let rows: Vec<&str> = history.lines().collect();
    assert_eq!(rows.len(), 2, "{history}");
    assert!(
        rows[0].contains("\"new\":[\"192.0.2.2\"]"),
        "newest first: {history}"
    );
    assert!(rows[0].contains("\"token\":"), "{history}");
    let plain = s.cli_ok(&["history", ALICE, "--limit", "1"]);
    assert_eq!(plain.lines().count(), 1, "{plain}");
    assert!(
        plain.contains(" A 192.0.2.1 -> 192.0.2.2 via http client 127.0.0.1 token "),
        "{plain}"
    );
    let status = s.cli_ok(&["status", ALICE]);
    assert!(status.contains("last changed: 20"), "{status}");
    // Last seen is written in batches (every 30 s) and at a clean stop.
    assert_eq!(s.stop(), Some(0));
    let status = s.cli_ok(&["status", ALICE]);
    assert!(status.contains("last seen: 20"), "{status}");
}

/// `domain remove` records the removal as a change to nothing, via cli, and
/// its event follows.
#[test]
fn domain_remove_is_a_change_to_nothing_via_cli() {
    let d = TempDir::new("events");
    let (cmd, out) = recorder(d.path());
    let s = Server::start_with(events_setup(&cmd, &[]));
    let tok = s.provision(EMAIL, ALICE);
    update(
        &s,
        &tok,
        &format!("hostname={ALICE}&myipv4=192.0.2.1&myipv6=fd08::1"),
    );
    s.cli_ok(&["domain", "remove", ALICE]);
    let all = wait_lines(&s, &out, 4);
    assert_changed(&all[2], ALICE, "A", "[\"192.0.2.1\"]", "[]", "cli");
    assert_changed(&all[3], ALICE, "AAAA", "[\"fd08::1\"]", "[]", "cli");
    assert!(all[2].contains("\"client\":null"), "{}", all[2]);
    let history = s.cli_ok(&["history", ALICE]);
    assert_eq!(history.lines().count(), 4, "{history}");
}

/// Done-when: an event whose command fails is retried; the server killed with
/// SIGKILL and started again delivers it, and the ones after it, exactly once
/// and in commit order.
#[test]
fn a_failing_event_is_delivered_after_sigkill_and_restart_in_order() {
    let d = TempDir::new("events");
    let (cmd, out) = recorder(d.path());
    std::fs::write(d.path().join("fail"), "").expect("fail marker");
    let mut s = Server::start_with(events_setup(&cmd, &[]));
    let tok = s.provision(EMAIL, ALICE);
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        update(&s, &tok, &format!("hostname={ALICE}&myipv4={ip}"));
    }
    s.wait_until("the command's failure logged", ARRIVE, || {
        s.log().contains("events: ") && s.log().contains("retrying with backoff")
    });
    assert_eq!(
        s.log().matches("retrying with backoff").count(),
        1,
        "a run of failures is logged once"
    );
    s.kill9();
    std::fs::remove_file(d.path().join("fail")).expect("remove the marker");
    s.spawn();
    let all = wait_lines(&s, &out, 3);
    // Nothing beyond the three, even after another round of the thread.
    update(&s, &tok, &format!("hostname={ALICE}&myipv4=192.0.2.4"));
    let all_after = wait_lines(&s, &out, 4);
    assert_eq!(all_after.len(), 4, "{all_after:#?}");
    assert_changed(&all[0], ALICE, "A", "[]", "[\"192.0.2.1\"]", "http");
    assert_changed(
        &all[1],
        ALICE,
        "A",
        "[\"192.0.2.1\"]",
        "[\"192.0.2.2\"]",
        "http",
    );
    assert_changed(
        &all[2],
        ALICE,
        "A",
        "[\"192.0.2.2\"]",
        "[\"192.0.2.3\"]",
        "http",
    );
    assert_changed(
        &all_after[3],
        ALICE,
        "A",
        "[\"192.0.2.3\"]",
        "[\"192.0.2.4\"]",
        "http",
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Done-when: a command that sleeps 600 s never adds more than 50 ms to an
/// update's latency (the command runs on the events thread, not the worker).
#[test]
fn a_command_sleeping_600_s_adds_nothing_to_an_updates_latency() {
    let d = TempDir::new("events");
    let started = d.path().join("started");
    let cmd = script(
        d.path(),
        "sleepy",
        &format!("echo run >> '{}'\nexec sleep 600", started.display()),
    );
    let mut s = Server::start_with(events_setup(&cmd, &[]));
    let tok = s.provision(EMAIL, ALICE);
    let timed = |query: &str| {
        let t = Instant::now();
        let r = update(&s, &tok, query);
        assert_eq!(r.status, 200, "{}", r.body);
        t.elapsed()
    };
    timed(&format!("hostname={ALICE}&myipv4=192.0.2.1"));
    // Before the command runs: unchanged updates, the baseline.
    s.wait_until("the command started", ARRIVE, || started.exists());
    let base: Vec<Duration> = (0..10)
        .map(|_| timed(&format!("hostname={ALICE}&myipv4=192.0.2.1")))
        .collect();
    // While it sleeps: changes, each one more event queued behind it.
    let during: Vec<Duration> = (0..10)
        .map(|i| timed(&format!("hostname={ALICE}&myipv4=192.0.2.{}", 10 + i)))
        .collect();
    assert!(
        started.exists() && lines(&started).len() == 1,
        "the command was not still running"
    );
    let (b, w) = (median(base.clone()), median(during.clone()));
    assert!(
        w < b + Duration::from_millis(50),
        "median latency {w:?} while the command sleeps, {b:?} before: {during:?} / {base:?}"
    );
    let worst = *during.iter().max().expect("ten");
    let worst_base = *base.iter().max().expect("ten");
    assert!(
        worst < worst_base + Duration::from_millis(50),
        "slowest update {worst:?} while the command sleeps, {worst_base:?} before"
    );
    // A clean stop kills the command's whole group: no sleep 600 stays behind.
    let t = Instant::now();
    assert_eq!(s.stop(), Some(0));
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "stop waited for the command"
    );
}

/// Done-when: the history is pruned per name to `[history] per_name`, newest
/// kept, and by age to `max_age`, while the service runs.
#[test]
fn history_is_pruned_per_name_and_by_age() {
    let s = Server::start_with(Setup {
        sections: vec!["[history]\nper_name = 3".into()],
        ..Setup::default()
    });
    let tok = s.provision(EMAIL, ALICE);
    for i in 1..=5 {
        update(&s, &tok, &format!("hostname={ALICE}&myipv4=192.0.2.{i}"));
    }
    s.wait_until("history pruned to 3", ARRIVE, || {
        s.cli_ok(&["history", ALICE]).lines().count() == 3
    });
    let kept = s.cli_ok(&["history", ALICE]);
    for (line, new) in kept.lines().zip(["192.0.2.5", "192.0.2.4", "192.0.2.3"]) {
        assert!(line.contains(&format!("-> {new} ")), "{kept}");
    }
    // By age: an entry made older than max_age (90 days) goes, the rest stays.
    let db = rusqlite::Connection::open(s.db_path()).expect("open the database");
    db.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    let oldest: i64 = db
        .query_row("SELECT min(id) FROM history", [], |r| r.get(0))
        .expect("oldest entry");
    db.execute(
        "UPDATE history SET at = at - 91 * 86400 WHERE id = ?1",
        [oldest],
    )
    .expect("age an entry");
    s.wait_until("the old entry pruned", ARRIVE, || {
        s.cli_ok(&["history", ALICE]).lines().count() == 2
    });
    assert!(!s.cli_ok(&["history", ALICE]).contains("-> 192.0.2.3 "));
}

/// Done-when: a name not updated for `stale_after` gets one `stale` event and
/// shows `stale`; an update clears it; nothing is deleted.
#[test]
fn a_stale_name_gets_one_event_and_an_update_clears_it() {
    let d = TempDir::new("events");
    let (cmd, out) = recorder(d.path());
    let s = Server::start_with(events_setup(&cmd, &["stale_after = \"4s\""]));
    let tok = s.provision(EMAIL, ALICE);
    update(&s, &tok, &format!("hostname={ALICE}&myipv4=192.0.2.1"));
    s.wait_until("alice stale", ARRIVE, || {
        events_of(&out, ALICE)
            .iter()
            .any(|l| l.contains("\"event\":\"stale\""))
    });
    let status = s.cli_ok(&["status", ALICE]);
    assert!(status.contains("\nstale: since "), "{status}");
    assert_eq!(s.records(ALICE), ["A 192.0.2.1"], "nothing is deleted");
    // Bob goes stale later: by then alice's check ran again several times.
    let bob_tok = s.provision("bob@example.org", BOB);
    update(&s, &bob_tok, &format!("hostname={BOB}&myipv4=192.0.2.9"));
    s.wait_until("bob stale", ARRIVE, || {
        events_of(&out, BOB)
            .iter()
            .any(|l| l.contains("\"event\":\"stale\""))
    });
    let stale: Vec<String> = events_of(&out, ALICE)
        .into_iter()
        .filter(|l| l.contains("\"event\":\"stale\""))
        .collect();
    assert_eq!(stale.len(), 1, "one stale event per name: {stale:#?}");
    assert!(stale[0].contains("\"last_seen\":\"20"), "{}", stale[0]);
    // An update (unchanged: last seen comes with the batched flush) clears it.
    update(&s, &tok, &format!("hostname={ALICE}&myipv4=192.0.2.1"));
    s.wait_until("alice no longer stale", ARRIVE, || {
        !s.cli_ok(&["status", ALICE]).contains("\nstale: ")
    });
}

/// The stale count is a metric.
#[test]
fn stale_names_are_counted_in_the_metrics() {
    let port = crate::common::server::free_tcp("127.0.0.1").expect("a free port");
    let s = Server::start_with(Setup {
        server: vec![format!("metrics_listen = \"{port}\"")],
        sections: vec!["[events]\nstale_after = \"2s\"".into()],
        ..Setup::default()
    });
    let tok = s.provision(EMAIL, ALICE);
    update(&s, &tok, &format!("hostname={ALICE}&myipv4=192.0.2.1"));
    s.wait_until("one stale name counted", ARRIVE, || {
        metric(
            &crate::common::server::scrape(port),
            "dedyn_update_stale_names",
        ) == Some(1.0)
    });
    let page = crate::common::server::scrape(port);
    for m in [
        "dedyn_update_events_delivered_total",
        "dedyn_update_events_failed_total",
        "dedyn_update_events_pending",
        "dedyn_update_history_pruned_total",
    ] {
        assert!(metric(&page, m).is_some(), "{m} missing:\n{page}");
    }
}

/// `check` names an event command the service could not run.
#[test]
fn check_names_an_event_command_that_cannot_run() {
    let d = TempDir::new("events");
    let cmd = d.path().join("not-executable");
    std::fs::write(&cmd, "#!/bin/sh\n").expect("write");
    let mut s = Server::start_with(events_setup(&cmd, &[]));
    s.stop();
    let o = s.cli(&["check"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr
            .contains(&format!("events.command {}: not executable", cmd.display())),
        "{}",
        o.stderr
    );
}

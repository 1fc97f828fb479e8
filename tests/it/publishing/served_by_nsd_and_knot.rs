//! Publishing end to end (SPEC §5, §8 receipt, §2 "within 2 seconds"): the real
//! binary writes the zone file, a real NSD or Knot reloads it, `dig` asks it.
//! Every scenario runs once per nameserver (`nsd::…` and `knot::…`).
//! Needs tests/install-deps.sh.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::dns::{published_serials, receipt, Rig, ZONE};
use crate::common::ns::{check_zone_all, Kind};
use crate::common::proc::is_alive;
use crate::common::server::{read, Response, Setup};

const ALICE: &str = "alice.dedyn.example";
const ALICE_EMAIL: &str = "alice@example.org";
const BOB: &str = "bob.dedyn.example";
const BOB_EMAIL: &str = "bob@example.org";
/// How long a published change may take to be served (generous: CI machines).
const SERVE: Duration = Duration::from_secs(10);

/// One scenario function per rule; the macro runs each against NSD and Knot.
macro_rules! for_each_nameserver {
    ($($scenario:ident),* $(,)?) => {
        mod nsd {
            $( #[test] fn $scenario() { super::$scenario(super::Kind::Nsd) } )*
        }
        mod knot {
            $( #[test] fn $scenario() { super::$scenario(super::Kind::Knot) } )*
        }
    };
}

for_each_nameserver!(
    update_is_served_with_the_receipt_serial,
    empty_myipv4_deletes_the_a_answer,
    zone_with_wildcard_subdomain_and_include_passes_all_checkers,
    cli_changes_while_serving_are_served_within_2s,
    graceful_shutdown_publishes_the_pending_change,
    serial_increases_strictly_across_restarts,
    failing_reload_is_retried_with_backoff_while_updates_are_accepted,
    hanging_reload_is_killed_and_the_service_goes_on,
    changes_within_publish_delay_give_one_publication,
    nothing_changed_does_not_republish,
    status_says_served_once_the_nameserver_answers,
    dropped_reload_is_noticed_with_verify_server_and_retried,
);

/// An update with token authentication (`query` without the leading `?`).
fn update(rig: &Rig, token: &str, query: &str) -> Response {
    rig.server.get(
        &format!("/?{query}"),
        &[("Authorization", &format!("Token {token}"))],
    )
}

fn setup_dns(lines: &[&str]) -> Setup {
    Setup {
        dns: lines.iter().map(|l| l.to_string()).collect(),
        ..Setup::default()
    }
}

/// Wait until the nameserver serves `serial`.
fn wait_soa(rig: &Rig, serial: u32) {
    rig.server
        .wait_until(&format!("SOA serial {serial} served"), SERVE, || {
            rig.ns.soa_serial(ZONE) == Some(serial)
        });
}

/// Assert that `f` holds during the whole `window` (for "nothing happens").
fn holds_for(what: &str, window: Duration, mut f: impl FnMut() -> Result<(), String>) {
    let end = Instant::now() + window;
    for _ in 0..window.as_millis() / 50 + 2 {
        if let Err(e) = f() {
            panic!("{what}: {e}");
        }
        if Instant::now() >= end {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SPEC §8: the receipt is the serial of the first publication containing the change.
fn update_is_served_with_the_receipt_serial(kind: Kind) {
    let rig = Rig::start(kind, Setup::default());
    let tok = rig.server.provision(ALICE_EMAIL, ALICE);
    let r = update(
        &rig,
        &tok,
        "hostname=alice.dedyn.example&myipv4=1.2.3.4&myipv6=fd08::1",
    );
    let serial = receipt(&r);
    rig.served(ALICE, "A", &["1.2.3.4"], SERVE);
    rig.served(ALICE, "AAAA", &["fd08::1"], SERVE);
    assert_eq!(rig.soa_serial(), serial, "served serial vs X-Zone-Serial");
    assert!(
        read(&rig.zone_file).contains(&format!(" IN SOA ns1.{ZONE}. hostmaster.{ZONE}. {serial} "))
    );
}

/// Seed: "if an empty value was provided instead of an IP address, the A record
/// will be deleted from the DNS".
fn empty_myipv4_deletes_the_a_answer(kind: Kind) {
    let rig = Rig::start(kind, Setup::default());
    let tok = rig.server.provision(ALICE_EMAIL, ALICE);
    receipt(&update(&rig, &tok, "myipv4=1.2.3.4&myipv6=fd08::1"));
    rig.served(ALICE, "A", &["1.2.3.4"], SERVE);
    rig.served(ALICE, "AAAA", &["fd08::1"], SERVE);

    let r = update(&rig, &tok, "myipv4=&myipv6=preserve");
    let serial = receipt(&r);
    assert_eq!(
        r.header("X-Update-Result"),
        Some("alice.dedyn.example A deleted;alice.dedyn.example AAAA preserved")
    );
    rig.served(ALICE, "A", &[], SERVE);
    wait_soa(&rig, serial);
    assert_eq!(rig.ns.query(ALICE, "AAAA"), ["fd08::1"]);
    assert_eq!(rig.server.records(ALICE), ["AAAA fd08::1"]);
}

/// SPEC §5: the files load in NSD, Knot and BIND — with every kind of name we write.
fn zone_with_wildcard_subdomain_and_include_passes_all_checkers(kind: Kind) {
    let rig = Rig::start(kind, Setup::default());
    let alice = rig.server.provision(ALICE_EMAIL, ALICE);
    let bob = rig.server.provision(BOB_EMAIL, BOB);
    receipt(&update(
        &rig,
        &alice,
        "myipv4=1.2.3.4,1.2.3.5&myipv6=fd08::1",
    ));
    receipt(&update(
        &rig,
        &alice,
        "hostname=*.alice.dedyn.example&myipv4=5.6.7.8&myipv6=",
    ));
    receipt(&update(
        &rig,
        &alice,
        "hostname=sub.alice.dedyn.example&myipv4=9.9.9.9&myipv6=fd08::9",
    ));
    let last = receipt(&update(&rig, &bob, "myipv4=&myipv6=fd08::b0b"));

    wait_soa(&rig, last);
    assert_eq!(rig.ns.query(ALICE, "A"), ["1.2.3.4", "1.2.3.5"]);
    assert_eq!(
        rig.ns.query("anything.alice.dedyn.example", "A"),
        ["5.6.7.8"]
    );
    assert_eq!(rig.ns.query("sub.alice.dedyn.example", "A"), ["9.9.9.9"]);
    assert_eq!(rig.ns.query("sub.alice.dedyn.example", "AAAA"), ["fd08::9"]);
    assert_eq!(rig.ns.query(BOB, "AAAA"), ["fd08::b0b"]);
    assert!(rig.ns.query(BOB, "A").is_empty());
    // The include file's records are served too (relative name, operator's $ORIGIN).
    assert_eq!(
        rig.ns.query("static.dedyn.example", "TXT"),
        ["\"from the include file\""]
    );
    assert_eq!(rig.ns.query("ns1.dedyn.example", "A"), ["127.0.0.1"]);

    let text = read(&rig.zone_file);
    assert!(
        text.contains("*.alice.dedyn.example. 60 IN A 5.6.7.8"),
        "{text}"
    );
    check_zone_all(ZONE, &rig.zone_file).unwrap_or_else(|e| panic!("{e}\n{text}"));
}

/// SPEC §2: commands work while `serve` runs; it publishes their changes within 2 s.
fn cli_changes_while_serving_are_served_within_2s(kind: Kind) {
    let rig = Rig::start(kind, Setup::default());
    let alice = rig.server.provision(ALICE_EMAIL, ALICE);
    let bob = rig.server.provision(BOB_EMAIL, BOB);
    receipt(&update(&rig, &alice, "myipv4=1.2.3.4"));
    let last = receipt(&update(&rig, &bob, "myipv4=5.6.7.8"));
    wait_soa(&rig, last);
    assert_eq!(rig.ns.query(ALICE, "A"), ["1.2.3.4"]);
    assert_eq!(rig.ns.query(BOB, "A"), ["5.6.7.8"]);

    rig.server.cli_ok(&["domain", "remove", ALICE]);
    rig.served(ALICE, "A", &[], Duration::from_secs(2));
    assert_eq!(rig.ns.query(BOB, "A"), ["5.6.7.8"]);

    rig.server.cli_ok(&["user", "remove", BOB_EMAIL]);
    rig.served(BOB, "A", &[], Duration::from_secs(2));
}

/// SPEC §2: SIGTERM is graceful — pending changes are published before exit 0.
fn graceful_shutdown_publishes_the_pending_change(kind: Kind) {
    let mut rig = Rig::start(kind, setup_dns(&["publish_delay_ms = 3000"]));
    rig.wait_publications(1, SERVE); // the start-up publication is behind us
    let tok = rig.server.provision(ALICE_EMAIL, ALICE);
    let serial = receipt(&update(&rig, &tok, "myipv4=1.2.3.4"));
    let line = "alice.dedyn.example. 60 IN A 1.2.3.4";
    assert!(
        !read(&rig.zone_file).contains(line),
        "published before the batching delay ran out: the test proves nothing"
    );

    assert_eq!(rig.server.stop(), Some(0), "{}", rig.server.log());
    let text = read(&rig.zone_file);
    assert!(text.contains(line), "{text}");
    assert_eq!(published_serials(&rig.server.log()).last(), Some(&serial));
    // The reload ran before the exit, so the nameserver serves it too.
    rig.served(ALICE, "A", &["1.2.3.4"], SERVE);
    assert_eq!(rig.soa_serial(), serial);
}

/// SPEC §5: serial strictly increasing, also across restarts.
fn serial_increases_strictly_across_restarts(kind: Kind) {
    let mut rig = Rig::start(kind, Setup::default());
    let tok = rig.server.provision(ALICE_EMAIL, ALICE);
    let first = receipt(&update(&rig, &tok, "myipv4=1.2.3.4"));
    rig.served(ALICE, "A", &["1.2.3.4"], SERVE);
    wait_soa(&rig, first);
    assert_eq!(rig.server.stop(), Some(0), "{}", rig.server.log());
    let before = rig.published_serials().len();

    rig.server.spawn();
    rig.wait_publications(before + 1, SERVE);
    let restart = *rig.published_serials().last().unwrap();
    assert!(restart > first, "start-up serial {restart} after {first}");
    wait_soa(&rig, restart);

    let second = receipt(&update(&rig, &tok, "myipv4=5.6.7.8"));
    assert!(second > restart, "serial {second} after {restart}");
    rig.served(ALICE, "A", &["5.6.7.8"], SERVE);
    wait_soa(&rig, second);
}

/// `retrying in N s` values from the publisher's log.
fn backoffs(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("publishing zone dedyn.example failed"))
        .filter_map(|l| {
            let rest = &l[l.rfind("retrying in ")? + "retrying in ".len()..];
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect()
}

/// SPEC §5: a failing reload is logged and retried with backoff; updates keep
/// being accepted; once the reload works, the change is published.
fn failing_reload_is_retried_with_backoff_while_updates_are_accepted(kind: Kind) {
    let rig = Rig::start_reloading(kind, Setup::default(), |ns, dir| {
        format!("test -e {}/reload-ok && {ns}", dir.display())
    });
    let marker = rig.dir.path().join("reload-ok");
    let tok = rig.server.provision(ALICE_EMAIL, ALICE);
    let first = update(&rig, &tok, "myipv4=1.2.3.4");
    receipt(&first);
    rig.server.wait_until("two failed publications", SERVE, || {
        backoffs(&rig.server.log()).len() >= 2
    });
    let log = rig.server.log();
    assert!(log.contains("reload command failed"), "{log}");
    let b = backoffs(&log);
    assert!(b[0] >= 1 && b[1] == 2 * b[0], "no backoff: {b:?}\n{log}");

    // Still accepting updates, and the nameserver still has the old zone.
    let latest = receipt(&update(&rig, &tok, "myipv4=5.6.7.8"));
    assert!(rig.ns.query(ALICE, "A").is_empty());

    fs::write(&marker, "").unwrap();
    rig.served(ALICE, "A", &["5.6.7.8"], Duration::from_secs(20));
    // The receipt is a lower bound here: every failed attempt used up a serial.
    let served = rig.soa_serial();
    assert!(served >= latest, "served {served} < receipt {latest}");
    assert_eq!(rig.published_serials().last(), Some(&served));
}

/// The PIDs the hanging reload command wrote, oldest first.
fn reload_pids(file: &Path) -> Vec<u32> {
    read(file).lines().filter_map(|l| l.parse().ok()).collect()
}

/// SPEC §5: a hanging reload command is killed after `reload_timeout_secs`, the
/// workers never wait for it, and publishing resumes once the command behaves.
fn hanging_reload_is_killed_and_the_service_goes_on(kind: Kind) {
    let rig = Rig::start_reloading(kind, setup_dns(&["reload_timeout_secs = 1"]), |ns, dir| {
        let d = dir.display();
        // exec: the PID written is the one that hangs.
        format!("if test -e {d}/reload-ok; then {ns}; else echo $$ >> {d}/pids; exec sleep 60; fi")
    });
    let pids = rig.dir.path().join("pids");
    let tok = rig.server.provision(ALICE_EMAIL, ALICE);

    // An update answered while a reload hangs proves the workers do not wait for
    // the publisher. On a loaded machine one request can outlast the 1 s timeout:
    // that attempt proves nothing either way, so try the next hang (bounded).
    let mut hanging = 0;
    let mut inconclusive = Vec::new();
    for attempt in 1..=3 {
        rig.server.wait_until("a hanging reload", SERVE, || {
            hanging = reload_pids(&pids)
                .into_iter()
                .rev()
                .find(|&p| is_alive(p) && !inconclusive.contains(&p))
                .unwrap_or(0);
            hanging != 0
        });
        receipt(&update(&rig, &tok, &format!("myipv4=192.0.2.{attempt}")));
        if is_alive(hanging) {
            break;
        }
        inconclusive.push(hanging);
    }
    assert!(
        inconclusive.len() < 3,
        "3 updates were each answered only after the hung reload was killed\n{}",
        rig.server.log()
    );

    rig.server
        .wait_until("the hung reload to be killed", SERVE, || !is_alive(hanging));
    rig.server
        .wait_until("the timeout to be logged", SERVE, || {
            rig.server
                .log()
                .contains("timed out after 1 s and was killed")
        });
    assert_eq!(
        update(&rig, &tok, "myipv4=5.6.7.8").status,
        200,
        "{}",
        rig.server.log()
    );

    fs::write(rig.dir.path().join("reload-ok"), "").unwrap();
    rig.served(ALICE, "A", &["5.6.7.8"], Duration::from_secs(20));
    // Nothing we started is left hanging.
    rig.server
        .wait_until("every hung reload to be gone", SERVE, || {
            reload_pids(&pids).into_iter().all(|p| !is_alive(p))
        });
}

/// SPEC §5: many changes within `publish_delay_ms` give one publication.
fn changes_within_publish_delay_give_one_publication(kind: Kind) {
    let rig = Rig::start(kind, setup_dns(&["publish_delay_ms = 1500"]));
    rig.wait_publications(1, SERVE);
    let tok = rig.server.provision(ALICE_EMAIL, ALICE);
    let before = rig.published_serials().len();

    let started = Instant::now();
    let receipts: Vec<u32> = (1..=10)
        .map(|i| receipt(&update(&rig, &tok, &format!("myipv4=10.0.0.{i}"))))
        .collect();
    let took = started.elapsed();
    assert!(
        receipts.iter().all(|&s| s == receipts[0]),
        "10 updates in {took:?} (window 1.5 s) got serials {receipts:?}"
    );
    rig.served(ALICE, "A", &["10.0.0.10"], SERVE);
    rig.wait_publications(before + 1, SERVE);
    assert_eq!(rig.soa_serial(), receipts[0]);
    assert_eq!(
        rig.published_serials()[before..],
        [receipts[0]],
        "{}",
        rig.server.log()
    );
}

/// SPEC §4.4: `good` also when nothing changed — then nothing is republished.
fn nothing_changed_does_not_republish(kind: Kind) {
    let rig = Rig::start(kind, Setup::default());
    let tok = rig.server.provision(ALICE_EMAIL, ALICE);
    let query = "myipv4=1.2.3.4&myipv6=fd08::1";
    let serial = receipt(&update(&rig, &tok, query));
    rig.served(ALICE, "A", &["1.2.3.4"], SERVE);
    rig.wait_publications(2, SERVE); // start-up and this change
    let published = rig.published_serials();
    assert_eq!(published.last(), Some(&serial));

    for _ in 0..3 {
        let r = update(&rig, &tok, query);
        assert_eq!((r.status, r.body.as_str()), (200, "good"));
        assert_eq!(r.header("X-Zone-Serial"), None, "{r:?}");
        assert_eq!(
            r.header("X-Update-Result"),
            Some("alice.dedyn.example A unchanged;alice.dedyn.example AAAA unchanged")
        );
    }
    // Absence needs a window: 20 publish delays and several database polls.
    holds_for("no republication", Duration::from_secs(1), || {
        let now = rig.published_serials();
        if now == published {
            Ok(())
        } else {
            Err(format!(
                "published {:?} after {published:?}",
                &now[published.len()..]
            ))
        }
    });
    assert_eq!(rig.soa_serial(), serial);
}

/// SPEC §8: `status NAME` shows the stored records, the serial containing them,
/// and whether `[dns] verify_server` serves them yet.
fn status_says_served_once_the_nameserver_answers(kind: Kind) {
    let rig = Rig::start(kind, Setup::default());
    let tok = rig.server.provision(ALICE_EMAIL, ALICE);
    let serial = receipt(&update(&rig, &tok, "myipv4=1.2.3.4&myipv6=fd08::1"));
    rig.served(ALICE, "AAAA", &["fd08::1"], SERVE);
    // The same config, with verify_server pointing at the rig's nameserver — or
    // at a port where nothing answers.
    let config = read(&rig.server.config);
    let status = |server: &str| {
        let path = rig.dir.path().join("status.toml");
        let text = config.replacen(
            "[dns]\n",
            &format!("[dns]\nverify_server = \"{server}\"\n"),
            1,
        );
        fs::write(&path, text).expect("write status config");
        let out = std::process::Command::new(crate::common::server::BIN)
            .arg("--config")
            .arg(&path)
            .args(["status", ALICE])
            .output()
            .expect("run status");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut out = String::new();
    rig.server.wait_until("status: served", SERVE, || {
        out = status(&format!("127.0.0.1:{}", rig.ns.port()));
        out.lines().any(|l| l == "served")
    });
    assert!(
        out.contains("stored: A 1.2.3.4") && out.contains("stored: AAAA fd08::1"),
        "{out}"
    );
    assert!(
        out.contains(&format!("serial {serial}")) || out.contains(&format!("serial: {serial}")),
        "{out}"
    );
    let silent = crate::common::ns::free_port();
    let out = status(&format!("127.0.0.1:{silent}"));
    assert!(out.lines().any(|l| l == "not yet served"), "{out}");
}

/// A nameserver that silently skips a reload (NSD ignores one that arrives while
/// it is still loading) leaves a change on disk but not in the DNS. With
/// `[dns] verify_server` the publisher notices and publishes again.
fn dropped_reload_is_noticed_with_verify_server_and_retried(kind: Kind) {
    let rig = Rig::start_verified(
        kind,
        setup_dns(&["reload_timeout_secs = 1"]),
        |reload, dir| {
            // Succeeds always, but only reloads once the marker exists.
            let marker = dir.join("reload-works");
            format!("if test -e {}; then {reload}; fi", marker.display())
        },
    );
    let tok = rig.server.provision(ALICE_EMAIL, ALICE);
    receipt(&update(&rig, &tok, "myipv4=1.2.3.4"));
    rig.server
        .wait_until("the dropped reload noticed", SERVE, || {
            rig.server.log().contains("still serves")
        });
    assert!(
        rig.ns.query(ALICE, "A").is_empty(),
        "served before any reload"
    );
    fs::write(rig.dir.path().join("reload-works"), "").expect("marker");
    rig.served(ALICE, "A", &["1.2.3.4"], SERVE);
}

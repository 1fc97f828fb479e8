//! DNS secondaries: dedyn-update feeds a local NSD primary, which sends NOTIFY to an
//! NSD secondary that transfers the zone (TSIG-signed); an update reaches the secondary.
//!
//! The two NSD instances are started here (not by tests/it/common/ns.rs) because
//! their configs point at each other: both ports are chosen before either starts;
//! the common part (config, process, dig, log) is `ns::ForegroundNsd`.
//! The config mirrors docs/nameservers.md's "Feeding secondaries" recipe.

use crate::common::ns::{free_port, ForegroundNsd};
use crate::common::proc::{self, run_with_timeout, tool, TempDir};
use crate::common::server::{Server, Setup};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const ZONE: &str = "dedyn.example";
/// A fixed test-only TSIG secret (32 bytes, base64); real ones come from `tsig-keygen`.
const TSIG_SECRET: &str = "K2tf3TRjvQkVCmJF3/Z9vA5Bv9rHbeNqPhrM2hNcjFc=";
/// NOTIFY and transfer happen in well under a second on loopback; the zone's SOA
/// refresh is an hour, so anything within this deadline was carried by NOTIFY.
const PROPAGATION: Duration = Duration::from_secs(5);
const START: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// Start an NSD with the transfer key and `zone_lines` for the zone.
fn start_nsd(dir: &Path, port: u16, zone_lines: &str) -> ForegroundNsd {
    ForegroundNsd::start(
        dir,
        port,
        &format!(
            "key:\n  name: xfr-key\n  algorithm: hmac-sha256\n  secret: \"{TSIG_SECRET}\"\nzone:\n  name: {ZONE}\n{zone_lines}"
        ),
    )
}

/// Poll until `f` holds for `nsd` or `deadline` passes; returns the time it took.
fn wait(
    nsd: &ForegroundNsd,
    what: &str,
    deadline: Duration,
    mut f: impl FnMut(&ForegroundNsd) -> bool,
) -> Duration {
    let start = Instant::now();
    for _ in 0..(deadline.as_millis() / POLL.as_millis() + 2) {
        if f(nsd) {
            return start.elapsed();
        }
        assert!(
            proc::is_alive(nsd.child.id()),
            "nsd exited while waiting for {what}\n{}",
            nsd.log()
        );
        if start.elapsed() > deadline {
            break;
        }
        std::thread::sleep(POLL);
    }
    panic!(
        "timed out after {deadline:?} waiting for {what}\n{}",
        nsd.log()
    );
}

fn two_ports() -> (u16, u16) {
    let a = free_port();
    for _ in 0..100 {
        let b = free_port();
        if b != a {
            return (a, b);
        }
    }
    panic!("no second free port");
}

fn zone_file_serial(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    let soa = text.lines().find(|l| l.contains(" SOA "))?;
    let fields: Vec<&str> = soa.split_whitespace().collect();
    let i = fields.iter().position(|f| *f == "SOA")?;
    fields.get(i + 3)?.parse().ok()
}

#[test]
fn update_reaches_the_secondary_by_notify_and_tsig_transfer() {
    let dir = TempDir::new("sec");
    let (pport, sport) = two_ports();
    let zone_file = dir.path().join("primary/dedyn.example.zone");
    std::fs::create_dir_all(zone_file.parent().unwrap()).unwrap();
    // A placeholder until dedyn-update publishes (serial 1 < any serial it writes).
    std::fs::write(
        &zone_file,
        "dedyn.example. 60 IN SOA ns1.example.net. hostmaster.dedyn.example. 1 3600 600 604800 60\ndedyn.example. 60 IN NS ns1.example.net.\n",
    )
    .unwrap();

    let primary = start_nsd(
        &dir.path().join("primary"),
        pport,
        &format!(
            "  zonefile: \"{}\"\n  store-ixfr: yes\n  create-ixfr: yes\n  notify: 127.0.0.1@{sport} xfr-key\n  provide-xfr: 127.0.0.1 xfr-key\n",
            zone_file.display()
        ),
    );
    wait(
        &primary,
        "the primary to serve the placeholder",
        START,
        |n| n.serial(ZONE) == Some(1),
    );
    let secondary = start_nsd(
        &dir.path().join("secondary"),
        sport,
        &format!(
            "  zonefile: \"{}/secondary/dedyn.example.zone\"\n  allow-notify: 127.0.0.1 xfr-key\n  request-xfr: 127.0.0.1@{pport} xfr-key\n",
            dir.path().display()
        ),
    );
    wait(&secondary, "the secondary's first transfer", START, |n| {
        n.serial(ZONE).is_some()
    });

    let s = Server::start_with(Setup {
        zones: Some(format!(
            "[[zone]]\nname = \"{ZONE}\"\nfile = \"{}\"\nnameservers = [\"ns1.example.net.\"]\n",
            zone_file.display()
        )),
        dns: vec![format!(
            "reload_command = \"{} -c {} reload {{zone}}\"",
            tool("nsd-control").display(),
            primary.conf.display()
        )],
        ..Setup::default()
    });
    s.wait_until("the start-up publication", START, || {
        zone_file_serial(&zone_file).is_some_and(|v| v > 1)
    });
    let started = zone_file_serial(&zone_file).unwrap();
    wait(
        &secondary,
        "the secondary to follow the start-up publication",
        PROPAGATION,
        |n| n.serial(ZONE).is_some_and(|v| v >= started),
    );

    let tok = s.provision("alice@example.org", "alice.dedyn.example");
    for addr in ["192.0.2.77", "198.51.100.8"] {
        let r = s.get(
            &format!("/?myipv4={addr}&myipv6="),
            &[("Authorization", &format!("Token {tok}"))],
        );
        assert_eq!((r.status, r.body.as_str()), (200, "good"));
        let serial: u32 = r
            .header("X-Zone-Serial")
            .and_then(|v| v.parse().ok())
            .expect("X-Zone-Serial on a change");
        let took = wait(
            &secondary,
            &format!("alice.dedyn.example A {addr} on the secondary"),
            PROPAGATION,
            |n| n.dig("alice.dedyn.example", "A") == Ok(vec![addr.to_string()]),
        );
        eprintln!("{addr} (serial {serial}) on the secondary after {took:?}");
        assert!(
            secondary.serial(ZONE).is_some_and(|v| v >= serial),
            "secondary serial {:?} < {serial}\nprimary: {}\nsecondary: {}",
            secondary.serial(ZONE),
            primary.log(),
            secondary.log()
        );
    }

    // The primary hands the zone only to TSIG-signed requests.
    let mut axfr = Command::new(tool("dig"));
    axfr.arg("@127.0.0.1")
        .arg("-p")
        .arg(pport.to_string())
        .args(["+time=2", "+tries=1", ZONE, "AXFR"]);
    let out = run_with_timeout(axfr, dir.path(), Duration::from_secs(10));
    assert!(
        !out.text.contains("198.51.100.8"),
        "unsigned AXFR was answered:\n{}",
        out.text
    );
    let mut signed = Command::new(tool("dig"));
    signed
        .arg("@127.0.0.1")
        .arg("-p")
        .arg(pport.to_string())
        .arg("-y")
        .arg(format!("hmac-sha256:xfr-key:{TSIG_SECRET}"))
        .args(["+time=2", "+tries=1", ZONE, "AXFR"]);
    let out = run_with_timeout(signed, dir.path(), Duration::from_secs(10));
    assert!(
        out.text.contains("198.51.100.8"),
        "signed AXFR failed:\n{}",
        out.text
    );
    drop(s);
    drop(secondary);
    drop(primary);
}

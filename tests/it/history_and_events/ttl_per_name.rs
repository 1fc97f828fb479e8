//! SPEC 15, TTL per name: `domain set NAME --ttl SECONDS` within `dns.min_ttl`
//! and `dns.max_ttl`, shown by `domain list`, written for the domain and the
//! names below it, and served so by a real NSD. Needs tests/install-deps.sh.

use crate::common::dns::Rig;
use crate::common::ns::Kind;
use crate::common::proc::{run_with_timeout, tool};
use crate::common::server::{Server, Setup};
use std::process::Command;
use std::time::{Duration, Instant};

const EMAIL: &str = "alice@example.org";
const ALICE: &str = "alice.dedyn.example";

/// Done-when: a TTL outside the bounds is refused with exit 1 naming the
/// bound, and nothing changes.
#[test]
fn ttl_outside_the_bounds_is_refused_naming_the_bound() {
    let s = Server::start();
    s.provision(EMAIL, ALICE);
    for (ttl, bound) in [("29", "dns.min_ttl = 30"), ("86401", "dns.max_ttl = 86400")] {
        let o = s.cli(&["domain", "set", ALICE, "--ttl", ttl]);
        assert_eq!(o.code, 1, "{ttl}: {}", o.stderr);
        assert!(o.stderr.contains(bound), "{ttl}: {}", o.stderr);
    }
    assert_eq!(s.cli_ok(&["domain", "list"]).trim(), ALICE);
    for ttl in ["30", "86400"] {
        s.cli_ok(&["domain", "set", ALICE, "--ttl", ttl]);
        assert_eq!(
            s.cli_ok(&["domain", "list"]).trim(),
            format!("{ALICE} ttl {ttl}")
        );
    }
    let o = s.cli(&["domain", "set", "nobody.dedyn.example", "--ttl", "60"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
}

/// `dig +noall +answer` lines for `name`/`rtype` from the rig's nameserver.
fn answer(rig: &Rig, name: &str, rtype: &str) -> Vec<String> {
    let mut cmd = Command::new(tool("dig"));
    cmd.arg("@127.0.0.1")
        .arg("-p")
        .arg(rig.ns.port().to_string())
        .args(["+noall", "+answer", "+norecurse", "+time=1", "+tries=1"])
        .arg(name)
        .arg(rtype);
    let out = run_with_timeout(cmd, rig.dir.path(), Duration::from_secs(5));
    out.text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .collect()
}

/// Done-when: NSD answers with the TTL set, for the domain and a name below it;
/// `explain` names it.
#[test]
fn nsd_answers_with_the_ttl_set_for_the_domain_and_the_names_below() {
    let rig = Rig::start(Kind::Nsd, Setup::default());
    let tok = rig.server.provision(EMAIL, ALICE);
    rig.server.cli_ok(&["domain", "set", ALICE, "--ttl", "300"]);
    for (name, ip) in [
        (ALICE, "192.0.2.1"),
        ("www.alice.dedyn.example", "192.0.2.2"),
    ] {
        let r = rig.server.get(
            &format!("/?hostname={name}&myipv4={ip}"),
            &[("Authorization", &format!("Token {tok}"))],
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let want = [
        format!("{ALICE}. 300 IN A 192.0.2.1"),
        "www.alice.dedyn.example. 300 IN A 192.0.2.2".to_string(),
    ];
    loop {
        let got: Vec<String> = [ALICE, "www.alice.dedyn.example"]
            .iter()
            .flat_map(|n| answer(&rig, n, "A"))
            .collect();
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "NSD answers {got:?}, not {want:?}\n{}",
            rig.ns.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let explained = rig.server.cli_ok(&[
        "explain",
        &format!("http://127.0.0.1/?hostname={ALICE}&myipv4=192.0.2.1"),
        "--header",
        &format!("Authorization: Token {tok}"),
    ]);
    assert!(
        explained.contains(&format!(
            "{ALICE} TTL: 300 (domain {ALICE}, domain set --ttl)"
        )),
        "{explained}"
    );
}

//! The real ddclient (Debian 12: 3.10, `protocol=dyndns2`) against the real server,
//! checked in the store (`records`) and in DNS (NSD). Needs tests/install-deps.sh.

use std::time::Duration;

use crate::common::ddclient::run_ddclient_once;
use crate::common::dns::Rig;
use crate::common::ns::Kind;
use crate::common::server::Setup;

const ALICE: &str = "alice.dedyn.example";
const ALICE_EMAIL: &str = "alice@example.org";
const SERVE: Duration = Duration::from_secs(10);

/// Seed: "the username as provided in the HTTP Basic Authorization header" names
/// the host; ddclient also sends it as `hostname=`. Its `myip` sets A, and IPv6 —
/// no parameter for it, IPv4 connection — is deleted.
#[test]
fn ddclient_with_domain_as_login_updates_a_and_nsd_serves_it() {
    let rig = Rig::start(Kind::Nsd, Setup::default());
    let tok = rig.server.provision(ALICE_EMAIL, ALICE);
    let addr = rig.server.http.to_string();

    let out = run_ddclient_once(&addr, ALICE, &tok, ALICE, "192.0.2.10")
        .unwrap_or_else(|o| panic!("ddclient failed:\n{o}\n{}", rig.server.log()));
    assert!(out.contains("SUCCESS:"), "{out}");
    assert_eq!(rig.server.records(ALICE), ["A 192.0.2.10"]);
    rig.served(ALICE, "A", &["192.0.2.10"], SERVE);

    // A second run with a new address replaces it.
    run_ddclient_once(&addr, ALICE, &tok, ALICE, "192.0.2.11")
        .unwrap_or_else(|o| panic!("ddclient failed:\n{o}\n{}", rig.server.log()));
    assert_eq!(rig.server.records(ALICE), ["A 192.0.2.11"]);
    rig.served(ALICE, "A", &["192.0.2.11"], SERVE);
}

/// SPEC §4.1: the owner's email is a valid Basic username; the host then comes
/// from ddclient's `hostname=` parameter.
#[test]
fn ddclient_with_email_as_login_updates_the_named_host() {
    let rig = Rig::start(Kind::Nsd, Setup::default());
    let tok = rig.server.provision(ALICE_EMAIL, ALICE);
    let addr = rig.server.http.to_string();

    run_ddclient_once(&addr, ALICE_EMAIL, &tok, ALICE, "198.51.100.7")
        .unwrap_or_else(|o| panic!("ddclient failed:\n{o}\n{}", rig.server.log()));
    assert_eq!(rig.server.records(ALICE), ["A 198.51.100.7"]);
    rig.served(ALICE, "A", &["198.51.100.7"], SERVE);
}

/// Seed: failed authentication is `401` (`badauth`): ddclient reports failure and
/// nothing is written.
#[test]
fn ddclient_with_a_wrong_token_fails_and_changes_nothing() {
    let rig = Rig::start(Kind::Nsd, Setup::default());
    rig.server.provision(ALICE_EMAIL, ALICE);
    let addr = rig.server.http.to_string();

    let out = run_ddclient_once(&addr, ALICE, "not-the-token", ALICE, "192.0.2.10")
        .expect_err("a wrong token must not be reported as success");
    assert!(out.contains("FAILED:"), "{out}");
    assert!(rig.server.records(ALICE).is_empty());
    assert!(rig.ns.query(ALICE, "A").is_empty());
}

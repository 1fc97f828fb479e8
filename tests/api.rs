//! The update API over real sockets: the real binary, a real SQLite file, the CLI.
mod common;
use common::server::{basic, Server};

#[test]
fn seed_basic_auth_update_sets_both_families() {
    let s = Server::start();
    let tok = s.provision("alice@example.org", "alice.dedyn.example");
    let r = s.get(
        "/?myipv4=1.2.3.4&myipv6=fd08::1234",
        &[("Authorization", &basic("alice.dedyn.example", &tok))],
    );
    assert_eq!((r.status, r.body.as_str()), (200, "good"));
    assert_eq!(
        s.records("alice.dedyn.example"),
        ["A 1.2.3.4", "AAAA fd08::1234"]
    );
}

//! SPEC 8 extras over real sockets: checkip (IPv4 and IPv6, no auth, rate-limited).
mod common;
use common::server::{Server, Setup};

fn checkip_setup() -> Setup {
    Setup {
        server: vec!["checkip_hosts = [\"checkip.dedyn.example\"]".into()],
        rate_limit: vec![
            "dyndns_per_domain = \"\"".into(),
            "failed_auth_per_ip = \"\"".into(),
            "checkip_per_ip = \"3/60s\"".into(),
        ],
        ..Setup::default()
    }
}

#[test]
fn checkip_answers_the_client_address_over_ipv4_without_auth() {
    let s = Server::start_with(checkip_setup());
    // Host matched case-insensitively, port ignored.
    let r = s.get("/", &[("Host", "CheckIP.dedyn.example:8080")]);
    assert_eq!((r.status, r.body.as_str()), (200, "127.0.0.1"));
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    // Other hosts are update requests (and need credentials).
    assert_eq!(s.get("/", &[("Host", "update.dedyn.example")]).status, 401);
}

#[test]
fn checkip_answers_the_client_address_over_ipv6() {
    let s = Server::start_with(checkip_setup());
    let r = s.get6("/", &[("Host", "checkip.dedyn.example")]);
    assert_eq!((r.status, r.body.as_str()), (200, "::1"));
}

#[test]
fn checkip_is_rate_limited_per_address() {
    let s = Server::start_with(checkip_setup());
    for _ in 0..3 {
        assert_eq!(s.get("/", &[("Host", "checkip.dedyn.example")]).status, 200);
    }
    let r = s.get("/", &[("Host", "checkip.dedyn.example")]);
    assert_eq!(r.status, 429);
    assert!(r.header("Retry-After").is_some());
    // IPv6 loopback is another address: not affected.
    assert_eq!(
        s.get6("/", &[("Host", "checkip.dedyn.example")]).status,
        200
    );
}

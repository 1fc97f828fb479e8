//! Abuse controls over real sockets: per-domain update limits, failed-authentication
//! lock-out (per address, per /64 for IPv6), and coalesced token last-used times.
use crate::common::server::{basic, Response, Server, Setup};
use std::time::{Duration, Instant};

fn setup(rate_limit: &[&str]) -> Setup {
    Setup {
        // Clients at many addresses from one test: loopback poses as a proxy,
        // which only `trusted_proxies_allow_local_users` permits (SPEC 17).
        server: vec![
            "trusted_proxies = [\"127.0.0.1/32\"]".into(),
            "trusted_proxies_allow_local_users = true".into(),
        ],
        rate_limit: rate_limit.iter().map(|s| s.to_string()).collect(),
        ..Setup::default()
    }
}

fn update_from(s: &Server, client: &str, target: &str, auth: &str) -> Response {
    s.get(
        target,
        &[("Authorization", auth), ("X-Forwarded-For", client)],
    )
}

fn retry_after(r: &Response) -> u64 {
    r.header("Retry-After")
        .expect("Retry-After header")
        .parse()
        .expect("Retry-After is whole seconds")
}

/// Poll `f` until it returns a 200, within `limit`.
fn passes_within(limit: Duration, mut f: impl FnMut() -> Response) -> Response {
    let deadline = Instant::now() + limit;
    loop {
        let r = f();
        if r.status == 200 || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn dyndns_per_domain_refuses_the_request_over_the_limit_and_writes_nothing() {
    let s = Server::start_with(setup(&[
        "dyndns_per_domain = \"2/3s\"",
        "failed_auth_per_ip = \"\"",
    ]));
    let tok = s.provision("alice@example.org", "alice.dedyn.example");
    let auth = format!("Token {tok}");
    // A router's IPv4 and IPv6 updates back to back both pass.
    assert_eq!(
        s.get(
            "/?hostname=alice.dedyn.example&myipv4=1.1.1.1&myipv6=preserve",
            &[("Authorization", &auth)]
        )
        .status,
        200
    );
    // A name below the domain counts for the same domain.
    assert_eq!(
        s.get(
            "/?hostname=www.alice.dedyn.example&myipv6=fd08::1&myipv4=preserve",
            &[("Authorization", &auth)]
        )
        .status,
        200
    );
    let r = s.get(
        "/?hostname=alice.dedyn.example&myipv4=2.2.2.2",
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 429, "{r:?}");
    let wait = retry_after(&r);
    assert!((1..=3).contains(&wait), "Retry-After {wait}");
    assert!(
        r.body.contains(&format!("retry in {wait} seconds")),
        "{}",
        r.body
    );
    assert_eq!(s.records("alice.dedyn.example"), ["A 1.1.1.1"]);
    // Once the oldest request leaves the window, it passes.
    let r = passes_within(Duration::from_secs(5), || {
        s.get(
            "/?hostname=alice.dedyn.example&myipv4=2.2.2.2",
            &[("Authorization", &auth)],
        )
    });
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.records("alice.dedyn.example"), ["A 2.2.2.2"]);
}

#[test]
fn unchanged_updates_count_and_other_domains_are_not_affected() {
    let s = Server::start_with(setup(&[
        "dyndns_per_domain = \"2/60s\"",
        "failed_auth_per_ip = \"\"",
    ]));
    let tok = s.provision("alice@example.org", "alice.dedyn.example");
    let bob = s.provision("bob@example.org", "bob.dedyn.example");
    let auth = format!("Token {tok}");
    for _ in 0..2 {
        assert_eq!(
            s.get(
                "/?hostname=alice.dedyn.example&myipv4=1.1.1.1",
                &[("Authorization", &auth)]
            )
            .status,
            200
        );
    }
    let r = s.get(
        "/?hostname=alice.dedyn.example&myipv4=1.1.1.1",
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 429);
    let wait = retry_after(&r);
    assert!((50..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        s.get(
            "/?hostname=bob.dedyn.example",
            &[("Authorization", &format!("Token {bob}"))]
        )
        .status,
        200
    );
}

#[test]
fn several_limits_in_one_key_all_apply() {
    let s = Server::start_with(setup(&[
        "dyndns_per_domain = \"2/2s, 3/1d\"",
        "failed_auth_per_ip = \"\"",
    ]));
    let tok = s.provision("alice@example.org", "alice.dedyn.example");
    let auth = format!("Token {tok}");
    let up = |ip: &str| {
        s.get(
            &format!("/?hostname=alice.dedyn.example&myipv4={ip}"),
            &[("Authorization", &auth)],
        )
    };
    assert_eq!(up("1.1.1.1").status, 200);
    assert_eq!(up("1.1.1.2").status, 200);
    assert_eq!(up("1.1.1.3").status, 429);
    assert_eq!(
        passes_within(Duration::from_secs(4), || up("1.1.1.4")).status,
        200
    );
    let r = up("1.1.1.5");
    assert_eq!(r.status, 429);
    assert!(
        retry_after(&r) > 80_000,
        "the daily limit decides: {:?}",
        r.header("Retry-After")
    );
}

#[test]
fn failed_authentications_lock_out_the_address_even_with_correct_credentials() {
    let s = Server::start_with(setup(&[
        "dyndns_per_domain = \"\"",
        "failed_auth_per_ip = \"3/3s\"",
    ]));
    let tok = s.provision("alice@example.org", "alice.dedyn.example");
    let good = basic("alice.dedyn.example", &tok);
    let bad = basic("alice.dedyn.example", "wrong-token");
    for _ in 0..3 {
        assert_eq!(update_from(&s, "192.0.2.1", "/", &bad).status, 401);
    }
    let r = update_from(&s, "192.0.2.1", "/", &good);
    assert_eq!(r.status, 429, "{r:?}");
    assert!((1..=3).contains(&retry_after(&r)));
    // Another address is not affected.
    assert_eq!(update_from(&s, "192.0.2.2", "/", &good).status, 200);
    assert!(
        s.log().contains("failed authentication from 192.0.2.1"),
        "fail2ban line missing:\n{}",
        s.log()
    );
    assert!(!s.log().contains("wrong-token"));
    // After the window, the address is let in again.
    assert_eq!(
        passes_within(Duration::from_secs(5), || update_from(
            &s,
            "192.0.2.1",
            "/",
            &good
        ))
        .status,
        200
    );
}

#[test]
fn failed_authentications_are_counted_per_ipv6_64() {
    let s = Server::start_with(setup(&[
        "dyndns_per_domain = \"\"",
        "failed_auth_per_ip = \"2/60s\"",
    ]));
    let tok = s.provision("alice@example.org", "alice.dedyn.example");
    let good = format!("Token {tok}");
    assert_eq!(
        update_from(&s, "2001:db8:1:2::1", "/", "Token nope").status,
        401
    );
    assert_eq!(
        update_from(&s, "2001:db8:1:2::2", "/", "Token nope").status,
        401
    );
    assert_eq!(
        update_from(&s, "2001:db8:1:2:ffff::9", "/", &good).status,
        429
    );
    assert_eq!(update_from(&s, "2001:db8:1:3::1", "/", &good).status, 200);
}

#[test]
fn requests_without_credentials_do_not_count_as_failed() {
    let s = Server::start_with(setup(&[
        "dyndns_per_domain = \"\"",
        "failed_auth_per_ip = \"2/60s\"",
    ]));
    let tok = s.provision("alice@example.org", "alice.dedyn.example");
    for _ in 0..5 {
        let r = s.get(
            "/?hostname=alice.dedyn.example",
            &[("X-Forwarded-For", "192.0.2.7")],
        );
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some("Basic realm=\"dedyn-update\"")
        );
    }
    assert_eq!(
        update_from(&s, "192.0.2.7", "/", &basic("alice.dedyn.example", &tok)).status,
        200
    );
}

#[test]
fn token_last_used_is_recorded_without_a_write_per_request() {
    let mut s = Server::start_with(setup(&[
        "dyndns_per_domain = \"\"",
        "failed_auth_per_ip = \"\"",
    ]));
    let tok = s.provision("alice@example.org", "alice.dedyn.example");
    assert!(s.cli_ok(&["token", "list"]).contains("last_used=never"));
    assert_eq!(
        s.get("/", &[("Authorization", &format!("Token {tok}"))])
            .status,
        200
    );
    // Coalesced in memory, written every 30 s and at shutdown.
    assert_eq!(s.stop(), Some(0));
    let list = s.cli_ok(&["token", "list"]);
    assert!(!list.contains("last_used=never"), "{list}");
}

#[test]
fn blocked_subnets_may_not_be_published() {
    let mut setup = setup(&["dyndns_per_domain = \"\"", "failed_auth_per_ip = \"\""]);
    setup
        .server
        .push("blocked_subnets = [\"10.0.0.0/8\", \"fc00::/7\"]".into());
    let s = Server::start_with(setup);
    let tok = s.provision("alice@example.org", "alice.dedyn.example");
    let auth = format!("Token {tok}");
    let r = s.get(
        "/?hostname=alice.dedyn.example&myipv4=10.9.8.7",
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("10.9.8.7"), "{}", r.body);
    let r = s.get(
        "/?hostname=alice.dedyn.example&myipv6=fd00::1",
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 400);
    assert_eq!(s.records("alice.dedyn.example"), Vec::<String>::new());
    let r = s.get(
        "/?hostname=alice.dedyn.example&myipv4=192.0.2.1",
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn a_refused_update_of_several_domains_counts_for_none_of_them() {
    let s = Server::start_with(setup(&[
        "dyndns_per_domain = \"1/120s\"",
        "failed_auth_per_ip = \"\"",
    ]));
    let tok = s.provision("alice@example.org", "alice.dedyn.example");
    s.cli_ok(&[
        "domain",
        "add",
        "home.dedyn.example",
        "--owner",
        "alice@example.org",
    ]);
    let auth = format!("Token {tok}");
    let get = |q: &str| s.get(q, &[("Authorization", &auth)]);
    assert_eq!(
        get("/?hostname=home.dedyn.example&myipv4=1.1.1.1").status,
        200
    );
    // home is spent: the request is refused, and alice's budget stays untouched.
    let r = get("/?hostname=alice.dedyn.example,home.dedyn.example&myipv4=2.2.2.2");
    assert_eq!(r.status, 429);
    assert_eq!(s.records("alice.dedyn.example"), Vec::<String>::new());
    assert_eq!(
        get("/?hostname=alice.dedyn.example&myipv4=3.3.3.3").status,
        200
    );
}

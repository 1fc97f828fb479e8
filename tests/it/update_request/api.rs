//! The update API over real sockets: the real binary, a real SQLite file, the CLI.
//!
//! One test per rule of the seed and of SPEC 4, 7, 8 and 9, named after the rule,
//! with the request and the record set it must leave in plain view. Every test
//! starts its own server on free loopback ports, so they run in parallel.
use crate::common::server::{
    assert_good, basic, request, soa_serial, tget, token, Response, Server, Setup,
};
use std::time::{Duration, Instant};

const EMAIL: &str = "alice@example.org";
const ALICE: &str = "alice.dedyn.example";
/// How long a publication may take in these tests (publish_delay_ms = 50).
const PUBLISHED: Duration = Duration::from_secs(5);

/// A server where alice@example.org holds alice.dedyn.example; her token.
fn alice() -> (Server, String) {
    alice_with(Setup::default())
}

fn alice_with(setup: Setup) -> (Server, String) {
    let s = Server::start_with(setup);
    let t = s.provision(EMAIL, ALICE);
    (s, t)
}

#[track_caller]
fn assert_refused(r: &Response, status: u16, body: &str) {
    assert_eq!((r.status, r.body.as_str()), (status, body), "{r:?}");
}

/// SPEC 4.4: on every response, whatever its status.
#[track_caller]
fn assert_wire_rules(r: &Response, head: bool) {
    assert_eq!(r.header("Cache-Control"), Some("no-store"), "{r:?}");
    assert_eq!(r.header("Transfer-Encoding"), None, "never chunked: {r:?}");
    let len: usize = r
        .header("Content-Length")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length: {r:?}"));
    if !head {
        assert_eq!(len, r.body.len(), "{r:?}");
    }
}

/// Set alice's records to exactly these (through the API).
fn preset(s: &Server, tok: &str, query: &str) {
    assert_good(&tget(s, &format!("/?hostname={ALICE}&{query}"), tok));
}

// ---- SPEC 4.4: status codes, bodies and headers ----

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

#[test]
fn good_is_200_plain_text() {
    let (s, tok) = alice();
    let r = tget(&s, "/update?myipv4=1.2.3.4&myipv6=", &tok);
    assert_good(&r);
    assert!(
        r.header("Content-Type")
            .is_some_and(|v| v.starts_with("text/plain")),
        "{r:?}"
    );
    assert_wire_rules(&r, false);
}

#[test]
fn every_response_has_no_store_and_content_length_never_chunked() {
    let (s, tok) = alice();
    let t = token(&tok);
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, u16);
    let cases: &[Case] = &[
        (
            "GET",
            "/?myipv4=1.2.3.4",
            vec![("Authorization", t.as_str())],
            200,
        ),
        (
            "GET",
            "/?myipv4=1.2.3.999",
            vec![("Authorization", t.as_str())],
            400,
        ),
        ("GET", "/", vec![], 401),
        (
            "GET",
            "/?hostname=bob.dedyn.example",
            vec![("Authorization", t.as_str())],
            404,
        ),
        ("GET", "/favicon.ico", vec![], 404),
        ("POST", "/", vec![("Content-Length", "0")], 405),
    ];
    for (method, target, headers, status) in cases {
        // ddclient up to 3.10 cannot read chunked bodies; some clients send TE.
        for te in [None, Some("chunked"), Some("trailers, chunked;q=0.5")] {
            let mut h = headers.clone();
            if let Some(v) = te {
                h.push(("TE", v));
            }
            let r = request(s.http, method, target, &h);
            assert_eq!(r.status, *status, "{method} {target} TE {te:?}: {r:?}");
            assert_wire_rules(&r, false);
        }
    }
}

#[test]
fn head_is_get_without_body() {
    let (s, tok) = alice();
    let t = token(&tok);
    let r = request(
        s.http,
        "HEAD",
        "/?myipv4=1.2.3.4&myipv6=",
        &[("Authorization", &t)],
    );
    assert_eq!((r.status, r.body.as_str()), (200, ""), "{r:?}");
    assert_eq!(r.header("Content-Length"), Some("4"), "length of 'good'");
    assert_eq!(
        r.header("X-Update-Result"),
        Some("alice.dedyn.example A set;alice.dedyn.example AAAA unchanged")
    );
    assert_wire_rules(&r, true);
    assert_eq!(s.records(ALICE), ["A 1.2.3.4"]);

    let r = request(s.http, "HEAD", "/", &[]);
    assert_eq!((r.status, r.body.as_str()), (401, ""), "{r:?}");
    assert!(r.header("WWW-Authenticate").is_some(), "{r:?}");
    assert_wire_rules(&r, true);
}

#[test]
fn no_credentials_is_401_badauth_with_basic_challenge() {
    let (s, _) = alice();
    let r = s.get("/?hostname=alice.dedyn.example&myipv4=1.2.3.4", &[]);
    assert_refused(&r, 401, "badauth");
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Basic realm=\"dedyn-update\"")
    );
    assert_eq!(s.records(ALICE), Vec::<String>::new());
}

#[test]
fn unknown_token_is_401_badauth() {
    let (s, _) = alice();
    for auth in [token("no-such-token"), basic(ALICE, "no-such-token")] {
        let r = s.get("/?myipv4=1.2.3.4", &[("Authorization", &auth)]);
        assert_refused(&r, 401, "badauth");
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some("Basic realm=\"dedyn-update\"")
        );
    }
    assert_eq!(s.records(ALICE), Vec::<String>::new());
}

#[test]
fn other_methods_are_405_with_allow_before_authentication() {
    let (s, tok) = alice();
    let t = token(&tok);
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for auth in [None, Some(t.as_str())] {
            let mut h = vec![("Content-Length", "0")];
            if let Some(a) = auth {
                h.push(("Authorization", a));
            }
            let r = request(s.http, method, "/?myipv4=1.2.3.4", &h);
            assert_eq!(r.status, 405, "{method}: {r:?}");
            assert_eq!(r.header("Allow"), Some("GET, HEAD"), "{method}: {r:?}");
            assert_wire_rules(&r, false);
        }
    }
    assert_eq!(s.records(ALICE), Vec::<String>::new());
}

#[test]
fn ico_and_png_paths_are_404_in_any_case() {
    let (s, tok) = alice();
    for path in [
        "/favicon.ico",
        "/apple-touch-icon.png",
        "/x.PNG",
        "/a/b.IcO",
    ] {
        let r = tget(&s, &format!("{path}?myipv4=1.2.3.4"), &tok);
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert_ne!(r.body, "good");
    }
    assert_eq!(s.records(ALICE), Vec::<String>::new());
    // Only the end of the path counts: any other path is an update request.
    assert_good(&tget(&s, "/favicon.ico/nic/update?myipv4=1.2.3.4", &tok));
    assert_eq!(s.records(ALICE), ["A 1.2.3.4"]);
}

#[test]
fn name_not_held_is_404_nohost() {
    let (s, tok) = alice();
    s.provision("bob@example.org", "bob.dedyn.example");
    for name in [
        "bob.dedyn.example",
        "www.bob.dedyn.example",
        "malice.dedyn.example",
    ] {
        let r = tget(&s, &format!("/?hostname={name}&myipv4=1.2.3.4"), &tok);
        assert_refused(&r, 404, "nohost");
    }
    assert_eq!(s.records("bob.dedyn.example"), Vec::<String>::new());
}

#[test]
fn non_dynamic_zone_is_403_not_yours() {
    let s = Server::start_with(Setup::with_static_zone());
    let tok = s.provision(EMAIL, "alice.static.example");
    let r = tget(&s, "/?hostname=alice.static.example&myipv4=1.2.3.4", &tok);
    assert_refused(&r, 403, "!yours");
    // The held name passes the Basic username check and is refused later (SPEC 4.1).
    let r = s.get(
        "/?myipv4=1.2.3.4",
        &[("Authorization", &basic("alice.static.example", &tok))],
    );
    assert_refused(&r, 403, "!yours");
    assert_eq!(s.records("alice.static.example"), Vec::<String>::new());
}

#[test]
fn token_domain_policy_excludes_other_names_with_403() {
    let (s, _) = alice();
    s.cli_ok(&["domain", "add", "second.dedyn.example", "--owner", EMAIL]);
    let tok = s.cli_ok(&["token", "add", "--owner", EMAIL, "--domain", ALICE]);
    let tok = tok.trim();
    let r = tget(&s, "/?hostname=second.dedyn.example&myipv4=1.2.3.4", tok);
    assert_refused(&r, 403, "!yours");
    let r = s.get(
        "/?myipv4=1.2.3.4",
        &[("Authorization", &basic("second.dedyn.example", tok))],
    );
    assert_refused(&r, 403, "!yours");
    assert_eq!(s.records("second.dedyn.example"), Vec::<String>::new());
    // the policy's domain and the names below it
    assert_good(&tget(
        &s,
        "/?hostname=alice.dedyn.example,www.alice.dedyn.example&myipv4=1.2.3.4",
        tok,
    ));
    assert_eq!(s.records("www.alice.dedyn.example"), ["A 1.2.3.4"]);
}

#[test]
fn database_failure_is_500_911_and_nothing_half_written() {
    // Root ignores file permissions, and the server waits out another writer's lock
    // (SPEC 13), so the failure is injected: a trigger that makes the second
    // name's insert fail, after the first name's records were already replaced.
    let (s, tok) = alice();
    preset(&s, &tok, "myipv4=1.1.1.1&myipv6=fd08::1");
    let db = rusqlite::Connection::open(s.db_path()).expect("open db");
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER injected_failure BEFORE INSERT ON records
         WHEN NEW.name = 'www.alice.dedyn.example'
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .expect("create the trigger");
    let r = tget(
        &s,
        "/?hostname=alice.dedyn.example,www.alice.dedyn.example&myipv4=2.2.2.2&myipv6=",
        &tok,
    );
    db.execute_batch("DROP TRIGGER injected_failure")
        .expect("drop the trigger");
    drop(db);
    assert_refused(&r, 500, "911");
    assert_wire_rules(&r, false);
    assert_eq!(s.records(ALICE), ["A 1.1.1.1", "AAAA fd08::1"]);
    assert_eq!(s.records("www.alice.dedyn.example"), Vec::<String>::new());
    assert_good(&tget(&s, "/?myipv4=2.2.2.2", &tok));
}

// ---- SPEC 4.1: authentication ----

#[test]
fn token_header_authenticates() {
    let (s, tok) = alice();
    assert_good(&tget(&s, "/?myipv4=1.2.3.4", &tok));
    assert_eq!(s.records(ALICE), ["A 1.2.3.4"]);
}

#[test]
fn query_username_and_password_authenticate() {
    let (s, tok) = alice();
    let r = s.get(
        &format!("/?username={ALICE}&password={tok}&myipv4=1.2.3.4"),
        &[],
    );
    assert_good(&r);
    assert_eq!(s.records(ALICE), ["A 1.2.3.4"]);
}

#[test]
fn query_username_or_password_alone_is_401() {
    let (s, tok) = alice();
    for q in [
        format!("username={ALICE}"),
        format!("password={tok}"),
        format!("hostname={ALICE}&password={tok}"),
    ] {
        let r = s.get(&format!("/?{q}&myipv4=1.2.3.4"), &[]);
        assert_refused(&r, 401, "badauth");
    }
    assert_eq!(s.records(ALICE), Vec::<String>::new());
}

#[test]
fn unparsable_authorization_header_is_401() {
    let (s, tok) = alice();
    let no_colon = {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(&tok)
        )
    };
    for h in [
        "Basic !!!not-base64".to_string(),
        no_colon,
        format!("Bearer {tok}"),
        "Token".to_string(),
        format!("Token {tok} extra"),
    ] {
        // Valid query credentials do not rescue a bad header: the header applies first.
        let r = s.get(
            &format!("/?username={ALICE}&password={tok}&myipv4=1.2.3.4"),
            &[("Authorization", &h)],
        );
        assert_refused(&r, 401, "badauth");
    }
    assert_eq!(s.records(ALICE), Vec::<String>::new());
}

#[test]
fn token_header_applies_before_query_credentials() {
    let (s, tok) = alice();
    let r = tget(
        &s,
        &format!("/?username={ALICE}&password=wrong&myipv4=1.2.3.4"),
        &tok,
    );
    assert_good(&r);
    assert_eq!(s.records(ALICE), ["A 1.2.3.4"]);
}

#[test]
fn basic_username_may_be_empty_email_held_name_or_name_below() {
    let (s, tok) = alice();
    for (user, updated) in [
        ("", ALICE),
        (EMAIL, ALICE),
        ("ALICE@example.org", ALICE),
        (ALICE, ALICE),
        ("www.alice.dedyn.example", "www.alice.dedyn.example"),
    ] {
        let r = s.get("/?myipv4=1.2.3.4", &[("Authorization", &basic(user, &tok))]);
        assert_good(&r);
        assert_eq!(s.records(updated), ["A 1.2.3.4"], "username '{user}'");
    }
}

#[test]
fn basic_username_not_held_is_401() {
    let (s, tok) = alice();
    s.provision("bob@example.org", "bob.dedyn.example");
    for user in [
        "bob.dedyn.example",
        "bob@example.org",
        "nobody.dedyn.example",
        "alice",
    ] {
        let r = s.get("/?myipv4=1.2.3.4", &[("Authorization", &basic(user, &tok))]);
        assert_refused(&r, 401, "badauth");
        // the same rule for the query method
        let r = s.get(
            &format!("/?username={user}&password={tok}&myipv4=1.2.3.4"),
            &[],
        );
        assert_refused(&r, 401, "badauth");
    }
    assert_eq!(s.records(ALICE), Vec::<String>::new());
    assert_eq!(s.records("bob.dedyn.example"), Vec::<String>::new());
}

#[test]
fn expired_token_is_401() {
    let (s, _) = alice();
    let tok = s.cli_ok(&["token", "add", "--owner", EMAIL, "--expires-in", "1"]);
    let tok = tok.trim().to_string();
    s.wait_until("the token to expire", Duration::from_secs(5), || {
        tget(&s, "/?myipv4=1.2.3.4", &tok).status == 401
    });
    let r = tget(&s, "/?myipv4=5.6.7.8", &tok);
    assert_refused(&r, 401, "badauth");
    assert!(!s.records(ALICE).contains(&"A 5.6.7.8".to_string()));
}

#[test]
fn token_from_outside_its_allowed_subnet_is_401() {
    let (s, _) = alice();
    let elsewhere = s.cli_ok(&[
        "token",
        "add",
        "--owner",
        EMAIL,
        "--allowed-subnet",
        "10.0.0.0/8",
    ]);
    let r = tget(&s, "/?myipv4=1.2.3.4", elsewhere.trim());
    assert_refused(&r, 401, "badauth");
    assert_eq!(s.records(ALICE), Vec::<String>::new());

    let here = s.cli_ok(&[
        "token",
        "add",
        "--owner",
        EMAIL,
        "--allowed-subnet",
        "10.0.0.0/8",
        "--allowed-subnet",
        "127.0.0.0/8",
    ]);
    assert_good(&tget(&s, "/?myipv4=1.2.3.4", here.trim()));
    assert_eq!(s.records(ALICE), ["A 1.2.3.4"]);
}

// ---- SPEC 4.2: hostname ----

#[test]
fn hostname_parameter_comes_first() {
    let (s, tok) = alice();
    let r = s.get(
        "/?hostname=www.alice.dedyn.example&host_id=alice.dedyn.example&myipv4=1.2.3.4",
        &[("Authorization", &basic(ALICE, &tok))],
    );
    assert_good(&r);
    assert_eq!(s.records("www.alice.dedyn.example"), ["A 1.2.3.4"]);
    assert_eq!(s.records(ALICE), Vec::<String>::new());
}

#[test]
fn hostname_yes_is_ignored() {
    // seed: some clients send hostname=YES
    let (s, tok) = alice();
    let r = s.get(
        "/?hostname=YES&myipv4=1.2.3.4",
        &[("Authorization", &basic("www.alice.dedyn.example", &tok))],
    );
    assert_good(&r);
    assert_eq!(s.records("www.alice.dedyn.example"), ["A 1.2.3.4"]);
    // and an empty hostname too
    assert_good(&tget(&s, "/?hostname=&myipv4=5.6.7.8", &tok));
    assert_eq!(s.records(ALICE), ["A 5.6.7.8"]);
}

#[test]
fn host_id_comes_second() {
    let (s, tok) = alice();
    let r = s.get(
        "/?host_id=www.alice.dedyn.example&myipv4=1.2.3.4",
        &[("Authorization", &basic(ALICE, &tok))],
    );
    assert_good(&r);
    assert_eq!(s.records("www.alice.dedyn.example"), ["A 1.2.3.4"]);
    assert_eq!(s.records(ALICE), Vec::<String>::new());
}

#[test]
fn basic_username_comes_third() {
    let (s, tok) = alice();
    let r = s.get(
        "/?username=ignored.alice.dedyn.example&myipv4=1.2.3.4",
        &[("Authorization", &basic("www.alice.dedyn.example", &tok))],
    );
    assert_good(&r);
    assert_eq!(s.records("www.alice.dedyn.example"), ["A 1.2.3.4"]);
    assert_eq!(
        s.records("ignored.alice.dedyn.example"),
        Vec::<String>::new()
    );
}

#[test]
fn username_parameter_comes_fourth() {
    let (s, tok) = alice();
    // with the query method
    let r = s.get(
        &format!("/?username=www.alice.dedyn.example&password={tok}&myipv4=1.2.3.4"),
        &[],
    );
    assert_good(&r);
    assert_eq!(s.records("www.alice.dedyn.example"), ["A 1.2.3.4"]);
    // with the Token header, the username parameter still names the host
    let r = tget(
        &s,
        "/?username=sub.alice.dedyn.example&myipv4=1.2.3.4",
        &tok,
    );
    assert_good(&r);
    assert_eq!(s.records("sub.alice.dedyn.example"), ["A 1.2.3.4"]);
    // an email as username does not name a host: the only domain does
    let r = s.get(
        &format!("/?username={EMAIL}&password={tok}&myipv4=5.6.7.8"),
        &[],
    );
    assert_good(&r);
    assert_eq!(s.records(ALICE), ["A 5.6.7.8"]);
}

#[test]
fn only_domain_of_the_owner_comes_last() {
    let (s, tok) = alice();
    assert_good(&tget(&s, "/?myipv4=1.2.3.4", &tok));
    assert_eq!(s.records(ALICE), ["A 1.2.3.4"]);
}

#[test]
fn several_domains_without_hostname_is_404_nohost() {
    let (s, tok) = alice();
    s.cli_ok(&["domain", "add", "second.dedyn.example", "--owner", EMAIL]);
    assert_refused(&tget(&s, "/?myipv4=1.2.3.4", &tok), 404, "nohost");
    let r = s.get(
        "/?myipv4=1.2.3.4",
        &[("Authorization", &basic(EMAIL, &tok))],
    );
    assert_refused(&r, 404, "nohost");
    assert_eq!(s.records(ALICE), Vec::<String>::new());
}

#[test]
fn account_without_domain_is_404_nohost() {
    let s = Server::start();
    s.cli_ok(&["user", "add", EMAIL]);
    let tok = s.cli_ok(&["token", "add", "--owner", EMAIL]);
    assert_refused(&tget(&s, "/?myipv4=1.2.3.4", tok.trim()), 404, "nohost");
}

#[test]
fn comma_list_updates_every_name() {
    let (s, tok) = alice();
    let r = tget(
        &s,
        "/?hostname=alice.dedyn.example,%20www.alice.dedyn.example%20,*.alice.dedyn.example&myipv4=1.2.3.4&myipv6=fd08::1",
        &tok,
    );
    assert_good(&r);
    for n in [ALICE, "www.alice.dedyn.example", "*.alice.dedyn.example"] {
        assert_eq!(s.records(n), ["A 1.2.3.4", "AAAA fd08::1"], "{n}");
    }
    assert_eq!(
        r.header("X-Update-Result"),
        Some(
            "alice.dedyn.example A set;alice.dedyn.example AAAA set;\
             www.alice.dedyn.example A set;www.alice.dedyn.example AAAA set;\
             *.alice.dedyn.example A set;*.alice.dedyn.example AAAA set"
        )
    );
}

#[test]
fn comma_list_is_atomic_one_bad_name_changes_nothing() {
    let (s, tok) = alice();
    s.provision("bob@example.org", "bob.dedyn.example");
    preset(&s, &tok, "myipv4=1.1.1.1&myipv6=");
    for (names, status, body) in [
        ("alice.dedyn.example,bob.dedyn.example", 404, "nohost"),
        (
            "alice.dedyn.example,,www.alice.dedyn.example",
            404,
            "nohost",
        ),
        ("alice.dedyn.example,", 404, "nohost"),
    ] {
        let r = tget(&s, &format!("/?hostname={names}&myipv4=2.2.2.2"), &tok);
        assert_refused(&r, status, body);
    }
    let r = tget(
        &s,
        "/?hostname=alice.dedyn.example,bad%20name.dedyn.example&myipv4=2.2.2.2",
        &tok,
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(s.records(ALICE), ["A 1.1.1.1"]);
}

#[test]
fn wildcard_and_names_below_a_domain_are_held() {
    let (s, tok) = alice();
    for n in [
        "*.alice.dedyn.example",
        "a.b.c.alice.dedyn.example",
        "_acme.alice.dedyn.example",
    ] {
        assert_good(&tget(&s, &format!("/?hostname={n}&myipv4=1.2.3.4"), &tok));
        assert_eq!(s.records(n), ["A 1.2.3.4"], "{n}");
    }
    let zone = s.cli_ok(&["zone", "render", "dedyn.example"]);
    assert!(
        zone.contains("*.alice.dedyn.example. 60 IN A 1.2.3.4"),
        "{zone}"
    );
}

#[test]
fn trailing_dot_and_upper_case_are_the_same_name() {
    let (s, tok) = alice();
    let r = tget(
        &s,
        "/?hostname=WWW.Alice.Dedyn.Example.&myipv4=1.2.3.4",
        &tok,
    );
    assert_good(&r);
    assert_eq!(s.records("www.alice.dedyn.example"), ["A 1.2.3.4"]);
    assert_eq!(
        r.header("X-Update-Result"),
        Some("www.alice.dedyn.example A set;www.alice.dedyn.example AAAA unchanged")
    );
}

#[test]
fn invalid_hostname_is_400_naming_it() {
    let (s, tok) = alice();
    let long_label = "a".repeat(64);
    for (q, named) in [
        (
            "hostname=bad_name!.dedyn.example",
            "bad_name!.dedyn.example",
        ),
        ("hostname=a..dedyn.example", "a..dedyn.example"),
        (
            "hostname=www.*.alice.dedyn.example",
            "www.*.alice.dedyn.example",
        ),
        // syntax before ownership (SPEC 9): this name is not held either
        ("hostname=x%20y.example", "x y.example"),
        (
            &format!("hostname={long_label}.alice.dedyn.example") as &str,
            long_label.as_str(),
        ),
        (
            "host_id=no%2Fslash.alice.dedyn.example",
            "no/slash.alice.dedyn.example",
        ),
    ] {
        let r = tget(&s, &format!("/?{q}&myipv4=1.2.3.4"), &tok);
        assert_eq!(r.status, 400, "{q}: {r:?}");
        assert!(r.body.contains(named), "{q}: body should name it: {r:?}");
    }
    assert_eq!(s.records(ALICE), Vec::<String>::new());
}

#[test]
fn owner_email_as_hostname_is_400() {
    let (s, tok) = alice();
    let r = tget(&s, &format!("/?hostname={EMAIL}&myipv4=1.2.3.4"), &tok);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains(EMAIL), "{r:?}");
}

// ---- SPEC 4.3 and 9: addresses ----

#[test]
fn ipv4_parameters_in_order_myip_myipv4_ip() {
    let (s, tok) = alice();
    for (q, a) in [
        ("ip=3.3.3.3&myipv4=2.2.2.2&myip=1.1.1.1", "A 1.1.1.1"),
        ("ip=3.3.3.3&myipv4=2.2.2.2", "A 2.2.2.2"),
        ("ip=3.3.3.3", "A 3.3.3.3"),
    ] {
        assert_good(&tget(&s, &format!("/?{q}"), &tok));
        assert_eq!(s.records(ALICE), [a], "{q}");
    }
}

#[test]
fn ipv6_parameters_in_order_myipv6_ipv6_myip_ip() {
    let (s, tok) = alice();
    for (q, aaaa) in [
        (
            "ip=fd08::4&myip=fd08::3&ipv6=fd08::2&myipv6=fd08::1",
            "AAAA fd08::1",
        ),
        ("ip=fd08::4&myip=fd08::3&ipv6=fd08::2", "AAAA fd08::2"),
        ("ip=fd08::4&myip=fd08::3", "AAAA fd08::3"),
        ("ip=fd08::4", "AAAA fd08::4"),
    ] {
        // myipv4= keeps the connection's IPv4 out of the picture
        assert_good(&tget(&s, &format!("/?myipv4=&{q}"), &tok));
        assert_eq!(s.records(ALICE), [aaaa], "{q}");
    }
}

#[test]
fn parameter_without_an_address_of_the_family_does_not_count() {
    let (s, tok) = alice();
    // myip has only IPv6: IPv4 goes on to myipv4/ip, then the connection (127.0.0.1)
    assert_good(&tget(&s, "/?myip=fd08::1", &tok));
    assert_eq!(s.records(ALICE), ["A 127.0.0.1", "AAAA fd08::1"]);
    assert_good(&tget(&s, "/?myip=fd08::2&ip=10.0.0.1", &tok));
    assert_eq!(s.records(ALICE), ["A 10.0.0.1", "AAAA fd08::2"]);
}

#[test]
fn connection_address_over_ipv4_sets_a_and_deletes_aaaa() {
    let (s, tok) = alice();
    preset(&s, &tok, "myipv4=1.1.1.1&myipv6=fd08::1");
    let r = tget(&s, "/", &tok);
    assert_good(&r);
    assert_eq!(s.records(ALICE), ["A 127.0.0.1"]);
    assert_eq!(
        r.header("X-Update-Result"),
        Some("alice.dedyn.example A set;alice.dedyn.example AAAA deleted")
    );
}

#[test]
fn connection_address_over_ipv6_sets_aaaa_and_deletes_a() {
    let (s, tok) = alice();
    preset(&s, &tok, "myipv4=1.1.1.1&myipv6=fd08::1");
    let r = s.get6("/", &[("Authorization", &token(&tok))]);
    assert_good(&r);
    assert_eq!(s.records(ALICE), ["AAAA ::1"]);
    assert_eq!(
        r.header("X-Update-Result"),
        Some("alice.dedyn.example A deleted;alice.dedyn.example AAAA set")
    );
}

#[test]
fn empty_value_deletes_that_family() {
    let (s, tok) = alice();
    preset(&s, &tok, "myipv4=1.1.1.1&myipv6=fd08::1");
    assert_good(&tget(&s, "/?myipv4=&myipv6=fd08::1", &tok));
    assert_eq!(s.records(ALICE), ["AAAA fd08::1"]);
    preset(&s, &tok, "myipv4=1.1.1.1&myipv6=fd08::1");
    // only empty elements mean empty (SPEC 9), blanks included
    assert_good(&tget(&s, "/?myipv4=1.1.1.1&myipv6=,%20,", &tok));
    assert_eq!(s.records(ALICE), ["A 1.1.1.1"]);
}

#[test]
fn preserve_leaves_that_family_as_it_is() {
    let (s, tok) = alice();
    preset(&s, &tok, "myipv4=1.1.1.1&myipv6=fd08::1");
    let r = tget(&s, "/?myipv4=2.2.2.2&myipv6=preserve", &tok);
    assert_good(&r);
    assert_eq!(s.records(ALICE), ["A 2.2.2.2", "AAAA fd08::1"]);
    assert_eq!(
        r.header("X-Update-Result"),
        Some("alice.dedyn.example A set;alice.dedyn.example AAAA preserved")
    );
    // myip=preserve counts for both families
    let r = tget(&s, "/?myip=preserve", &tok);
    assert_good(&r);
    assert_eq!(s.records(ALICE), ["A 2.2.2.2", "AAAA fd08::1"]);
    assert_eq!(r.header("X-Zone-Serial"), None);
}

#[test]
fn comma_list_sets_exactly_those_addresses() {
    let (s, tok) = alice();
    preset(&s, &tok, "myipv4=1.1.1.1&myipv6=");
    assert_good(&tget(
        &s,
        "/?myipv4=10.0.0.10,%2010.0.0.9,10.0.0.10&myipv6=fd08::2,fd08::1",
        &tok,
    ));
    assert_eq!(
        s.records(ALICE),
        ["A 10.0.0.9", "A 10.0.0.10", "AAAA fd08::1", "AAAA fd08::2"]
    );
}

#[test]
fn mixed_myip_sets_both_families() {
    let (s, tok) = alice();
    assert_good(&tget(&s, "/?myip=1.2.3.4,fd08::1", &tok));
    assert_eq!(s.records(ALICE), ["A 1.2.3.4", "AAAA fd08::1"]);
}

#[test]
fn prefix_replaces_the_network_and_keeps_host_bits() {
    let (s, tok) = alice();
    preset(&s, &tok, "myipv4=10.1.2.3,10.1.2.4&myipv6=fd08::1:2:3:4");
    // the host bits of the given value are ignored
    let r = tget(
        &s,
        "/?myipv4=192.168.255.255/16&myipv6=2001:db8:aaaa:bbbb:ffff::ffff/64",
        &tok,
    );
    assert_good(&r);
    assert_eq!(
        s.records(ALICE),
        [
            "A 192.168.2.3",
            "A 192.168.2.4",
            "AAAA 2001:db8:aaaa:bbbb:1:2:3:4"
        ]
    );
}

#[test]
fn prefix_and_address_in_one_myip() {
    // SPEC 4.3: myip=1.2.3.0/24,fd08::1 is a prefix for IPv4 and an address for IPv6
    let (s, tok) = alice();
    preset(&s, &tok, "myipv4=10.0.0.7&myipv6=fd08::9");
    assert_good(&tget(&s, "/?myip=1.2.3.0/24,fd08::1", &tok));
    assert_eq!(s.records(ALICE), ["A 1.2.3.7", "AAAA fd08::1"]);
}

#[test]
fn prefix_on_a_family_without_records_leaves_none() {
    let (s, tok) = alice();
    let r = tget(&s, "/?myipv4=1.2.3.0/24&myipv6=", &tok);
    assert_good(&r);
    assert_eq!(s.records(ALICE), Vec::<String>::new());
    assert_eq!(r.header("X-Zone-Serial"), None);
}

#[test]
fn per_name_parameter_updates_only_its_family_of_that_name() {
    let (s, tok) = alice();
    preset(&s, &tok, "myipv4=1.1.1.1&myipv6=fd08::1");
    assert_good(&tget(
        &s,
        "/?hostname=www.alice.dedyn.example&myipv4=9.9.9.9&myipv6=fd08::9",
        &tok,
    ));
    // the owner's only domain is not added behind the client's back
    let r = tget(&s, "/?myipv4:www.alice.dedyn.example=2.2.2.2", &tok);
    assert_good(&r);
    assert_eq!(
        s.records("www.alice.dedyn.example"),
        ["A 2.2.2.2", "AAAA fd08::9"]
    );
    assert_eq!(s.records(ALICE), ["A 1.1.1.1", "AAAA fd08::1"]);
    assert_eq!(
        r.header("X-Update-Result"),
        Some("www.alice.dedyn.example A set;www.alice.dedyn.example AAAA preserved")
    );
}

#[test]
fn per_name_parameter_wins_over_general_ones_and_adds_its_names() {
    let (s, tok) = alice();
    preset(&s, &tok, "myipv4=1.1.1.1&myipv6=fd08::1");
    let r = tget(
        &s,
        "/?hostname=alice.dedyn.example&myipv4=3.3.3.3&myipv6=fd08::3\
         &myipv4:alice.dedyn.example=4.4.4.4&myipv6:www.alice.dedyn.example,sub.alice.dedyn.example=fd08::5",
        &tok,
    );
    assert_good(&r);
    assert_eq!(s.records(ALICE), ["A 4.4.4.4", "AAAA fd08::3"]);
    assert_eq!(s.records("www.alice.dedyn.example"), ["AAAA fd08::5"]);
    assert_eq!(s.records("sub.alice.dedyn.example"), ["AAAA fd08::5"]);
    assert_eq!(
        r.header("X-Update-Result"),
        Some(
            "alice.dedyn.example A set;alice.dedyn.example AAAA set;\
             www.alice.dedyn.example A preserved;www.alice.dedyn.example AAAA set;\
             sub.alice.dedyn.example A preserved;sub.alice.dedyn.example AAAA set"
        )
    );
}

#[test]
fn later_per_name_parameter_wins_for_the_same_name_and_family() {
    let (s, tok) = alice();
    let (a, b) = ("a.alice.dedyn.example", "b.alice.dedyn.example");
    assert_good(&tget(
        &s,
        &format!("/?myipv4:{a}=1.1.1.1&myipv4:{a},{b}=2.2.2.2"),
        &tok,
    ));
    assert_eq!(
        (s.records(a), s.records(b)),
        (vec!["A 2.2.2.2".to_string()], vec!["A 2.2.2.2".to_string()])
    );
    assert_good(&tget(
        &s,
        &format!("/?myipv4:{a},{b}=3.3.3.3&myipv4:{a}=4.4.4.4"),
        &tok,
    ));
    assert_eq!(
        (s.records(a), s.records(b)),
        (vec!["A 4.4.4.4".to_string()], vec!["A 3.3.3.3".to_string()])
    );
    // a repeated key keeps the value and position of its last occurrence
    assert_good(&tget(
        &s,
        &format!("/?myipv4:{a}=5.5.5.5&myipv4:{a},{b}=6.6.6.6&myipv4:{a}=7.7.7.7"),
        &tok,
    ));
    assert_eq!(
        (s.records(a), s.records(b)),
        (vec!["A 7.7.7.7".to_string()], vec!["A 6.6.6.6".to_string()])
    );
}

#[test]
fn repeated_key_last_wins() {
    let (s, tok) = alice();
    assert_good(&tget(&s, "/?myipv4=1.1.1.1&myipv4=2.2.2.2", &tok));
    assert_eq!(s.records(ALICE), ["A 2.2.2.2"]);
}

#[test]
fn every_address_error_is_400_naming_the_parameter_and_changes_nothing() {
    let (s, tok) = alice();
    preset(&s, &tok, "myipv4=1.1.1.1&myipv6=fd08::1");
    for (q, param) in [
        ("myipv4=1.2.3.999", "myipv4"),
        ("myipv4=1.2.3", "myipv4"),
        ("myipv6=fd08::zz", "myipv6"),
        ("myip=1.2.3.4,fd08:::1", "myip"),
        ("ip=1.2.3.4,1.2.3.x", "ip"),
        ("myipv4=preserve,1.2.3.4", "myipv4"),
        ("myipv4=,1.2.3.4", "myipv4"),
        ("myipv6=preserve,", "myipv6"),
        ("myipv4=1.2.3.0/24,1.2.4.4", "myipv4"),
        ("myipv4=1.2.3.0/24,1.2.4.0/24", "myipv4"),
        ("myipv4=1.2.3.0/33", "myipv4"),
        ("myipv4=1.2.3.0/", "myipv4"),
        ("myipv4=1.2.3.0/x", "myipv4"),
        ("myipv6=fd08::/129", "myipv6"),
        ("myipv6=::ffff:1.2.3.4", "myipv6"),
        (
            "myipv4:www.alice.dedyn.example=1.2.3.999",
            "myipv4:www.alice.dedyn.example",
        ),
        (
            "myipv4:www.alice.dedyn.example=fd08::1",
            "myipv4:www.alice.dedyn.example",
        ),
    ] {
        let r = tget(&s, &format!("/?hostname={ALICE}&{q}"), &tok);
        assert_eq!(r.status, 400, "{q}: {r:?}");
        assert!(
            r.body.contains(param),
            "{q}: body should name {param}: {r:?}"
        );
        assert!(
            r.header("Content-Type")
                .is_some_and(|v| v.starts_with("text/plain")),
            "{r:?}"
        );
    }
    assert_eq!(s.records(ALICE), ["A 1.1.1.1", "AAAA fd08::1"]);
    assert_eq!(s.records("www.alice.dedyn.example"), Vec::<String>::new());
}

#[test]
fn ipv4_mapped_ipv6_value_is_400() {
    let (s, tok) = alice();
    for q in [
        "myipv6=::ffff:192.0.2.1",
        "myip=::ffff:c000:201",
        "ip=::FFFF:192.0.2.1",
    ] {
        let r = tget(&s, &format!("/?myipv4=1.2.3.4&{q}"), &tok);
        assert_eq!(r.status, 400, "{q}: {r:?}");
        assert!(r.body.contains("mapped"), "{q}: {r:?}");
    }
    assert_eq!(s.records(ALICE), Vec::<String>::new());
}

#[test]
fn placeholders_and_values_of_neither_family_are_ignored() {
    let (s, tok) = alice();
    preset(&s, &tok, "myipv4=1.1.1.1&myipv6=fd08::1");
    // as if absent: the connection's address (127.0.0.1) for IPv4, AAAA deleted
    assert_good(&tget(
        &s,
        "/?myip=%3Cipaddr%3E&myipv4=invalid&myipv6=%3Cip6addr%3E&ip=",
        &tok,
    ));
    // `ip=` is exactly empty, so it counts for both: delete both
    assert_eq!(s.records(ALICE), Vec::<String>::new());
    preset(&s, &tok, "myipv4=1.1.1.1&myipv6=fd08::1");
    assert_good(&tget(&s, "/?myip=%3Cipaddr%3E&myipv6=%3Cip6addr%3E", &tok));
    assert_eq!(s.records(ALICE), ["A 127.0.0.1"]);
    assert_good(&tget(
        &s,
        "/?myip=invalid,2.2.2.2&myipv6=nothing,fd08::2",
        &tok,
    ));
    assert_eq!(s.records(ALICE), ["A 2.2.2.2", "AAAA fd08::2"]);
}

// ---- SPEC 8: outcome header, publication receipt, guard, family policy ----

#[test]
fn update_result_reports_set_unchanged_deleted_preserved() {
    let (s, tok) = alice();
    let steps = [
        ("myipv4=1.1.1.1&myipv6=fd08::1", "A set", "AAAA set"),
        (
            "myipv4=1.1.1.1&myipv6=fd08::1",
            "A unchanged",
            "AAAA unchanged",
        ),
        ("myipv4=&myipv6=preserve", "A deleted", "AAAA preserved"),
        // deleting a family that has no records is unchanged (SPEC 9)
        ("myipv4=&myipv6=", "A unchanged", "AAAA deleted"),
    ];
    for (q, a, aaaa) in steps {
        let r = tget(&s, &format!("/?{q}"), &tok);
        assert_good(&r);
        assert_eq!(
            r.header("X-Update-Result"),
            Some(format!("{ALICE} {a};{ALICE} {aaaa}").as_str()),
            "{q}"
        );
    }
    assert_eq!(s.records(ALICE), Vec::<String>::new());
}

#[test]
fn guarded_connection_address_leaves_the_family_alone() {
    let (s, tok) = alice_with(Setup {
        dns: vec!["guard_fallback = [\"127.0.0.0/8\"]".into()],
        ..Setup::default()
    });
    preset(&s, &tok, "myipv4=1.1.1.1&myipv6=fd08::1");
    // no address parameter: IPv4 would come from 127.0.0.1, which is guarded
    let r = tget(&s, "/", &tok);
    assert_good(&r);
    assert_eq!(
        r.header("X-Update-Result"),
        Some("alice.dedyn.example A guarded;alice.dedyn.example AAAA deleted")
    );
    assert_eq!(s.records(ALICE), ["A 1.1.1.1"]);
    // an explicit address is never guarded
    assert_good(&tget(&s, "/?myipv4=127.0.0.2", &tok));
    assert_eq!(s.records(ALICE), ["A 127.0.0.2"]);
    // only guarded, nothing else: nothing changes, no receipt
    let r = tget(&s, "/", &tok);
    assert_eq!(r.header("X-Zone-Serial"), None, "{r:?}");
}

#[test]
fn zone_serial_receipt_names_the_publication_that_contains_the_change() {
    let (s, tok) = alice();
    let r = tget(&s, "/?myipv4=1.2.3.4&myipv6=", &tok);
    assert_good(&r);
    let serial: u32 = r
        .header("X-Zone-Serial")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a bare serial: {r:?}"));
    s.wait_until("the change to be published", PUBLISHED, || {
        s.zone_text()
            .contains("alice.dedyn.example. 60 IN A 1.2.3.4")
    });
    let zone = s.zone_text();
    assert_eq!(soa_serial(&zone), Some(serial), "{zone}");
    // the same request again changes nothing: no receipt
    let r = tget(&s, "/?myipv4=1.2.3.4&myipv6=", &tok);
    assert_good(&r);
    assert_eq!(r.header("X-Zone-Serial"), None, "{r:?}");
    // the next change carries a later serial
    let r = tget(&s, "/?myipv4=1.2.3.5", &tok);
    let next: u32 = r
        .header("X-Zone-Serial")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a bare serial: {r:?}"));
    assert!(next > serial, "{next} > {serial}");
}

#[test]
fn zone_serial_with_several_zones_lists_zone_and_serial_pairs() {
    let (s, tok) = alice_with(Setup {
        zones: Some(
            "[[zone]]\nname = \"dedyn.example\"\nfile = \"zones/dedyn.example.zone\"\n\n\
             [[zone]]\nname = \"other.example\"\nfile = \"zones/other.example.zone\"\n"
                .into(),
        ),
        ..Setup::default()
    });
    s.cli_ok(&["domain", "add", "alice.other.example", "--owner", EMAIL]);
    let r = tget(
        &s,
        "/?hostname=alice.dedyn.example,alice.other.example&myipv4=1.2.3.4",
        &tok,
    );
    assert_good(&r);
    let receipt = r.header("X-Zone-Serial").unwrap_or_default().to_string();
    let pairs: Vec<(&str, u32)> = receipt
        .split(", ")
        .filter_map(|p| {
            let (z, n) = p.split_once(' ')?;
            Some((z, n.parse().ok()?))
        })
        .collect();
    let zones: Vec<&str> = pairs.iter().map(|(z, _)| *z).collect();
    assert_eq!(zones, ["dedyn.example", "other.example"], "{receipt}");
    let other = s.dir.path().join("zones/other.example.zone");
    s.wait_until("both zones to be published", PUBLISHED, || {
        crate::common::server::read(&other).contains("alice.other.example. 60 IN A 1.2.3.4")
            && s.zone_text()
                .contains("alice.dedyn.example. 60 IN A 1.2.3.4")
    });
    assert_eq!(soa_serial(&s.zone_text()), Some(pairs[0].1));
    assert_eq!(
        soa_serial(&crate::common::server::read(&other)),
        Some(pairs[1].1)
    );
    // one zone changed: the bare serial again
    let r = tget(&s, "/?hostname=alice.other.example&myipv4=5.6.7.8", &tok);
    let one = r.header("X-Zone-Serial").unwrap_or_default();
    if let Err(e) = one.parse::<u32>() {
        panic!("{e:?}: {r:?}");
    }
}

#[test]
fn token_family_v4_leaves_aaaa_preserved() {
    let (s, full) = alice();
    preset(&s, &full, "myipv4=1.1.1.1&myipv6=fd08::1");
    let v4 = s.cli_ok(&["token", "add", "--owner", EMAIL, "--family", "v4"]);
    let r = tget(&s, "/?myipv4=2.2.2.2&myipv6=fd08::2", v4.trim());
    assert_good(&r);
    assert_eq!(s.records(ALICE), ["A 2.2.2.2", "AAAA fd08::1"]);
    assert_eq!(
        r.header("X-Update-Result"),
        Some("alice.dedyn.example A set;alice.dedyn.example AAAA preserved")
    );
    // also over IPv6 without parameters: the connection address is not written either
    let r = s.get6("/", &[("Authorization", &token(v4.trim()))]);
    assert_good(&r);
    assert_eq!(s.records(ALICE), ["AAAA fd08::1"]);
    assert_eq!(
        r.header("X-Update-Result"),
        Some("alice.dedyn.example A deleted;alice.dedyn.example AAAA preserved")
    );
}

#[test]
fn token_family_v6_leaves_a_preserved() {
    let (s, full) = alice();
    preset(&s, &full, "myipv4=1.1.1.1&myipv6=fd08::1");
    let v6 = s.cli_ok(&["token", "add", "--owner", EMAIL, "--family", "v6"]);
    let r = tget(&s, "/?myipv4=2.2.2.2&myipv6=fd08::2", v6.trim());
    assert_good(&r);
    assert_eq!(s.records(ALICE), ["A 1.1.1.1", "AAAA fd08::2"]);
}

// ---- SPEC 6: reverse proxies ----

#[test]
fn forwarded_for_is_ignored_from_an_untrusted_peer() {
    let (s, tok) = alice();
    let r = s.get(
        "/",
        &[
            ("Authorization", &token(&tok)),
            ("X-Forwarded-For", "198.51.100.7"),
        ],
    );
    assert_good(&r);
    assert_eq!(s.records(ALICE), ["A 127.0.0.1"]);
}

#[test]
fn forwarded_for_is_used_from_a_trusted_proxy() {
    let (s, tok) = alice_with(Setup {
        // Loopback is a proxy here only because the test says every local
        // user may be one (SPEC 17; tests/it/edge/trusted_proxies.rs has the default).
        server: vec![
            "trusted_proxies = [\"127.0.0.1/32\"]".into(),
            "trusted_proxies_allow_local_users = true".into(),
        ],
        ..Setup::default()
    });
    let t = token(&tok);
    let r = s.get(
        "/",
        &[("Authorization", &t), ("X-Forwarded-For", "198.51.100.7")],
    );
    assert_good(&r);
    assert_eq!(s.records(ALICE), ["A 198.51.100.7"]);
    let r = s.get(
        "/",
        &[("Authorization", &t), ("X-Forwarded-For", "2001:db8::7")],
    );
    assert_good(&r);
    assert_eq!(s.records(ALICE), ["AAAA 2001:db8::7"]);
    // the forwarded address is what a subnet policy sees
    let fenced = s.cli_ok(&[
        "token",
        "add",
        "--owner",
        EMAIL,
        "--allowed-subnet",
        "203.0.113.0/24",
    ]);
    let f = token(fenced.trim());
    let r = s.get(
        "/",
        &[("Authorization", &f), ("X-Forwarded-For", "198.51.100.7")],
    );
    assert_refused(&r, 401, "badauth");
    let r = s.get(
        "/",
        &[("Authorization", &f), ("X-Forwarded-For", "203.0.113.9")],
    );
    assert_good(&r);
    assert_eq!(s.records(ALICE), ["A 203.0.113.9"]);
}

#[test]
fn forwarded_for_headers_are_read_together_from_the_right() {
    // A proxy such as HAProxy (`option forwardfor`) appends its own
    // X-Forwarded-For line after the one the client sent: the client's is not
    // proof of anything, the proxy's (the last) names the client.
    let (s, _) = alice_with(Setup {
        // Loopback is a proxy here only because the test says every local
        // user may be one (SPEC 17; tests/it/edge/trusted_proxies.rs has the default).
        server: vec![
            "trusted_proxies = [\"127.0.0.1/32\"]".into(),
            "trusted_proxies_allow_local_users = true".into(),
        ],
        ..Setup::default()
    });
    let fenced = s.cli_ok(&[
        "token",
        "add",
        "--owner",
        EMAIL,
        "--allowed-subnet",
        "198.51.100.0/24",
    ]);
    let f = token(fenced.trim());
    let r = s.get(
        "/",
        &[
            ("Authorization", &f),
            ("X-Forwarded-For", "198.51.100.7"),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
    );
    assert_refused(&r, 401, "badauth");
    assert!(s.records(ALICE).is_empty());
}

// ---- SPEC 4.4 and 5: what is written, published, and kept ----

#[test]
fn nothing_changed_is_good_without_receipt_and_no_republication() {
    let (s, tok) = alice();
    let r = tget(&s, "/?myipv4=1.2.3.4&myipv6=", &tok);
    assert!(r.header("X-Zone-Serial").is_some(), "{r:?}");
    s.wait_until("the first change to be published", PUBLISHED, || {
        s.zone_text().contains("IN A 1.2.3.4")
    });
    let before = s.zone_text();
    let r = tget(&s, "/?myipv4=1.2.3.4&myipv6=", &tok);
    assert_good(&r);
    assert_eq!(r.header("X-Zone-Serial"), None, "{r:?}");
    // Watch the file for longer than publish_delay_ms plus the publisher's poll.
    let until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < until {
        assert_eq!(s.zone_text(), before, "the zone was republished");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn acknowledged_update_survives_kill9() {
    let (mut s, tok) = alice();
    let r = tget(&s, "/?myipv4=1.2.3.4&myipv6=fd08::1", &tok);
    assert_good(&r);
    s.kill9();
    std::fs::remove_file(s.zone_file()).ok();
    s.spawn();
    assert_eq!(s.records(ALICE), ["A 1.2.3.4", "AAAA fd08::1"]);
    s.wait_until(
        "the zone to be republished after restart",
        PUBLISHED,
        || {
            let z = s.zone_text();
            z.contains("alice.dedyn.example. 60 IN A 1.2.3.4")
                && z.contains("alice.dedyn.example. 60 IN AAAA fd08::1")
        },
    );
}

#[test]
fn graceful_stop_exits_0_and_publishes_what_is_pending() {
    // A long publish delay: the change can only reach the file by the shutdown's flush.
    let (mut s, tok) = alice_with(Setup {
        dns: vec!["publish_delay_ms = 30000".into()],
        ..Setup::default()
    });
    s.wait_until("the first publication", PUBLISHED, || {
        soa_serial(&s.zone_text()).is_some()
    });
    assert_good(&tget(&s, "/?myipv4=1.2.3.4", &tok));
    assert_eq!(s.stop(), Some(0), "log:\n{}", s.log());
    assert!(
        s.zone_text()
            .contains("alice.dedyn.example. 60 IN A 1.2.3.4"),
        "{}",
        s.zone_text()
    );
    // token last-used times are written on the way out
    let list = s.cli_ok(&["token", "list"]);
    assert!(!list.contains("last_used=never"), "{list}");
}

#[test]
fn logs_never_contain_a_secret() {
    let (s, tok) = alice();
    let wrong = "WrongSecretValue0123456789";
    let requests: Vec<(String, Vec<(&str, String)>)> = vec![
        (
            "/?myipv4=1.1.1.1".into(),
            vec![("Authorization", token(&tok))],
        ),
        (
            "/?myipv4=1.1.1.2".into(),
            vec![("Authorization", basic(ALICE, &tok))],
        ),
        (
            format!("/?username={ALICE}&password={tok}&myipv4=1.1.1.3"),
            vec![],
        ),
        ("/".into(), vec![("Authorization", token(wrong))]),
        ("/".into(), vec![("Authorization", basic(ALICE, wrong))]),
        (format!("/?username={ALICE}&password={wrong}"), vec![]),
        (format!("/?password={wrong}"), vec![]),
        (
            format!("/?hostname=bad%20name&password={tok}&username={ALICE}"),
            vec![],
        ),
    ];
    for (target, headers) in &requests {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.get(target, &h);
    }
    let basic_b64 = basic(ALICE, &tok);
    let basic_b64 = basic_b64.trim_start_matches("Basic ");
    s.wait_until("a log line per request", PUBLISHED, || {
        s.log().lines().filter(|l| l.contains(" GET ")).count() >= requests.len()
    });
    let log = s.log();
    for secret in [tok.as_str(), wrong, basic_b64] {
        assert!(!log.contains(secret), "secret {secret} in the log:\n{log}");
    }
}

#[test]
fn keep_alive_connection_answers_one_request_after_another() {
    use std::io::{Read, Write};
    let (s, tok) = alice();
    let mut c = std::net::TcpStream::connect(s.http).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = token(&tok);
    let mut raw = Vec::new();
    for (i, ip) in ["1.1.1.1", "2.2.2.2"].iter().enumerate() {
        let close = if i == 1 { "Connection: close\r\n" } else { "" };
        write!(
            c,
            "GET /?myipv4={ip} HTTP/1.1\r\nHost: x\r\nTE: chunked\r\nAuthorization: {t}\r\n{close}\r\n"
        )
        .expect("send");
        if i == 0 {
            // read exactly the first response: head, then Content-Length bytes
            let mut buf = [0u8; 1];
            while !raw.ends_with(b"\r\n\r\n") {
                c.read_exact(&mut buf).expect("first response head");
                raw.push(buf[0]);
            }
            let first = crate::common::server::parse_response(&raw).expect("first response");
            let len: usize = first
                .header("Content-Length")
                .and_then(|v| v.parse().ok())
                .expect("Content-Length");
            let mut body = vec![0u8; len];
            c.read_exact(&mut body).expect("first body");
            assert_eq!((first.status, body.as_slice()), (200, &b"good"[..]));
            assert_eq!(s.records(ALICE), ["A 1.1.1.1"]);
        }
    }
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).expect("second response");
    let second = crate::common::server::parse_response(&rest).expect("second response");
    assert_good(&second);
    assert_wire_rules(&second, false);
    assert_eq!(s.records(ALICE), ["A 2.2.2.2"]);
}

// ---- SPEC 4.4: 429 (the limits themselves: tests/it/faults_and_abuse/rate_limits.rs) ----

#[track_caller]
fn assert_rate_limited(r: &Response, max_secs: u64) {
    assert_eq!(r.status, 429, "{r:?}");
    let secs: u64 = r
        .header("Retry-After")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in seconds: {r:?}"));
    assert!((1..=max_secs).contains(&secs), "{r:?}");
    assert!(r.body.contains(&secs.to_string()), "body says when: {r:?}");
    assert_wire_rules(r, false);
}

// ---- SPEC 8, 9: checkip ----

#[test]
fn checkip_host_gets_the_client_address_without_authentication() {
    let s = Server::start_with(Setup {
        server: vec!["checkip_hosts = [\"checkip.dedyn.example\"]".into()],
        ..Setup::default()
    });
    // Host matched case-insensitively, port ignored
    for host in ["checkip.dedyn.example", "CheckIP.Dedyn.Example:8080"] {
        let r = s.get("/", &[("Host", host)]);
        assert_eq!((r.status, r.body.as_str()), (200, "127.0.0.1"), "{r:?}");
        assert!(
            r.header("Content-Type")
                .is_some_and(|v| v.starts_with("text/plain")),
            "{r:?}"
        );
        assert_wire_rules(&r, false);
    }
    let r = s.get6("/", &[("Host", "checkip.dedyn.example")]);
    assert_eq!((r.status, r.body.as_str()), (200, "::1"), "{r:?}");
    // any other Host is an update request
    assert_refused(
        &s.get("/", &[("Host", "update.dedyn.example")]),
        401,
        "badauth",
    );
}

#[test]
fn checkip_is_rate_limited_per_address() {
    let s = Server::start_with(Setup {
        server: vec!["checkip_hosts = [\"checkip.dedyn.example\"]".into()],
        rate_limit: vec![
            "dyndns_per_domain = \"\"".into(),
            "failed_auth_per_ip = \"\"".into(),
            "checkip_per_ip = \"2/60s\"".into(),
        ],
        ..Setup::default()
    });
    let h = [("Host", "checkip.dedyn.example")];
    assert_eq!(s.get("/", &h).status, 200);
    assert_eq!(s.get("/", &h).status, 200);
    assert_rate_limited(&s.get("/", &h), 60);
    assert_eq!(s.get6("/", &h).status, 200);
}

//! The acme-dns update call over the real binary (SPEC 10): its answers, that every
//! refusal writes nothing (database and zone file checked), token scope, `/register`,
//! the rate limit, `acme set|clear`, values kept and rendered. The ACME clients
//! against pebble and a real NSD are in tests/it/acme/certbot_and_lego.rs.

use std::time::Duration;

use crate::common::acme::{readme_block, substitute};
use crate::common::server::{send, token, Response, Server, Setup};

const NAME: &str = "alice.dedyn.example";
const EMAIL: &str = "alice@example.org";
/// What ACME key authorisation digests look like: 43 of base64url.
const V1: &str = "Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg";
const V2: &str = "cXV1eHF1eGJhemJhcmZvb3F1dXhxdXhiYXpiYXJmb28";
const V3: &str = "YmF6YmF6YmF6YmF6YmF6YmF6YmF6YmF6YmF6YmF6YmF";
/// How long a committed change may take to reach the zone file.
const PUBLISH: Duration = Duration::from_secs(10);

/// `POST /update` with acme-dns's headers; `ctype` `None` sends no Content-Type.
fn call(s: &Server, user: &str, key: &str, body: &str, ctype: Option<&str>) -> Response {
    let mut headers = vec![("X-Api-User", user), ("X-Api-Key", key)];
    if let Some(c) = ctype {
        headers.push(("Content-Type", c));
    }
    send(s.http, "POST", "/update", &headers, Some(body.as_bytes()))
}

fn body(name: &str, value: &str) -> String {
    format!(r#"{{"subdomain": "{name}", "txt": "{value}"}}"#)
}

/// The usual call: JSON, user = the name.
fn update(s: &Server, key: &str, name: &str, value: &str) -> Response {
    call(s, name, key, &body(name, value), Some("application/json"))
}

/// A user holding NAME, and a token of `scope` with `extra` options.
fn setup(scope: &str, extra: &[&str]) -> (Server, String) {
    setup_with(Setup::default(), scope, extra)
}

fn setup_with(setup: Setup, scope: &str, extra: &[&str]) -> (Server, String) {
    let s = Server::start_with(setup);
    let mut args = vec!["--scope", scope];
    args.extend_from_slice(extra);
    let key = s.provision_with(EMAIL, NAME, &args);
    (s, key)
}

fn new_token(s: &Server, scope: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "add", "--owner", EMAIL, "--scope", scope];
    args.extend_from_slice(extra);
    s.cli_ok(&args).trim().to_string()
}

fn assert_json(r: &Response, status: u16, json: &str) {
    assert_eq!((r.status, r.body.as_str()), (status, json), "{r:?}");
    assert_eq!(r.header("Content-Type"), Some("application/json"), "{r:?}");
    assert_eq!(r.header("Cache-Control"), Some("no-store"), "{r:?}");
}

/// `TXT …` lines of `records NAME`.
fn txt_records(s: &Server, name: &str) -> Vec<String> {
    s.records(name)
        .into_iter()
        .filter(|l| l.starts_with("TXT "))
        .collect()
}

/// The published zone's `_acme-challenge` TXT values, in file order.
fn zone_values(s: &Server, name: &str) -> Vec<String> {
    let owner = format!("_acme-challenge.{name}.");
    s.zone_text()
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(owner.as_str()))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.get(2..4), Some(&["IN", "TXT"][..]), "odd TXT line: {l}");
            Some(f.get(4)?.trim_matches('"').to_string())
        })
        .collect()
}

/// Wait until the published zone holds exactly `values` for `name` (any order).
fn wait_zone(s: &Server, name: &str, values: &[&str]) {
    let mut want: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    want.sort();
    s.wait_until(&format!("zone TXT {want:?}"), PUBLISH, || {
        let mut got = zone_values(s, name);
        got.sort();
        got == want
    });
}

/// What a refused call must leave alone: stored TXT values, the zone's change
/// counter (a refused call must not even mark it for publication), the zone file.
#[derive(Debug, PartialEq)]
struct Snapshot {
    rows: i64,
    generation: i64,
    zone: String,
}

fn snapshot(s: &Server) -> Snapshot {
    let db = rusqlite::Connection::open(s.db_path()).expect("open db");
    let rows = db
        .query_row("SELECT count(*) FROM acme_txt", [], |r| r.get(0))
        .expect("count acme_txt");
    let generation = db
        .query_row(
            "SELECT generation FROM zones WHERE name = 'dedyn.example'",
            [],
            |r| r.get(0),
        )
        .expect("zone generation");
    Snapshot {
        rows,
        generation,
        zone: s.zone_text(),
    }
}

/// A published state with one value, to see refusals change nothing of it.
fn published_with_one_value(s: &Server, key: &str) -> Snapshot {
    let r = update(s, key, NAME, V1);
    assert_json(&r, 200, &format!(r#"{{"txt": "{V1}"}}"#));
    wait_zone(s, NAME, &[V1]);
    s.wait_until("the publication done", PUBLISH, || {
        s.log().contains("published zone dedyn.example") && snapshot(s).zone == s.zone_text()
    });
    snapshot(s)
}

#[test]
fn update_writes_the_txt_record_and_answers_like_acme_dns() {
    let (s, key) = setup("acme", &[]);
    let r = update(&s, &key, NAME, V1);
    assert_json(&r, 200, &format!(r#"{{"txt": "{V1}"}}"#));
    let serial: u32 = r
        .header("X-Zone-Serial")
        .unwrap_or_else(|| panic!("no receipt: {r:?}"))
        .parse()
        .expect("numeric receipt");
    wait_zone(&s, NAME, &[V1]);
    assert!(
        crate::common::server::soa_serial(&s.zone_text()).is_some_and(|z| z >= serial),
        "zone serial below the receipt {serial}:\n{}",
        s.zone_text()
    );
    assert_eq!(
        txt_records(&s, NAME),
        [format!("TXT _acme-challenge.{NAME} \"{V1}\"")]
    );
    let status = s.cli_ok(&["status", NAME]);
    assert!(
        status.contains(&format!("stored: TXT _acme-challenge.{NAME} \"{V1}\"")),
        "{status}"
    );
    // Rendered like A/AAAA: the configured TTL, quoted.
    assert!(
        s.zone_text()
            .contains(&format!("_acme-challenge.{NAME}. 60 IN TXT \"{V1}\"")),
        "{}",
        s.zone_text()
    );
}

#[test]
fn the_two_most_recent_values_are_kept() {
    let (s, key) = setup("acme", &[]);
    for v in [V1, V2] {
        assert_eq!(update(&s, &key, NAME, v).status, 200);
    }
    wait_zone(&s, NAME, &[V1, V2]);
    assert_eq!(update(&s, &key, NAME, V3).status, 200);
    wait_zone(&s, NAME, &[V2, V3]);
    // Writing a value again makes it the most recent: V2 stays, V3 goes next.
    assert_eq!(update(&s, &key, NAME, V2).status, 200);
    assert_eq!(update(&s, &key, NAME, V1).status, 200);
    wait_zone(&s, NAME, &[V1, V2]);
    assert_eq!(txt_records(&s, NAME).len(), 2);
}

#[test]
fn names_below_a_domain_and_the_owners_email_as_user_work() {
    let (s, key) = setup("both", &[]);
    let sub = format!("www.{NAME}");
    let r = call(&s, EMAIL, &key, &body(&sub, V1), Some("application/json"));
    assert_json(&r, 200, &format!(r#"{{"txt": "{V1}"}}"#));
    // Case and a trailing dot are accepted and stored lower-case.
    let r = call(
        &s,
        NAME,
        &key,
        &body("ALICE.Dedyn.Example.", V2),
        Some("application/json"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    wait_zone(&s, &sub, &[V1]);
    wait_zone(&s, NAME, &[V2]);
}

#[test]
fn the_body_is_json_whatever_the_content_type() {
    // acme-dns's README sends it with `curl -d` (form-encoded); acme.sh sends none.
    let (s, key) = setup("acme", &[]);
    let compact = format!(r#"{{"subdomain":"{NAME}", "txt": "{V1}"}}"#);
    let r = call(
        &s,
        NAME,
        &key,
        &compact,
        Some("application/x-www-form-urlencoded"),
    );
    assert_json(&r, 200, &format!(r#"{{"txt": "{V1}"}}"#));
    let r = call(&s, NAME, &key, &body(NAME, V2), None);
    assert_json(&r, 200, &format!(r#"{{"txt": "{V2}"}}"#));
    wait_zone(&s, NAME, &[V1, V2]);
}

#[test]
fn bad_values_are_400_bad_txt_and_write_nothing() {
    let (s, key) = setup("acme", &[]);
    let before = published_with_one_value(&s, &key);
    let long = "a".repeat(256);
    for value in [
        "",
        long.as_str(),
        "has space",
        "quote\\\"d",
        "semi;colon",
        "new\\nline",
        "dot.ted",
        "back\\\\slash",
        "\\u00e9",
    ] {
        let r = update(&s, &key, NAME, value);
        assert_json(&r, 400, r#"{"error": "bad_txt"}"#);
    }
    for raw in [
        format!(r#"{{"subdomain": "{NAME}"}}"#),
        format!(r#"{{"subdomain": "{NAME}", "txt": 42}}"#),
    ] {
        let r = call(&s, NAME, &key, &raw, Some("application/json"));
        assert_json(&r, 400, r#"{"error": "bad_txt"}"#);
    }
    assert_eq!(snapshot(&s), before);
    assert_eq!(txt_records(&s, NAME).len(), 1);
}

#[test]
fn names_not_held_malformed_or_wildcard_and_bad_json_are_400_bad_subdomain() {
    let (s, key) = setup("acme", &[]);
    s.cli_ok(&["user", "add", "bob@example.org"]);
    s.cli_ok(&[
        "domain",
        "add",
        "bob.dedyn.example",
        "--owner",
        "bob@example.org",
    ]);
    let before = published_with_one_value(&s, &key);
    let cases = [
        body("bob.dedyn.example", V2),
        body("nobody.dedyn.example", V2),
        body("dedyn.example", V2),
        body("alice.elsewhere.example", V2),
        body(&format!("*.{NAME}"), V2),
        body("a..b", V2),
        body("", V2),
        format!(r#"{{"txt": "{V2}"}}"#),
        format!("subdomain={NAME}&txt={V2}"),
        format!(r#"{{"subdomain": "{NAME}", "txt": "{V2}""#),
        String::new(),
        "[]".to_string(),
    ];
    for raw in &cases {
        let r = call(&s, NAME, &key, raw, Some("application/json"));
        assert_json(&r, 400, r#"{"error": "bad_subdomain"}"#);
    }
    assert_eq!(snapshot(&s), before);
}

/// Issue 18 E1's name: 253 characters below alice's domain, a valid host name
/// whose `_acme-challenge` name would be 269 (DNS allows 253).
fn longest_name() -> String {
    let labels = format!("{}.", "a".repeat(63)).repeat(3);
    let n = format!("{}.{labels}{NAME}", "b".repeat(41));
    assert_eq!(n.len(), 253);
    n
}

/// SPEC 17 (issue 18 E1): one acme call with a 253-character subdomain used to
/// answer 200 and write `_acme-challenge.NAME` of 269 characters; nsd-checkzone
/// refused the file and the zone went SERVFAIL for everyone. Now the call is
/// `400 bad_subdomain` and writes nothing, as is `acme set` (exit 1); a name
/// whose challenge name fits (253 exactly) is accepted.
#[test]
fn a_name_whose_challenge_name_would_be_too_long_is_bad_subdomain_and_writes_nothing() {
    let (s, key) = setup("both", &[]);
    let before = published_with_one_value(&s, &key);
    let long = longest_name();
    // The issue's request: user alice's domain, the digest-length value.
    let value = "x".repeat(43);
    let r = call(
        &s,
        NAME,
        &key,
        &body(&long, &value),
        Some("application/json"),
    );
    assert_json(&r, 400, r#"{"error": "bad_subdomain"}"#);
    let o = s.cli(&["acme", "set", &long, V2]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("would be 269 characters, longer than DNS allows (253)")
            && o.stderr.lines().count() == 1,
        "{}",
        o.stderr
    );
    assert_eq!(snapshot(&s), before);
    // The longest name that fits: 16 characters shorter.
    let fits = &long[16..];
    assert_eq!(update(&s, &key, fits, V2).status, 200);
    wait_zone(&s, fits, &[V2]);
    // The address API still takes the 253-character name itself.
    let r = s.get(
        &format!("/?hostname={long}&myipv4=192.0.2.9"),
        &[("Authorization", &token(&key))],
    );
    assert_eq!(r.status, 200, "{r:?}");
    s.wait_until("the address published", PUBLISH, || {
        s.zone_text().contains("192.0.2.9")
    });
    // The checker the issue quotes ("domain name exceeds 255 character limit").
    let scratch = crate::common::proc::TempDir::new("checkzone");
    let mut nsd = std::process::Command::new(crate::common::proc::tool("nsd-checkzone"));
    nsd.arg("dedyn.example").arg(s.zone_file());
    let out = crate::common::proc::run_with_timeout(nsd, scratch.path(), Duration::from_secs(30));
    assert!(out.success(), "{}\n{}", out.text, s.zone_text());
}

/// SPEC 17 (issue 18 E5): `_acme-challenge` names count against `[limits]
/// names_per_domain` like address names (both ways); over it the call is `400
/// {"error": "names_per_domain"}` and writes nothing; a name whose values all
/// expired frees its place. `acme set` is bound likewise unless `--force`.
#[test]
fn acme_names_count_against_names_per_domain_and_an_expired_name_frees_its_place() {
    let setup = Setup {
        limits: vec!["names_per_domain = 3".into()],
        ..Setup::default()
    };
    let (s, key) = setup_with(setup, "both", &[]);
    let www = format!("www.{NAME}");
    // Three names: alice (addresses), _acme-challenge.alice, _acme-challenge.www.alice.
    let r = s.get("/?myipv4=192.0.2.1", &[("Authorization", &token(&key))]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(update(&s, &key, NAME, V1).status, 200);
    assert_eq!(update(&s, &key, &www, V1).status, 200);
    wait_zone(&s, &www, &[V1]);
    let before = snapshot(&s);
    // A fourth: refused, whichever API asks.
    let x = format!("x.{NAME}");
    let r = update(&s, &key, &x, V2);
    assert_json(&r, 400, r#"{"error": "names_per_domain"}"#);
    let r = s.get(
        &format!("/?hostname={x}&myipv4=192.0.2.1"),
        &[("Authorization", &token(&key))],
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body.starts_with(
            "limits.names_per_domain: alice.dedyn.example already has 3 names with records"
        ),
        "{r:?}"
    );
    let o = s.cli(&["acme", "set", &x, V2]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr.trim_end().ends_with(&format!(
            "limits.names_per_domain: {NAME} already has 3 names with records; _acme-challenge.{x} would make it 4 (at most 3)"
        )) && o.stderr.lines().count() == 1,
        "{}",
        o.stderr
    );
    assert_eq!(snapshot(&s), before);
    // Names that have their place keep it: more values, and the address name.
    assert_eq!(update(&s, &key, &www, V2).status, 200);
    let r = s.get("/?myipv4=192.0.2.2", &[("Authorization", &token(&key))]);
    assert_eq!(r.status, 200, "{r:?}");
    // www's values expire (aged in the database): its place is free again.
    let db = rusqlite::Connection::open(s.db_path()).expect("open db");
    db.execute(
        "UPDATE acme_txt SET written = written - 3600 WHERE name = ?1",
        [&www],
    )
    .expect("age www's values");
    drop(db);
    assert_json(
        &update(&s, &key, &x, V2),
        200,
        &format!(r#"{{"txt": "{V2}"}}"#),
    );
    wait_zone(&s, &x, &[V2]);
    // The operator may go past the bound on purpose.
    assert_json(
        &update(&s, &key, &www, V3),
        400,
        r#"{"error": "names_per_domain"}"#,
    );
    s.cli_ok(&["acme", "set", &www, V3, "--force"]);
    wait_zone(&s, &www, &[V3]);
}

#[test]
fn bad_credentials_are_401_forbidden_and_count_as_failed_authentication() {
    let setup = Setup {
        rate_limit: vec![
            "dyndns_per_domain = \"\"".into(),
            "failed_auth_per_ip = \"3/60s\"".into(),
            "acme_per_domain = \"\"".into(),
        ],
        ..Setup::default()
    };
    let (s, key) = setup_with(setup, "acme", &[]);
    let before = published_with_one_value(&s, &key);
    let wrong = "A".repeat(43);
    for (user, k) in [
        (NAME, wrong.as_str()),
        ("bob.dedyn.example", key.as_str()),
        ("mallory@example.org", key.as_str()),
    ] {
        let r = call(&s, user, k, &body(NAME, V2), Some("application/json"));
        assert_json(&r, 401, r#"{"error": "forbidden"}"#);
    }
    // Three failures from this address: now even the right token is locked out.
    let r = update(&s, &key, NAME, V2);
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.header("Retry-After").is_some(), "{r:?}");
    assert_eq!(snapshot(&s), before);
}

#[test]
fn missing_credentials_are_401() {
    let (s, key) = setup("acme", &[]);
    let before = published_with_one_value(&s, &key);
    let r = send(
        s.http,
        "POST",
        "/update",
        &[("X-Api-User", NAME)],
        Some(body(NAME, V2).as_bytes()),
    );
    assert_json(&r, 401, r#"{"error": "forbidden"}"#);
    assert_eq!(snapshot(&s), before);
}

#[test]
fn a_token_without_the_acme_scope_is_403_and_writes_nothing() {
    let (s, acme_key) = setup("acme", &[]);
    let before = published_with_one_value(&s, &acme_key);
    let update_only = s
        .cli_ok(&["token", "add", "--owner", EMAIL])
        .trim()
        .to_string();
    let r = update(&s, &update_only, NAME, V2);
    assert_json(&r, 403, r#"{"error": "forbidden"}"#);
    let explicit = new_token(&s, "update", &[]);
    let r = update(&s, &explicit, NAME, V2);
    assert_json(&r, 403, r#"{"error": "forbidden"}"#);
    assert_eq!(snapshot(&s), before);
}

#[test]
fn the_domain_policy_applies_and_the_family_policy_does_not() {
    let (s, _) = setup("acme", &[]);
    s.cli_ok(&["domain", "add", "alice2.dedyn.example", "--owner", EMAIL]);
    let narrow = new_token(&s, "acme", &["--domain", NAME, "--family", "v6"]);
    let r = update(&s, &narrow, "alice2.dedyn.example", V1);
    assert_json(&r, 403, r#"{"error": "forbidden"}"#);
    let r = update(&s, &narrow, NAME, V1);
    assert_json(&r, 200, &format!(r#"{{"txt": "{V1}"}}"#));
    wait_zone(&s, NAME, &[V1]);
    assert!(zone_values(&s, "alice2.dedyn.example").is_empty());
}

#[test]
fn the_allowed_subnet_policy_applies() {
    let (s, _) = setup("acme", &[]);
    let elsewhere = new_token(&s, "acme", &["--allowed-subnet", "192.0.2.0/24"]);
    let r = update(&s, &elsewhere, NAME, V1);
    assert_json(&r, 401, r#"{"error": "forbidden"}"#);
    let here = new_token(&s, "acme", &["--allowed-subnet", "127.0.0.0/8"]);
    assert_eq!(update(&s, &here, NAME, V1).status, 200);
}

#[test]
fn an_acme_only_token_on_the_update_api_is_403_yours() {
    let (s, key) = setup("acme", &[]);
    let r = s.get(
        &format!("/?hostname={NAME}&myipv4=192.0.2.1"),
        &[("Authorization", &token(&key))],
    );
    assert_eq!((r.status, r.body.as_str()), (403, "!yours"), "{r:?}");
    assert!(s.records(NAME).is_empty());
    // A `both` token does both.
    let both = new_token(&s, "both", &[]);
    let r = s.get(
        &format!("/?hostname={NAME}&myipv4=192.0.2.1"),
        &[("Authorization", &token(&both))],
    );
    assert_eq!((r.status, r.body.as_str()), (200, "good"), "{r:?}");
    assert_eq!(update(&s, &both, NAME, V1).status, 200);
}

#[test]
fn register_is_403_forbidden() {
    let (s, key) = setup("acme", &[]);
    let before = published_with_one_value(&s, &key);
    for b in [&b""[..], br#"{"allowfrom": ["192.0.2.0/24"]}"#] {
        let r = send(s.http, "POST", "/register", &[], Some(b));
        assert_json(&r, 403, r#"{"error": "forbidden"}"#);
    }
    assert_eq!(snapshot(&s), before);
    assert_eq!(s.cli_ok(&["token", "list"]).lines().count(), 1);
}

#[test]
fn bodies_over_1_kib_are_refused_and_write_nothing() {
    let (s, key) = setup("acme", &[]);
    let before = published_with_one_value(&s, &key);
    let padded = format!("{}{}", body(NAME, V2), " ".repeat(1024));
    let r = call(&s, NAME, &key, &padded, Some("application/json"));
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(snapshot(&s), before);
}

#[test]
fn over_acme_per_domain_is_429_and_separate_from_the_address_limit() {
    let setup = Setup {
        rate_limit: vec![
            "dyndns_per_domain = \"1/60s\"".into(),
            "failed_auth_per_ip = \"\"".into(),
            "acme_per_domain = \"2/60s\"".into(),
        ],
        ..Setup::default()
    };
    let (s, key) = setup_with(setup, "both", &[]);
    // The address update uses its own budget...
    let r = s.get(
        &format!("/?hostname={NAME}&myipv4=192.0.2.1"),
        &[("Authorization", &token(&key))],
    );
    assert_eq!(r.status, 200, "{r:?}");
    // ...so two acme calls still pass, and the third is limited.
    for v in [V1, V2] {
        assert_eq!(update(&s, &key, NAME, v).status, 200);
    }
    let r = update(&s, &key, NAME, V3);
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.header("Content-Type"), Some("application/json"), "{r:?}");
    let retry: u64 = r
        .header("Retry-After")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric Retry-After: {r:?}"));
    assert!((1..=60).contains(&retry), "{r:?}");
    wait_zone(&s, NAME, &[V1, V2]);
}

#[test]
fn acme_set_and_clear_on_the_command_line() {
    let (s, _) = setup("update", &[]);
    s.cli_ok(&["acme", "set", NAME, V1]);
    s.cli_ok(&["acme", "set", &format!("www.{NAME}"), V2]);
    wait_zone(&s, NAME, &[V1]);
    wait_zone(&s, &format!("www.{NAME}"), &[V2]);
    s.cli_ok(&["acme", "clear", NAME]);
    wait_zone(&s, NAME, &[]);
    wait_zone(&s, &format!("www.{NAME}"), &[V2]);
    for (args, what) in [
        (vec!["acme", "set", NAME, "bad value"], "value"),
        (
            vec!["acme", "set", "nobody.dedyn.example", V1],
            "nobody.dedyn.example",
        ),
        (vec!["acme", "set", &format!("*.{NAME}"), V1], "wildcard"),
        (
            vec!["acme", "clear", "nobody.dedyn.example"],
            "nobody.dedyn.example",
        ),
    ] {
        let o = s.cli(&args);
        assert_ne!(o.code, 0, "{args:?} succeeded");
        assert!(
            o.stderr.contains(what) && o.stderr.lines().count() == 1,
            "{args:?}: stderr should name {what:?} on one line: {}",
            o.stderr
        );
    }
    assert!(zone_values(&s, NAME).is_empty());
}

#[test]
fn token_list_shows_the_scope() {
    let (s, _) = setup("acme", &[]);
    new_token(&s, "both", &[]);
    s.cli_ok(&["token", "add", "--owner", EMAIL]);
    let list = s.cli_ok(&["token", "list"]);
    let scopes: Vec<&str> = list
        .lines()
        .map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("scope="))
                .unwrap_or_else(|| panic!("no scope= in {l:?}"))
        })
        .collect();
    assert_eq!(scopes, ["acme", "both", "update"], "{list}");
    let o = s.cli(&["token", "add", "--owner", EMAIL, "--scope", "all"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("--scope"), "{}", o.stderr);
}

#[test]
fn values_older_than_an_hour_are_removed() {
    let (s, key) = setup("acme", &[]);
    assert_eq!(update(&s, &key, NAME, V1).status, 200);
    wait_zone(&s, NAME, &[V1]);
    // Age the value by an hour in the database, then let anything publish:
    // the value is gone from the zone and from the store.
    let db = rusqlite::Connection::open(s.db_path()).expect("open db");
    db.execute("UPDATE acme_txt SET written = written - 3600", [])
        .expect("age the value");
    drop(db);
    assert_eq!(update(&s, &key, &format!("www.{NAME}"), V2).status, 200);
    wait_zone(&s, &format!("www.{NAME}"), &[V2]);
    wait_zone(&s, NAME, &[]);
    s.wait_until("the aged value deleted", PUBLISH, || {
        txt_records(&s, NAME).is_empty()
    });
}

#[test]
fn acme_sh_settings_make_the_call_acme_sh_makes() {
    // acme.sh's dns_acmedns posts `{"subdomain":"…", "txt": "…"}` with curl and
    // no Content-Type of its own, and checks the answer holds "VALUE". The README
    // block's settings, sourced as written, drive the same call here.
    let (s, key) = setup("acme", &[]);
    let url = format!("http://{}", s.http);
    let block = acme_sh_block();
    let settings = substitute(
        &block,
        &[
            ("https://dyn.example.org", url.as_str()),
            ("TOKEN", key.as_str()),
        ],
    );
    let settings: String = settings
        .lines()
        .filter(|l| l.starts_with("export "))
        .map(|l| format!("{l}\n"))
        .collect();
    let script = format!(
        "{settings}\
         answer=$(curl -sS -X POST -H \"X-Api-User: $ACMEDNS_USERNAME\" -H \"X-Api-Key: $ACMEDNS_PASSWORD\" \
         --data \"{{\\\"subdomain\\\":\\\"$ACMEDNS_SUBDOMAIN\\\", \\\"txt\\\": \\\"{V1}\\\"}}\" \"$ACMEDNS_UPDATE_URL\")\n\
         echo \"$answer\" | grep '\"{V1}\"'\n"
    );
    let out = std::process::Command::new("sh")
        .arg("-euc")
        .arg(&script)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "acme.sh's call failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    wait_zone(&s, NAME, &[V1]);
}

/// The README's acme.sh block.
fn acme_sh_block() -> String {
    readme_block(
        "acme-sh",
        "export ACMEDNS_UPDATE_URL=https://dyn.example.org/update",
    )
}

#[test]
fn metrics_count_acme_calls() {
    let m = crate::common::server::free_tcp("127.0.0.1").expect("a free port for metrics");
    let setup = Setup {
        server: vec![format!("metrics_listen = \"{m}\"")],
        ..Setup::default()
    };
    let (s, key) = setup_with(setup, "acme", &[]);
    let sample = |name: &str| -> f64 {
        let text = crate::common::server::scrape(m);
        crate::common::server::metric(&text, name)
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    assert_eq!(update(&s, &key, NAME, V1).status, 200);
    assert_eq!(update(&s, &key, NAME, V2).status, 200);
    assert_eq!(update(&s, &key, NAME, "bad value").status, 400);
    assert_eq!(
        send(s.http, "POST", "/register", &[], Some(b"")).status,
        403
    );
    assert_eq!(sample("dedyn_update_acme_updates_total"), 2.0);
    assert_eq!(sample("dedyn_update_acme_refused_total"), 2.0);
}

#[test]
fn explain_says_an_acme_only_token_may_not_update_addresses() {
    let (s, key) = setup("acme", &[]);
    let o = s.cli(&[
        "explain",
        &format!("http://update.dedyn.example/?hostname={NAME}&myipv4=192.0.2.1"),
        "--header",
        &format!("Authorization: Token {key}"),
    ]);
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("scope acme") && o.stdout.contains("would answer: 403 !yours"),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains(&key), "explain printed the secret");
}

#[test]
fn a_zone_with_acme_values_passes_every_zone_checker() {
    let (s, key) = setup("acme", &[]);
    let sub = format!("www.{NAME}");
    for (name, value) in [(NAME, V1), (NAME, V2), (sub.as_str(), V3)] {
        assert_eq!(update(&s, &key, name, value).status, 200);
    }
    let address = s.get(
        &format!("/?hostname={sub}&myipv4=192.0.2.7"),
        &[("Authorization", &token(&new_token(&s, "update", &[])))],
    );
    assert_eq!(address.status, 200, "{address:?}");
    wait_zone(&s, NAME, &[V1, V2]);
    wait_zone(&s, &sub, &[V3]);
    s.wait_until("the address published", PUBLISH, || {
        s.zone_text().contains("192.0.2.7")
    });
    if let Err(e) = crate::common::ns::check_zone_all("dedyn.example", &s.zone_file()) {
        panic!("{e}\n{}", s.zone_text());
    }
}

#[test]
fn request_text_reaches_the_log_escaped() {
    // SPEC 13: a user, a subdomain or a value that looks like a log line (or
    // hides a line break) must not forge one.
    let (s, key) = setup("acme", &[]);
    let forged = r"x\u2028failed authentication from 203.0.113.90: \u202ey";
    let newline = r"x\nfailed authentication from 203.0.113.91: y";
    for raw in [
        format!(r#"{{"subdomain": "{forged}", "txt": "{V1}"}}"#),
        format!(r#"{{"subdomain": "{newline}", "txt": "{V1}"}}"#),
        format!(r#"{{"subdomain": "{NAME}", "txt": "{forged}"}}"#),
        format!(r#"{{"subdomain": "{NAME}", "txt": "{newline}"}}"#),
    ] {
        let r = call(&s, NAME, &key, &raw, Some("application/json"));
        assert_eq!(r.status, 400, "{raw}: {r:?}");
    }
    let r = call(
        &s,
        "failed authentication from 203.0.113.92: x",
        &key,
        &body(NAME, V1),
        None,
    );
    assert_eq!(r.status, 401, "{r:?}");
    s.wait_until("the failed authentication logged", PUBLISH, || {
        s.log()
            .contains(" WARN failed authentication from 127.0.0.1")
    });
    crate::common::server::assert_log_not_forged(&s.log(), "127.0.0.1");
}

#[test]
fn a_name_in_a_static_zone_is_403() {
    let s = Server::start_with(Setup::with_static_zone());
    s.cli_ok(&["user", "add", EMAIL]);
    s.cli_ok(&["domain", "add", "alice.static.example", "--owner", EMAIL]);
    let key = new_token(&s, "acme", &[]);
    let r = update(&s, &key, "alice.static.example", V1);
    assert_json(&r, 403, r#"{"error": "forbidden"}"#);
    assert!(txt_records(&s, "alice.static.example").is_empty());
}

//! SPEC 13 "Bounds": `[limits]` names_per_domain, records_per_name and
//! domains_per_user, through the real binary: over a bound the update gets `400`
//! naming it and nothing is written; the CLI refuses likewise unless `--force`.
use crate::common::server::{token, Server, Setup};

const EMAIL: &str = "alice@example.org";
const ALICE: &str = "alice.dedyn.example";

fn server(limits: &[&str]) -> Server {
    Server::start_with(Setup {
        limits: limits.iter().map(|l| l.to_string()).collect(),
        ..Setup::default()
    })
}

/// The A and AAAA records of alice's domain `zone render` would publish now.
fn address_records(s: &Server) -> usize {
    s.cli_ok(&["zone", "render", "dedyn.example"])
        .lines()
        .filter(|l| l.contains(ALICE) && (l.contains(" IN A ") || l.contains(" IN AAAA ")))
        .count()
}

/// `n` names: the domain itself, then `{prefix}1.alice…` upwards.
fn names(prefix: &str, n: usize) -> Vec<String> {
    let mut v = vec![ALICE.to_string()];
    v.extend((1..n).map(|i| format!("{prefix}{i}.{ALICE}")));
    v
}

/// The request: 100 names (about 2.4 KB of them) with 32 IPv4 and 32
/// IPv6 addresses each, 6,400 records. The defaults let one of them in (100
/// names, 32 per family); 32 more with new names used to grow the zone to
/// 211,202 records — now each is refused and the zone does not grow.
#[test]
fn requests_with_thousands_of_records_cannot_grow_a_domain_past_its_bounds() {
    let s = server(&[]);
    let tok = s.provision(EMAIL, ALICE);
    let v4: Vec<String> = (1..=32).map(|i| format!("192.0.2.{i}")).collect();
    let v6: Vec<String> = (1..=32).map(|i| format!("fd08::{i:x}")).collect();
    let request = |names: &[String]| {
        format!(
            "/?hostname={}&myipv4={}&myipv6={}",
            names.join(","),
            v4.join(","),
            v6.join(",")
        )
    };
    let first = request(&names("n", 100));
    assert!(first.len() > 2400, "{} bytes", first.len());
    let r = s.get(&first, &[("Authorization", &token(&tok))]);
    assert_eq!((r.status, r.body.as_str()), (200, "good"), "{r:?}");
    assert_eq!(address_records(&s), 6400);
    for round in 0..3 {
        let more = request(&names(&format!("r{round}x"), 100)[1..]);
        let r = s.get(&more, &[("Authorization", &token(&tok))]);
        assert_eq!(r.status, 400, "{r:?}");
        assert!(
            r.body.starts_with(
                "limits.names_per_domain: alice.dedyn.example already has 100 names with records"
            ),
            "{r:?}"
        );
        assert_eq!(address_records(&s), 6400, "nothing written");
    }
}

/// `records_per_name` bounds each family of each name; the whole request is refused.
#[test]
fn records_per_name_refuses_more_addresses_than_the_bound_and_writes_nothing() {
    let s = server(&["records_per_name = 4"]);
    let tok = s.provision(EMAIL, ALICE);
    let r = s.get(
        "/?myipv4=192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4,192.0.2.5&myipv6=fd08::1",
        &[("Authorization", &token(&tok))],
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.body,
        "limits.records_per_name: alice.dedyn.example would hold 5 A records (at most 4)\n"
    );
    assert!(
        s.records(ALICE).is_empty(),
        "nothing written, not even AAAA"
    );
    let r = s.get(
        "/?myipv4=192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4&myipv6=fd08::1",
        &[("Authorization", &token(&tok))],
    );
    assert_eq!((r.status, r.body.as_str()), (200, "good"), "{r:?}");
    assert_eq!(s.records(ALICE).len(), 5);
}

/// names_per_domain = 100 counts the domain and the names below it that hold
/// records: the 101st is refused (and `explain` predicts it); a name whose records
/// are all deleted frees its place; a full domain's names can still be updated.
#[test]
fn the_101st_name_is_refused_naming_the_bound_and_a_deleted_name_frees_its_place() {
    let s = server(&[]);
    let tok = s.provision(EMAIL, ALICE);
    let auth = [("Authorization", token(&tok))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let hundred = names("n", 100);
    let r = s.get(
        &format!("/?hostname={}&myipv4=192.0.2.1", hundred.join(",")),
        &auth,
    );
    assert_eq!((r.status, r.body.as_str()), (200, "good"), "{r:?}");

    let one_more = format!("/?hostname=n100.{ALICE}&myipv4=192.0.2.1");
    let r = s.get(&one_more, &auth);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.body,
        "limits.names_per_domain: alice.dedyn.example already has 100 names with records; this update would make it 101 (at most 100)\n"
    );
    assert!(s.records(&format!("n100.{ALICE}")).is_empty());
    let o = s.cli(&[
        "explain",
        &format!("http://u{one_more}"),
        "--header",
        &format!("Authorization: Token {tok}"),
    ]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        o.stdout.contains(
            "would answer: 400 limits.names_per_domain: alice.dedyn.example already has 100 names"
        ),
        "{}",
        o.stdout
    );

    // A full domain's names are still updated: no growth, no refusal.
    let r = s.get(&format!("/?hostname=n5.{ALICE}&myipv4=192.0.2.5"), &auth);
    assert_eq!((r.status, r.body.as_str()), (200, "good"), "{r:?}");
    // Deleting all of n7's records frees its place for n100.
    let r = s.get(&format!("/?hostname=n7.{ALICE}&myipv4=&myipv6="), &auth);
    assert_eq!((r.status, r.body.as_str()), (200, "good"), "{r:?}");
    let r = s.get(&one_more, &auth);
    assert_eq!((r.status, r.body.as_str()), (200, "good"), "{r:?}");
    assert_eq!(s.records(&format!("n100.{ALICE}")), ["A 192.0.2.1"]);
}

fn import(s: &Server, args: &[&str], input: &str) -> (i32, String) {
    let out = s.import(args, input);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// domains_per_user bounds `domain add` and `import`; `--force` adds past it.
#[test]
fn domains_per_user_bounds_domain_add_and_import_unless_forced() {
    let s = server(&["domains_per_user = 2"]);
    s.cli_ok(&["user", "add", EMAIL]);
    for d in ["a1.dedyn.example", "a2.dedyn.example"] {
        s.cli_ok(&["domain", "add", d, "--owner", EMAIL]);
    }
    let o = s.cli(&["domain", "add", "a3.dedyn.example", "--owner", EMAIL]);
    assert_ne!(o.code, 0);
    assert_eq!(
        o.stderr.trim_end(),
        "dedyn-update: limits.domains_per_user: alice@example.org already has 2 domains (at most 2; --force adds past it)"
    );
    assert_eq!(s.cli_ok(&["domain", "list"]).lines().count(), 2);
    s.cli_ok(&[
        "domain",
        "add",
        "a3.dedyn.example",
        "--owner",
        EMAIL,
        "--force",
    ]);
    assert_eq!(s.cli_ok(&["domain", "list"]).lines().count(), 3);

    let line = format!("user add bob@example.org\ndomain add a4.dedyn.example --owner {EMAIL}\n");
    let (code, err) = import(&s, &[], &line);
    assert_ne!(code, 0);
    assert!(
        err.contains("line 2: limits.domains_per_user: alice@example.org already has 3 domains"),
        "{err}"
    );
    assert!(err.contains("nothing was imported"), "{err}");
    assert_eq!(s.cli_ok(&["user", "list"]).lines().count(), 1);
    let (code, err) = import(&s, &[], &format!("{}{}", line.trim_end(), " --force\n"));
    assert_eq!(code, 0, "{err}");
    let (code, err) = import(
        &s,
        &["--force"],
        &format!("domain add a5.dedyn.example --owner {EMAIL}\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        s.cli_ok(&["domain", "list", "--owner", EMAIL])
            .lines()
            .count(),
        5
    );
}

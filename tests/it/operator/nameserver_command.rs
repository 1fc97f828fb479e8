//! `dedyn-update nameserver nsd|knot|bind [--dnssec]` (SPEC 12), run as an operator
//! would: Debian's stock config, plus only what the command printed (its script run
//! with `sh -e`), the real daemon, the real server, an update, the answer from `dig`.
//! See tests/it/common/stock.rs for the few rewrites (temp root, ports). Needs
//! tests/install-deps.sh (nsd, knot, bind9, knot-dnsutils, bind9-dnsutils).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::dns::{receipt, toml_str};
use crate::common::readme::block_after;
use crate::common::server::{cli_in, Server, Setup};
use crate::common::stock::{
    nameserver_output, real_apparmor_parser, run_line, sbin_path, Daemon, Kind, Root, ZONE,
    ZONE_FILE,
};

const ALICE: &str = "alice.dedyn.example";
/// How long a published change may take to be answered (generous: CI machines).
const SERVE: Duration = Duration::from_secs(10);

/// The operator's setup, end to end: returns the pieces so a test can look further.
struct Wired {
    root: Root,
    script: String,
    server: Server,
    daemon: Daemon,
    token: String,
}

/// dedyn-update's config as an operator writes it: the zone file at its real path
/// (under the temp root), glue for ns1 in the include file, the printed [dns] keys.
fn wire(kind: Kind, dnssec: bool) -> Wired {
    // The daemon's port is free when chosen but another test may bind it first:
    // then the whole setup starts over on new ports.
    let mut failures = String::new();
    for attempt in 1..=3 {
        match try_wire(kind, dnssec) {
            Ok(w) => return w,
            Err(log) if log.contains("in use") => {
                failures.push_str(&format!("attempt {attempt}:\n{log}\n"));
            }
            Err(log) => panic!("{log}"),
        }
    }
    panic!("{kind:?} found no free port in 3 attempts:\n{failures}");
}

fn try_wire(kind: Kind, dnssec: bool) -> Result<Wired, String> {
    let root = Root::new(kind);
    root.install_stock(kind);
    let zone_file = root.placeholder_zone();
    let include = root.at("/etc/dedyn-update/static.zone");
    fs::create_dir_all(include.parent().unwrap()).unwrap();
    fs::write(&include, "ns1.dedyn.example. 60 IN A 127.0.0.1\n").unwrap();
    let zones = format!(
        "[[zone]]\nname = \"{ZONE}\"\nfile = {}\ninclude = {}\n",
        toml_str(&zone_file.to_string_lossy()),
        toml_str(&include.to_string_lossy())
    );
    let config = root.at("/etc/dedyn-update/config.toml");
    fs::write(&config, &zones).unwrap();
    let mut args = vec![kind.arg()];
    if dnssec {
        args.push("--dnssec");
    }
    let script = nameserver_output(&config, &args);
    root.run_script(&script);
    let daemon = root.start(kind)?;
    let dns = root.dns_keys(&config, kind);
    let server = Server::start_with(Setup {
        zones: Some(zones),
        dns,
        // The service's PATH (systemd's default) has the sbin directories.
        wrapper: vec!["env".into(), format!("PATH={}", sbin_path())],
        ..Setup::default()
    });
    let token = server.provision("alice@example.org", ALICE);
    Ok(Wired {
        root,
        script,
        server,
        daemon,
        token,
    })
}

fn update(w: &Wired, query: &str) -> u32 {
    receipt(&w.server.get(
        &format!("/?{query}"),
        &[("Authorization", &format!("Token {}", w.token))],
    ))
}

/// What the stubbed system commands were asked to do.
fn stub_calls(root: &Root) -> String {
    fs::read_to_string(root.stub_log()).unwrap_or_default()
}

/// The script asked for exactly the group memberships and restarts the README
/// describes, for Debian's real user and unit names.
fn assert_system_steps(w: &Wired, kind: Kind) {
    let calls = stub_calls(&w.root);
    let user = kind.user();
    assert!(
        calls.contains(&format!("usermod -aG dedyn-update {user}\n")),
        "{calls}"
    );
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with(&format!("{user}:"))),
        "Debian's package has no user {user}"
    );
    let unit = match kind {
        Kind::Nsd => "nsd",
        Kind::Knot => "knot",
        Kind::Bind => "named",
    };
    assert!(
        calls.contains(&format!("systemctl restart {unit}\n")),
        "{calls}"
    );
    assert!(
        calls.ends_with("systemctl try-restart dedyn-update\n"),
        "the last step restarts a running dedyn-update: {calls}"
    );
    assert!(
        Path::new(&format!("/lib/systemd/system/{unit}.service")).exists(),
        "Debian's package has no {unit}.service"
    );
    let dropin = w
        .root
        .at("/etc/systemd/system/dedyn-update.service.d/nameserver.conf");
    assert_eq!(
        fs::read_to_string(&dropin).unwrap(),
        format!("[Service]\nSupplementaryGroups={user}\n")
    );
}

/// The control socket is group-writable for the nameserver's group, so the drop-in's
/// `SupplementaryGroups=` is what lets dedyn-update's reload command in (as root only:
/// otherwise the daemon does not drop privileges and owns the socket itself).
fn assert_socket_reachable_through_group(w: &Wired, socket: &str, group: &str) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if !crate::common::proc::require_root(
        "the control socket's group check",
        "for the daemon to drop privileges",
    ) {
        return;
    }
    let meta = fs::metadata(w.root.at(socket)).unwrap();
    assert!(meta.file_type().is_socket());
    let groups = fs::read_to_string("/etc/group").unwrap();
    let gid: u32 = groups
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{group}:x:")))
        .and_then(|rest| rest.split(':').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no group {group}"));
    assert_eq!(meta.gid(), gid, "{socket} group");
    assert_eq!(meta.mode() & 0o020, 0o020, "{socket} is not group-writable");
}

/// Polls for `path` to exist.
/// Every file under `dir` with its contents (links as their targets), sorted.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(p);
            } else if t.is_symlink() {
                let target = fs::read_link(&p).unwrap();
                out.push((
                    p.display().to_string(),
                    target.into_os_string().into_encoded_bytes(),
                ));
            } else {
                out.push((p.display().to_string(), fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The README: "Run it again after adding or renaming a zone". Run as it is once
/// more, the script changes nothing it wrote (no second include line, no second
/// `[dns]` key) and still succeeds.
fn assert_rerun_changes_nothing(w: &Wired) {
    let etc = w.root.at("/etc");
    let before = snapshot(&etc);
    w.root.run_script(&w.script);
    let after = snapshot(&etc);
    let changed: Vec<&String> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a)
        .map(|(b, _)| &b.0)
        .collect();
    assert!(
        before.len() == after.len() && changed.is_empty(),
        "a second run changed {changed:?} ({} files before, {} after)",
        before.len(),
        after.len()
    );
}

fn wait_file(path: &Path, deadline: Duration) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The update is answered; the receipt serial is served (or a later one).
fn update_is_answered(w: &Wired) {
    let serial = update(w, "myipv4=192.0.2.7&myipv6=2001:db8::7");
    w.daemon.wait_for(ALICE, "A", &["192.0.2.7"], SERVE);
    w.daemon.wait_for(ALICE, "AAAA", &["2001:db8::7"], SERVE);
    let served = w.daemon.soa_serial().expect("an SOA answer");
    assert!(
        served >= serial,
        "served serial {served} is below the receipt {serial}"
    );
    // And a second one, which is a reload of an already loaded zone.
    let serial = update(w, "myipv4=192.0.2.8&myipv6=preserve");
    w.daemon.wait_for(ALICE, "A", &["192.0.2.8"], SERVE);
    assert!(w.daemon.soa_serial().is_some_and(|s| s >= serial));
}

#[test]
fn nsd_from_debians_stock_config_and_the_printed_steps_answers_an_update() {
    let w = wire(Kind::Nsd, false);
    assert_system_steps(&w, Kind::Nsd);
    assert_rerun_changes_nothing(&w);
    assert_socket_reachable_through_group(&w, "/run/nsd/nsd.ctl", "nsd");
    // The zone statement reads our file through the link in NSD's own directory.
    let link = w.root.at("/var/lib/nsd/dedyn-update/dedyn.example.zone");
    assert_eq!(
        fs::read_link(&link).unwrap(),
        w.root.at(ZONE_FILE),
        "the link points at the configured zone file"
    );
    update_is_answered(&w);
    // NSD's IXFR spool is written in its own directory, never next to our zone.
    assert!(
        wait_file(
            &w.root
                .at("/var/lib/nsd/dedyn-update/dedyn.example.zone.ixfr"),
            SERVE
        ),
        "no IXFR spool in /var/lib/nsd/dedyn-update:\n{}",
        w.daemon.log()
    );
    let ours: Vec<String> = fs::read_dir(w.root.at(ZONE_FILE).parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ixfr") || n.contains("spool"))
        .collect();
    assert!(ours.is_empty(), "NSD wrote next to our zone: {ours:?}");
    assert!(w.script.contains("nsd-checkconf /etc/nsd/nsd.conf"));
}

#[test]
fn knot_from_debians_stock_config_and_the_printed_steps_answers_an_update() {
    let w = wire(Kind::Knot, false);
    assert_system_steps(&w, Kind::Knot);
    assert_rerun_changes_nothing(&w);
    assert_socket_reachable_through_group(&w, "/run/knot/knot.sock", "knot");
    // Merged, not appended: the stock file keeps its one `template: default`.
    let knot_conf = fs::read_to_string(w.root.at("/etc/knot/knot.conf")).unwrap();
    assert_eq!(knot_conf.matches("- id: default").count(), 1);
    update_is_answered(&w);
    // Running the script twice leaves one include line (the grep guard).
    w.root.run_script(&w.script);
    let knot_conf = fs::read_to_string(w.root.at("/etc/knot/knot.conf")).unwrap();
    assert_eq!(knot_conf.matches("include:").count(), 1, "{knot_conf}");
}

#[test]
fn bind_from_debians_stock_config_and_the_printed_steps_answers_an_update() {
    let w = wire(Kind::Bind, false);
    assert_system_steps(&w, Kind::Bind);
    assert_rerun_changes_nothing(&w);
    update_is_answered(&w);
    // The IXFR journal is in /var/lib/bind, not next to our zone file.
    assert!(
        wait_file(&w.root.at("/var/lib/bind/dedyn.example.jnl"), SERVE),
        "no journal in /var/lib/bind:\n{}",
        w.daemon.log()
    );
    assert!(!w.root.at(&format!("{ZONE_FILE}.jnl")).exists());
    // Running the script again adds no second include or AppArmor rule.
    w.root.run_script(&w.script);
    let local_conf = fs::read_to_string(w.root.at("/etc/bind/named.conf.local")).unwrap();
    assert_eq!(local_conf.matches("named.conf.dedyn-update").count(), 1);
    // AppArmor: the local override names our zone directory.
    let local = fs::read_to_string(w.root.at("/etc/apparmor.d/local/usr.sbin.named")).unwrap();
    let zone_dir = w.root.at(ZONE_FILE).parent().unwrap().to_path_buf();
    assert_eq!(
        local
            .matches(&format!("\"{}/**\" r,", zone_dir.display()))
            .count(),
        1,
        "{local}"
    );
    // Where the kernel has AppArmor, the script reloads the profile.
    if Path::new("/sys/kernel/security/apparmor").exists() {
        assert!(stub_calls(&w.root).contains("apparmor_parser -r "));
    }
    // With the real profile and our override: does it parse? (Needs the apparmor package.)
    match real_apparmor_parser() {
        Some(parser) if Path::new("/etc/apparmor.d/usr.sbin.named").exists() => {
            let base = w.root.at("/etc/apparmor.d");
            for d in ["tunables", "abstractions", "abi"] {
                let mut c = std::process::Command::new("cp");
                c.arg("-a").arg(format!("/etc/apparmor.d/{d}")).arg(&base);
                assert!(c.status().unwrap().success());
            }
            fs::copy(
                "/etc/apparmor.d/usr.sbin.named",
                base.join("usr.sbin.named"),
            )
            .unwrap();
            let out = std::process::Command::new(parser)
                .args(["-Q", "-K", "-b"])
                .arg(&base)
                .arg(base.join("usr.sbin.named"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "apparmor_parser refused the override: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // -p: the profile as compiled, includes expanded: our rule is in it.
            let expanded = std::process::Command::new(real_apparmor_parser().unwrap())
                .args(["-Q", "-K", "-p", "-b"])
                .arg(&base)
                .arg(base.join("usr.sbin.named"))
                .output()
                .unwrap();
            let expanded = String::from_utf8_lossy(&expanded.stdout);
            assert!(
                expanded.contains(&format!("\"{}/**\" r,", zone_dir.display())),
                "the override is not part of the named profile"
            );
        }
        _ => eprintln!(
            "NOTE: apparmor_parser or Debian's named profile is not installed: the AppArmor \
             override was checked for its rule, not parsed"
        ),
    }
}

/// Whitespace runs (delv prints tabs) as single spaces, padded.
fn words(s: &str) -> String {
    format!(" {} ", s.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `kdig +dnssec` for `name` A: the whole answer as text (errors included).
fn signed_answer(root: &Root, daemon: &Daemon, name: &str) -> String {
    run_line(
        root,
        &format!(
            "kdig @127.0.0.1 -p {} +dnssec +time=1 +retry=0 {name} A",
            daemon.port
        ),
    )
    .unwrap_or_else(|e| e)
}

/// `delv` validating `name` A against the zone's KSK as the only trust anchor.
fn validated_a(root: &Root, daemon: &Daemon, anchor: &Path, name: &str) -> Result<String, String> {
    let out = run_line(
        root,
        &format!(
            "delv @127.0.0.1 -p {} -a {} +root={ZONE} {name} A",
            daemon.port,
            anchor.display()
        ),
    )?;
    if out.contains("; fully validated") {
        Ok(out)
    } else {
        Err(out)
    }
}

#[test]
fn knot_dnssec_signs_an_update_within_2s_and_prints_the_ds() {
    let w = wire(Kind::Knot, true);
    // Knot signs the zone on its first load: the KSK is there once DNSKEY answers.
    let end = Instant::now() + SERVE;
    let ksk = loop {
        let keys = w.daemon.query(ZONE, "DNSKEY").unwrap_or_default();
        if let Some(k) = keys.iter().find(|k| k.starts_with("257 ")) {
            break k.clone();
        }
        assert!(Instant::now() < end, "no KSK served:\n{}", w.daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let (flags_proto_alg, key) = ksk.split_at(ksk.match_indices(' ').nth(2).unwrap().0);
    let anchor = w.root.at("/anchor.conf");
    fs::write(
        &anchor,
        format!(
            "trust-anchors {{ {ZONE}. static-key {flags_proto_alg} \"{}\"; }};\n",
            key.split_whitespace().collect::<String>()
        ),
    )
    .unwrap();

    // Update → the new address, signed, validated against the zone's own key.
    let mut times = Vec::new();
    for i in 1..=5u8 {
        let address = format!("192.0.2.{}", 10 + i);
        let serial = update(&w, &format!("myipv4={address}"));
        let sent = Instant::now();
        // Timing with kdig (one quick query), then the validation with delv: a
        // delv run includes its own DNSKEY lookups, which is not Knot's latency.
        let deadline = sent + Duration::from_secs(2);
        loop {
            let out = signed_answer(&w.root, &w.daemon, ALICE);
            if words(&out).contains(&format!(" IN A {address} "))
                && words(&out).contains(" IN RRSIG A ")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{address} not answered with an RRSIG within 2 s; last kdig:\n{out}\n{}",
                w.daemon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let elapsed = sent.elapsed();
        let validated = validated_a(&w.root, &w.daemon, &anchor, ALICE)
            .unwrap_or_else(|e| panic!("delv does not validate {ALICE} A:\n{e}"));
        assert!(
            words(&validated).contains(&format!(" IN A {address} "))
                && words(&validated).contains(" IN RRSIG A "),
            "{validated}"
        );
        times.push(elapsed);
        // The receipt: Knot serves its own serial, never below the one we wrote.
        let served = w.daemon.soa_serial().unwrap();
        assert!(served >= serial, "served {served} < receipt {serial}");
    }
    times.sort();
    eprintln!(
        "knot --dnssec: update -> A with RRSIG answered (then validated by delv): median {:?} (of {:?})",
        times[times.len() / 2],
        times
    );
    // verify_server never timed out: Knot's own serials satisfy "served >= written".
    assert!(
        !w.server.log().contains("still serves"),
        "{}",
        w.server.log()
    );

    // The printed DS command, as written (paths rewritten), prints the DS records
    // of the served KSK: compare with BIND's dnssec-dsfromkey for the same key.
    let ds_line = w
        .script
        .lines()
        .find_map(|l| {
            l.strip_prefix("#      ")
                .filter(|c| c.starts_with("keymgr "))
        })
        .expect("a keymgr … ds line");
    let ds = run_line(&w.root, ds_line).unwrap();
    let ours: Vec<&str> = ds.lines().filter(|l| l.contains(" DS ")).collect();
    assert!(!ours.is_empty(), "no DS from `{ds_line}`:\n{ds}");
    let dnskey = w.root.at("/dnskey");
    fs::write(&dnskey, format!("{ZONE}. 3600 IN DNSKEY {ksk}\n")).unwrap();
    let expected = run_line(
        &w.root,
        &format!("dnssec-dsfromkey -2 -f {} {ZONE}", dnskey.display()),
    )
    .unwrap();
    let digest = expected
        .split_whitespace()
        .last()
        .unwrap()
        .to_ascii_uppercase();
    assert!(
        ours.iter()
            .any(|l| l.to_ascii_uppercase().contains(&digest)),
        "keymgr's DS {ours:?} does not match the served KSK's ({expected})"
    );
    // The submission step runs as printed.
    let submitted = w
        .script
        .lines()
        .find_map(|l| {
            l.strip_prefix("#      ")
                .filter(|c| c.contains("zone-ksk-submitted"))
        })
        .expect("a zone-ksk-submitted line");
    run_line(&w.root, submitted).unwrap();
}

/// Unknown nameserver, --dnssec for another: usage errors, exit 2, nothing printed.
#[test]
fn unknown_nameserver_is_a_usage_error() {
    let dir = crate::common::proc::TempDir::new("ns-usage");
    for args in [
        &["nameserver", "powerdns"][..],
        &["nameserver"],
        &["nameserver", "nsd", "--dnssec"],
    ] {
        let o = cli_in(dir.path(), args, &[]);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(o.stdout.is_empty(), "{args:?}: {}", o.stdout);
        assert!(
            o.stderr.contains("usage: dedyn-update nameserver"),
            "{}",
            o.stderr
        );
    }
}

/// The README shows the command's output for its example config: it must be
/// exactly what the command prints (so what the tests above run is what it shows).
#[test]
fn readme_shows_the_commands_output() {
    let readme = crate::common::readme::all_text();
    let dir = crate::common::proc::TempDir::new("ns-readme");
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!("[[zone]]\nname = \"{ZONE}\"\nfile = \"{ZONE_FILE}\"\n"),
    )
    .unwrap();
    for args in [&["nsd"][..], &["knot"], &["bind"], &["knot", "--dnssec"]] {
        let marker = format!("output of: dedyn-update nameserver {}", args.join(" "));
        let block = block_after(&marker);
        // The README shows the packaged config's path.
        let output = nameserver_output(&config, args)
            .replace(&*config.to_string_lossy(), "/etc/dedyn-update/config.toml");
        assert_eq!(block, output, "README block {marker}");
    }
    // The DS hand-off the README shows is the command's own step (run above).
    let signed = nameserver_output(&config, &["knot", "--dnssec"]);
    for line in [
        "keymgr -c /etc/knot/knot.conf dedyn.example ds",
        "knotc -s /run/knot/knot.sock zone-ksk-submitted",
    ] {
        assert!(readme.contains(line) && signed.contains(line), "{line}");
    }
}

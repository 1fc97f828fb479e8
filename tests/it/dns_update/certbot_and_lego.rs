//! Certificates through DNS UPDATE (SPEC 14): certbot with its `dns-rfc2136`
//! plugin (from PyPI, in the venv `common::acme` makes) and lego with
//! `--dns rfc2136`, each run as docs/dns-update.md shows it with the key that
//! `token add --tsig` printed, each obtaining one certificate for NAME and
//! *.NAME from pebble, which validates against the NSD the server publishes
//! into. Both clients add the two challenge values with UPDATEs and delete them
//! again afterwards. A client or pebble that cannot be had is a loud `SKIPPED:`.

use std::fs;
use std::time::Duration;

use crate::common::acme::{
    assert_cert_for_name_and_wildcard, certbot_certonly, certbot_venv, lego, run_certbot, run_lego,
    substitute, timing, Pebble,
};
use crate::common::dns::Rig;
use crate::common::ns::Kind;
use crate::common::proc::{skip, TempDir};
use crate::common::readme::{cli_args, recipe};
use crate::common::server::Setup;

const NAME: &str = "alice.dedyn.example";
const EMAIL: &str = "alice@example.org";
/// Bound on one client run (issuance normally takes seconds).
const CLIENT: Duration = Duration::from_secs(240);

/// NSD serving the zone, the server with a DNS UPDATE listener publishing into
/// it, pebble validating against NSD, and the docs' TSIG key for NAME (the
/// printed text).
fn rig(test: &str) -> Option<(Rig, Pebble, String)> {
    let rig = Rig::start(
        Kind::Nsd,
        Setup {
            dns_update: Some(Vec::new()),
            ..Setup::default()
        },
    );
    let pebble = Pebble::start(test, rig.ns.port())?;
    rig.server.cli_ok(&["user", "add", EMAIL]);
    rig.server
        .cli_ok(&["domain", "add", NAME, "--owner", EMAIL]);
    let args = cli_args(&recipe("tsig-token"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let printed = rig.server.cli_ok(&args);
    Some((rig, pebble, printed))
}

/// The value of `key = value` / `KEY=value` in the printed lines.
fn printed_value(printed: &str, key: &str) -> String {
    printed
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {key} in:\n{printed}"))
}

/// The client deleted both challenge values once done (delete RR, RFC 2136 2.5.4),
/// and the server logged the two it added.
fn assert_values_added_and_deleted(rig: &Rig) {
    let txt: Vec<String> = rig
        .server
        .records(NAME)
        .into_iter()
        .filter(|l| l.starts_with("TXT "))
        .collect();
    assert!(txt.is_empty(), "challenge values left behind: {txt:?}");
    let log = rig.server.log();
    let added = log
        .lines()
        .filter(|l| l.contains("dns-update ") && l.contains(": NOERROR ") && l.contains("TXT +"))
        .count();
    assert!(added >= 2, "expected two added values:\n{log}");
}

#[test]
fn certbot_with_the_dns_rfc2136_plugin_gets_name_and_wildcard() {
    const TEST: &str = "certbot_with_the_dns_rfc2136_plugin_gets_name_and_wildcard";
    let venv = match certbot_venv() {
        Ok(v) => v,
        Err(why) => return skip(TEST, &format!("certbot could not be installed: {why}")),
    };
    let Some((rig, pebble, printed)) = rig(TEST) else {
        return;
    };
    let dns = rig.server.dns.expect("a DNS UPDATE listener");
    let dir = TempDir::new("certbot");
    let d = dir.path();
    let ini_path = d.join("rfc2136.ini");
    let ini = recipe("certbot-rfc2136-ini");
    assert_eq!(ini.lines().next(), Some("# /etc/letsencrypt/rfc2136.ini"));
    // The docs' lines are the ones `token add --tsig` printed for certbot.
    for key in ["dns_rfc2136_name", "dns_rfc2136_algorithm"] {
        assert_eq!(
            printed_value(&ini, key),
            printed_value(&printed, key),
            "{key}"
        );
    }
    let secret = printed_value(&printed, "dns_rfc2136_secret");
    let ini = substitute(
        &ini,
        &[
            ("192.0.2.53", &dns.ip().to_string()),
            ("5353", &dns.port().to_string()),
            ("SECRET", &secret),
        ],
    );
    fs::write(&ini_path, ini).expect("write the ini");
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&ini_path, fs::Permissions::from_mode(0o600)).expect("chmod 600");
    }
    let command = substitute(
        &recipe("certbot-rfc2136"),
        &[
            ("/etc/letsencrypt/rfc2136.ini", &ini_path.to_string_lossy()),
            (
                "certbot certonly",
                &certbot_certonly(EMAIL, &pebble, d, "--dns-rfc2136-propagation-seconds 1 "),
            ),
        ],
    );
    let server_log = || rig.server.log();
    let (cert, took) = run_certbot(&command, &venv, &pebble, d, NAME, CLIENT, &server_log);
    timing("certbot (dns-rfc2136) start to certificate", took);
    assert_cert_for_name_and_wildcard(&cert, NAME, &pebble, d);
    assert_values_added_and_deleted(&rig);
}

#[test]
fn lego_with_dns_rfc2136_gets_name_and_wildcard() {
    const TEST: &str = "lego_with_dns_rfc2136_gets_name_and_wildcard";
    let Some(lego) = lego(TEST) else {
        return;
    };
    let Some((rig, pebble, printed)) = rig(TEST) else {
        return;
    };
    let dns = rig.server.dns.expect("a DNS UPDATE listener");
    let dir = TempDir::new("lego");
    let d = dir.path();
    let block = recipe("lego-rfc2136");
    for key in ["RFC2136_TSIG_KEY", "RFC2136_TSIG_ALGORITHM"] {
        assert_eq!(
            printed_value(&block, &format!("export {key}")),
            printed_value(&printed, key),
            "{key}"
        );
    }
    let secret = printed_value(&printed, "RFC2136_TSIG_SECRET");
    // lego checks the new values through the zone's nameservers on port 53 in
    // production; here that is the test NSD, and the check is skipped.
    let script = substitute(
        &block,
        &[
            ("dyn.example.org:5353", &dns.to_string()),
            ("=SECRET", &format!("={secret}")),
            (
                "lego --email",
                &format!(
                    "{} --server {} --dns.resolvers 127.0.0.1:{} --dns.disable-cp --email",
                    lego.display(),
                    pebble.directory,
                    rig.ns.port()
                ),
            ),
        ],
    );
    let server_log = || rig.server.log();
    // Between the two challenges of one name (not in the docs: the default
    // suits real nameservers, a test needs no wait).
    let env = [("RFC2136_SEQUENCE_INTERVAL", "1")];
    let (cert, took) = run_lego(&script, &env, &pebble, d, NAME, CLIENT, &server_log);
    timing("lego (rfc2136) start to certificate", took);
    assert_cert_for_name_and_wildcard(&cert, NAME, &pebble, d);
    assert_values_added_and_deleted(&rig);
}

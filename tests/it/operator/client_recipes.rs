//! Every client recipe of the README's "Client recipes" section, run as written
//! (SPEC 12): the blocks are read from README.md, and only the server's names
//! (`update.example.net`, `checkip.example.net`) and the token are replaced.
//! ddclient and inadyn are the real Debian 12 programs; the router URL templates
//! are fetched with curl, filled in the way the devices fill them in. The
//! server speaks HTTPS with a test CA that each client is told to trust.
use crate::common::edge::Pki;
use crate::common::proc::{run_with_timeout, tool, TempDir};
use crate::common::readme::{cli_args, recipe};
use crate::common::server::{token, Server, Setup};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const EMAIL: &str = "alice@example.org";
const ALICE: &str = "alice.dedyn.example";
const RUN: Duration = Duration::from_secs(60);

/// A server over HTTPS (test CA) whose checkip name is `localhost`, with
/// alice's domain; its token is returned with it.
struct Fixture {
    server: Server,
    pki: Pki,
    token: String,
}

impl Fixture {
    fn start() -> Fixture {
        let pki = Pki::new();
        pki.install("rsa.pem", "rsa.key");
        // The README's checkip block, its name replaced (Setup writes [server]).
        let checkip = recipe("checkip");
        let mut lines = checkip.lines();
        assert_eq!(lines.next(), Some("[server]"), "{checkip}");
        let server = Server::start_with(Setup {
            tls: Some(pki.live()),
            server: lines
                .map(|l| l.replace("checkip.example.net", "localhost"))
                .collect(),
            ..Setup::default()
        });
        let token = server.provision(EMAIL, ALICE);
        Fixture { server, pki, token }
    }

    fn port(&self) -> u16 {
        self.server.https.expect("an HTTPS listener").port()
    }

    /// Only the names of the server (and the literal `TOKEN`) are replaced.
    fn fill(&self, text: &str, secret: &str) -> String {
        text.replace("checkip.example.net", &format!("localhost:{}", self.port()))
            .replace("update.example.net", &format!("127.0.0.1:{}", self.port()))
            .replace("TOKEN", secret)
    }

    fn ca(&self) -> std::path::PathBuf {
        self.pki.path("ca.pem")
    }

    /// Set both families directly, so that a recipe that wipes one shows.
    fn set_both(&self) {
        let r = self.server.get(
            "/?myipv4=192.0.2.99&myipv6=2001:db8::99",
            &[("Authorization", &token(&self.token))],
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            self.server.records(ALICE),
            ["A 192.0.2.99", "AAAA 2001:db8::99"]
        );
    }

    /// Run `curl ARGS` (what a router does with its URL template).
    fn curl(&self, args: &[&str]) {
        let out = Command::new(tool("curl"))
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(self.ca())
            .args(args)
            .output()
            .expect("curl");
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && body == "good",
            "curl {args:?}: {body} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// One ddclient run with `conf` (already filled in); its verbose output.
    fn ddclient(&self, conf: &str) -> String {
        let dir = TempDir::new("ddclient");
        let file = dir.path().join("ddclient.conf");
        std::fs::write(&file, conf).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut cmd = Command::new(tool("ddclient"));
        cmd.args(["-daemon=0", "-foreground", "-noquiet", "-verbose", "-file"])
            .arg(&file)
            .arg("-cache")
            .arg(dir.path().join("cache"))
            // IO::Socket::SSL trusts this file instead of the system store.
            .env("SSL_CERT_FILE", self.ca());
        run_with_timeout(cmd, dir.path(), RUN).text
    }
}

/// SPEC 12: the curl recipe; each line leaves the other family as it was.
#[test]
fn curl_recipe_never_wipes_a_family() {
    let f = Fixture::start();
    f.set_both();
    // `$TOKEN` stays as written: the shell takes it from the environment.
    let lines: Vec<String> = recipe("curl").lines().map(|l| f.fill(l, "TOKEN")).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let run = |line: &str| {
        let out = Command::new("sh")
            .args(["-c", line])
            .env("TOKEN", &f.token)
            .env("CURL_CA_BUNDLE", f.ca())
            .output()
            .expect("sh");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "good",
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&lines[0]);
    assert_eq!(
        f.server.records(ALICE),
        ["A 127.0.0.1", "AAAA 2001:db8::99"]
    );
    run(&lines[1]);
    assert_eq!(f.server.records(ALICE), ["A 1.2.3.4", "AAAA fd08::1234"]);
}

/// The token the README's ddclient block makes: its arguments, run as written
/// after `dedyn-update --config FILE`.
fn ddclient_token(f: &Fixture) -> String {
    let args = cli_args(&recipe("ddclient-token"));
    assert!(args.iter().any(|a| a == "v4"), "{args:?}");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    f.server.cli_ok(&args).trim().to_string()
}

/// SPEC 12: the ddclient recipe sets the A record from the served IP check and
/// leaves the AAAA records alone.
#[test]
fn ddclient_recipe_sets_a_and_keeps_aaaa() {
    let f = Fixture::start();
    let secret = ddclient_token(&f);
    f.set_both();
    let out = f.ddclient(&f.fill(&recipe("ddclient"), &secret));
    assert!(
        out.contains("SUCCESS:") && !out.contains("FAILED:"),
        "{out}\n{}",
        f.server.log()
    );
    assert!(out.contains("&myip=127.0.0.1 "), "{out}");
    assert_eq!(
        f.server.records(ALICE),
        ["A 127.0.0.1", "AAAA 2001:db8::99"]
    );
}

/// SPEC 12: what the README shows — with the IP check on the update URL, ddclient
/// 3.10 gets `401`, sends `myip=` empty, and the seed's rule deletes both families
/// (only A with a `--family v4` token).
#[test]
fn ddclient_with_the_update_url_as_ip_check_sends_an_empty_myip_and_wipes() {
    let f = Fixture::start();
    f.set_both();
    let out = f.ddclient(&f.fill(&recipe("ddclient-wipes"), &f.token));
    assert!(out.contains("&myip= HTTP/1.1"), "{out}");
    assert!(f.server.records(ALICE).is_empty(), "{out}");

    let v4 = ddclient_token(&f);
    f.set_both();
    let out = f.ddclient(&f.fill(&recipe("ddclient-wipes"), &v4));
    assert!(out.contains("&myip= HTTP/1.1"), "{out}");
    assert_eq!(f.server.records(ALICE), ["AAAA 2001:db8::99"]);
}

/// Run the real inadyn once on `recipe` (filled in), with the two global lines of
/// the test's loopback set-up (see the README) and its cache in `dir`: its output.
fn inadyn_once(f: &Fixture, recipe: &str, dir: &Path) -> crate::common::proc::Output {
    let conf = dir.join("inadyn.conf");
    // Test set-up only (see the README): trust the test CA, accept 127.0.0.1.
    let globals = format!(
        "ca-trust-file = {}\nverify-address = false\n",
        f.ca().display()
    );
    std::fs::write(&conf, globals + recipe).unwrap();
    // inadyn writes no cache into a directory that does not exist (Debian's
    // package ships /var/cache/inadyn).
    std::fs::create_dir_all(dir.join("cache")).unwrap();
    let mut cmd = Command::new(tool("inadyn"));
    cmd.args([
        "--once",
        "--foreground",
        "--no-pidfile",
        "--loglevel=info",
        "-f",
    ])
    .arg(&conf)
    .arg(format!("--cache-dir={}", dir.join("cache").display()));
    run_with_timeout(cmd, dir, RUN)
}

/// SPEC 12: the inadyn recipe sets the A record from the served IP check and
/// keeps the AAAA records.
#[test]
fn inadyn_recipe_sets_a_and_keeps_aaaa() {
    let f = Fixture::start();
    f.set_both();
    let dir = TempDir::new("inadyn");
    let out = inadyn_once(&f, &f.fill(&recipe("inadyn"), &f.token), dir.path());
    assert!(out.success(), "{}\n{}", out.text, f.server.log());
    assert!(out.text.contains("new IP# 127.0.0.1"), "{}", out.text);
    assert_eq!(
        f.server.records(ALICE),
        ["A 127.0.0.1", "AAAA 2001:db8::99"]
    );
}

/// What the README says of inadyn 2.10 when its IP check fails: a run that has
/// never found an address (no cache) still sends its forced first update, with
/// `%i` empty, and the seed deletes the A record (`myipv6=preserve` keeps AAAA);
/// the next run whose check works puts it back. A run that found an address
/// before (its cache) sends nothing when the check fails.
#[test]
fn inadyn_recipe_with_its_ip_check_unreachable_sends_an_empty_ipv4() {
    let f = Fixture::start();
    f.set_both();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // nothing listens there once `l` is dropped
    let working = f.fill(&recipe("inadyn"), &f.token);
    let broken = working.replace(
        &format!("localhost:{}", f.port()),
        &format!("localhost:{closed}"),
    );
    assert_ne!(broken, working);

    let dir = TempDir::new("inadyn-nocheck");
    let out = inadyn_once(&f, &broken, dir.path());
    assert!(
        out.text.contains("Failed to get IP address") && out.text.contains("new IP# \n"),
        "{}",
        out.text
    );
    assert_eq!(
        f.server.records(ALICE),
        ["AAAA 2001:db8::99"],
        "{}",
        out.text
    );

    let out = inadyn_once(&f, &working, dir.path());
    assert!(out.text.contains("new IP# 127.0.0.1"), "{}", out.text);
    assert_eq!(
        f.server.records(ALICE),
        ["A 127.0.0.1", "AAAA 2001:db8::99"]
    );

    // With an address found before (in its cache), a failed check sends nothing.
    f.set_both();
    let out = inadyn_once(&f, &broken, dir.path());
    assert!(
        out.text.contains("Failed to get IP address") && !out.text.contains("new IP#"),
        "{}",
        out.text
    );
    assert_eq!(
        f.server.records(ALICE),
        ["A 192.0.2.99", "AAAA 2001:db8::99"]
    );
}

/// SPEC 12: the FRITZ!Box Update-URL, filled in as the box does, sets both.
#[test]
fn fritzbox_url_sets_both_families() {
    let f = Fixture::start();
    f.set_both();
    let url = f
        .fill(recipe("fritzbox").trim(), "unused")
        .replace("<domain>", ALICE)
        .replace("<ipaddr>", "192.0.2.1")
        .replace("<ip6addr>", "2001:db8::1")
        .replace("<username>", ALICE)
        .replace("<pass>", &f.token);
    f.curl(&[&url]);
    assert_eq!(f.server.records(ALICE), ["A 192.0.2.1", "AAAA 2001:db8::1"]);
}

/// SPEC 12: OPNsense's two entries (Basic auth with username and password), one
/// run each: neither wipes the other's family.
#[test]
fn opnsense_entries_keep_each_others_family() {
    let f = Fixture::start();
    f.set_both();
    let block = recipe("opnsense");
    let lines: Vec<&str> = block.lines().collect();
    let user = format!("{ALICE}:{}", f.token);
    f.curl(&[
        "--user",
        &user,
        &f.fill(lines[0], "").replace("%IP%", "192.0.2.2"),
    ]);
    assert_eq!(
        f.server.records(ALICE),
        ["A 192.0.2.2", "AAAA 2001:db8::99"]
    );
    f.curl(&[
        "--user",
        &user,
        &f.fill(lines[1], "").replace("%IP%", "2001:db8::2"),
    ]);
    assert_eq!(f.server.records(ALICE), ["A 192.0.2.2", "AAAA 2001:db8::2"]);
}

/// SPEC 12: OpenWrt's two `update_url`s, credentials in the URL.
#[test]
fn openwrt_urls_keep_each_others_family() {
    let f = Fixture::start();
    f.set_both();
    let block = recipe("openwrt");
    let urls: Vec<String> = block
        .lines()
        .map(|l| {
            let url = l
                .trim()
                .strip_prefix("option update_url '")
                .and_then(|u| u.strip_suffix('\''))
                .unwrap_or_else(|| panic!("not an update_url line: {l}"));
            f.fill(url, "")
                .replace("[USERNAME]", ALICE)
                .replace("[PASSWORD]", &f.token)
                .replace("[DOMAIN]", ALICE)
        })
        .collect();
    f.curl(&[&urls[0].replace("[IP]", "192.0.2.3")]);
    assert_eq!(
        f.server.records(ALICE),
        ["A 192.0.2.3", "AAAA 2001:db8::99"]
    );
    f.curl(&[&urls[1].replace("[IP]", "2001:db8::3")]);
    assert_eq!(f.server.records(ALICE), ["A 192.0.2.3", "AAAA 2001:db8::3"]);
}

/// The recipe blocks parse out of the README (a renamed marker fails here, not
/// silently in a skipped test).
#[test]
fn every_recipe_block_is_there() {
    for name in [
        "curl",
        "ddclient-token",
        "ddclient",
        "ddclient-wipes",
        "inadyn",
        "fritzbox",
        "opnsense",
        "openwrt",
    ] {
        assert!(recipe(name).contains("example"), "{name}");
    }
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("README.md")
        .is_file());
}

//! Real ACME software for the DNS-01 end-to-end tests (SPEC 10): pebble (Let's
//! Encrypt's test CA, Debian package) validating against our nameserver, certbot
//! with the `dns-acmedns` and `dns-rfc2136` plugins in a venv made here from PyPI,
//! and Debian's lego.
//!
//! Pebble (`pebble -config pebble.json -dnsserver 127.0.0.1:PORT`):
//! - Debian ships no test certificate for pebble's own HTTPS API, so one is made
//!   with `openssl` (`edge::Pki`: a CA and a leaf for 127.0.0.1); clients trust that
//!   CA through `REQUESTS_CA_BUNDLE` (certbot) and `LEGO_CA_CERTIFICATES` (lego).
//! - `-dnsserver` points at the test NSD: pebble's DNS-01 check really asks it for
//!   `_acme-challenge.NAME TXT`. `PEBBLE_VA_ALWAYS_VALID` is never set.
//! - `PEBBLE_VA_NOSLEEP=1`: no random 0–15 s sleep before each validation.
//! - `PEBBLE_WFE_NONCEREJECT=0`: pebble otherwise rejects 5% of good nonces to
//!   exercise clients' retries; that is the clients' business, not ours, and a
//!   5% coin flip would only make these tests slower to read when they fail.
//! - The ports for http-01/tls-alpn-01 (`httpPort`, `tlsPort`) are never used (no
//!   such challenge is answered) but must be set; free ports keep them harmless.
//!
//! A missing client is a loud skip, not a pass: [`skip`] writes a `SKIPPED:` line
//! straight to the test's stderr (past libtest's capture).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::edge::Pki;
use super::proc::{self, find_tool, read_lossy, run_with_timeout, TempDir};
use super::server::free_tcp;

/// How long pebble may take to come up (it makes its CA keys at start).
const PEBBLE_START: Duration = Duration::from_secs(30);
/// Bound on making the venv and installing certbot into it.
const VENV_INSTALL: Duration = Duration::from_secs(600);
/// The versions checked to work together (certbot 5.8 loads dns-acmedns 0.1.0
/// and its own dns-rfc2136, SPEC 14).
pub const CERTBOT_PACKAGES: &[&str] = &[
    "certbot==5.8.0",
    "certbot-dns-acmedns==0.1.0",
    "certbot-dns-rfc2136==5.8.0",
];
/// The authenticators the venv must list.
const CERTBOT_PLUGINS: &[&str] = &["dns-acmedns", "dns-rfc2136"];

pub use super::proc::skip;

/// A running pebble. Dropping it stops it (by PID) and removes its directory.
pub struct Pebble {
    child: Child,
    /// `https://127.0.0.1:PORT/dir`
    pub directory: String,
    /// Pebble's management interface (`/roots/0`, `/intermediates/0`).
    pub management: String,
    /// The CA that signed pebble's own HTTPS certificate: what clients must trust.
    pub tls_ca: PathBuf,
    log: PathBuf,
    _pki: Pki,
    dir: TempDir,
}

impl Pebble {
    /// Pebble validating DNS-01 against the nameserver on 127.0.0.1:`dns_port`.
    /// `None` (after a loud skip) when pebble is not installed.
    pub fn start(test: &str, dns_port: u16) -> Option<Pebble> {
        let Some(pebble) = find_tool("pebble") else {
            skip(
                test,
                "`pebble` is not installed (Debian package pebble; tests/install-deps.sh)",
            );
            return None;
        };
        let pki = Pki::new();
        let dir = TempDir::new("pebble");
        let port = |what: &str| {
            free_tcp("127.0.0.1")
                .unwrap_or_else(|| panic!("no free port for pebble's {what}"))
                .port()
        };
        let (api, mgmt, http, tls) = (port("API"), port("management"), port("http"), port("tls"));
        let config = dir.path().join("pebble.json");
        let text = format!(
            r#"{{"pebble": {{
  "listenAddress": "127.0.0.1:{api}",
  "managementListenAddress": "127.0.0.1:{mgmt}",
  "certificate": "{cert}",
  "privateKey": "{key}",
  "httpPort": {http},
  "tlsPort": {tls},
  "ocspResponderURL": "",
  "externalAccountBindingRequired": false
}}}}
"#,
            cert = pki.path("rsa.pem").display(),
            key = pki.path("rsa.key").display(),
        );
        fs::write(&config, text).expect("write pebble.json");
        let log = dir.path().join("pebble.log");
        let out = fs::File::create(&log).expect("create pebble.log");
        let err = out.try_clone().expect("clone pebble.log");
        let child = Command::new(pebble)
            .arg("-config")
            .arg(&config)
            .arg("-dnsserver")
            .arg(format!("127.0.0.1:{dns_port}"))
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start pebble");
        let mut p = Pebble {
            child,
            directory: format!("https://127.0.0.1:{api}/dir"),
            management: format!("https://127.0.0.1:{mgmt}"),
            tls_ca: pki.path("ca.pem"),
            log,
            _pki: pki,
            dir,
        };
        p.wait_ready();
        Some(p)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + PEBBLE_START;
        let max_polls = PEBBLE_START.as_millis() / 50 + 2;
        for _ in 0..max_polls {
            if self.log().contains("ACME directory available") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("pebble exited at start with {status}:\n{}", self.log());
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "pebble did not serve its directory within {PEBBLE_START:?}:\n{}",
            self.log()
        );
    }

    pub fn log(&self) -> String {
        read_lossy(&self.log)
    }

    /// Pebble's root and intermediate (PEM), fetched from the management
    /// interface, for `openssl verify` of an issued certificate.
    pub fn issuer_files(&self) -> (PathBuf, PathBuf) {
        let fetch = |what: &str| {
            let file = self.dir.path().join(format!("{what}.pem"));
            let mut cmd = Command::new("curl");
            cmd.args(["--silent", "--show-error", "--fail", "--max-time", "10"])
                .arg("--cacert")
                .arg(&self.tls_ca)
                .arg("--output")
                .arg(&file)
                .arg(format!("{}/{what}/0", self.management));
            let out = run_with_timeout(cmd, self.dir.path(), Duration::from_secs(15));
            assert!(out.success(), "fetching pebble's {what}: {}", out.text);
            file
        };
        (fetch("roots"), fetch("intermediates"))
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            proc::signal(self.child.id(), libc::SIGTERM);
            if proc::wait_with_deadline(&mut self.child, Instant::now() + Duration::from_secs(5))
                .is_none()
            {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// The directory of a venv with certbot and its two DNS plugins, made once per
/// build directory (`target/tmp/certbot-venv`) and reused while it works.
/// `Err` says why it could not be made (no python3 venv module, no PyPI...).
pub fn certbot_venv() -> Result<PathBuf, String> {
    // One maker at a time within this test binary.
    static MAKING: Mutex<()> = Mutex::new(());
    let _turn = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("certbot-venv");
    let certbot = venv.join("bin/certbot");
    let works = |scratch: &Path| {
        let mut cmd = Command::new(&certbot);
        cmd.arg("plugins").arg("--authenticators");
        let out = run_with_timeout(cmd, scratch, Duration::from_secs(60));
        out.success() && CERTBOT_PLUGINS.iter().all(|p| out.text.contains(p))
    };
    let scratch = TempDir::new("venv");
    if certbot.is_file() && works(scratch.path()) {
        return Ok(venv);
    }
    let _ = fs::remove_dir_all(&venv);
    // Debian's python3 (python3-venv installs its venv module); else any python3.
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| {
            let mut c = Command::new(p);
            c.args(["-c", "import venv, ensurepip"]);
            run_with_timeout(c, scratch.path(), Duration::from_secs(30)).success()
        })
        .ok_or("no python3 with the venv and ensurepip modules (Debian package python3-venv)")?;
    let mut mk = Command::new(python);
    mk.arg("-m").arg("venv").arg(&venv);
    let out = run_with_timeout(mk, scratch.path(), VENV_INSTALL);
    if !out.success() {
        return Err(format!("`{python} -m venv` failed: {}", out.text));
    }
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args(["install", "--quiet", "--disable-pip-version-check"])
        .args(CERTBOT_PACKAGES);
    let out = run_with_timeout(pip, scratch.path(), VENV_INSTALL);
    if !out.success() {
        let _ = fs::remove_dir_all(&venv);
        return Err(format!(
            "pip install {} failed: {}",
            CERTBOT_PACKAGES.join(" "),
            out.text
        ));
    }
    if !works(scratch.path()) {
        return Err(format!(
            "certbot installed but does not list the plugins {}",
            CERTBOT_PLUGINS.join(", ")
        ));
    }
    Ok(venv)
}

/// The `lego` binary, or `None` after a loud skip.
pub fn lego(test: &str) -> Option<PathBuf> {
    let found = find_tool("lego");
    if found.is_none() {
        skip(
            test,
            "`lego` is not installed (Debian package lego; tests/install-deps.sh)",
        );
    }
    found
}

/// The subjectAltName DNS entries of a PEM certificate, sorted (`openssl x509`).
pub fn dns_sans(cert: &Path, scratch: &Path) -> Vec<String> {
    let mut cmd = Command::new("openssl");
    cmd.args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(cert);
    let out = run_with_timeout(cmd, scratch, Duration::from_secs(20));
    assert!(
        out.success(),
        "openssl x509 {}: {}",
        cert.display(),
        out.text
    );
    let mut sans: Vec<String> = out
        .text
        .split([',', '\n'])
        .filter_map(|s| s.trim().strip_prefix("DNS:").map(str::to_string))
        .collect();
    sans.sort();
    sans
}

/// `openssl verify` of `cert` against pebble's root, with its intermediate.
pub fn verify_chain(pebble: &Pebble, cert: &Path, scratch: &Path) {
    let (root, intermediate) = pebble.issuer_files();
    let mut cmd = Command::new("openssl");
    cmd.arg("verify")
        .arg("-CAfile")
        .arg(&root)
        .arg("-untrusted")
        .arg(&intermediate)
        .arg(cert);
    let out = run_with_timeout(cmd, scratch, Duration::from_secs(20));
    assert!(
        out.success(),
        "{} does not verify against pebble's root: {}",
        cert.display(),
        out.text
    );
}

/// The README block of recipe `name` (see `readme::recipe`), insisting that its
/// first line is `first_line` (so that a marker moved to another block fails).
pub fn readme_block(name: &str, first_line: &str) -> String {
    let block = super::readme::recipe(name);
    assert_eq!(
        block.lines().next(),
        Some(first_line),
        "README recipe {name} must start with {first_line:?}"
    );
    block
}

/// `text` with each `(from, to)` replaced, insisting that every `from` occurs
/// (so that a README edit cannot silently leave a placeholder in a test).
pub fn substitute(text: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (from, to) in pairs {
        assert!(
            out.contains(from),
            "expected {from:?} in the README snippet:\n{text}"
        );
        out = out.replace(from, to);
    }
    out
}

/// A client's time to its certificate, on stderr (`TIMING:` lines, read by hand).
pub fn timing(what: &str, d: std::time::Duration) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("\nTIMING: {what}: {d:.1?}\n").as_bytes());
}

/// `cert` names NAME and `*.NAME` (in that order of its SANs) and chains to
/// pebble's root.
pub fn assert_cert_for_name_and_wildcard(cert: &Path, name: &str, pebble: &Pebble, scratch: &Path) {
    assert_eq!(
        dns_sans(cert, scratch),
        [format!("*.{name}"), name.to_string()],
        "{}",
        cert.display()
    );
    verify_chain(pebble, cert, scratch);
}

/// What the docs' `certbot certonly` becomes in a test: non-interactive,
/// against pebble, with its directories in `d`, and `extra` flags.
pub fn certbot_certonly(email: &str, pebble: &Pebble, d: &Path, extra: &str) -> String {
    format!(
        "certbot certonly --non-interactive --agree-tos -m {email} {extra}\
         --server {} --config-dir {d}/config --work-dir {d}/work --logs-dir {d}/logs",
        pebble.directory,
        d = d.display()
    )
}

/// Run a docs' certbot command (already substituted) with the test venv first
/// on PATH and pebble's CA trusted, in `d`; assert it got NAME's certificate.
/// Returns its path and how long certbot took.
pub fn run_certbot(
    command: &str,
    venv: &Path,
    pebble: &Pebble,
    d: &Path,
    name: &str,
    limit: Duration,
    server_log: &dyn Fn() -> String,
) -> (PathBuf, Duration) {
    let mut cmd = Command::new("sh");
    cmd.arg("-euc")
        .arg(command)
        .env(
            "PATH",
            format!(
                "{}:{}",
                venv.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("REQUESTS_CA_BUNDLE", &pebble.tls_ca);
    let cert = d.join(format!("config/live/{name}/cert.pem"));
    let certbot_log = || read_lossy(&d.join("logs/letsencrypt.log"));
    let took = run_to_certificate(
        "certbot",
        cmd,
        &cert,
        pebble,
        d,
        limit,
        &certbot_log,
        server_log,
    );
    (cert, took)
}

/// Run a docs' lego script (already substituted) with pebble's CA trusted and
/// `env`, in `d`; assert it got NAME's certificate. Returns its path and how
/// long lego took.
pub fn run_lego(
    script: &str,
    env: &[(&str, &str)],
    pebble: &Pebble,
    d: &Path,
    name: &str,
    limit: Duration,
    server_log: &dyn Fn() -> String,
) -> (PathBuf, Duration) {
    let mut cmd = Command::new("sh");
    cmd.arg("-euc")
        .arg(script)
        .env("LEGO_CA_CERTIFICATES", &pebble.tls_ca)
        .envs(env.iter().copied());
    let cert = d.join(format!(".lego/certificates/{name}.crt"));
    let took = run_to_certificate(
        "lego",
        cmd,
        &cert,
        pebble,
        d,
        limit,
        &String::new,
        server_log,
    );
    (cert, took)
}

/// Run an ACME client's `cmd` in `d` until it ends (at most `limit`) and
/// assert that it succeeded and left `cert`; else show its output, its own
/// log, pebble's and the server's. Returns how long it ran.
#[allow(clippy::too_many_arguments)]
fn run_to_certificate(
    client: &str,
    mut cmd: Command,
    cert: &Path,
    pebble: &Pebble,
    d: &Path,
    limit: Duration,
    client_log: &dyn Fn() -> String,
    server_log: &dyn Fn() -> String,
) -> Duration {
    cmd.current_dir(d);
    let started = Instant::now();
    let out = run_with_timeout(cmd, d, limit);
    let took = started.elapsed();
    assert!(
        out.success() && cert.is_file(),
        "{client} failed:\n{}\n--- {client} log ---\n{}\n--- pebble ---\n{}\n--- server ---\n{}",
        out.text,
        client_log(),
        pebble.log(),
        server_log()
    );
    took
}

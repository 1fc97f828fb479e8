//! The real `dedyn-update` binary for integration tests: a temp config and database,
//! free loopback ports (IPv4 and IPv6), the CLI, and a minimal HTTP/1.1 client.

use super::proc::TempDir;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_dedyn-update");

/// The parts of the config a test may change; the rest points into the temp dir.
/// Rate limits are off unless a test sets them.
#[derive(Clone, Default)]
pub struct Setup {
    /// Extra lines for `[server]`.
    pub server: Vec<String>,
    /// Extra lines for `[dns]`.
    pub dns: Vec<String>,
    /// Extra lines for `[rate_limit]` (default: both limits disabled).
    pub rate_limit: Vec<String>,
    /// Lines for `[limits]` (default: none, so the built-in bounds apply).
    pub limits: Vec<String>,
    /// Whole further sections, as written (e.g. `[events]` with its keys).
    pub sections: Vec<String>,
    /// Whole `[[zone]]` tables; default: one dynamic zone `dedyn.example` with glue.
    pub zones: Option<String>,
    /// Do not listen on [::1].
    pub no_ipv6: bool,
    /// Also listen on these `unix:` sockets (`http_listen = ["unix:PATH"]`).
    pub http_unix: Vec<PathBuf>,
    /// Also listen for HTTPS on a free IPv4 loopback port, with this PEM
    /// certificate chain and key (`tls_cert`, `tls_key`).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// A command the binary is run under, e.g. `["prlimit", "--nofile=256:256"]`.
    /// It must exec the binary, so that the PID the harness signals stays the server's.
    pub wrapper: Vec<String>,
    /// Listen for DNS UPDATE (UDP and TCP) on a free IPv4 loopback port
    /// (`[dns_update] listen`), with these extra lines for that section.
    pub dns_update: Option<Vec<String>>,
}

impl Setup {
    /// The dynamic zone `dedyn.example` and a zone `static.example` with
    /// `dynamic = false` (names below it are refused with 403).
    pub fn with_static_zone() -> Setup {
        Setup {
            zones: Some(
                "[[zone]]\nname = \"dedyn.example\"\nfile = \"zones/dedyn.example.zone\"\n\n\
                 [[zone]]\nname = \"static.example\"\nfile = \"zones/static.example.zone\"\ndynamic = false\n"
                    .into(),
            ),
            ..Setup::default()
        }
    }
}

pub struct Server {
    pub dir: TempDir,
    pub config: PathBuf,
    pub http: SocketAddr,
    pub http6: Option<SocketAddr>,
    /// The HTTPS listener, when `Setup::tls` asked for one.
    pub https: Option<SocketAddr>,
    /// The DNS UPDATE listener (UDP and TCP), when `Setup::dns_update` asked for one.
    pub dns: Option<SocketAddr>,
    wrapper: Vec<String>,
    child: Option<Child>,
}

/// A free TCP port on `ip` (bound and released: good enough on a test machine).
pub fn free_tcp(ip: &str) -> Option<SocketAddr> {
    TcpListener::bind((ip, 0)).and_then(|l| l.local_addr()).ok()
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(Setup::default())
    }

    /// Start with `setup`. The ports are free when chosen but may be taken by a
    /// parallel test before the server binds them: then start over on new ports.
    pub fn start_with(setup: Setup) -> Server {
        for _ in 0..10 {
            let mut s = Server::configure(&setup);
            match s.try_spawn() {
                Ok(()) => return s,
                Err(log) if log.contains("cannot listen on") => continue,
                Err(log) => panic!("dedyn-update exited at start:\n{log}"),
            }
        }
        panic!("no free loopback ports after 10 attempts");
    }

    /// A temp dir with a config on freshly chosen ports; not started yet.
    fn configure(setup: &Setup) -> Server {
        let dir = TempDir::new("srv");
        let http = free_tcp("127.0.0.1").expect("a free IPv4 loopback port");
        let http6 = if setup.no_ipv6 { None } else { free_tcp("::1") };
        let https = setup
            .tls
            .as_ref()
            .map(|_| free_tcp("127.0.0.1").expect("a free IPv4 loopback port"));
        let d = dir.path();
        std::fs::write(
            d.join("static.zone"),
            "ns1.dedyn.example. 60 IN A 127.0.0.1\n",
        )
        .unwrap();
        let mut listen = vec![format!("\"{http}\"")];
        if let Some(a) = http6 {
            listen.push(format!("\"{a}\""));
        }
        for path in &setup.http_unix {
            listen.push(format!("\"unix:{}\"", path.display()));
        }
        let mut server_lines = Vec::new();
        if let (Some(addr), Some((cert, key))) = (https, &setup.tls) {
            server_lines.push(format!("https_listen = [\"{addr}\"]"));
            server_lines.push(format!("tls_cert = \"{}\"", cert.display()));
            server_lines.push(format!("tls_key = \"{}\"", key.display()));
        }
        // Four workers unless the test sets its own number.
        if !setup
            .server
            .iter()
            .any(|l| l.trim_start().starts_with("workers"))
        {
            server_lines.push("workers = 4".to_string());
        }
        server_lines.extend(setup.server.iter().cloned());
        let zones = setup.zones.clone().unwrap_or_else(|| {
            format!(
                "[[zone]]\nname = \"dedyn.example\"\nfile = \"{}\"\ninclude = \"{}\"\n",
                d.join("zones/dedyn.example.zone").display(),
                d.join("static.zone").display()
            )
        });
        let rate_limit = if setup.rate_limit.is_empty() {
            vec![
                "dyndns_per_domain = \"\"".to_string(),
                "failed_auth_per_ip = \"\"".to_string(),
                "acme_per_domain = \"\"".to_string(),
            ]
        } else {
            setup.rate_limit.clone()
        };
        // A short publish delay keeps tests fast, unless the test sets its own.
        let mut dns = setup.dns.clone();
        if !dns
            .iter()
            .any(|l| l.trim_start().starts_with("publish_delay_ms"))
        {
            dns.push("publish_delay_ms = 50".to_string());
        }
        let mut text = format!(
            "[server]\nhttp_listen = [{}]\n{}\n\n[database]\npath = \"{}\"\n\n[dns]\n{}\n\n{}\n[rate_limit]\n{}\n",
            listen.join(", "),
            server_lines.join("\n"),
            d.join("db.sqlite3").display(),
            dns.join("\n"),
            zones,
            rate_limit.join("\n")
        );
        if !setup.limits.is_empty() {
            text.push_str(&format!("\n[limits]\n{}\n", setup.limits.join("\n")));
        }
        // The port is free for TCP when chosen; a UDP clash fails the start
        // ("cannot listen on"), and `start_with` tries new ports.
        let dns = setup
            .dns_update
            .as_ref()
            .map(|_| free_tcp("127.0.0.1").expect("a free IPv4 loopback port"));
        if let (Some(addr), Some(lines)) = (dns, &setup.dns_update) {
            text.push_str(&format!(
                "\n[dns_update]\nlisten = [\"{addr}\"]\n{}\n",
                lines.join("\n")
            ));
        }
        for section in &setup.sections {
            text.push_str(&format!("\n{section}\n"));
        }
        let config = d.join("config.toml");
        std::fs::write(&config, text).unwrap();
        Server {
            dir,
            config,
            http,
            http6,
            https,
            dns,
            wrapper: setup.wrapper.clone(),
            child: None,
        }
    }

    /// Start the process (again, on the same ports and files) and wait until it listens.
    pub fn spawn(&mut self) {
        if let Err(log) = self.try_spawn() {
            panic!("dedyn-update exited at start:\n{log}");
        }
    }

    /// Start the process and wait (with a deadline) until its log says it listens on
    /// every configured address — a successful connect alone could reach another
    /// test's server that took the same port. Err(log of this start) if it exits.
    fn try_spawn(&mut self) -> Result<(), String> {
        let offset = self.log().len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = command
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .current_dir(self.dir.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dedyn-update serve");
        self.child = Some(child);
        let wanted: Vec<String> = std::iter::once(self.http)
            .chain(self.http6)
            .map(|a| format!("listening on http://{a}"))
            .chain(self.https.map(|a| format!("listening on https://{a}")))
            .chain(
                self.dns
                    .map(|a| format!("listening for DNS UPDATE on udp://{a} and tcp://{a}")),
            )
            // The listeners come up first (a start that fails on them touches
            // nothing); this line says the workers and the metrics listener run.
            .chain(std::iter::once(" serving with ".to_string()))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let log = self.log();
            let this_start = log.get(offset..).unwrap_or_default();
            if wanted.iter().all(|w| this_start.contains(w.as_str())) {
                return Ok(());
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(self.log().get(offset..).unwrap_or_default().to_string());
            }
            assert!(
                Instant::now() < deadline,
                "dedyn-update did not start listening:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn zone_file(&self) -> PathBuf {
        self.dir.path().join("zones/dedyn.example.zone")
    }

    /// The published `dedyn.example` zone file as text (empty before the first publication).
    pub fn zone_text(&self) -> String {
        read(&self.zone_file())
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("db.sqlite3")
    }

    /// Send SIGTERM and wait for a graceful exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        super::proc::signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "dedyn-update did not stop within 20 s after SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the crash case.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Run the CLI against this server's config.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        let mut all = vec!["--config", self.config.to_str().expect("UTF-8 temp path")];
        all.extend_from_slice(args);
        cli_in(self.dir.path(), &all, &[])
    }

    /// Run the CLI, insisting on success; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert_eq!(o.code, 0, "dedyn-update {args:?} failed: {}", o.stderr);
        o.stdout
    }

    /// `dedyn-update import ARGS` started with every pipe open, `RUST_LOG` at
    /// `log_level`: the caller writes stdin and collects the output.
    pub fn spawn_import(&self, args: &[&str], log_level: &str) -> Child {
        Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .arg("import")
            .args(args)
            .current_dir(self.dir.path())
            .env("RUST_LOG", log_level)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run dedyn-update import")
    }

    /// `dedyn-update import ARGS < input`, to the end.
    pub fn import(&self, args: &[&str], input: &str) -> std::process::Output {
        let mut child = self.spawn_import(args, "warn");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("import output")
    }

    /// A user owning `domain`, and a token for it (returned).
    pub fn provision(&self, email: &str, domain: &str) -> String {
        self.provision_with(email, domain, &[])
    }

    /// `provision` with more `token add` options (`--scope acme`, `--domain …`).
    pub fn provision_with(&self, email: &str, domain: &str, token_args: &[&str]) -> String {
        if !self.cli_ok(&["user", "list"]).lines().any(|l| l == email) {
            self.cli_ok(&["user", "add", email]);
        }
        self.cli_ok(&["domain", "add", domain, "--owner", email]);
        let mut args = vec!["token", "add", "--owner", email];
        args.extend_from_slice(token_args);
        self.cli_ok(&args).trim().to_string()
    }

    /// `records NAME` as lines.
    pub fn records(&self, name: &str) -> Vec<String> {
        self.cli_ok(&["records", name])
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> Response {
        request(self.http, "GET", target, headers)
    }

    pub fn get6(&self, target: &str, headers: &[(&str, &str)]) -> Response {
        request(self.http6.expect("IPv6 listener"), "GET", target, headers)
    }

    /// Poll until `f` holds, or fail with `what` and the server log.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !f() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Run the binary in `dir` with exactly `args` and `env` (no `--config` added;
/// `DEDYN_UPDATE_CONFIG` is only set when `env` says so).
pub fn cli_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> CliOutput {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("DEDYN_UPDATE_CONFIG")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run dedyn-update");
    CliOutput::from(out)
}

pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for CliOutput {
    fn from(out: std::process::Output) -> Self {
        CliOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The value of an `Authorization: Token` header.
pub fn token(secret: &str) -> String {
    format!("Token {secret}")
}

/// GET with `Authorization: Token <secret>`.
pub fn tget(s: &Server, target: &str, secret: &str) -> Response {
    s.get(target, &[("Authorization", &token(secret))])
}

/// The update was answered `200 good`.
#[track_caller]
pub fn assert_good(r: &Response) {
    assert_eq!((r.status, r.body.as_str()), (200, "good"), "{r:?}");
}

pub fn basic(user: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

/// One request on a fresh connection (`Connection: close`); reads to EOF.
/// `Host` is the server's address unless `headers` has one.
pub fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    send(addr, method, target, headers, None)
}

/// Like `request`, with a body (and its `Content-Length`) when `body` is given.
pub fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    s.write_all(&bytes).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
        .unwrap_or_else(|| panic!("unparsable response: {:?}", String::from_utf8_lossy(&raw)))
}

pub fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let body = String::from_utf8_lossy(&raw[end + 4..]).into_owned();
    Some(Response {
        status,
        headers,
        body,
    })
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The SOA serial of a rendered zone file, if it has one.
pub fn soa_serial(zone_text: &str) -> Option<u32> {
    zone_text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let i = f.iter().position(|w| *w == "SOA")?;
        f.get(i + 3)?.parse().ok()
    })
}

/// SPEC 13: no request put a raw line or direction control into `log`, every
/// line starts with the logger's timestamp, and every failed-authentication
/// line names `client` where fail2ban's anchored filter looks (what it bans).
pub fn assert_log_not_forged(log: &str, client: &str) {
    for raw in ['\u{2028}', '\u{202e}', '\r'] {
        assert!(!log.contains(raw), "{raw:?} reached the log raw:\n{log}");
    }
    for line in log.lines() {
        assert!(
            line.starts_with("20") && line.as_bytes().get(10) == Some(&b'T'),
            "a line that does not start with the logger's timestamp: {line:?}"
        );
        // As the README's anchored fail2ban filter reads it: right after the
        // timestamp (a quoted username later in a line is not a match).
        let message = line.split_once(' ').map_or("", |(_, m)| m);
        if let Some(rest) = message.strip_prefix("WARN failed authentication from ") {
            assert!(rest.starts_with(&format!("{client}:")), "forged: {line}");
        }
    }
}

/// `GET /metrics` from the metrics listener at `addr`: the exposition text, after
/// checking the status and Prometheus' content type.
pub fn scrape(addr: SocketAddr) -> String {
    let r = request(addr, "GET", "/metrics", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("Content-Type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.headers
    );
    r.body
}

/// The value of one sample in a scrape (`name` includes any labels), or `None`.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A directory to run the binary in as user `nobody` (tests that run as root
/// and check what the service user may do): `d` made 0755, the binary copied
/// into it (where nobody may run it) and `d/state` created and given to
/// nobody. Returns the binary's path.
pub fn nobody_sandbox(d: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = d.join("dedyn-update");
    std::fs::copy(BIN, &bin).unwrap();
    let state = d.join("state");
    std::fs::create_dir(&state).unwrap();
    let chown = Command::new("chown")
        .arg("nobody")
        .arg(&state)
        .status()
        .unwrap();
    assert!(chown.success());
    bin
}

/// `program ARGS` run in `dir` as nobody:nogroup with no other groups.
pub fn as_nobody(dir: &Path, program: &Path, args: &[&str]) -> CliOutput {
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(program)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("setpriv");
    CliOutput::from(out)
}

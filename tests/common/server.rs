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
    /// Whole `[[zone]]` tables; default: one dynamic zone `dedyn.example` with glue.
    pub zones: Option<String>,
    /// Do not listen on [::1].
    pub no_ipv6: bool,
}

pub struct Server {
    pub dir: TempDir,
    pub config: PathBuf,
    pub http: SocketAddr,
    pub http6: Option<SocketAddr>,
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

    pub fn start_with(setup: Setup) -> Server {
        let dir = TempDir::new("srv");
        let d = dir.path();
        std::fs::write(
            d.join("static.zone"),
            "ns1.dedyn.example. 60 IN A 127.0.0.1\n",
        )
        .unwrap();
        let mut s = Server {
            config: d.join("config.toml"),
            dir,
            http: free_tcp("127.0.0.1").expect("a free IPv4 loopback port"),
            http6: None,
            child: None,
        };
        // A port found free can be taken by a parallel test before the server binds
        // it: then pick new ports and try again (bounded).
        for attempt in 1..=3 {
            s.http = free_tcp("127.0.0.1").expect("a free IPv4 loopback port");
            s.http6 = if setup.no_ipv6 { None } else { free_tcp("::1") };
            std::fs::write(&s.config, s.config_text(&setup)).unwrap();
            match s.try_spawn() {
                Ok(()) => return s,
                Err(e) if attempt < 3 && e.contains("cannot listen on") => continue,
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn config_text(&self, setup: &Setup) -> String {
        let d = self.dir.path();
        let mut listen = vec![format!("\"{}\"", self.http)];
        if let Some(a) = self.http6 {
            listen.push(format!("\"{a}\""));
        }
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
            ]
        } else {
            setup.rate_limit.clone()
        };
        // Publish quickly unless the test sets its own delay (a key may appear once).
        let mut dns = setup.dns.clone();
        if !dns
            .iter()
            .any(|l| l.trim_start().starts_with("publish_delay_ms"))
        {
            dns.insert(0, "publish_delay_ms = 50".to_string());
        }
        format!(
            "[server]\nhttp_listen = [{}]\nworkers = 4\n{}\n\n[database]\npath = \"{}\"\n\n[dns]\n{}\n\n{}\n[rate_limit]\n{}\n",
            listen.join(", "),
            setup.server.join("\n"),
            d.join("db.sqlite3").display(),
            dns.join("\n"),
            zones,
            rate_limit.join("\n")
        )
    }

    /// Start the process and wait (with a deadline) until it accepts connections.
    pub fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{e}");
        }
    }

    /// Start the process and wait until it logs that it serves — a connect alone
    /// could reach whoever else got the port. `Err` holds this run's log.
    fn try_spawn(&mut self) -> Result<(), String> {
        const READY: &str = "serving with";
        let ready_before = self.log().matches(READY).count();
        let log_before = self.log().len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(BIN)
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
        let this_run = |s: &Server| s.log().get(log_before..).unwrap_or_default().to_string();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.log().matches(READY).count() > ready_before
                && TcpStream::connect_timeout(&self.http, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!(
                    "dedyn-update exited at start ({st}):\n{}",
                    this_run(self)
                ));
            }
            if Instant::now() >= deadline {
                self.kill9();
                return Err(format!(
                    "dedyn-update did not start serving within 15 s:\n{}",
                    this_run(self)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
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
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run dedyn-update");
        CliOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run the CLI, insisting on success; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert_eq!(o.code, 0, "dedyn-update {args:?} failed: {}", o.stderr);
        o.stdout
    }

    /// A user owning `domain`, and a token for it (returned).
    pub fn provision(&self, email: &str, domain: &str) -> String {
        if !self.cli_ok(&["user", "list"]).lines().any(|l| l == email) {
            self.cli_ok(&["user", "add", email]);
        }
        self.cli_ok(&["domain", "add", domain, "--owner", email]);
        self.cli_ok(&["token", "add", "--owner", email])
            .trim()
            .to_string()
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

pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
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

pub fn basic(user: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

/// One request on a fresh connection (`Connection: close`); reads to EOF.
pub fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
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

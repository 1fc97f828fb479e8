//! Test fixtures for the edge: a tiny_http backend on a private Unix socket that answers
//! with the client identity the edge attached, raw HTTP clients, and TLS material made by `openssl`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::proc::TempDir;
use dedyn_update::edge::{self, EdgeHandle, EdgeSettings, InternalHop, CLIENT_HEADER};

/// The edge tests (`edge::stand_in_backend`, `edge::real_server`) run one at a
/// time: several open thousands of sockets or measure CPU time, which another
/// of them would disturb.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Pooled connections the fixture's edge keeps to its backend.
pub const BACKEND_CONNECTIONS: usize = 8;

/// The stand-in for the real handler: answers every request with
/// `peer=ADDR tls=BOOL body=LEN` from the edge's identity header (403 `unknown`
/// without a valid one). `/slow` takes a second, to keep a request in flight.
pub struct Backend {
    pub hop: Arc<InternalHop>,
    /// Requests being handled now.
    pub in_flight: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    _dir: TempDir,
}

impl Backend {
    pub fn start() -> Backend {
        let dir = TempDir::new("hop");
        let socket = dir.path().join("http.sock");
        let server =
            Arc::new(tiny_http::Server::http_unix(&socket).expect("tiny_http on a unix socket"));
        let hop = Arc::new(InternalHop::new(socket, BACKEND_CONNECTIONS).expect("hop"));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..4)
            .map(|_| {
                let (server, hop, stop, in_flight) = (
                    Arc::clone(&server),
                    Arc::clone(&hop),
                    Arc::clone(&stop),
                    Arc::clone(&in_flight),
                );
                thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(50))
                        else {
                            continue;
                        };
                        in_flight.fetch_add(1, Ordering::SeqCst);
                        if request.url().starts_with("/slow") {
                            thread::sleep(Duration::from_secs(1));
                        }
                        let mut body = Vec::new();
                        let _ = request.as_reader().read_to_end(&mut body);
                        let identity = request
                            .headers()
                            .iter()
                            .filter(|h| h.field.equiv(CLIENT_HEADER))
                            .map(|h| h.value.as_str());
                        let response = match hop.client_of(identity) {
                            Some(info) => tiny_http::Response::from_string(format!(
                                "peer={} tls={} body={}",
                                info.peer,
                                info.tls,
                                body.len()
                            )),
                            None => {
                                tiny_http::Response::from_string("unknown").with_status_code(403)
                            }
                        };
                        let _ = request.respond(response);
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        Backend {
            hop,
            in_flight,
            stop,
            workers,
            _dir: dir,
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Settings for tests: loopback, short timeouts.
pub fn settings(http: &[&str], https: &[&str], tls: Option<(&Path, &Path)>) -> EdgeSettings {
    let parse = |list: &[&str]| -> Vec<SocketAddr> {
        list.iter()
            .map(|a| a.parse().expect("socket address"))
            .collect()
    };
    let (cert, key) = tls.unwrap_or((Path::new("/nonexistent"), Path::new("/nonexistent")));
    EdgeSettings {
        http_listen: parse(http),
        http_unix: vec![],
        unix_mode: 0o660,
        unix_group: String::new(),
        https_listen: parse(https),
        tls_cert: cert.to_path_buf(),
        tls_key: key.to_path_buf(),
        max_connections: 1024,
        handshake_timeout: Duration::from_secs(2),
        head_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        max_head_bytes: 8192,
    }
}

/// A backend and an edge in front of it.
pub struct Fixture {
    pub edge: EdgeHandle,
    pub backend: Backend,
}

impl Fixture {
    pub fn start(settings: EdgeSettings) -> Fixture {
        let backend = Backend::start();
        let edge = edge::start(settings, Arc::clone(&backend.hop)).expect("edge starts");
        Fixture { edge, backend }
    }

    pub fn http(&self) -> SocketAddr {
        self.edge.http_addrs()[0]
    }

    pub fn https(&self) -> SocketAddr {
        self.edge.https_addrs()[0]
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Reads one response (Content-Length framed; else to EOF) from `stream`.
pub fn read_response(stream: &mut TcpStream) -> std::io::Result<Response> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
        assert!(buf.len() < 65536, "response head too long");
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            stream.read_exact(&mut body)?;
        }
        None if status == 100 => {}
        None => {
            stream.read_to_end(&mut body)?;
        }
    }
    Ok(Response {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the edge");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    s
}

/// One GET on a new connection; returns the response and how long it took.
pub fn get(addr: SocketAddr, path: &str) -> (Response, Duration) {
    let started = Instant::now();
    let mut s = connect(addr);
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("send request");
    let r = read_response(&mut s).expect("response");
    (r, started.elapsed())
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Whether the server closed `stream` (EOF or reset) within `limit`. Any data
/// received first (e.g. a 408) is skipped.
pub fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut sink = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        stream
            .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
            .expect("read timeout");
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Runs `openssl ARGS` in `dir`, panicking with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl command line tool");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A test CA and leaf certificates for 127.0.0.1, ::1 and localhost:
/// `rsa.pem` + `rsa.key` (PKCS#8) + `rsa1.key` (PKCS#1), `ec.pem` + `ec.key`
/// (SEC1), each `*.pem` a full chain (leaf, CA); `ca.pem` for clients.
pub struct Pki {
    dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = TempDir::new("pki");
        let d = dir.path();
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext.cnf");
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=edge test CA",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "rsa.key",
                "-out",
                "rsa.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        openssl(
            d,
            &["rsa", "-in", "rsa.key", "-traditional", "-out", "rsa1.key"],
        );
        openssl(
            d,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "ec.key",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                "ec.key",
                "-out",
                "ec.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        for name in ["rsa", "ec"] {
            let (csr, leaf) = (format!("{name}.csr"), format!("{name}.leaf"));
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &leaf,
                    "-days",
                    "2",
                    "-extfile",
                    "ext.cnf",
                ],
            );
            let chain = std::fs::read_to_string(d.join(&leaf)).expect("leaf")
                + &std::fs::read_to_string(d.join("ca.pem")).expect("ca");
            std::fs::write(d.join(format!("{name}.pem")), chain).expect("chain");
        }
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The live pair a server is configured with (`live-cert.pem`, `live-key.pem`).
    pub fn live(&self) -> (PathBuf, PathBuf) {
        (self.path("live-cert.pem"), self.path("live-key.pem"))
    }

    /// Copy the made certificate `cert` and key `key` over the live pair, as a
    /// certificate renewal would.
    pub fn install(&self, cert: &str, key: &str) {
        let (live_cert, live_key) = self.live();
        std::fs::copy(self.path(cert), live_cert).expect("copy cert");
        std::fs::copy(self.path(key), live_key).expect("copy key");
    }
}

/// SHA-256 fingerprint of the first certificate in a PEM file.
pub fn file_fingerprint(pem: &Path) -> String {
    let dir = pem.parent().expect("dir");
    openssl(
        dir,
        &[
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            &pem.to_string_lossy(),
        ],
    )
}

/// SHA-256 fingerprint of the certificate `addr` presents to a new connection.
pub fn served_fingerprint(addr: SocketAddr) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("openssl s_client");
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl x509");
    x509.stdin
        .take()
        .expect("stdin")
        .write_all(&out.stdout)
        .expect("feed x509");
    let fp = x509.wait_with_output().expect("x509 output");
    String::from_utf8_lossy(&fp.stdout).into_owned()
}

/// `curl` over HTTPS, trusting only the test CA; `args` are further options and
/// URLs. (exit ok, stdout, stderr).
pub fn curl(ca: &Path, args: &[String]) -> (bool, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the curl command line tool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// This process's user+system CPU time, from /proc/self/stat.
pub fn cpu_time() -> Duration {
    cpu_time_of("self")
}

/// The user+system CPU time of process `pid` (all its threads), from /proc/PID/stat.
pub fn cpu_time_of(pid: impl std::fmt::Display) -> Duration {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here (1-based).
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf takes no pointers.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// `openssl s_client -connect ADDR ARGS` with no input; (exit ok, stdout + stderr).
pub fn s_client(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The TLS versions rule (SPEC 6): 1.1 refused by the server's alert, 1.2 and 1.3
/// accepted, checked with `openssl s_client` against `addr`.
#[track_caller]
pub fn assert_only_tls12_and_tls13(addr: SocketAddr) {
    // SECLEVEL=0 so that the client really offers TLS 1.1 and the refusal is the server's.
    let (ok, text) = s_client(addr, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
    assert!(!ok, "TLS 1.1 must be refused:\n{text}");
    // The refusal is the server's: its alert arrived and no cipher was agreed.
    assert!(
        text.contains("SSL alert number") && text.contains("Cipher is (NONE)"),
        "the server's alert:\n{text}"
    );
    for (flag, name) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (ok, text) = s_client(addr, &[flag]);
        assert!(
            ok && text.contains(&format!("New, {name}, Cipher is")),
            "{flag}:\n{text}"
        );
    }
}

/// A TLS 1.2 ClientHello offering ECDHE suites with both RSA and ECDSA.
pub fn client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend([0x42; 32]); // random
    body.push(0); // no session id
    let suites: [u16; 4] = [0xc02b, 0xc02f, 0xc02c, 0xc030];
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    suites.iter().for_each(|s| body.extend(s.to_be_bytes()));
    body.extend([1, 0]); // compression: null
    let mut ext = Vec::new();
    let mut add = |ty: u16, data: &[u8]| {
        ext.extend(ty.to_be_bytes());
        ext.extend((data.len() as u16).to_be_bytes());
        ext.extend(data);
    };
    add(0x000a, &[0, 4, 0, 0x1d, 0, 0x17]); // supported_groups: x25519, secp256r1
    add(0x000b, &[1, 0]); // ec_point_formats: uncompressed
    add(0x000d, &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]); // signature_algorithms
    add(0x0017, &[]); // extended_master_secret
    add(0xff01, &[0]); // renegotiation_info
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut handshake = vec![1];
    handshake.extend(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

/// A TLS close_notify alert record.
pub const CLOSE_NOTIFY: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00];

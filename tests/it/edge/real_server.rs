//! The network edge in the real binary (SPEC 6, 9): `dedyn-update serve` with its
//! config, TLS files, signals and descriptor limit, attacked from outside over loopback.
//!
//! `super::stand_in_backend` tests the edge against a stand-in backend; here
//! every rule is checked once more end to end, through the real handler and
//! store. These tests and those run one at a time (`serial`): they open
//! thousands of sockets or measure the server's CPU time, which a neighbour
//! would disturb. The rest of the program's tests do run beside them.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::edge::{
    assert_only_tls12_and_tls13, client_hello, closed_within, cpu_time_of, curl, eventually,
    file_fingerprint, serial, served_fingerprint, Pki, CLOSE_NOTIFY,
};
use crate::common::server::{assert_good, basic, parse_response, request, Response, Server, Setup};

const EMAIL: &str = "alice@example.org";
const ALICE: &str = "alice.dedyn.example";
/// What a real client must get its answer within, flood or not (SPEC 6).
const PROMPTLY: Duration = Duration::from_secs(2);

/// The real server with `setup`, alice holding `alice.dedyn.example`; her token.
fn alice_with(setup: Setup) -> (Server, String) {
    let s = Server::start_with(setup);
    let tok = s.provision(EMAIL, ALICE);
    (s, tok)
}

fn server_lines(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

/// A plain-HTTP update of alice's A record on a new connection; the response
/// and how long it took.
fn update_http(s: &Server, tok: &str, ip: &str) -> (Response, Duration) {
    let started = Instant::now();
    let r = request(
        s.http,
        "GET",
        &format!("/nic/update?hostname={ALICE}&myipv4={ip}"),
        &[("Authorization", &basic(ALICE, tok))],
    );
    (r, started.elapsed())
}

/// The same update over HTTPS with `curl --cacert`; the response (head and body).
fn update_https(s: &Server, pki: &Pki, tok: &str, ip: &str) -> Response {
    let https = s.https.expect("an HTTPS listener");
    let url = format!("https://{https}/nic/update?hostname={ALICE}&myipv4={ip}");
    let (ok, out, err) = curl(
        &pki.path("ca.pem"),
        &["-i".into(), "-u".into(), format!("{ALICE}:{tok}"), url],
    );
    assert!(ok, "curl over HTTPS failed: {err}");
    parse_response(out.as_bytes()).unwrap_or_else(|| panic!("unparsable response: {out}"))
}

/// Raises this test process's soft RLIMIT_NOFILE to its hard limit (thousands
/// of client sockets) and returns it.
fn raise_own_nofile() -> u64 {
    dedyn_update::edge::raise_nofile_limit()
}

/// Whether `pid` is running, and (as far as /proc says) not a zombie.
fn running(pid: u32) -> bool {
    crate::common::proc::is_alive(pid)
}

// ---- HTTPS ------------------------------------------------------------------

#[test]
fn https_update_sets_records_and_hsts_is_sent_on_https_only() {
    let _g = serial();
    let pki = Pki::new();
    let (s, tok) = alice_with(Setup {
        tls: Some((pki.path("rsa.pem"), pki.path("rsa.key"))),
        server: server_lines(&["hsts_max_age = 4711"]),
        ..Setup::default()
    });

    let r = update_https(&s, &pki, &tok, "192.0.2.10");
    assert_good(&r);
    assert_eq!(
        r.header("Strict-Transport-Security"),
        Some("max-age=4711"),
        "{r:?}"
    );
    assert_eq!(s.records(ALICE), ["A 192.0.2.10"]);

    let (r, _) = update_http(&s, &tok, "192.0.2.11");
    assert_good(&r);
    assert_eq!(r.header("Strict-Transport-Security"), None, "{r:?}");
    assert_eq!(s.records(ALICE), ["A 192.0.2.11"]);
}

#[test]
fn https_accepts_tls12_and_tls13_only() {
    let _g = serial();
    let pki = Pki::new();
    let (s, _) = alice_with(Setup {
        tls: Some((pki.path("rsa.pem"), pki.path("rsa.key"))),
        ..Setup::default()
    });
    let https = s.https.expect("an HTTPS listener");
    assert_only_tls12_and_tls13(https);
}

/// RUSTSEC-2024-0336: a close_notify during the handshake made rustls < 0.23.5
/// loop forever. 20 such probes must leave the server idle and serving.
///
/// rustls 0.23 takes a close_notify before the handshake is done as a warning
/// alert and ignores it, so the probes, whose sockets stay open, are closed by
/// the handshake deadline (2 s here), having cost no CPU while they waited.
#[test]
fn rustsec_2024_0336_probe_leaves_the_server_idle_and_serving() {
    let _g = serial();
    let pki = Pki::new();
    let (s, tok) = alice_with(Setup {
        tls: Some((pki.path("rsa.pem"), pki.path("rsa.key"))),
        server: server_lines(&["handshake_timeout_secs = 2"]),
        ..Setup::default()
    });
    let https = s.https.expect("an HTTPS listener");
    let pid = s.pid();
    let mut probes = Vec::new();
    for _ in 0..20 {
        let mut p = TcpStream::connect(https).expect("connect");
        p.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        p.write_all(&client_hello()).expect("ClientHello");
        let mut first = [0u8; 1];
        p.read_exact(&mut first)
            .expect("the server answers the ClientHello");
        assert_eq!(
            first[0], 0x16,
            "a handshake record: the hello was understood"
        );
        p.write_all(&CLOSE_NOTIFY).expect("close_notify");
        probes.push(p);
    }
    let probed = Instant::now();

    // With the probes open: a spinning thread would take the whole window;
    // idle workers and the publisher's polling take a few milliseconds.
    let before = cpu_time_of(pid);
    while probed.elapsed() < Duration::from_millis(1500) {
        thread::sleep(Duration::from_millis(100));
    }
    let used = cpu_time_of(pid) - before;
    eprintln!("server CPU over 1.5 s with 20 probes open: {used:?}");
    assert!(
        used < Duration::from_millis(200),
        "server CPU over 1.5 s with the probes open: {used:?}"
    );

    let (r, took) = update_http(&s, &tok, "192.0.2.20");
    assert_good(&r);
    assert!(took < PROMPTLY, "HTTP update took {took:?}");
    let started = Instant::now();
    assert_good(&update_https(&s, &pki, &tok, "192.0.2.21"));
    assert!(
        started.elapsed() < PROMPTLY,
        "HTTPS update took {:?}",
        started.elapsed()
    );
    assert_eq!(s.records(ALICE), ["A 192.0.2.21"]);

    for p in &mut probes {
        assert!(
            closed_within(p, Duration::from_secs(3)),
            "probe closed by the handshake deadline"
        );
    }
    assert!(probed.elapsed() < Duration::from_secs(4));
}

#[test]
fn sighup_serves_a_new_certificate_and_keeps_the_old_one_if_the_new_is_broken() {
    let _g = serial();
    let pki = Pki::new();
    let (cert, key) = pki.live();
    let install = |c: &str, k: &str| pki.install(c, k);
    install("rsa.pem", "rsa.key");
    let (s, tok) = alice_with(Setup {
        tls: Some((cert.clone(), key.clone())),
        ..Setup::default()
    });
    let https = s.https.expect("an HTTPS listener");
    let pid = s.pid();
    let (rsa, ec) = (
        file_fingerprint(&pki.path("rsa.pem")),
        file_fingerprint(&pki.path("ec.pem")),
    );
    assert_eq!(served_fingerprint(https), rsa);
    let reloads = |log: &str| log.matches("TLS certificate and key reloaded").count();
    let failures = |log: &str| log.matches("TLS reload failed").count();

    install("ec.pem", "ec.key");
    crate::common::proc::signal(pid, libc::SIGHUP);
    s.wait_until("the reload", Duration::from_secs(5), || {
        reloads(&s.log()) == 1
    });
    assert_eq!(
        served_fingerprint(https),
        ec,
        "new connections see the new certificate"
    );
    assert!(running(pid) && s.pid() == pid, "same process");
    assert_good(&update_https(&s, &pki, &tok, "192.0.2.30"));

    std::fs::write(&cert, "not a certificate\n").expect("break the certificate");
    crate::common::proc::signal(pid, libc::SIGHUP);
    s.wait_until("the failed reload", Duration::from_secs(5), || {
        failures(&s.log()) >= 1
    });
    assert!(
        s.log().contains("live-cert.pem"),
        "the error names the file:\n{}",
        s.log()
    );
    assert_eq!(served_fingerprint(https), ec, "the old pair stays in force");
    assert!(running(pid), "a broken file does not stop the server");
    assert_good(&update_https(&s, &pki, &tok, "192.0.2.31"));
    assert_eq!(s.records(ALICE), ["A 192.0.2.31"]);
}

// ---- floods -----------------------------------------------------------------

/// `n` connections that each send half a request line and stop, kept at `n` by
/// a thread that reopens every one the server closes, as a real slowloris does
/// (with a 1 s head deadline a one-off flood would be gone before it is measured).
struct Slowloris {
    stop: Arc<AtomicBool>,
    /// Connections open and past their half request line.
    open: Arc<AtomicUsize>,
    /// Connections the server closed (head deadline or eviction) and we reopened.
    reopened: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

const HALF_REQUEST: &[u8] = b"GET /nic/update?hostname=alice.dedyn.example&myi";

impl Slowloris {
    fn start(addr: SocketAddr, n: usize) -> Slowloris {
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(AtomicUsize::new(0));
        let reopened = Arc::new(AtomicUsize::new(0));
        let (t_stop, t_open, t_reopened) = (stop.clone(), open.clone(), reopened.clone());
        let thread = thread::spawn(move || {
            let attacker = || -> Option<TcpStream> {
                let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
                // An evicted connection may see a reset at once; it is replaced.
                c.write_all(HALF_REQUEST).ok()?;
                Some(c)
            };
            let mut conns: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
            // Safety net: the test stops us long before.
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut first_round = true;
            while !t_stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                for c in conns.iter_mut().filter(|c| c.is_none()) {
                    if !first_round {
                        t_reopened.fetch_add(1, Ordering::Relaxed);
                    }
                    *c = attacker();
                }
                first_round = false;
                t_open.store(conns.iter().flatten().count(), Ordering::SeqCst);
                // Anything readable is a 408, EOF or reset: the server is done with it.
                let mut fds: Vec<libc::pollfd> = conns
                    .iter()
                    .flatten()
                    .map(|c| libc::pollfd {
                        fd: c.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    })
                    .collect();
                // SAFETY: the pointer and length describe `fds`, which outlives the call.
                let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
                if rc <= 0 {
                    continue;
                }
                let closed: Vec<i32> = fds
                    .iter()
                    .filter(|p| p.revents != 0)
                    .map(|p| p.fd)
                    .collect();
                for c in conns.iter_mut() {
                    if c.as_ref().is_some_and(|s| closed.contains(&s.as_raw_fd())) {
                        *c = None;
                    }
                }
            }
        });
        Slowloris {
            stop,
            open,
            reopened,
            thread: Some(thread),
        }
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    fn reopened(&self) -> usize {
        self.reopened.load(Ordering::Relaxed)
    }
}

impl Drop for Slowloris {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A client that sends a valid update one byte every 300 ms; how long after its
/// first byte the server closed it (None: it never did, which is a failure).
fn trickle(addr: SocketAddr) -> Option<Duration> {
    let mut c = TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    let started = Instant::now();
    let mut sink = [0u8; 512];
    for &b in b"GET /nic/update?hostname=alice.dedyn.example HTTP/1.1\r\nHost: x\r\n\r\n" {
        if c.write_all(&[b]).is_err() {
            return Some(started.elapsed());
        }
        // The read's timeout is the trickle's pace.
        match c.read(&mut sink) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {} // the 408 that precedes the close
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// SPEC 6: under 2,000 connections that send half a request and stop, a normal
/// update is still answered within 2 s; trickling clients are cut off.
fn slowloris_against_the_server(max_connections: usize) {
    let _g = serial();
    raise_own_nofile();
    let metrics = crate::common::server::free_tcp("127.0.0.1").expect("a free port");
    let (s, tok) = alice_with(Setup {
        server: vec![
            format!("max_connections = {max_connections}"),
            "request_head_timeout_secs = 1".into(),
            format!("metrics_listen = \"{metrics}\""),
        ],
        no_ipv6: true,
        ..Setup::default()
    });
    let open_on_server = || {
        let r = request(metrics, "GET", "/metrics", &[]);
        r.body
            .lines()
            .find_map(|l| l.strip_prefix("dedyn_update_open_connections "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .expect("open_connections in the metrics")
    };

    let flood = Slowloris::start(s.http, 2000);
    s.wait_until("2,000 attackers connected", Duration::from_secs(30), || {
        flood.open() == 2000
    });
    let admitted = 2000.min(max_connections);
    // Most of them are admitted at any moment (the rest are being cut off and reopened).
    s.wait_until(
        "the flood to fill the server",
        Duration::from_secs(10),
        || open_on_server() >= admitted * 3 / 4,
    );

    let tricklers: Vec<_> = (0..3)
        .map(|_| {
            let http = s.http;
            thread::spawn(move || trickle(http))
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let (r, took) = update_http(&s, &tok, &format!("192.0.2.{}", 40 + i));
        assert_good(&r);
        slowest = slowest.max(took);
    }
    assert!(
        slowest < PROMPTLY,
        "an update under the flood took {slowest:?}"
    );
    assert!(open_on_server() <= max_connections);
    for t in tricklers {
        let closed_after = t
            .join()
            .expect("trickler")
            .expect("the trickling client was cut off");
        // Above the flood, only the head deadline (1 s from the first byte)
        // cuts it off; below it, eviction may come first.
        if max_connections > 2000 {
            assert!(
                closed_after >= Duration::from_millis(900),
                "cut off after {closed_after:?}"
            );
        }
        assert!(
            closed_after < Duration::from_millis(2500),
            "cut off after {closed_after:?}"
        );
    }
    eprintln!(
        "max_connections {max_connections}: slowest update {slowest:?}, {} attackers \
         reopened after the server cut them off",
        flood.reopened()
    );
    assert!(
        flood.reopened() > 0,
        "the server cut attackers off (head deadline or eviction)"
    );
    if max_connections < 2000 {
        assert!(
            s.log()
                .contains(&format!("connection limit ({max_connections}) reached")),
            "eviction is logged:\n{}",
            s.log()
        );
    }
    drop(flood);
    let (r, took) = update_http(&s, &tok, "192.0.2.50");
    assert_good(&r);
    assert!(took < PROMPTLY);
    assert_eq!(s.records(ALICE), ["A 192.0.2.50"]);
}

#[test]
fn slowloris_with_max_connections_above_the_flood() {
    slowloris_against_the_server(4096);
}

#[test]
fn slowloris_with_max_connections_below_the_flood() {
    slowloris_against_the_server(500);
}

/// SPEC 6: running out of file descriptors never stops the server. Under a hard
/// limit of 256 the configured 1024 connections cannot fit: the server lowers
/// the budget, says so, and a flood larger than the limit does not reach EMFILE.
#[test]
fn descriptor_limit_lowers_max_connections_and_a_flood_cannot_exhaust_it() {
    let _g = serial();
    raise_own_nofile();
    let (s, tok) = alice_with(Setup {
        wrapper: server_lines(&["prlimit", "--nofile=256:256"]),
        server: server_lines(&["max_connections = 1024", "request_head_timeout_secs = 30"]),
        no_ipv6: true,
        ..Setup::default()
    });
    // One descriptor per client, after 64 reserved and 3 for each of the
    // 8 × workers (4) pooled connections to tiny_http.
    let fits = 256 - 64 - 3 * 8 * 4;
    assert!(
        s.log()
            .contains(&format!("max_connections lowered from 1024 to {fits}")),
        "{}",
        s.log()
    );
    assert!(s.log().contains(&format!("at most {fits} connections")));

    // More idle connections than the server has descriptors.
    let mut flood = Vec::new();
    for _ in 0..400 {
        flood.push(TcpStream::connect(s.http).expect("connect (backlog)"));
    }
    let (r, took) = update_http(&s, &tok, "192.0.2.60");
    assert_good(&r);
    assert!(took < PROMPTLY, "update during the flood took {took:?}");
    drop(flood);

    let (r, took) = update_http(&s, &tok, "192.0.2.61");
    assert_good(&r);
    assert!(took < PROMPTLY, "update after the flood took {took:?}");
    let log = s.log();
    assert!(
        !log.contains("accepting on") && !log.contains("Too many open files"),
        "the budget keeps the process off its descriptor limit:\n{log}"
    );
    assert!(running(s.pid()));
}

/// `n` keep-alive connections that pipeline requests as fast as the server
/// takes them and never read an answer (E10). One thread writes to all of them,
/// non-blocking, for as long as the flood lives.
struct Pipeliners {
    stop: Arc<AtomicBool>,
    /// Bytes of requests sent in all.
    sent: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

/// An update without credentials: answered `401 badauth` by a worker, after
/// the whole way through the edge, the hop and tiny_http.
const PIPELINED: &[u8] =
    b"GET /nic/update?hostname=flood.dedyn.example&myipv4=192.0.2.9 HTTP/1.1\r\nHost: x\r\n\r\n";
/// Requests one pipelining connection sends at most.
const MAX_PIPELINED: usize = 100_000;

/// Sets the integer socket option `level`/`option` of `fd` to `value`.
fn set_option(fd: libc::c_int, level: libc::c_int, option: libc::c_int, value: libc::c_int) {
    // SAFETY: a valid socket, and a pointer and length that describe `value`.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// A connection to `addr` that looks like one from across an Ethernet link:
/// segments of at most 1460 bytes, and small buffers. (Loopback's 64 KiB
/// segments let the server's send buffer grow to 4 MiB, some 16,000 answers,
/// before a write to a client that does not read blocks; across a real link it
/// is a few hundred KiB.) The options take effect only if set before connecting.
fn connect_like_ethernet(addr: SocketAddr) -> TcpStream {
    let SocketAddr::V4(v4) = addr else {
        panic!("an IPv4 address, not {addr}")
    };
    // SAFETY: plain socket(2); the descriptor is owned by `sock` at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a new descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    set_option(fd, libc::IPPROTO_TCP, libc::TCP_MAXSEG, 1460);
    set_option(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, 16 * 1024);
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a pointer and length that describe `sa`.
    let rc = unsafe {
        libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
    TcpStream::from(sock)
}

impl Pipeliners {
    fn start(addr: SocketAddr, n: usize) -> Pipeliners {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let (t_stop, t_sent) = (stop.clone(), sent.clone());
        let conns: Vec<TcpStream> = (0..n)
            .map(|_| {
                let c = connect_like_ethernet(addr);
                c.set_nonblocking(true).expect("non-blocking");
                c
            })
            .collect();
        let thread = thread::spawn(move || {
            // Many requests per write, as a pipelining client sends them.
            let batch = PIPELINED.repeat(64);
            let mut at = vec![0usize; conns.len()];
            let mut sent = vec![0usize; conns.len()];
            // Safety net: the test stops us long before.
            let deadline = Instant::now() + Duration::from_secs(120);
            while !t_stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                for (i, mut c) in conns.iter().enumerate() {
                    if sent[i] >= MAX_PIPELINED * PIPELINED.len() {
                        continue;
                    }
                    // WouldBlock (full buffers) or a closed socket: no progress.
                    if let Ok(k) = c.write(&batch[at[i]..]) {
                        at[i] = (at[i] + k) % batch.len();
                        sent[i] += k;
                        t_sent.fetch_add(k, Ordering::Relaxed);
                    }
                }
                thread::sleep(Duration::from_millis(5));
            }
            // Dropping `conns` closes every socket.
        });
        Pipeliners {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// Requests sent in all (whole or in part).
    fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed).div_ceil(PIPELINED.len())
    }
}

impl Drop for Pipeliners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The server's edge threads that are blocked writing to a client socket, by
/// thread id (their wait channel in /proc: `wait_woken`, or
/// `sk_stream_wait_memory` on older kernels; the edge waits for everything
/// else in poll or on a lock).
fn edge_threads_writing(pid: u32) -> HashSet<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return HashSet::new();
    };
    tasks
        .flatten()
        .filter(|t| {
            let read = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap_or_default();
            read("comm").trim() == "edge-conn"
                && matches!(read("wchan").trim(), "wait_woken" | "sk_stream_wait_memory")
        })
        .map(|t| t.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Waits (at most `limit`) until at least `n` edge threads have been blocked
/// writing to their clients for `STUCK` without a break: their clients' unread
/// answers fill the buffers. (A write also waits a moment whenever the send
/// buffer is full and the client is still taking data; that is not it.)
fn wait_for_blocked_writers(s: &Server, n: usize, limit: Duration) {
    const STUCK: Duration = Duration::from_secs(1);
    let mut since: HashMap<String, Instant> = HashMap::new();
    s.wait_until(
        "edge threads blocked writing answers nobody reads",
        limit,
        || {
            let now = Instant::now();
            let writing = edge_threads_writing(s.pid());
            since.retain(|tid, _| writing.contains(tid));
            for tid in writing {
                since.entry(tid).or_insert(now);
            }
            since
                .values()
                .filter(|&&t| now.duration_since(t) >= STUCK)
                .count()
                >= n
        },
    );
}

/// Alice's update on a new connection, answered within `limit` or an error
/// saying how far it got.
fn update_within(s: &Server, tok: &str, ip: &str, limit: Duration) -> Result<Response, String> {
    let mut c = TcpStream::connect(s.http).map_err(|e| format!("connect: {e}"))?;
    c.set_read_timeout(Some(limit))
        .map_err(|e| format!("read timeout: {e}"))?;
    let auth = basic(ALICE, tok);
    write!(
        c,
        "GET /nic/update?hostname={ALICE}&myipv4={ip} HTTP/1.1\r\nHost: x\r\n\
         Authorization: {auth}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    c.read_to_end(&mut raw)
        .map_err(|e| format!("no answer within {limit:?} ({e})"))?;
    parse_response(&raw).ok_or_else(|| format!("unparsable: {:?}", String::from_utf8_lossy(&raw)))
}

/// Pooled connections to tiny_http with `workers = 1` (8 per worker).
const POOLED: usize = 8;
/// Clients that pipeline and do not read: twice the pooled connections.
const FLOOD: usize = 2 * POOLED;

/// SPEC 17 (E10): clients that pipeline requests and never read the answers
/// hold only their own connections. With more of them than there are pooled
/// connections to tiny_http, another client's update is still answered at
/// once: not after the edge's 10 s write timeout frees a pooled connection
/// that a blocked write to one of them was holding. (One worker, so that the
/// flood fills its buffers in seconds.)
#[test]
fn pipelining_clients_that_never_read_hold_only_their_own_connections() {
    let _g = serial();
    let (s, tok) = alice_with(Setup {
        server: server_lines(&["workers = 1"]),
        no_ipv6: true,
        ..Setup::default()
    });
    let flood = Pipeliners::start(s.http, FLOOD);
    // As many writes blocked as there are pooled connections: if a blocked
    // write held one, no pooled connection would be left.
    wait_for_blocked_writers(&s, POOLED, Duration::from_secs(60));
    let sent = flood.sent();
    for i in 0..5 {
        let ip = format!("192.0.2.{}", 90 + i);
        let started = Instant::now();
        if let Err(e) = update_within(&s, &tok, &ip, PROMPTLY).map(|r| assert_good(&r)) {
            panic!(
                "update {i} behind {FLOOD} clients that do not read: {e} ({:?})",
                started.elapsed()
            );
        }
    }
    eprintln!("{sent} requests pipelined by {FLOOD} clients that never read");
    drop(flood);
    assert_eq!(s.records(ALICE), ["A 192.0.2.94"]);
}

// ---- garbage ----------------------------------------------------------------

/// What the server did with one malformed request.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Status(u16),
    Closed,
}

/// Sends `bytes` on a new connection, half-closes, and reads until the server
/// closes (at most 5 s, else the test fails: the server hung on it).
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Outcome {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    // The server may answer and close before it has read everything: ignore
    // write errors, the answer (or the close) is what counts.
    let _ = c.write_all(bytes);
    let _ = c.shutdown(std::net::Shutdown::Write);
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "no answer and no close within 5 s for {:?}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                )
            }
            Err(_) => break, // reset
        }
    }
    match parse_response(&raw) {
        Some(r) => Outcome::Status(r.status),
        None => Outcome::Closed,
    }
}

/// xorshift64: reproducible random bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Between 1 and `max` random bytes.
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let n = 1 + self.next() % max;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Malformed request number `i` (of several kinds, in turn).
fn malformed(i: usize, rng: &mut Rng, tok: &str) -> Vec<u8> {
    let get = |target: &[u8], auth: &str| {
        let mut r = b"GET ".to_vec();
        r.extend_from_slice(target);
        r.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n");
        if !auth.is_empty() {
            r.extend_from_slice(format!("Authorization: {auth}\r\n").as_bytes());
        }
        r.extend_from_slice(b"\r\n");
        r
    };
    let alice = basic(ALICE, tok);
    match i % 10 {
        // Random bytes, with and without a head terminator.
        0 => rng.bytes(2000),
        1 => {
            let mut r = rng.bytes(500);
            r.extend_from_slice(b"\r\n\r\n");
            r
        }
        // A random target after a valid method.
        2 => {
            let mut r = b"GET /nic/update?".to_vec();
            r.extend(rng.bytes(300));
            r.extend_from_slice(b" HTTP/1.1\r\n\r\n");
            r
        }
        // Oversized head: one huge header.
        3 => format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(9000 + (rng.next() % 20_000) as usize)
        )
        .into_bytes(),
        // Basic with bad base64, with base64 of bytes that are not UTF-8, without a colon.
        4 => get(
            b"/nic/update?hostname=alice.dedyn.example",
            "Basic %%%not-base64!!",
        ),
        5 => get(b"/nic/update", "Basic //79/w=="),
        6 => get(b"/nic/update", "Basic YWxpY2U="),
        // Invalid UTF-8 and NUL in the query, escaped and raw, from the owner.
        7 => get(b"/nic/update?hostname=alice%ff%fe.dedyn.example", &alice),
        8 => get(b"/nic/update?hostname=alice%00.dedyn.example", &alice),
        _ => {
            let raw: &[u8] = if i % 20 == 9 {
                b"/nic/update?hostname=alice\xff.dedyn.example"
            } else {
                b"/nic/update?hostname=alice\x00.dedyn.example"
            };
            get(raw, &alice)
        }
    }
}

#[test]
fn garbage_gets_4xx_or_a_close_and_the_server_serves_on() {
    let _g = serial();
    let (s, tok) = alice_with(Setup {
        server: server_lines(&["request_head_timeout_secs = 2"]),
        no_ipv6: true,
        ..Setup::default()
    });
    const THREADS: usize = 8;
    const PER_THREAD: usize = 400;
    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (http, tok) = (s.http, tok.clone());
            thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1));
                let mut closed = 0;
                for i in 0..PER_THREAD {
                    let req = malformed(i, &mut rng, &tok);
                    match exchange(http, &req) {
                        Outcome::Status(code) => assert!(
                            (400..500).contains(&code),
                            "{code} for {:?}",
                            String::from_utf8_lossy(&req[..req.len().min(200)])
                        ),
                        Outcome::Closed => closed += 1,
                    }
                }
                closed
            })
        })
        .collect();
    let closed: usize = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    // A 100 KB query: refused at the edge.
    let huge = format!(
        "GET /nic/update?hostname={ALICE}&x={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    assert_eq!(exchange(s.http, huge.as_bytes()), Outcome::Status(431));
    eprintln!(
        "{} malformed requests in {:?}, {closed} closed without an answer",
        THREADS * PER_THREAD + 1,
        started.elapsed()
    );

    assert!(running(s.pid()), "the server survived:\n{}", s.log());
    assert!(!s.log().contains("panicked"), "{}", s.log());
    let (r, took) = update_http(&s, &tok, "192.0.2.70");
    assert_good(&r);
    assert!(took < PROMPTLY);
    assert_eq!(s.records(ALICE), ["A 192.0.2.70"]);
}

#[test]
fn sigterm_with_an_idle_keep_alive_client_stops_promptly() {
    let _g = serial();
    let (mut s, tok) = alice_with(Setup {
        no_ipv6: true,
        ..Setup::default()
    });
    assert_good(&update_http(&s, &tok, "192.0.2.80").0);
    // An idle keep-alive client does not hold the shutdown up.
    let mut idle = TcpStream::connect(s.http).expect("connect");
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    assert!(eventually(Duration::from_secs(2), || {
        let mut b = [0u8; 1];
        idle.set_read_timeout(Some(Duration::from_millis(50))).ok();
        matches!(idle.read(&mut b), Ok(1))
    }));
    let started = Instant::now();
    assert_eq!(s.stop(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

//! The internal hop between the edge and tiny_http (SPEC 13, issue "internal hop"):
//! no other user can reach tiny_http, no client can pose as another, and tiny_http's
//! threads are bounded by the edge's pool, not by the number of clients.
//!
//! The real binary over real sockets. The other-user test needs root (to run
//! `setpriv --reuid=nobody`), as the test command has in CI; without root it
//! says so loudly and skips.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::proc::require_root;
use crate::common::server::{parse_response, token, Server, Setup};

const ALICE: &str = "alice.dedyn.example";
const CHECKIP: &str = "checkip.dedyn.example";

fn server() -> Server {
    Server::start_with(Setup {
        server: vec![format!("checkip_hosts = [\"{CHECKIP}\"]")],
        rate_limit: vec![
            "dyndns_per_domain = \"\"".into(),
            "failed_auth_per_ip = \"\"".into(),
            "checkip_per_ip = \"\"".into(),
        ],
        ..Setup::default()
    })
}

/// The internal socket, from the server's start-up line.
fn internal_socket(s: &Server) -> PathBuf {
    let log = s.log();
    let line = log
        .lines()
        .find_map(|l| l.split("internal HTTP server on ").nth(1))
        .unwrap_or_else(|| panic!("no internal socket in the log:\n{log}"));
    PathBuf::from(line.trim())
}

/// `curl` to the internal socket, as `user` (None: as ourselves); (exit code, output).
fn curl_internal(socket: &PathBuf, user: Option<&str>, headers: &[&str]) -> (i32, String) {
    let mut cmd = match user {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={u}"),
                "--regid=nogroup",
                "--clear-groups",
                "curl",
            ]);
            c
        }
        None => Command::new("curl"),
    };
    cmd.args(["-sS", "-i", "--max-time", "5", "--unix-socket"])
        .arg(socket);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd
        .arg(format!("http://{CHECKIP}/"))
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// TCP ports process `pid` listens on (its listening sockets' inodes, found in
/// /proc/net/tcp and tcp6).
fn listening_tcp_ports(pid: u32) -> HashSet<u16> {
    let mut inodes = HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("fds") {
        let Ok(target) = std::fs::read_link(fd.expect("fd").path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
            inodes.insert(inode.to_string());
        }
    }
    let mut ports = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, state (0A = LISTEN), inode
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = f[1].rsplit(':').next().expect("port");
                ports.insert(u16::from_str_radix(port, 16).expect("hex port"));
            }
        }
    }
    ports
}

#[test]
fn tiny_http_listens_on_no_tcp_port_only_on_a_private_socket() {
    let s = server();
    let ports = listening_tcp_ports(s.pid());
    let configured: HashSet<u16> = std::iter::once(s.http)
        .chain(s.http6)
        .map(|a| a.port())
        .collect();
    assert_eq!(ports, configured, "only the public listeners are TCP");

    let socket = internal_socket(&s);
    let dir = socket.parent().expect("socket dir");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(dir).expect("socket dir exists");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o700,
        "{}",
        dir.display()
    );
    assert_eq!(
        meta.uid(),
        std::fs::metadata(format!("/proc/{}", s.pid()))
            .expect("proc")
            .uid(),
        "owned by the service user"
    );

    // The service's own user can connect (which is how the edge does), but a
    // request without the edge's identity, or with a forged one, is refused.
    for headers in [
        &[][..],
        &["X-Dedyn-Client: 00000000000000000000000000000000 203.0.113.7:1 https"][..],
    ] {
        let (code, out) = curl_internal(&socket, None, headers);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.starts_with("HTTP/1.1 403") && out.contains("connect through the public listener"),
            "{out}"
        );
        assert!(!out.contains("203.0.113.7"), "{out}");
    }

    // Stopped cleanly: the socket and its directory are gone.
    let mut s = s;
    assert_eq!(s.stop(), Some(0));
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn another_user_cannot_reach_the_internal_socket() {
    if !require_root(
        "another_user_cannot_reach_the_internal_socket",
        "to run a process as nobody",
    ) {
        return;
    }
    let s = server();
    let socket = internal_socket(&s);
    let before = s.log().lines().count();
    let (code, out) = curl_internal(
        &socket,
        Some("nobody"),
        &["X-Dedyn-Client: 00000000000000000000000000000000 203.0.113.7:1 https"],
    );
    assert_ne!(code, 0, "curl as nobody must not connect: {out}");
    assert!(!out.contains("HTTP/"), "nobody got an answer: {out}");
    assert!(
        out.contains("Permission denied") || out.contains("Couldn't connect"),
        "{out}"
    );
    // Nothing reached the service: no request line was logged.
    let log = s.log();
    let later: Vec<&str> = log.lines().skip(before).collect();
    assert!(
        !later.iter().any(|l| l.contains(" GET ")),
        "a request was logged: {later:?}"
    );
    // And as ourselves the very same command does reach it (the test can fail).
    let (code, out) = curl_internal(&socket, None, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
}

/// One raw request on a new connection to the public listener; the response.
fn raw(s: &Server, head: &str) -> crate::common::server::Response {
    let mut c = TcpStream::connect(s.http).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    c.write_all(head.as_bytes()).expect("send");
    let mut out = Vec::new();
    c.read_to_end(&mut out).expect("read");
    parse_response(&out).unwrap_or_else(|| panic!("{:?}", String::from_utf8_lossy(&out)))
}

#[test]
fn a_forged_identity_header_is_ignored_and_the_real_address_used() {
    let s = server();
    s.provision("alice@example.org", ALICE);
    // A token that works only from 203.0.113.0/24, which a forger claims to be.
    let subnet_token = s.cli_ok(&[
        "token",
        "add",
        "--owner",
        "alice@example.org",
        "--allowed-subnet",
        "203.0.113.0/24",
    ]);
    let forged = "203.0.113.7:1 https";
    let key = "0".repeat(32);
    for copies in [
        format!("X-Dedyn-Client: {key} {forged}\r\n"),
        format!("x-dedyn-client: {key} {forged}\r\nX-DEDYN-CLIENT: {key} {forged}\r\n"),
        format!("X-Dedyn-Client: {forged}\r\n"),
    ] {
        let r = raw(
            &s,
            &format!("GET / HTTP/1.1\r\nHost: {CHECKIP}\r\n{copies}Connection: close\r\n\r\n"),
        );
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "127.0.0.1"),
            "{copies:?}"
        );
        assert!(
            r.header("Strict-Transport-Security").is_none(),
            "plain HTTP stays plain HTTP"
        );

        let auth = token(subnet_token.trim());
        let r = raw(
            &s,
            &format!(
                "GET /?hostname={ALICE}&myipv4=192.0.2.1 HTTP/1.1\r\nHost: x\r\n\
                 Authorization: {auth}\r\n{copies}Connection: close\r\n\r\n"
            ),
        );
        assert_eq!(r.status, 401, "{copies:?}: {}", r.body);
    }
    assert_eq!(s.records(ALICE), Vec::<String>::new());
    // The log names the real client only.
    let log = s.log();
    assert!(log.contains("127.0.0.1 http GET 401"), "{log}");
    assert!(!log.contains("203.0.113.7"), "{log}");

    // A folded or space-before-colon copy is refused at the edge, not forwarded.
    for smuggled in [
        format!("A: b\r\n X-Dedyn-Client: {key} {forged}\r\n"),
        format!("X-Dedyn-Client : {key} {forged}\r\n"),
    ] {
        let r = raw(
            &s,
            &format!("GET / HTTP/1.1\r\nHost: {CHECKIP}\r\n{smuggled}\r\n"),
        );
        assert_eq!(r.status, 400, "{smuggled:?}");
    }
}

/// Threads of process `pid` by name.
fn threads(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect()
}

#[test]
fn tiny_http_threads_stay_bounded_by_the_pool_under_200_keep_alive_clients() {
    const CLIENTS: usize = 200;
    // workers = 4 in the harness's config: 8 × 4 pooled internal connections.
    const POOL: usize = 32;
    let s = server();
    let pid = s.pid();
    let ask = format!("GET / HTTP/1.1\r\nHost: {CHECKIP}\r\n\r\n");
    // One request first, so that the fixed threads are all there.
    let mut first = TcpStream::connect(s.http).expect("connect");
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    first.write_all(ask.as_bytes()).expect("send");
    read_one(&mut first);
    let not_edge = |names: &[String]| names.iter().filter(|n| *n != "edge-conn").count();
    let baseline = not_edge(&threads(pid));

    // 200 clients send at once and keep their connections open.
    let mut clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let c = TcpStream::connect(s.http).expect("connect");
            c.set_read_timeout(Some(Duration::from_secs(20)))
                .expect("timeout");
            c
        })
        .collect();
    for c in &mut clients {
        c.write_all(ask.as_bytes()).expect("send");
    }
    let started = Instant::now();
    for c in &mut clients {
        assert_eq!(read_one(c), "127.0.0.1");
    }
    // And once more on the same connections: still answered, still bounded.
    for c in &mut clients {
        c.write_all(ask.as_bytes()).expect("send");
    }
    for c in &mut clients {
        assert_eq!(read_one(c), "127.0.0.1");
    }
    let names = threads(pid);
    let edge = names.iter().filter(|n| *n == "edge-conn").count();
    assert!(
        edge >= CLIENTS,
        "the clients are connected: {edge} edge threads"
    );
    let others = not_edge(&names);
    assert!(
        others <= baseline + POOL,
        "tiny_http and the rest: {others} threads with {CLIENTS} clients, \
         {baseline} with one; the pool allows {POOL} more ({:?})",
        started.elapsed()
    );
}

/// One response's body (Content-Length framed) from a keep-alive connection.
fn read_one(c: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8];
    while !buf.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut byte).expect("response head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .expect("Content-Length");
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).expect("body");
    String::from_utf8_lossy(&body).into_owned()
}

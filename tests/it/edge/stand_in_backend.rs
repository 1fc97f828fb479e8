//! The network edge from outside (SPEC 6, 9): relaying, TLS, limits and timeouts,
//! against a tiny_http backend that reports the client the edge recorded for it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::edge::*;
use crate::common::proc::alone;
use dedyn_update::edge;

const HTTP: &[&str] = &["127.0.0.1:0"];

// ---- relaying ---------------------------------------------------------------

#[test]
fn plain_http_is_relayed_with_the_client_address_and_keeps_alive() {
    let _g = serial();
    let f = Fixture::start(settings(HTTP, &[], None));
    let mut c = connect(f.http());
    let me = c.local_addr().expect("local addr");
    let expected = format!("peer={me} tls=false body=0");
    for i in 0..3 {
        write!(c, "GET /?hostname=a&n={i} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
        let r = read_response(&mut c).expect("response on the same connection");
        assert_eq!((r.status, r.body.as_str()), (200, expected.as_str()));
    }
    // Pipelined: two requests in one write, two answers in order.
    c.write_all(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send pipelined");
    for _ in 0..2 {
        let r = read_response(&mut c).expect("pipelined response");
        assert_eq!(r.body, expected);
    }
    // HEAD: a head without a body, and the next response is still framed right.
    c.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send HEAD");
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut byte).expect("HEAD response");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
    assert_eq!(read_response(&mut c).expect("after HEAD").body, expected);

    drop(c);
    assert!(
        eventually(Duration::from_secs(3), || f.edge.open_connections() == 0),
        "the slot is released when the client leaves"
    );
}

#[test]
fn ipv6_client_is_reported_as_ipv6_next_to_ipv4() {
    let _g = serial();
    let f = Fixture::start(settings(&["127.0.0.1:0", "[::1]:0"], &[], None));
    let addrs = f.edge.local_addrs();
    assert_eq!(addrs.len(), 2);
    assert!(addrs[1].is_ipv6() && addrs[1].port() != 0);
    let mut c = connect(addrs[1]);
    let me = c.local_addr().expect("local addr");
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let r = read_response(&mut c).expect("response");
    assert_eq!(r.body, format!("peer={me} tls=false body=0"));
    assert!(r.body.starts_with("peer=[::1]:"));
}

#[test]
fn request_body_is_relayed_after_100_continue() {
    let _g = serial();
    let f = Fixture::start(settings(HTTP, &[], None));
    let mut c = connect(f.http());
    c.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .expect("send head");
    assert_eq!(read_response(&mut c).expect("interim").status, 100);
    c.write_all(b"hello").expect("send body");
    let r = read_response(&mut c).expect("final");
    assert_eq!(r.status, 200);
    assert!(r.body.ends_with("body=5"), "{}", r.body);
    // Only one interim response: the next bytes are the next response.
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut c).expect("next").status, 200);
}

#[test]
fn transfer_encoding_is_refused_with_501() {
    let _g = serial();
    let f = Fixture::start(settings(HTTP, &[], None));
    let mut c = connect(f.http());
    c.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        .expect("send");
    let r = read_response(&mut c).expect("answer");
    assert_eq!(r.status, 501);
    assert!(r.head.contains("Connection: close"));
}

#[test]
fn keep_alive_connection_closes_after_idle_timeout() {
    let _g = serial();
    let mut s = settings(HTTP, &[], None);
    s.idle_timeout = Duration::from_secs(1);
    let f = Fixture::start(s);
    let mut c = connect(f.http());
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut c).expect("response").status, 200);
    let idle_since = Instant::now();
    assert!(closed_within(&mut c, Duration::from_secs(3)));
    assert!(
        idle_since.elapsed() >= Duration::from_millis(900),
        "closed too early"
    );
}

// ---- HTTPS ------------------------------------------------------------------

#[test]
fn https_works_with_rsa_and_ecdsa_keys_in_every_pem_format() {
    let _g = serial();
    let pki = Pki::new();
    for (cert, key) in [
        ("rsa.pem", "rsa.key"),
        ("rsa.pem", "rsa1.key"),
        ("ec.pem", "ec.key"),
    ] {
        let (cert, key) = (pki.path(cert), pki.path(key));
        let f = Fixture::start(settings(&[], &["127.0.0.1:0"], Some((&cert, &key))));
        let url = format!("https://127.0.0.1:{}/", f.https().port());
        // Two URLs in one curl run reuse the connection: keep-alive over TLS.
        let (ok, out, err) = curl(&pki.path("ca.pem"), &[url.clone(), url]);
        assert!(ok, "{key:?}: curl failed: {err}");
        let bodies: Vec<&str> = out.split("peer=").filter(|s| !s.is_empty()).collect();
        assert_eq!(bodies.len(), 2, "{out}");
        assert_eq!(bodies[0], bodies[1], "same client port: one connection");
        assert!(
            bodies[0].starts_with("127.0.0.1:") && bodies[0].contains("tls=true"),
            "{out}"
        );
    }
}

#[test]
fn only_tls12_and_tls13_are_accepted() {
    let _g = serial();
    let pki = Pki::new();
    let (cert, key) = (pki.path("rsa.pem"), pki.path("rsa.key"));
    let f = Fixture::start(settings(&[], &["127.0.0.1:0"], Some((&cert, &key))));
    assert_only_tls12_and_tls13(f.https());
}

#[test]
fn rustsec_2024_0336_probe_does_not_spin() {
    // Alone in a process: the CPU time measured is the whole process's.
    if !alone(concat!(
        module_path!(),
        "::rustsec_2024_0336_probe_does_not_spin"
    )) {
        return;
    }
    let _g = serial();
    let pki = Pki::new();
    let (cert, key) = (pki.path("rsa.pem"), pki.path("rsa.key"));
    let f = Fixture::start(settings(&[], &["127.0.0.1:0"], Some((&cert, &key))));
    let mut probes = Vec::new();
    for _ in 0..20 {
        let mut p = connect(f.https());
        p.write_all(&client_hello()).expect("ClientHello");
        let mut first = [0u8; 1];
        p.read_exact(&mut first)
            .expect("the server answers the ClientHello");
        assert_eq!(
            first[0], 0x16,
            "a handshake record: the ClientHello was understood"
        );
        p.write_all(&CLOSE_NOTIFY).expect("close_notify");
        probes.push(p);
    }
    // Observation window with the probes' sockets still open.
    let cpu_before = cpu_time();
    thread::sleep(Duration::from_millis(1500));
    let used = cpu_time() - cpu_before;
    assert!(
        used < Duration::from_millis(250),
        "CPU used while idle: {used:?}"
    );
    for p in &mut probes {
        assert!(
            closed_within(p, Duration::from_secs(2)),
            "probe connection closed by the edge"
        );
    }
    let started = Instant::now();
    let url = format!("https://127.0.0.1:{}/", f.https().port());
    let (ok, out, err) = curl(&pki.path("ca.pem"), &[url]);
    assert!(ok && out.contains("tls=true"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn stalled_tls_handshake_is_cut_off() {
    let _g = serial();
    let pki = Pki::new();
    let (cert, key) = (pki.path("ec.pem"), pki.path("ec.key"));
    let mut s = settings(&[], &["127.0.0.1:0"], Some((&cert, &key)));
    s.handshake_timeout = Duration::from_secs(1);
    let f = Fixture::start(s);
    let mut c = connect(f.https());
    let hello = client_hello();
    c.write_all(&hello[..20]).expect("part of a ClientHello");
    let started = Instant::now();
    assert!(closed_within(&mut c, Duration::from_secs(3)));
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[test]
fn reload_tls_serves_the_new_certificate_and_keeps_the_old_on_errors() {
    let _g = serial();
    let pki = Pki::new();
    let (cert, key) = pki.live();
    let install = |c: &str, k: &str| pki.install(c, k);
    install("rsa.pem", "rsa.key");
    let f = Fixture::start(settings(&[], &["127.0.0.1:0"], Some((&cert, &key))));
    let rsa = file_fingerprint(&pki.path("rsa.pem"));
    let ec = file_fingerprint(&pki.path("ec.pem"));
    assert_eq!(served_fingerprint(f.https()), rsa);

    install("ec.pem", "ec.key");
    f.edge.reload_tls().expect("reload with a good pair");
    assert_eq!(served_fingerprint(f.https()), ec);

    std::fs::write(&cert, "not a certificate\n").expect("break cert");
    let e = f.edge.reload_tls().unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in {}",
            cert.display()
        )
    );
    assert_eq!(
        served_fingerprint(f.https()),
        ec,
        "old pair kept after a broken file"
    );

    install("rsa.pem", "ec.key");
    let err = f
        .edge
        .reload_tls()
        .expect_err("key does not match the certificate");
    assert!(err.to_string().contains("live-key.pem"), "{err}");
    assert_eq!(
        served_fingerprint(f.https()),
        ec,
        "old pair kept after a mismatched key"
    );
}

#[test]
fn start_fails_naming_the_bad_file_or_address() {
    let _g = serial();
    let backend = Backend::start();
    let missing = std::path::Path::new("/nonexistent/cert.pem");
    let s = settings(&[], &["127.0.0.1:0"], Some((missing, missing)));
    match edge::start(s, std::sync::Arc::clone(&backend.hop)) {
        Ok(_) => panic!("started without a certificate"),
        Err(e) => assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}"),
    }
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    match edge::start(
        settings(&[&addr], &[], None),
        std::sync::Arc::clone(&backend.hop),
    ) {
        Ok(_) => panic!("bound a port that is in use"),
        Err(e) => assert!(e.to_string().contains(&addr), "{e}"),
    }
}

/// Clients share a few pooled connections to tiny_http. A burst on a fresh
/// edge makes the pool grow to its bound at once: every client is answered
/// with its own address (tiny_http 0.12's thread pool can lose a connection
/// that arrives together with another, see `edge::backend`; then some client
/// here would wait for its read timeout).
#[test]
fn a_burst_of_clients_shares_a_bounded_pool_and_every_one_is_answered() {
    let _g = serial();
    for _ in 0..5 {
        let f = Fixture::start(settings(HTTP, &[], None));
        let mut clients: Vec<TcpStream> = (0..64).map(|_| connect(f.http())).collect();
        for c in &mut clients {
            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("send");
        }
        for c in &mut clients {
            let me = c.local_addr().expect("local addr");
            let r = read_response(c).expect("every client is answered");
            assert_eq!(r.body, format!("peer={me} tls=false body=0"));
        }
        let open = f.edge.internal_connections();
        assert!(
            (1..=BACKEND_CONNECTIONS).contains(&open),
            "{open} internal connections for 64 clients"
        );
    }
}

// ---- limits and timeouts ----------------------------------------------------

/// 2,000 connections that send half a request line and stop; a real request
/// must still be answered within 2 s (SPEC 6).
fn slowloris(max_connections: usize) {
    let _g = serial();
    edge::raise_nofile_limit();
    let mut s = settings(HTTP, &[], None);
    s.max_connections = max_connections;
    // Long enough that the attackers are all still there when the real client comes.
    s.head_timeout = Duration::from_secs(20);
    let f = Fixture::start(s);
    let mut attackers = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let mut a = TcpStream::connect(f.http()).expect("attacker connects");
        // Evicted attackers may see a reset; that is the point.
        let _ = a.write_all(b"GET /?hostname=a HT");
        attackers.push(a);
    }
    let admitted = 2000.min(max_connections);
    let evicted = 2000usize.saturating_sub(max_connections) as u64;
    assert!(
        eventually(Duration::from_secs(20), || {
            f.edge.open_connections() >= admitted && f.edge.evictions() >= evicted
        }),
        "attack in place: open {} evicted {}",
        f.edge.open_connections(),
        f.edge.evictions()
    );
    let (r, took) = get(f.http(), "/?hostname=real");
    assert_eq!(r.status, 200);
    assert!(took < Duration::from_secs(2), "answered in {took:?}");
    assert!(f.edge.open_connections() <= max_connections);
}

#[test]
fn slowloris_with_limit_above_the_flood() {
    slowloris(4096);
}

#[test]
fn slowloris_with_limit_below_the_flood() {
    slowloris(500);
}

#[test]
fn trickling_client_is_cut_off_by_head_timeout_from_its_first_byte() {
    let _g = serial();
    let mut s = settings(HTTP, &[], None);
    s.head_timeout = Duration::from_secs(1);
    let f = Fixture::start(s);
    let mut c = connect(f.http());
    c.set_read_timeout(Some(Duration::from_millis(150)))
        .expect("timeout");
    let started = Instant::now();
    let mut closed_after = None;
    let mut sink = [0u8; 512];
    // One byte every ~150 ms: the whole head would take ~7 s.
    for &b in b"GET /?hostname=trickle HTTP/1.1\r\nHost: x\r\n\r\n" {
        if c.write_all(&[b]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        match c.read(&mut sink) {
            Ok(0) => {
                closed_after = Some(started.elapsed());
                break;
            }
            // The 408 that precedes the close.
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed_after = Some(started.elapsed());
                break;
            }
        }
    }
    let closed_after = closed_after.expect("the trickling client was cut off");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_millis(2500),
        "cut off after {closed_after:?}"
    );
}

#[test]
fn connection_waiting_longest_is_evicted_first() {
    let _g = serial();
    let mut s = settings(HTTP, &[], None);
    s.max_connections = 3;
    s.head_timeout = Duration::from_secs(20);
    let f = Fixture::start(s);
    let mut idle = Vec::new();
    for n in 1..=3 {
        idle.push(connect(f.http()));
        assert!(eventually(Duration::from_secs(2), || f
            .edge
            .open_connections()
            == n));
    }
    let (r, took) = get(f.http(), "/");
    assert_eq!(r.status, 200);
    assert!(took < Duration::from_secs(2));
    assert!(
        closed_within(&mut idle[0], Duration::from_secs(2)),
        "oldest evicted"
    );
    assert!(
        !closed_within(&mut idle[1], Duration::from_millis(200)),
        "second kept"
    );
    assert!(
        !closed_within(&mut idle[2], Duration::from_millis(200)),
        "third kept"
    );
}

#[test]
fn busy_connections_are_not_evicted_new_clients_wait() {
    let _g = serial();
    let mut s = settings(HTTP, &[], None);
    s.max_connections = 1;
    let f = Fixture::start(s);
    let mut busy = connect(f.http());
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    assert!(
        eventually(Duration::from_secs(2), || f
            .backend
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
            == 1),
        "request in flight"
    );
    let http = f.http();
    let waiter = thread::spawn(move || get(http, "/"));
    let r = read_response(&mut busy).expect("the busy connection is answered, not evicted");
    assert_eq!(r.status, 200);
    let (r, took) = waiter.join().expect("waiter");
    assert_eq!(r.status, 200);
    assert!(took < Duration::from_secs(3), "waited {took:?}");
}

#[test]
fn oversized_head_gets_431_and_service_continues() {
    let _g = serial();
    let f = Fixture::start(settings(HTTP, &[], None));
    let mut c = connect(f.http());
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(10_000));
    let _ = c.write_all(big.as_bytes());
    let r = read_response(&mut c).expect("answer");
    assert_eq!(r.status, 431);
    assert!(r.head.contains("Content-Length:") && r.head.contains("Connection: close"));
    assert!(closed_within(&mut c, Duration::from_secs(2)));
    assert_eq!(get(f.http(), "/").0.status, 200);
}

#[test]
fn garbage_is_refused_or_closed_and_service_continues() {
    let _g = serial();
    let f = Fixture::start(settings(HTTP, &[], None));
    let mut c = connect(f.http());
    c.write_all(b"\x00\x01\x02 garbage \xff\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut c).expect("answer").status, 400);

    // A TLS ClientHello on the plain port never completes a head.
    let mut c = connect(f.http());
    c.write_all(&client_hello()).expect("send");
    assert!(closed_within(&mut c, Duration::from_secs(4)));

    let mut c = connect(f.http());
    c.write_all(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut c).expect("answer").status, 400);

    assert_eq!(get(f.http(), "/").0.status, 200);
}

#[test]
fn shutdown_stops_accepting_and_closes_idle_connections() {
    let _g = serial();
    let f = Fixture::start(settings(HTTP, &[], None));
    let addr = f.http();
    let mut idle = connect(addr);
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut idle).expect("response").status, 200);
    f.edge.shutdown();
    assert!(
        closed_within(&mut idle, Duration::from_secs(2)),
        "idle keep-alive closed"
    );
    assert!(f.edge.wait_closed(Duration::from_secs(2)));
    let e = TcpStream::connect(addr).expect_err("listener closed");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
}

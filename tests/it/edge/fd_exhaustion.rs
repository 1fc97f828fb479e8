//! Running out of file descriptors never stops the accept loop for good (SPEC 6).
//! Runs in a process of its own (`alone`), because it lowers the whole process's
//! RLIMIT_NOFILE and then uses up every descriptor, which the tests running
//! beside it in this program would feel.

use std::fs::File;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::common::edge::*;
use crate::common::proc::alone;
use dedyn_update::edge;

/// Sets this process's soft RLIMIT_NOFILE, keeping the hard limit.
fn set_soft_nofile(soft: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: the pointer describes `lim`, which outlives both calls.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = soft as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

#[test]
fn accept_loop_survives_running_out_of_file_descriptors() {
    if !alone(concat!(
        module_path!(),
        "::accept_loop_survives_running_out_of_file_descriptors"
    )) {
        return;
    }
    set_soft_nofile(256);
    let mut s = settings(&["127.0.0.1:0"], &[], None);
    // Far above what 256 descriptors can carry, as a misconfigured server would
    // be: the edge lowers it, so that it never runs the process (and the
    // tiny_http in it) out of descriptors by itself.
    s.max_connections = 1000;
    s.head_timeout = Duration::from_secs(30);
    let f = Fixture::start(s);
    // One descriptor per client, after 64 reserved and 3 per pooled internal connection.
    assert_eq!(f.edge.max_connections(), 256 - 64 - 3 * BACKEND_CONNECTIONS);
    let addr = f.http();
    // As in a running service, tiny_http is up and blocked in accept before any
    // flood. (Linux reserves accept's descriptor before blocking; a tiny_http
    // whose first accept meets EMFILE ends its accept loop for good, which is
    // why it must never face clients.)
    assert_eq!(get(addr, "/").0.status, 200);

    // A flood of idle connections until this process has no descriptor left.
    let mut flood = Vec::new();
    for _ in 0..400 {
        match TcpStream::connect(addr) {
            Ok(c) => flood.push(c),
            Err(_) => break,
        }
    }
    assert!(flood.len() < 400, "the flood exhausted the descriptors");

    // Make sure the edge's own accept fails: fill every free slot with
    // /dev/null, give one back for a client to connect with, and the edge must
    // accept that connection with no descriptor left. Retried, because a
    // connection the edge just evicted may free one in between.
    let mut fillers: Vec<File> = Vec::new();
    let mut waiting_clients = Vec::new();
    for _ in 0..20 {
        if f.edge.accept_errors() > 0 {
            break;
        }
        while fillers.len() < 10_000 {
            match File::open("/dev/null") {
                Ok(file) => fillers.push(file),
                Err(_) => break,
            }
        }
        // Usually the flood has taken everything and there is no filler to give back.
        if fillers.pop().is_none() && flood.pop().is_none() {
            break;
        }
        if let Ok(c) = TcpStream::connect(addr) {
            waiting_clients.push(c);
            eventually(Duration::from_millis(500), || f.edge.accept_errors() > 0);
        }
    }
    assert!(f.edge.accept_errors() > 0, "the edge saw EMFILE");

    // Give everything back: the edge recovers by itself, and a client that
    // connected while it was out of descriptors is served too.
    drop(fillers);
    drop(flood);
    if let Some(mut pending) = waiting_clients.pop() {
        pending
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        pending
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let r =
            read_response(&mut pending).expect("the client that waited through EMFILE is served");
        assert_eq!(r.status, 200);
    }
    let (r, took) = get(addr, "/");
    assert_eq!(r.status, 200);
    assert!(took < Duration::from_secs(2), "answered in {took:?}");

    // And the helper puts the limit back up.
    assert!(edge::raise_nofile_limit() > 256);
}

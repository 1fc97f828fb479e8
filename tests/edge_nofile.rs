//! Running out of file descriptors never stops the accept loop for good (SPEC 6).
//! A test binary of its own, because it lowers this whole process's RLIMIT_NOFILE.

mod common;

use std::fs::File;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;
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
    set_soft_nofile(256);
    let mut s = settings(&["127.0.0.1:0"], &[], None);
    // Far above what 256 descriptors can carry, as a misconfigured server would be.
    s.max_connections = 1000;
    s.head_timeout = Duration::from_secs(30);
    assert_eq!(edge::fit_max_connections(1000, 256), (256 - 64) / 3);
    let f = Fixture::start(s);
    let addr = f.http();

    // A flood of idle connections until this process has no descriptor left.
    let mut flood = Vec::new();
    for _ in 0..400 {
        match TcpStream::connect(addr) {
            Ok(c) => flood.push(c),
            Err(_) => break,
        }
    }
    assert!(flood.len() < 400, "the flood exhausted the descriptors");

    // Make sure the edge's own accept fails: fill every free slot, then give
    // slots back one at a time (fillers, else flood connections) until a client
    // gets one (the edge, retrying its accepts, may take the first ones). The client's connection completes in
    // the kernel, and accepting it needs a descriptor nobody has.
    let mut fillers: Vec<File> = Vec::new();
    for _ in 0..10_000 {
        match File::open("/dev/null") {
            Ok(file) => fillers.push(file),
            Err(_) => break,
        }
    }
    let mut pending = None;
    for _ in 0..1000 {
        // Usually the flood has taken everything already and there are no fillers.
        if fillers.pop().is_none() && flood.pop().is_none() {
            break;
        }
        if let Ok(c) = TcpStream::connect(addr) {
            pending = Some(c);
            break;
        }
    }
    let mut pending = pending.expect("a client while the edge is out of descriptors");
    assert!(
        eventually(Duration::from_secs(3), || f.edge.accept_errors() > 0),
        "the edge saw EMFILE"
    );

    // Give everything back: the edge recovers by itself.
    drop(fillers);
    drop(flood);
    pending
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    pending
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let r = read_response(&mut pending).expect("the client that waited through EMFILE is served");
    assert_eq!(r.status, 200);
    let (r, took) = get(addr, "/");
    assert_eq!(r.status, 200);
    assert!(took < Duration::from_secs(2), "answered in {took:?}");

    // And the helper puts the limit back up.
    assert!(edge::raise_nofile_limit() > 256);
}

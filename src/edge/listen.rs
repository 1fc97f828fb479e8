//! The public listeners and their accept loops: bind every configured address, admit
//! each client into the connection budget, and start its thread. Never stops on errors.
//!
//! An accept error (EMFILE, ENFILE, ENOBUFS, ...) is logged, waited out with a
//! short backoff and retried; a failed thread spawn drops that one client. Only
//! `EdgeHandle::shutdown` ends an accept loop.

use crate::os::sys;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::conn;
use super::shared::Shared;
use super::stream::ListenSocket;

/// Listen backlog. Under a flood this is where real clients wait (SPEC 9); the
/// kernel caps it at net.core.somaxconn.
const BACKLOG: i32 = 4096;
/// Connection threads only relay bytes and run rustls; the default 2 MiB stack
/// would reserve gigabytes of address space at a few thousand connections.
/// RSA and ECDSA handshakes pass the tests with 64 KiB even in debug builds;
/// 128 KiB keeps twice that as headroom.
pub(crate) const CONN_STACK_BYTES: usize = 128 * 1024;
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(100);
/// Accept errors are logged at most this often per listener during a storm.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// A bound public socket.
pub(crate) struct Listener {
    pub socket: Arc<ListenSocket>,
    /// The bound address of a TCP listener (`None`: a `unix:` one).
    pub addr: Option<SocketAddr>,
    pub tls: bool,
}

/// Binds `addr`; the error names the address, so the operator knows which entry
/// of `http_listen`/`https_listen` to fix.
pub(crate) fn bind(addr: SocketAddr, tls: bool) -> io::Result<Listener> {
    let scheme = if tls { "https_listen" } else { "http_listen" };
    let socket = sys::listen_tcp(addr, BACKLOG).map_err(|e| {
        io::Error::new(e.kind(), format!("cannot listen on {addr} ({scheme}): {e}"))
    })?;
    let actual = socket.local_addr()?;
    Ok(Listener {
        socket: Arc::new(ListenSocket::Tcp(socket)),
        addr: Some(actual),
        tls,
    })
}

/// Accepts clients on `listener` until the edge shuts down.
pub(crate) fn accept_loop(shared: Arc<Shared>, socket: Arc<ListenSocket>, tls: bool) {
    let addr = socket.name();
    let mut backoff = MIN_BACKOFF;
    let mut last_log: Option<Instant> = None;
    let mut unlogged = 0u64;
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let (stream, peer) = match socket.accept() {
            Ok(pair) => pair,
            Err(e) => {
                if shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
                match e.kind() {
                    // A signal, or a client that gave up while in the backlog:
                    // nothing is short, try again at once.
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => continue,
                    _ => {}
                }
                shared.accept_errors.fetch_add(1, Ordering::Relaxed);
                unlogged += 1;
                let now = Instant::now();
                if last_log.is_none_or(|t| now.duration_since(t) >= ERROR_LOG_INTERVAL) {
                    log::error!(
                        "accepting on {addr} failed ({unlogged} time(s) since last report): {e}; \
                         retrying (out of file descriptors? see max_connections and LimitNOFILE)"
                    );
                    last_log = Some(now);
                    unlogged = 0;
                }
                thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        let accepted = Instant::now();
        let stream = Arc::new(stream);
        // Blocks while every slot is serving a request: further clients wait in the backlog.
        let Some(slot) = shared.limits.admit(&stream, accepted) else {
            return;
        };
        let tls_config = if tls {
            match &shared.tls {
                Some(store) => Some(store.current()),
                None => continue,
            }
        } else {
            None
        };
        let conn_shared = Arc::clone(&shared);
        let who = peer.clone();
        let spawned = thread::Builder::new()
            .name("edge-conn".into())
            .stack_size(CONN_STACK_BYTES)
            .spawn(move || conn::run(conn_shared, stream, peer, tls_config, slot, accepted));
        if let Err(e) = spawned {
            // The closure (with stream and slot) is dropped: that client is closed.
            log::error!("cannot start a thread for the connection from {who}: {e}; closed it");
            thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

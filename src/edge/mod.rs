//! The public network edge: owns every socket the internet can reach, bounds
//! connections and time, terminates TLS, and relays admitted requests to tiny_http.
//!
//! tiny_http 0.12 spawns a timeout-less thread per connection and stops accepting
//! for good on the first accept error, so it only ever listens on a Unix socket in
//! a directory only the service user can open (`hop`). The edge relays requests
//! to it over a small pool of long-lived connections (`backend`) and attaches to
//! each request who the client really is, in a header no client can set.

mod backend;
mod conn;
mod forwarded;
mod hop;
mod http;
mod limits;
mod listen;
mod peer;
mod shared;
mod stream;
mod tls;

use crate::os::sys;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub use forwarded::{forwarded_client, NoClient, TrustedProxies};
pub use hop::{InternalHop, CLIENT_HEADER};
pub use limits::{
    fit_max_connections, raise_nofile_limit, FDS_PER_CONNECTION, FDS_PER_INTERNAL_CONNECTION,
    RESERVED_FDS,
};
pub use peer::{ConnInfo, Peer};
pub use shared::EdgeSettings;
use shared::Shared;
pub use tls::{load_server_config, TlsError};

/// Starts the edge: binds every address of `http_listen` and `https_listen`,
/// loads the TLS certificate if there are HTTPS listeners, and starts one
/// accept thread per listener. Each admitted client gets a thread of its own
/// (at most `max_connections`) that relays its requests to tiny_http over the
/// pooled connections of `hop`, each request with the client's identity.
///
/// `max_connections` is lowered (with a warning) to what the current soft
/// RLIMIT_NOFILE can carry besides the pool, see `fit_max_connections`; call
/// `raise_nofile_limit` first.
///
/// Fails, with the address or file named, if a bind or the certificate fails;
/// nothing is left listening then.
pub fn start(mut settings: EdgeSettings, hop: Arc<InternalHop>) -> io::Result<EdgeHandle> {
    match sys::nofile_limits() {
        Ok((soft, _)) => {
            settings.max_connections =
                fit_max_connections(settings.max_connections, soft, hop.connections())
        }
        Err(e) => {
            log::warn!("cannot read the open-file limit, max_connections left as configured: {e}")
        }
    }
    if settings.max_connections == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "max_connections must be at least 1",
        ));
    }
    let tls = if settings.https_listen.is_empty() {
        None
    } else {
        Some(tls::ReloadableTls::load(
            &settings.tls_cert,
            &settings.tls_key,
        )?)
    };
    let mut listeners = Vec::new();
    for &addr in &settings.http_listen {
        listeners.push(listen::bind(addr, false)?);
    }
    for &addr in &settings.https_listen {
        listeners.push(listen::bind(addr, true)?);
    }
    for path in &settings.http_unix {
        match stream::bind_unix(path, settings.unix_mode, &settings.unix_group) {
            Ok(socket) => listeners.push(listen::Listener {
                socket: Arc::new(socket),
                addr: None,
                tls: false,
            }),
            Err(e) => {
                remove_unix_files(&listeners);
                return Err(e);
            }
        }
    }

    let shared = Arc::new(Shared {
        limits: limits::Limits::new(settings.max_connections),
        settings,
        backends: backend::BackendPool::new(hop),
        tls,
        stopping: AtomicBool::new(false),
        accept_errors: AtomicU64::new(0),
    });
    let mut threads = Vec::new();
    for l in &listeners {
        let (for_loop, socket, is_tls) = (Arc::clone(&shared), Arc::clone(&l.socket), l.tls);
        let spawned = thread::Builder::new()
            .name("edge-accept".into())
            .spawn(move || listen::accept_loop(for_loop, socket, is_tls));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                shared.stopping.store(true, Ordering::SeqCst);
                for l in &listeners {
                    sys::wake_acceptor(&*l.socket);
                }
                remove_unix_files(&listeners);
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot start an accept thread: {e}"),
                ));
            }
        }
        let scheme = if l.tls { "https" } else { "http" };
        log::info!("listening on {scheme}://{}", l.socket.name());
    }
    Ok(EdgeHandle {
        shared,
        addrs: listeners
            .iter()
            .filter_map(|l| Some((l.addr?, l.tls)))
            .collect(),
        sockets: Mutex::new(listeners.into_iter().map(|l| l.socket).collect()),
        threads: Mutex::new(threads),
    })
}

/// The running edge. Dropping it shuts the edge down (see `shutdown`); keep it
/// for as long as the service runs.
pub struct EdgeHandle {
    shared: Arc<Shared>,
    /// Bound address and whether it speaks TLS, in configuration order.
    addrs: Vec<(SocketAddr, bool)>,
    /// Closed on shutdown, so clients are refused instead of piling up in a
    /// backlog nobody accepts from.
    sockets: Mutex<Vec<Arc<stream::ListenSocket>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl EdgeHandle {
    /// Re-reads `tls_cert` and `tls_key` (on SIGHUP). New connections use the
    /// new pair; open ones keep theirs. A pair that cannot be used is logged
    /// and returned as an error, and the old one stays in force.
    pub fn reload_tls(&self) -> io::Result<()> {
        let Some(store) = &self.shared.tls else {
            return Ok(());
        };
        match store.reload() {
            Ok(()) => {
                log::info!(
                    "reloaded TLS certificate {}",
                    self.shared.settings.tls_cert.display()
                );
                Ok(())
            }
            Err(e) => {
                log::error!("TLS reload failed, keeping the previous certificate: {e}");
                Err(e.into())
            }
        }
    }

    /// The connection budget in force (after fitting it to the descriptor limit).
    pub fn max_connections(&self) -> usize {
        self.shared.settings.max_connections
    }

    /// Client connections open now (admitted, not yet closed).
    pub fn open_connections(&self) -> usize {
        self.shared.limits.open()
    }

    /// Every bound address, HTTP first, in configuration order (with the real
    /// port where port 0 was configured).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.iter().map(|&(a, _)| a).collect()
    }

    /// The bound HTTP addresses.
    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        self.addrs
            .iter()
            .filter(|(_, tls)| !tls)
            .map(|&(a, _)| a)
            .collect()
    }

    /// The bound HTTPS addresses.
    pub fn https_addrs(&self) -> Vec<SocketAddr> {
        self.addrs
            .iter()
            .filter(|(_, tls)| *tls)
            .map(|&(a, _)| a)
            .collect()
    }

    /// Connections to tiny_http open now (idle in the pool or carrying a request).
    pub fn internal_connections(&self) -> usize {
        self.shared.backends.open()
    }

    /// Accept errors seen so far (EMFILE and friends), for monitoring and tests.
    pub fn accept_errors(&self) -> u64 {
        self.shared.accept_errors.load(Ordering::Relaxed)
    }

    /// Connections closed so far to make room for new clients.
    pub fn evictions(&self) -> u64 {
        self.shared.limits.evictions()
    }

    /// Stops accepting and closes the listeners' accept loops; closes
    /// connections waiting for a request. Requests being served finish, then
    /// their connections close. Idempotent.
    pub fn shutdown(&self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        self.shared.limits.close();
        let sockets = std::mem::take(&mut *self.sockets.lock().unwrap_or_else(|e| e.into_inner()));
        for s in &sockets {
            sys::wake_acceptor(&**s);
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        // A proxy finds no stale socket file; then, the accept threads having
        // dropped their handles, this closes the sockets.
        for s in &sockets {
            s.remove_file();
        }
        drop(sockets);
    }

    /// After `shutdown`: waits until every connection has closed, at most
    /// `timeout`. Returns whether they all did.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let closed = self.shared.limits.wait_empty(timeout);
        // No client is left to use the pooled connections to tiny_http.
        self.shared.backends.close();
        closed
    }
}

impl Drop for EdgeHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// After a failed start: the `unix:` socket files bound so far go again.
fn remove_unix_files(listeners: &[listen::Listener]) {
    for l in listeners {
        l.socket.remove_file();
    }
}

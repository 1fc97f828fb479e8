//! Who a connection and a request came from, as the public listener saw it.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where a connection came from, as the public listener saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client's address and port.
    Tcp(SocketAddr),
    /// A connection on the `unix:` listener at this path: no address of its
    /// own, the proxy's `X-Forwarded-For` says who the client is (SPEC 17).
    Unix(PathBuf),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Who a request came from, as the edge saw it (carried to the service in the
/// `X-Dedyn-Client` header, see `InternalHop`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The client (or proxy) as seen by the public listener.
    pub peer: Peer,
    /// Whether the client connected over TLS.
    pub tls: bool,
}

//! The public network edge: owns every socket the internet can reach, bounds
//! connections and time, terminates TLS, and relays admitted requests to tiny_http.
//!
//! tiny_http 0.12 spawns a timeout-less thread per connection and stops accepting
//! for good on the first accept error, so it only ever listens on an internal
//! loopback socket. The edge connects to that socket once per client connection and
//! records, keyed by the relay's local port, who the client really is.

mod cidr;
mod forwarded;
#[allow(dead_code)] // wired up by the relay in the next commit
mod http;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use cidr::{Cidr, CidrError};
pub use forwarded::forwarded_client;

/// What the handler needs to know about the client behind a relayed connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The client's address as seen by the public listener.
    pub peer: SocketAddr,
    /// Whether the client connected over TLS.
    pub tls: bool,
}

/// Relay local port → client. Filled by the edge before it forwards any byte,
/// emptied when the relay closes. A connection to the internal socket that is not
/// in this table did not come through the edge and is refused by the handler.
#[derive(Clone, Default)]
pub struct ConnTable(Arc<Mutex<HashMap<u16, ConnInfo>>>);

impl ConnTable {
    pub fn insert(&self, relay_port: u16, info: ConnInfo) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(relay_port, info);
    }
    pub fn remove(&self, relay_port: u16) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&relay_port);
    }
    pub fn lookup(&self, relay_port: u16) -> Option<ConnInfo> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&relay_port)
            .copied()
    }
}

/// Every bound of the edge, in one place (from `[server]` in the config).
#[derive(Clone, Debug)]
pub struct EdgeSettings {
    pub http_listen: Vec<SocketAddr>,
    pub https_listen: Vec<SocketAddr>,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub head_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_head_bytes: usize,
}


//! The edge's settings, and what its accept loops and connection threads share.

use super::{backend, limits, tls};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

/// Every bound of the edge, in one place (from `[server]` in the config).
#[derive(Clone, Debug)]
pub struct EdgeSettings {
    pub http_listen: Vec<SocketAddr>,
    /// `unix:` listeners of `http_listen`, with their file mode and group.
    pub http_unix: Vec<PathBuf>,
    pub unix_mode: u32,
    pub unix_group: String,
    pub https_listen: Vec<SocketAddr>,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub head_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_head_bytes: usize,
}

/// What the accept loops and connection threads share.
pub(crate) struct Shared {
    pub settings: EdgeSettings,
    pub backends: Arc<backend::BackendPool>,
    pub limits: Arc<limits::Limits>,
    /// Present when there are HTTPS listeners.
    pub tls: Option<tls::ReloadableTls>,
    pub stopping: AtomicBool,
    pub accept_errors: AtomicU64,
}

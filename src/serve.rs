//! `dedyn-update serve`: wires the layers together — store, publisher, worker pool,
//! edge, metrics — runs until SIGTERM/SIGINT and shuts down in order.

use crate::config::Config;
use crate::edge::{ConnTable, EdgeSettings};
use crate::http::{metrics, Service, WorkerPool};
use crate::os::signals;
use crate::publish::{self, LastUsed, PublishStats};
use crate::store::Store;
use log::{error, info, warn};
use std::sync::Arc;
use std::time::Duration;

/// The edge settings from `[server]`.
pub fn edge_settings(config: &Config) -> EdgeSettings {
    let s = &config.server;
    EdgeSettings {
        http_listen: s.http_listen.clone(),
        https_listen: s.https_listen.clone(),
        tls_cert: s.tls_cert.clone(),
        tls_key: s.tls_key.clone(),
        max_connections: s.max_connections,
        handshake_timeout: s.handshake_timeout,
        head_timeout: s.request_head_timeout,
        idle_timeout: s.keepalive_timeout,
        max_head_bytes: s.max_request_head_bytes,
    }
}

/// What runs behind the edge, with the handles `serve` stops in order.
type Running = (
    Arc<Service>,
    WorkerPool,
    publish::Publisher,
    std::thread::JoinHandle<()>,
    Arc<PublishStats>,
);

/// The store, the publisher (which publishes every zone once) and the worker pool.
fn start_service(
    config: &Arc<Config>,
    internal: Arc<tiny_http::Server>,
    table: ConnTable,
) -> Result<Running, String> {
    let db = config.database.clone();
    if !db.path.try_exists().unwrap_or(true) {
        log::info!(
            "creating a new database at {} ({})",
            db.path.display(),
            config.origin()
        );
    }
    let open = move || Store::open(&db.path, &db.synchronous).map_err(|e| e.to_string());
    let mut store = open()?;
    let zone_names: Vec<&str> = config.zones.iter().map(|z| z.name.as_str()).collect();
    store.ensure_zones(&zone_names).map_err(|e| e.to_string())?;
    let last_used = Arc::new(LastUsed::default());
    let stats = Arc::new(PublishStats::default());
    let (publisher, publisher_thread) =
        publish::spawn(config.clone(), store, last_used.clone(), stats.clone())
            .map_err(|e| format!("cannot start publisher: {e}"))?;
    let service = Arc::new(Service::new(
        config.clone(),
        table,
        publisher.clone(),
        last_used,
    ));
    let pool = WorkerPool::start(config.server.workers, internal, service.clone(), open)?;
    Ok((service, pool, publisher, publisher_thread, stats))
}

/// Run until SIGTERM/SIGINT, then finish in-flight requests, publish what is
/// pending and return. SIGHUP reloads the TLS certificate and key.
pub fn serve(config: Config) -> Result<(), String> {
    signals::block();
    // Before any socket: the edge sizes max_connections to fit the limit it finds.
    let nofile = crate::edge::raise_nofile_limit();
    log::debug!("file descriptor limit: {nofile}");
    let config = Arc::new(config);

    // tiny_http only ever listens on loopback; the edge owns the public sockets.
    let internal = tiny_http::Server::http("127.0.0.1:0")
        .map_err(|e| format!("cannot start the internal HTTP server: {e}"))?;
    let internal_addr = internal
        .server_addr()
        .to_ip()
        .ok_or_else(|| "internal HTTP server has no IP address".to_string())?;
    let internal = Arc::new(internal);

    // The listeners and the certificate first: a start that fails on them
    // touches nothing (no database, no zone file, no reload command; SPEC 13).
    // Requests that arrive before the workers run wait in tiny_http's queue.
    let table = ConnTable::default();
    let edge = Arc::new(
        crate::edge::start(edge_settings(&config), internal_addr, table.clone())
            .map_err(|e| e.to_string())?,
    );
    let started = start_service(&config, internal, table);
    let (service, pool, publisher, publisher_thread, stats) = match started {
        Ok(s) => s,
        Err(e) => {
            edge.shutdown();
            return Err(e);
        }
    };
    if let Some(addr) = config.server.metrics_listen {
        let e = edge.clone();
        metrics::spawn(
            addr,
            metrics::Sources {
                counters: service.counters.clone(),
                publish: stats,
                open_connections: Box::new(move || e.open_connections()),
            },
        )?;
    }
    info!(
        "dedyn-update {} serving with {} workers, at most {} connections",
        env!("CARGO_PKG_VERSION"),
        config.server.workers,
        edge.max_connections()
    );

    while signals::wait() == signals::Signal::Reload {
        info!("SIGHUP: reloading TLS certificate and key");
        match edge.reload_tls() {
            Ok(()) => info!("TLS certificate and key reloaded"),
            Err(e) => error!("TLS reload failed, keeping the old certificate: {e}"),
        }
    }
    info!("stopping: finishing in-flight requests");
    edge.shutdown();
    if !edge.wait_closed(Duration::from_secs(10)) {
        warn!("some connections were still open after 10 s; closing them");
    }
    pool.stop();
    publisher.shutdown();
    let _ = publisher_thread.join();
    info!("stopped");
    Ok(())
}

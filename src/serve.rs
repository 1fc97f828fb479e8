//! `dedyn-update serve`: wires the layers together — store, publisher, worker pool,
//! edge, metrics — runs until SIGTERM/SIGINT and shuts down in order.

use crate::config::settings::Config;
use crate::dnsupdate::intake::DnsService;
use crate::dnsupdate::listen::{self as dns_listen, Bounds};
use crate::dnsupdate::stats::DnsStats;
use crate::edge::{EdgeSettings, InternalHop};
use crate::events::{self, EventStats, Events};
use crate::http::{metrics, Service};
use crate::os::private_dir::PrivateDir;
use crate::os::serve_lock::{self, ServeLock};
use crate::os::signals;
use crate::publish::feed::{OpenFeed, ZoneFeed};
use crate::publish::state::PublishStats;
use crate::publish::{self, LastUsed};
use crate::store::{Store, WriteGroup};
use crate::update::ledger::Ledger;
use crate::workers::{Services, WorkerPool};
use log::{error, info, warn};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The edge settings from `[server]`.
pub fn edge_settings(config: &Config) -> EdgeSettings {
    let s = &config.server;
    EdgeSettings {
        http_listen: s.http_listen.clone(),
        http_unix: s.http_unix.clone(),
        unix_mode: s.unix_mode,
        unix_group: s.unix_group.clone(),
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

/// The DNS UPDATE listeners' bounds: the edge's, from `[server]` (SPEC 14).
pub fn dns_bounds(config: &Config) -> Bounds {
    let s = &config.server;
    Bounds {
        max_connections: s.max_connections,
        idle_timeout: s.keepalive_timeout,
        message_timeout: s.request_head_timeout,
        max_message_bytes: s.max_request_head_bytes,
    }
}

/// What runs behind the edge, with the handles `serve` stops in order.
struct Running {
    service: Arc<Service>,
    pool: WorkerPool,
    publisher: publish::Publisher,
    publisher_thread: std::thread::JoinHandle<()>,
    stats: Arc<PublishStats>,
    events: Events,
    event_stats: Arc<EventStats>,
    serve_lock: Option<ServeLock>,
}

/// The store, the publisher (which publishes every zone once) and the worker pool.
/// `String` error, like `serve`'s: the sentence `main` prints before exit 1,
/// gathered from every layer's own error and never matched on.
fn start_service(
    config: &Arc<Config>,
    internal: Arc<tiny_http::Server>,
    hop: Arc<InternalHop>,
) -> Result<Running, String> {
    // SPEC 16: an old primary whose replica location a standby took over
    // must not serve as a second writer.
    let promoted = crate::store::promoted_and_not_served_since(&config.database.path);
    crate::standby::refuse_if_fenced(config, promoted).map_err(|e| e.to_string())?;
    let db = config.database.clone();
    if publish::is_new_database(&db.path) {
        publish::refuse_to_empty_published_zones(config).map_err(|e| e.to_string())?;
        log::info!(
            "creating a new database at {} ({})",
            db.path.display(),
            config.origin()
        );
    }
    // Every thread gets its own connection, seen through the port it needs.
    let open = move || Store::open_serving(&db.path, &db.synchronous);
    let mut store = open().map_err(|e| e.to_string())?;
    let open_feed = open.clone();
    let open_feed: Arc<OpenFeed> =
        Arc::new(move || Ok(Box::new(open_feed()?) as Box<dyn ZoneFeed + Send>));
    let events_store = open().map_err(|e| e.to_string())?;
    // The workers' writes share one connection and commit together when they
    // queue (group commit, store/group.rs).
    let group = Arc::new(
        WriteGroup::open(&config.database.path, &config.database.synchronous)
            .map_err(|e| e.to_string())?,
    );
    let open_ledger = move || {
        let mut store = open()?;
        store.join(group.clone());
        Ok(Box::new(store) as Box<dyn Ledger + Send>)
    };
    // SPEC 17: `check` tells by this lock that we hold the listeners.
    let serve_lock = ServeLock::hold(&config.database.path)
        .map_err(|e| {
            warn!(
                "cannot lock {}: {e}; `check` will not know that this serve runs",
                serve_lock::path_for(&config.database.path).display()
            )
        })
        .ok();
    let zone_names: Vec<&str> = config.zones.iter().map(|z| z.name.as_str()).collect();
    store.ensure_zones(&zone_names).map_err(|e| e.to_string())?;
    let last_used = Arc::new(LastUsed::default());
    let stats = Arc::new(PublishStats::default());
    let (publisher, publisher_thread) = publish::spawn(
        config.clone(),
        Box::new(store),
        open_feed,
        last_used.clone(),
        stats.clone(),
    )
    .map_err(|e| format!("cannot start publisher: {e}"))?;
    let service = Arc::new(Service::new(
        config.clone(),
        hop,
        publisher.clone(),
        last_used.clone(),
    ));
    // SPEC 14: the same rate limiters, counted together with HTTP.
    let dns = (!config.dns_update.listen.is_empty()).then(|| {
        Arc::new(DnsService::new(
            config.clone(),
            publisher.clone(),
            last_used,
            service.dyndns_limiter.clone(),
            service.acme_limiter.clone(),
            service.failed_auth_limiter.clone(),
        ))
    });
    let services = Services {
        http: service.clone(),
        dns,
    };
    let pool = WorkerPool::start(config.server.workers, internal, services, open_ledger)
        .map_err(|e| e.to_string())?;
    // SPEC 15: its own thread and connection, so that no event command ever
    // holds up an update.
    let event_stats = Arc::new(EventStats::default());
    let events = events::spawn(
        config.events.clone(),
        config.history.clone(),
        Box::new(events_store),
        event_stats.clone(),
    )
    .map_err(|e| format!("cannot start the events thread: {e}"))?;
    Ok(Running {
        service,
        pool,
        publisher,
        publisher_thread,
        stats,
        events,
        event_stats,
        serve_lock,
    })
}

/// Run until SIGTERM/SIGINT, then finish in-flight requests, publish what is
/// pending and return. SIGHUP reloads the TLS certificate and key.
/// `String` error: the top of the program, a sentence for the operator (each
/// layer's typed error is phrased into it where it meets serve).
pub fn serve(config: Config) -> Result<(), String> {
    signals::block();
    // Before any socket: the edge sizes max_connections to fit the limit it finds.
    let nofile = crate::edge::raise_nofile_limit();
    log::debug!("file descriptor limit: {nofile}");
    let config = Arc::new(config);

    // tiny_http listens only on a Unix socket in a directory only our user can
    // open; the edge owns the public sockets and pools its connections to it.
    let socket_dir = PrivateDir::create(&runtime_base(), "dedyn-update")
        .map_err(|e| format!("cannot create the internal socket's directory: {e}"))?;
    let socket = socket_dir.path().join("http.sock");
    let internal = tiny_http::Server::http_unix(&socket).map_err(|e| {
        format!(
            "cannot start the internal HTTP server on {}: {e}",
            socket.display()
        )
    })?;
    info!("internal HTTP server on {}", socket.display());
    let internal = Arc::new(internal);
    let hop = Arc::new(
        InternalHop::new(socket, internal_connections(config.server.workers))
            .map_err(|e| format!("cannot start the internal HTTP server: {e}"))?,
    );

    if let Some(problem) = config.server.loopback_trust_problem() {
        warn!("{problem}");
    }
    // The listeners and the certificate first: a start that fails on them
    // touches nothing (no database, no zone file, no reload command; SPEC 13,
    // 17: every listener, the metrics one too). Requests that arrive before
    // the workers run wait in tiny_http's queue.
    let metrics_listener = config
        .server
        .metrics_listen
        .map(metrics::bind)
        .transpose()
        .map_err(|e| e.to_string())?;
    let dns_bound = dns_listen::bind(&config.dns_update.listen).map_err(|e| e.to_string())?;
    let edge = Arc::new(
        crate::edge::start(edge_settings(&config), hop.clone()).map_err(|e| e.to_string())?,
    );
    let started = start_service(&config, internal, hop);
    let Running {
        service,
        pool,
        publisher,
        publisher_thread,
        stats,
        events,
        event_stats,
        serve_lock,
    } = match started {
        Ok(s) => s,
        Err(e) => {
            edge.shutdown();
            return Err(e);
        }
    };
    let dns_stats = Arc::new(DnsStats::default());
    let dns_listeners =
        match dns_bound.start(dns_bounds(&config), pool.dns_submitter(), dns_stats.clone()) {
            Ok(l) => l,
            Err(e) => {
                edge.shutdown();
                pool.stop();
                publisher.shutdown();
                let _ = publisher_thread.join();
                return Err(e.to_string());
            }
        };
    // SPEC 16: a standby's copy tells a dead primary from an idle one.
    let db = &config.database;
    let heartbeat = match Store::open_serving(&db.path, &db.synchronous)
        .map_err(|e| format!("heartbeat: {e}"))
        .and_then(|s| {
            crate::standby::HeartbeatThread::spawn(Box::new(s)).map_err(|e| e.to_string())
        }) {
        Ok(h) => Some(h),
        Err(e) => {
            error!("{e}");
            None
        }
    };
    if let Some(listener) = metrics_listener {
        let e = edge.clone();
        metrics::spawn(
            listener,
            metrics::Sources {
                counters: service.counters.clone(),
                publish: stats,
                events: event_stats,
                open_connections: Box::new(move || e.open_connections()),
                // The DNS intake's counters, rendered by its own room: http/
                // and dnsupdate/ stay beside each other, neither imports the other.
                more: Box::new(move || dns_stats.render()),
            },
        )
        .map_err(|e| e.to_string())?;
    }
    info!(
        "dedyn-update {} serving with {} workers, at most {} connections",
        env!("CARGO_PKG_VERSION"),
        config.server.workers,
        edge.max_connections()
    );
    // Type=notify: `systemctl start` returns now, so that a command run right
    // after it finds the database and the listeners.
    if let Err(e) = crate::os::notify::ready() {
        warn!("could not tell systemd the service is ready (NOTIFY_SOCKET): {e}");
    }

    while signals::wait() == signals::Signal::Reload {
        info!("SIGHUP: reloading TLS certificate and key");
        match edge.reload_tls() {
            Ok(()) => info!("TLS certificate and key reloaded"),
            Err(e) => error!("TLS reload failed, keeping the old certificate: {e}"),
        }
    }
    info!("stopping: finishing in-flight requests");
    // From now on reloads get reload_timeout_secs in all (SPEC 17).
    publisher.stopping();
    edge.shutdown();
    // Every listener stops submitting before the workers finish the queue.
    if !dns_listeners.stop(Duration::from_secs(10)) {
        warn!("some DNS UPDATE TCP connections were still open after 10 s; closed them");
    }
    if !edge.wait_closed(Duration::from_secs(10)) {
        warn!("some connections were still open after 10 s; closing them");
    }
    pool.stop();
    if let Some(h) = heartbeat {
        h.stop();
    }
    publisher.shutdown();
    let _ = publisher_thread.join();
    events.stop();
    drop(socket_dir);
    drop(serve_lock);
    info!("stopped");
    Ok(())
}

/// Pooled connections from the edge to tiny_http: eight per worker. Each carries
/// one request at a time, so with fewer the edge threads queue for a connection
/// and every request pays a hand-off between them (measured with two per worker
/// on 2 cores: S1 p99 about 40 ms against 10-30 ms with eight); more only adds
/// tiny_http threads. Bounded either way, whatever the number of clients.
fn internal_connections(workers: usize) -> usize {
    8 * workers.max(1)
}

/// Where the internal socket's private directory goes: systemd's
/// `RuntimeDirectory` when the unit has one, else the temporary directory
/// (private to the service under the unit's `PrivateTmp=yes`). Both have short
/// paths, as a Unix socket's path must (at most 107 bytes).
fn runtime_base() -> PathBuf {
    std::env::var_os("RUNTIME_DIRECTORY")
        .and_then(|dirs| {
            // systemd lists several directories separated by ':'.
            dirs.to_str()
                .and_then(|d| d.split(':').next())
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(std::env::temp_dir)
}

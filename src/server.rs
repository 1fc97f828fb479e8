//! The update service: the internal tiny_http server, the fixed worker pool, and the
//! request handler that turns a request into pipeline steps, a write and a response.

use crate::config::Config;
use crate::edge::forwarded_client;
use crate::edge::{ConnInfo, ConnTable, EdgeSettings};
use crate::net::cidr::{mask, Cidr};
use crate::publish::{self, LastUsed, PublishStats, Publisher};
use crate::ratelimit::Limiter;
use crate::store::{now_unix, Applied, Store, StoreError};
use crate::update::{self, address::Family, Refusal, ZonePolicy};
use log::{error, info, warn};
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Limiter keys are bounded: a flood from many addresses evicts old keys.
const LIMITER_CAPACITY: usize = 100_000;

impl ZonePolicy for Config {
    fn is_dynamic(&self, zone: &str) -> bool {
        self.zone(zone).is_some_and(|z| z.dynamic)
    }
    fn guard_fallback(&self) -> &[Cidr] {
        &self.dns.guard_fallback
    }
    fn blocked_subnets(&self) -> &[Cidr] {
        &self.server.blocked_subnets
    }
}

/// Request counters (served by `crate::metrics`).
#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub requests_by_status: crate::metrics::RequestStats,
    pub updates_applied: AtomicU64,
    pub updates_unchanged: AtomicU64,
    pub rate_limited: AtomicU64,
    pub failed_auth: AtomicU64,
}

/// Everything the workers share.
pub struct Service {
    pub config: Arc<Config>,
    pub table: ConnTable,
    pub publisher: Publisher,
    pub last_used: Arc<LastUsed>,
    pub dyndns_limiter: Limiter<i64>,
    pub failed_auth_limiter: Limiter<IpAddr>,
    pub checkip_limiter: Limiter<IpAddr>,
    pub counters: Arc<Counters>,
}

/// A response before it goes on the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn refusal(r: &Refusal) -> Reply {
        let mut headers = Vec::new();
        match r {
            Refusal::BadAuth { .. } => headers.push((
                "WWW-Authenticate",
                "Basic realm=\"dedyn-update\"".to_string(),
            )),
            Refusal::MethodNotAllowed => headers.push(("Allow", "GET, HEAD".to_string())),
            Refusal::RateLimited(d) => {
                headers.push(("Retry-After", update::retry_after_secs(*d).to_string()))
            }
            _ => {}
        }
        Reply {
            status: r.status(),
            body: r.body(),
            headers,
        }
    }
}

/// The key failed authentications are counted under: the address, or its /64.
fn auth_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(_) => mask(ip, 64),
        v4 => v4,
    }
}

fn update_result(applied: &Applied) -> String {
    let mut parts = Vec::with_capacity(applied.outcomes.len() * 2);
    for (name, out) in &applied.outcomes {
        for f in Family::BOTH {
            parts.push(format!("{name} {} {}", f.rtype(), out[f as usize].as_str()));
        }
    }
    parts.join(";")
}

fn zone_serial(applied: &Applied) -> Option<String> {
    match applied.serials.as_slice() {
        [] => None,
        [(_, s)] => Some(s.to_string()),
        many => Some(
            many.iter()
                .map(|(z, s)| format!("{z} {s}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

/// The inputs of one request, independent of tiny_http.
pub struct Incoming<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub host: Option<&'a str>,
    pub authorization: Option<&'a str>,
    /// The client: the connection's peer, or the forwarded address when the
    /// peer is a trusted proxy.
    pub client: IpAddr,
    pub conn: ConnInfo,
}

/// All `X-Forwarded-For` lines of a request joined in order: a proxy may append
/// its own line after the client's (HAProxy does), and only the last hops are
/// its word.
pub fn forwarded_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let lines: Vec<&str> = lines.into_iter().collect();
    (!lines.is_empty()).then(|| lines.join(","))
}

impl Service {
    pub fn new(
        config: Arc<Config>,
        table: ConnTable,
        publisher: Publisher,
        last_used: Arc<LastUsed>,
    ) -> Service {
        let rl = &config.rate_limit;
        Service {
            dyndns_limiter: Limiter::new(rl.dyndns_per_domain.clone(), LIMITER_CAPACITY),
            failed_auth_limiter: Limiter::new(rl.failed_auth_per_ip.clone(), LIMITER_CAPACITY),
            checkip_limiter: Limiter::new(rl.checkip_per_ip.clone(), LIMITER_CAPACITY),
            config,
            table,
            publisher,
            last_used,
            counters: Arc::default(),
        }
    }

    /// Handle one request; returns the reply and a log summary (never a secret).
    pub fn process(&self, store: &mut Store, rq: &Incoming) -> (Reply, String) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let client = rq.client;
        let now = Instant::now();
        if let Some(host) = rq.host {
            let h = host
                .rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                .map_or(host, |(h, _)| h);
            let h = h.trim_end_matches('.').to_ascii_lowercase();
            if self.config.server.checkip_hosts.contains(&h) {
                return self.checkip(client, now);
            }
        }
        let req = update::Request::from_target(
            rq.method,
            rq.target,
            rq.authorization,
            client,
            rq.conn.tls,
        );
        if let Err(r) = update::check_path_and_method(req.method, req.path) {
            return (Reply::refusal(&r), r.to_string());
        }
        let key = auth_key(client);
        if let Some(wait) = self.failed_auth_limiter.blocked(&key, now) {
            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            let r = Refusal::RateLimited(wait);
            return (
                Reply::refusal(&r),
                format!("locked out after failed authentications: {r}"),
            );
        }
        let plan = match update::plan(&req, store, self.config.as_ref(), now_unix()) {
            Ok(p) => p,
            Err(r) => {
                if let Refusal::BadAuth {
                    counted: true,
                    reason,
                } = &r
                {
                    self.counters.failed_auth.fetch_add(1, Ordering::Relaxed);
                    // fail2ban: failregex = failed authentication from <HOST>
                    warn!("failed authentication from {client}: {reason}");
                    self.failed_auth_limiter.hit(&key, now);
                    if let Some(wait) = self.failed_auth_limiter.blocked(&key, now) {
                        warn!(
                            "locking out {key} for {} s: too many failed authentications",
                            update::retry_after_secs(wait)
                        );
                    }
                }
                return (Reply::refusal(&r), r.to_string());
            }
        };
        let names: Vec<&str> = plan.names.iter().map(|n| n.name.as_str()).collect();
        // All of the request's domains are counted, or none: a refused request
        // must not use up the budget of the domains that had room.
        if let Err(wait) = self.dyndns_limiter.check_and_hit_all(&plan.domains(), now) {
            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            let r = Refusal::RateLimited(wait);
            return (Reply::refusal(&r), format!("{} {r}", names.join(",")));
        }
        let applied = match store.apply(&plan.names, plan.token_id, plan.owner) {
            Ok(a) => a,
            Err(StoreError::Revoked) => {
                let r = Refusal::BadAuth {
                    counted: false,
                    reason: "token revoked during the update".into(),
                };
                return (Reply::refusal(&r), r.to_string());
            }
            Err(StoreError::Gone(d)) => {
                let r = Refusal::NoHost(format!("{d} was removed during the update"));
                return (Reply::refusal(&r), r.to_string());
            }
            Err(e) => {
                error!("update of {} failed: {e}", names.join(","));
                let r = Refusal::Database(e.to_string());
                return (Reply::refusal(&r), r.to_string());
            }
        };
        self.last_used.note(plan.token_id);
        let result = update_result(&applied);
        let mut headers = vec![("X-Update-Result", result.clone())];
        if let Some(serial) = zone_serial(&applied) {
            headers.push(("X-Zone-Serial", serial));
            self.counters
                .updates_applied
                .fetch_add(1, Ordering::Relaxed);
            self.publisher.changed();
        } else {
            self.counters
                .updates_unchanged
                .fetch_add(1, Ordering::Relaxed);
        }
        (
            Reply {
                status: 200,
                body: "good".into(),
                headers,
            },
            result,
        )
    }

    fn checkip(&self, client: IpAddr, now: Instant) -> (Reply, String) {
        if let Err(wait) = self.checkip_limiter.check_and_hit(&auth_key(client), now) {
            let r = Refusal::RateLimited(wait);
            return (Reply::refusal(&r), format!("checkip {r}"));
        }
        (
            Reply {
                status: 200,
                body: client.to_string(),
                headers: vec![],
            },
            "checkip".into(),
        )
    }

    /// Answer one tiny_http request (a panic here must not reach the worker loop).
    pub fn handle(&self, store: &mut Store, rq: tiny_http::Request) {
        let started = Instant::now();
        let header = |name: &str| {
            rq.headers()
                .iter()
                .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                .map(|h| h.value.as_str())
        };
        let relay_port = rq.remote_addr().map(|a| a.port());
        let Some(conn) = relay_port.and_then(|p| self.table.lookup(p)) else {
            // Not relayed by the edge: someone on this host talking to the internal socket.
            let _ = rq.respond(
                tiny_http::Response::from_string("connect through the public listener\n")
                    .with_status_code(403),
            );
            return;
        };
        let method = rq.method().as_str().to_string();
        let forwarded = forwarded_lines(
            rq.headers()
                .iter()
                .filter(|h| h.field.equiv("X-Forwarded-For"))
                .map(|h| h.value.as_str()),
        );
        let client = forwarded_client(
            conn.peer.ip(),
            forwarded.as_deref(),
            &self.config.server.trusted_proxies,
        );
        let incoming = Incoming {
            method: &method,
            target: rq.url(),
            host: header("Host"),
            authorization: header("Authorization"),
            client,
            conn,
        };
        let (reply, summary) = self.process(store, &incoming);
        let status = reply.status;
        info!(
            "{client} {} {} {} {summary} ({} us)",
            if conn.tls { "https" } else { "http" },
            method,
            reply.status,
            started.elapsed().as_micros()
        );
        let mut response =
            tiny_http::Response::from_data(reply.body.into_bytes()).with_status_code(reply.status);
        let mut add = |name: &str, value: &str| {
            if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                response.add_header(h);
            }
        };
        add("Content-Type", "text/plain");
        add("Cache-Control", "no-store");
        if conn.tls {
            add(
                "Strict-Transport-Security",
                &format!("max-age={}", self.config.server.hsts_max_age),
            );
        }
        for (k, v) in &reply.headers {
            add(k, v);
        }
        // Not `rq.respond`: tiny_http answers a request's `TE: chunked` with a chunked
        // body and no Content-Length, which ddclient up to 3.10 cannot read (SPEC 4.4).
        // Printing without the request's headers keeps every response Content-Length.
        let version = rq.http_version().clone();
        let head = *rq.method() == tiny_http::Method::Head;
        let mut writer = rq.into_writer();
        let sent = response
            .raw_print(&mut writer, version, &[], head, None)
            .and_then(|()| writer.flush());
        if let Err(e) = sent {
            log::debug!("client went away before the response: {e}");
        }
        self.counters
            .requests_by_status
            .observe(status, started.elapsed());
    }
}

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

/// `dedyn-update serve`: run until SIGTERM/SIGINT, then finish in-flight requests,
/// publish what is pending and return.
pub fn serve(config: Config) -> Result<(), String> {
    crate::os::signals::block();
    // Before any socket: the edge sizes max_connections to fit the limit it finds.
    let nofile = crate::edge::raise_nofile_limit();
    log::debug!("file descriptor limit: {nofile}");
    let config = Arc::new(config);
    let db = &config.database;
    let mut store = Store::open(&db.path, &db.synchronous).map_err(|e| e.to_string())?;
    let zone_names: Vec<&str> = config.zones.iter().map(|z| z.name.as_str()).collect();
    store.ensure_zones(&zone_names).map_err(|e| e.to_string())?;

    // tiny_http only ever listens on loopback; the edge owns the public sockets.
    let internal = tiny_http::Server::http("127.0.0.1:0")
        .map_err(|e| format!("cannot start the internal HTTP server: {e}"))?;
    let internal_addr = internal
        .server_addr()
        .to_ip()
        .ok_or_else(|| "internal HTTP server has no IP address".to_string())?;
    let internal = Arc::new(internal);

    let last_used = Arc::new(LastUsed::default());
    let stats = Arc::new(PublishStats::default());
    let (publisher, publisher_thread) =
        publish::spawn(config.clone(), store, last_used.clone(), stats.clone())
            .map_err(|e| format!("cannot start publisher: {e}"))?;
    let table = ConnTable::default();
    let service = Arc::new(Service::new(
        config.clone(),
        table.clone(),
        publisher.clone(),
        last_used,
    ));
    let stopping = Arc::new(AtomicBool::new(false));

    let mut workers = Vec::new();
    for i in 0..config.server.workers {
        let mut store = Store::open(&db.path, &db.synchronous).map_err(|e| e.to_string())?;
        let (internal, service, stopping) = (internal.clone(), service.clone(), stopping.clone());
        let w = std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || loop {
                match internal.recv_timeout(Duration::from_millis(200)) {
                    Ok(Some(rq)) => {
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            service.handle(&mut store, rq)
                        }));
                        if r.is_err() {
                            error!("a request handler panicked; the worker goes on");
                        }
                    }
                    Ok(None) if stopping.load(Ordering::SeqCst) => return,
                    Ok(None) => {}
                    Err(e) => {
                        error!("receiving a request failed: {e}");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            })
            .map_err(|e| format!("cannot start worker: {e}"))?;
        workers.push(w);
    }

    let edge = Arc::new(
        crate::edge::start(edge_settings(&config), internal_addr, table)
            .map_err(|e| e.to_string())?,
    );
    if let Some(addr) = config.server.metrics_listen {
        let e = edge.clone();
        crate::metrics::spawn(
            addr,
            crate::metrics::Sources {
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

    while crate::os::signals::wait() == crate::os::signals::Signal::Reload {
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
    stopping.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.join();
    }
    publisher.shutdown();
    let _ = publisher_thread.join();
    info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn failed_auth_counts_ipv6_by_64() {
        assert_eq!(auth_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(auth_key(ip("192.0.2.9")), ip("192.0.2.9"));
    }
}

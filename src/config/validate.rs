//! Validation of the file as written (`raw`) into the typed `settings`: every
//! section checked and every problem named with its key, not only the first.

use super::error::Problem;
use super::paths;
use super::raw::{
    RawConfig, RawDatabase, RawDns, RawDnsUpdate, RawEvents, RawHistory, RawLimits, RawRateLimit,
    RawServer, RawStandby, RawZone,
};
use super::settings::{
    Config, Database, Dns, DnsUpdate, Events, History, RateLimit, Server, Standby, Zone,
};
use crate::edge::TrustedProxies;
use crate::net::cidr::Cidr;
use crate::net::name;
use crate::ratelimit::Limits;
use crate::update::bounds::Bounds;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_ZONE: &str = "dedyn.example";

/// The problems one load has found so far: every check runs and adds its
/// own; a value that is unusable comes back as `None`, so that only the
/// checks that need it are skipped.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, problem: impl Into<Problem>) {
        self.0.push(problem.into());
    }

    fn count(&self) -> usize {
        self.0.len()
    }

    /// The value, or `None` with its problem noted.
    fn one<T>(&mut self, r: Result<T, Problem>) -> Option<T> {
        r.map_err(|e| self.push(e)).ok()
    }

    /// Every entry of a list through `f`: all the values, or `None` with the
    /// problem of each bad entry noted (not only the first).
    fn every<V, T>(
        &mut self,
        values: &[V],
        mut f: impl FnMut(&V) -> Result<T, Problem>,
    ) -> Option<Vec<T>> {
        let before = self.count();
        let out: Vec<T> = values.iter().filter_map(|v| self.one(f(v))).collect();
        (self.count() == before).then_some(out)
    }
}

fn listen_addr(key: &str, v: &str) -> Result<SocketAddr, Problem> {
    v.parse().map_err(|_| {
        format!("{key}: '{v}' is not an address:port (e.g. 127.0.0.1:8080 or [::]:443)").into()
    })
}

/// `http_listen`: `ADDR:PORT` entries, and `unix:/PATH` ones apart.
fn http_listeners(values: &[String], p: &mut Problems) -> Option<(Vec<SocketAddr>, Vec<PathBuf>)> {
    let key = "server.http_listen";
    let mut unix = Vec::new();
    let mut tcp = Vec::new();
    let before = p.count();
    for v in values {
        let entry = match v.strip_prefix("unix:") {
            Some(path) => unix_path(key, v, path).and_then(|path| {
                if unix.contains(&path) {
                    return Err(format!("{key}: '{v}' is listed twice").into());
                }
                unix.push(path);
                Ok(())
            }),
            None => listen_addr(key, v).map(|a| tcp.push(a)),
        };
        p.one(entry);
    }
    (p.count() == before).then_some((tcp, unix))
}

/// The path of a `unix:` entry: absolute, printable ASCII without spaces (it
/// travels in the edge's identity header), short enough for a socket address.
fn unix_path(key: &str, entry: &str, path: &str) -> Result<PathBuf, Problem> {
    if !path.starts_with('/') {
        return Err(format!(
            "{key}: '{entry}': the socket path must be absolute (e.g. unix:/run/dedyn-update/http.sock)"
        ).into());
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{key}: '{entry}': the socket path may hold only printable ASCII without spaces"
        )
        .into());
    }
    // sun_path holds 108 bytes with the NUL.
    if path.len() > 107 {
        return Err(format!("{key}: '{entry}': the socket path is longer than 107 bytes").into());
    }
    Ok(PathBuf::from(path))
}

/// `trusted_proxies`: CIDRs, and `unix:/PATH` entries that must each name a
/// `unix:` listener of `http_listen`; every such listener must be named (its
/// connections have no address but the proxy's `X-Forwarded-For`).
/// `http_unix` is `None` when `http_listen` is unusable: the checks against
/// it are skipped, the entries' own syntax is still checked.
fn trusted_proxies(
    values: &[String],
    http_unix: Option<&[PathBuf]>,
    allow_local_users: bool,
    p: &mut Problems,
) -> Option<TrustedProxies> {
    let key = "server.trusted_proxies";
    let mut trusted = TrustedProxies {
        allow_local_users,
        ..TrustedProxies::default()
    };
    let before = p.count();
    for v in values {
        let entry = match v.strip_prefix("unix:") {
            Some(path) => unix_path(key, v, path).and_then(|path| {
                if http_unix.is_some_and(|listeners| !listeners.contains(&path)) {
                    return Err(format!(
                        "{key}: '{v}' is not a listener: add it to server.http_listen"
                    )
                    .into());
                }
                trusted.unix.push(path);
                Ok(())
            }),
            None => cidr(key, v).map(|c| trusted.nets.push(c)),
        };
        p.one(entry);
    }
    if p.count() != before {
        // A listener may be missing only because its entry here was misspelt.
        return None;
    }
    for l in http_unix.unwrap_or_default() {
        if !trusted.unix.contains(l) {
            p.push(format!(
                "server.http_listen: 'unix:{0}' is not in {key}: its connections have no client \
                 address but the proxy's X-Forwarded-For; add \"unix:{0}\" to {key}",
                l.display()
            ));
        }
    }
    (p.count() == before).then_some(trusted)
}

/// `unix_mode`: octal permission bits, e.g. "0660".
fn unix_mode(v: &str) -> Result<u32, Problem> {
    u32::from_str_radix(v.strip_prefix("0o").unwrap_or(v), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| {
            format!("server.unix_mode = '{v}': not an octal file mode (e.g. \"0660\")").into()
        })
}

fn cidr(key: &str, v: &str) -> Result<Cidr, Problem> {
    v.parse().map_err(|e| format!("{key}: {e}").into())
}

fn cidrs(key: &str, values: &[String], p: &mut Problems) -> Option<Vec<Cidr>> {
    p.every(values, |v| cidr(key, v))
}

fn positive(key: &str, v: i64, max: i64) -> Result<usize, Problem> {
    if v < 1 || v > max {
        return Err(format!("{key} = {v}: must be between 1 and {max}").into());
    }
    Ok(v as usize)
}

fn seconds(key: &str, v: f64) -> Result<Duration, Problem> {
    if !(v > 0.0 && v <= 86_400.0) {
        return Err(format!("{key} = {v}: must be more than 0 and at most 86400 seconds").into());
    }
    Ok(Duration::from_secs_f64(v))
}

/// Absolute DNS name with trailing dot, lower-case (for SOA/NS fields).
fn absolute_name(key: &str, v: &str) -> Result<String, Problem> {
    let n = name::normalize(v);
    if name::check_syntax(&n).is_err() || n.starts_with('*') {
        return Err(format!("{key}: '{v}' is not a valid DNS name").into());
    }
    Ok(format!("{n}."))
}

/// Every section checked, every problem found in any of them (SPEC 3: each
/// names its key); the configuration only when there is none.
/// `files` gets the paths of the values that are usable, for the check that no
/// two are one file (which needs them resolved first).
pub(super) fn validate(
    raw: RawConfig,
    path: Option<&Path>,
    files: &mut paths::Files,
) -> Result<Config, Vec<Problem>> {
    let mut p = Problems::default();
    if !raw.database.path.is_empty() {
        files.database(Path::new(&raw.database.path));
    }
    let tls = (
        PathBuf::from(&raw.server.tls_cert),
        PathBuf::from(&raw.server.tls_key),
    );
    let server = validate_server(raw.server, &mut p);
    let database = validate_database(raw.database, &mut p);
    let dns = validate_dns(raw.dns, &mut p);
    let dns_update = validate_dns_update(
        raw.dns_update,
        dns.as_ref().and_then(|d| d.verify_server),
        &mut p,
    );
    let zones = validate_zones(raw.zone, &mut p, files);
    files.tls(&tls.0, &tls.1);
    let rate_limit = validate_rate_limit(raw.rate_limit, &mut p);
    let limits = validate_limits(raw.limits, &mut p);
    let standby = validate_standby(raw.standby, &mut p);
    let history = validate_history(raw.history, &mut p);
    let events = validate_events(raw.events, &mut p);
    match (
        (server, database, dns, dns_update, zones),
        (rate_limit, limits, standby, history, events),
    ) {
        (
            (Some(server), Some(database), Some(dns), Some(dns_update), Some(zones)),
            (Some(rate_limit), Some(limits), Some(standby), Some(history), Some(events)),
        ) if p.0.is_empty() => Ok(Config {
            source: path.map(Path::to_path_buf),
            server,
            database,
            dns,
            dns_update,
            zones,
            rate_limit,
            limits,
            standby,
            history,
            events,
        }),
        _ => {
            debug_assert!(!p.0.is_empty(), "a section refused without naming why");
            Err(p.0)
        }
    }
}

/// `[server]`: listeners, TLS files, the pool, the edge's bounds.
fn validate_server(s: RawServer, p: &mut Problems) -> Option<Server> {
    let before = p.count();
    let listeners = http_listeners(&s.http_listen, p);
    let https_listen = p.every(&s.https_listen, |v| {
        if v.starts_with("unix:") {
            return Err(format!(
                "server.https_listen: '{v}': a unix: listener is for a proxy that terminates TLS; put it in http_listen"
            ).into());
        }
        listen_addr("server.https_listen", v)
    });
    let trusted_proxies = trusted_proxies(
        &s.trusted_proxies,
        listeners.as_ref().map(|(_, unix)| unix.as_slice()),
        s.trusted_proxies_allow_local_users,
        p,
    );
    let unix_mode = p.one(unix_mode(&s.unix_mode));
    let workers = p.one(positive("server.workers", s.workers, 1024));
    let max_connections = p.one(positive(
        "server.max_connections",
        s.max_connections,
        1_000_000,
    ));
    let hsts_max_age = p.one(
        u64::try_from(s.hsts_max_age)
            .map_err(|_| Problem::from("server.hsts_max_age: must not be negative")),
    );
    let handshake_timeout = p.one(seconds(
        "server.handshake_timeout_secs",
        s.handshake_timeout_secs,
    ));
    let request_head_timeout = p.one(seconds(
        "server.request_head_timeout_secs",
        s.request_head_timeout_secs,
    ));
    let keepalive_timeout = p.one(seconds(
        "server.keepalive_timeout_secs",
        s.keepalive_timeout_secs,
    ));
    let max_request_head_bytes = p.one(positive(
        "server.max_request_head_bytes",
        s.max_request_head_bytes,
        1 << 20,
    ));
    if max_request_head_bytes.is_some_and(|b| b < 256) {
        p.push("server.max_request_head_bytes: must be at least 256");
    }
    let blocked_subnets = cidrs("server.blocked_subnets", &s.blocked_subnets, p);
    let metrics_listen = match s.metrics_listen.as_str() {
        "" => Some(None),
        v => p.one(v.parse().map(Some).map_err(|_| {
            format!("server.metrics_listen: '{v}' is not an address:port (e.g. 127.0.0.1:9153)")
                .into()
        })),
    };
    if let (Some((tcp, unix)), Some(https)) = (&listeners, &https_listen) {
        if tcp.is_empty() && unix.is_empty() && https.is_empty() {
            p.push("server: http_listen and https_listen are both empty: nothing to serve on");
        }
    }
    if p.count() != before {
        return None;
    }
    let (http_listen, http_unix) = listeners?;
    Some(Server {
        http_listen,
        unix_mode: unix_mode?,
        unix_group: s.unix_group.clone(),
        http_unix,
        https_listen: https_listen?,
        tls_cert: PathBuf::from(&s.tls_cert),
        tls_key: PathBuf::from(&s.tls_key),
        workers: workers?,
        max_connections: max_connections?,
        trusted_proxies: trusted_proxies?,
        hsts_max_age: hsts_max_age?,
        handshake_timeout: handshake_timeout?,
        request_head_timeout: request_head_timeout?,
        keepalive_timeout: keepalive_timeout?,
        max_request_head_bytes: max_request_head_bytes?,
        checkip_hosts: s
            .checkip_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        blocked_subnets: blocked_subnets?,
        metrics_listen: metrics_listen?,
    })
}

/// `[database]`.
fn validate_database(db: RawDatabase, p: &mut Problems) -> Option<Database> {
    let synchronous = db.synchronous.to_ascii_uppercase();
    let before = p.count();
    if synchronous != "NORMAL" && synchronous != "FULL" {
        p.push(format!(
            "database.synchronous = '{}': must be \"normal\" or \"full\"",
            db.synchronous
        ));
    }
    if db.path.is_empty() {
        p.push("database.path: must not be empty");
    }
    (p.count() == before).then(|| Database {
        path: PathBuf::from(&db.path),
        synchronous,
    })
}

/// `[dns]`: TTL, reload command, batching, guard ranges, the verifying server.
fn validate_dns(d: RawDns, p: &mut Problems) -> Option<Dns> {
    let ttl = p.one(
        u32::try_from(d.ttl)
            .ok()
            .filter(|t| *t <= 2_147_483_647)
            .ok_or_else(|| format!("dns.ttl = {}: must be between 0 and 2147483647", d.ttl).into()),
    );
    let publish_delay_ms = p.one(
        u64::try_from(d.publish_delay_ms)
            .ok()
            .filter(|v| *v <= 60_000)
            .ok_or_else(|| {
                format!(
                    "dns.publish_delay_ms = {}: must be between 0 and 60000",
                    d.publish_delay_ms
                )
                .into()
            }),
    );
    let verify_server = if d.verify_server.is_empty() {
        Some(None)
    } else {
        p.one(d.verify_server.parse().map(Some).map_err(|_| {
            format!(
                "dns.verify_server: '{}' is not an address:port",
                d.verify_server
            )
            .into()
        }))
    };
    let reload_timeout = p.one(seconds("dns.reload_timeout_secs", d.reload_timeout_secs));
    let guard_fallback = cidrs("dns.guard_fallback", &d.guard_fallback, p);
    let ttl_bound = |key: &str, v: i64| {
        u32::try_from(v)
            .ok()
            .filter(|t| *t <= 2_147_483_647)
            .ok_or_else(|| {
                Problem::from(format!("dns.{key} = {v}: must be between 0 and 2147483647"))
            })
    };
    let min_ttl = p.one(ttl_bound("min_ttl", d.min_ttl));
    let max_ttl = p.one(ttl_bound("max_ttl", d.max_ttl));
    if let (Some(lo), Some(hi)) = (min_ttl, max_ttl) {
        if lo > hi {
            p.push(format!(
                "dns.min_ttl = {lo} is above dns.max_ttl = {hi}: no TTL could be set"
            ));
        }
    }
    Some(Dns {
        ttl: ttl?,
        reload_command: d.reload_command,
        publish_delay: Duration::from_millis(publish_delay_ms?),
        reload_timeout: reload_timeout?,
        guard_fallback: guard_fallback?,
        verify_server: verify_server?,
        min_ttl: min_ttl?,
        max_ttl: max_ttl?,
    })
}

/// `[dns_update]`: its listeners, never where the local nameserver
/// (`dns.verify_server`) listens unless `allow_nameserver_address` says so
/// (SPEC 14): the two would take turns answering the nameserver's queries.
fn validate_dns_update(
    d: RawDnsUpdate,
    verify_server: Option<SocketAddr>,
    p: &mut Problems,
) -> Option<DnsUpdate> {
    let key = "dns_update.listen";
    let listen = p.every(&d.listen, |v| {
        let a = listen_addr(key, v)?;
        match verify_server {
            Some(ns) if !d.allow_nameserver_address && overlaps(a, ns) => Err(format!(
                "{key}: '{v}' is where the local nameserver listens (dns.verify_server = \"{ns}\"): \
                 use another port (e.g. 5353), or set dns_update.allow_nameserver_address = true \
                 if that nameserver does not take this address"
            )
            .into()),
            _ => Ok(a),
        }
    })?;
    for (i, a) in listen.iter().enumerate() {
        if listen[..i].contains(a) {
            p.push(format!("{key}: '{a}' is listed twice"));
            return None;
        }
    }
    Some(DnsUpdate { listen })
}

/// Whether a listener on `a` would take packets meant for `b`: the same port,
/// and the same address or a wildcard of the same family (v6 sockets are
/// IPV6_V6ONLY).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// `[[zone]]`: names, files, NS and hostmaster; the built-in zone when none is
/// given. Every zone is checked; a zone whose name is unusable skips only the
/// checks that need the name (the duplicate, the defaults derived from it).
fn validate_zones(
    raw_zones: Option<Vec<RawZone>>,
    p: &mut Problems,
    paths: &mut paths::Files,
) -> Option<Vec<Zone>> {
    let raw_zones = raw_zones.unwrap_or_else(|| {
        vec![RawZone {
            name: DEFAULT_ZONE.into(),
            file: None,
            dynamic: true,
            nameservers: None,
            hostmaster: None,
            include: String::new(),
        }]
    });
    let before = p.count();
    if raw_zones.is_empty() {
        p.push("zone: at least one [[zone]] is needed");
    }
    // Names and files seen so far, also of zones refused for another reason.
    let mut names: Vec<String> = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut zones: Vec<Zone> = Vec::new();
    for (i, z) in raw_zones.into_iter().enumerate() {
        let key = format!("zone[{i}]");
        let zone_before = p.count();
        let name = name::normalize(&z.name);
        let name_ok =
            !(name::check_syntax(&name).is_err() || name.starts_with('*') || !name.contains('.'));
        if !name_ok {
            p.push(format!(
                "{key}.name: '{}' is not a valid zone name (e.g. dedyn.example)",
                z.name
            ));
        } else if names.contains(&name) {
            p.push(format!("{key}.name: zone '{name}' is configured twice"));
        } else {
            names.push(name.clone());
        }
        let file = match z.file {
            Some(f) => Some(PathBuf::from(f)),
            None => name_ok.then(|| PathBuf::from(format!("data/zones/{name}.zone"))),
        };
        // The file for the check that no two paths are one file: not one
        // already named as a problem here.
        let mut usable = None;
        if let Some(file) = &file {
            if file.as_os_str().is_empty() || dir_like(file) {
                p.push(format!(
                    "{key}.file: '{}' is not a file path (e.g. \"/var/lib/dedyn-update/zones/{name}.zone\")",
                    file.display()
                ));
            } else if files.contains(file) {
                p.push(format!(
                    "{key}.file: '{}' is used by two zones",
                    file.display()
                ));
            } else {
                files.push(file.clone());
                usable = Some(file.as_path());
            }
        }
        let nameservers = match z.nameservers {
            Some(list) => {
                let ns_key = format!("{key}.nameservers");
                let ns = p.every(&list, |n| absolute_name(&ns_key, n));
                if list.is_empty() {
                    p.push(format!(
                        "{key}.nameservers: at least one nameserver is needed for the NS records"
                    ));
                }
                ns
            }
            None => name_ok.then(|| vec![format!("ns1.{name}.")]),
        };
        let hostmaster = match z.hostmaster {
            Some(h) => p.one(absolute_name(
                &format!("{key}.hostmaster"),
                &h.replacen('@', ".", 1),
            )),
            None => name_ok.then(|| format!("hostmaster.{name}.")),
        };
        let include = (!z.include.is_empty()).then(|| PathBuf::from(&z.include));
        paths.zone(i, usable, include.as_deref());
        if let (Some(file), Some(nameservers), Some(hostmaster)) = (file, nameservers, hostmaster) {
            if p.count() == zone_before {
                zones.push(Zone {
                    name,
                    file,
                    dynamic: z.dynamic,
                    nameservers,
                    hostmaster,
                    include,
                });
            }
        }
    }
    (p.count() == before).then_some(zones)
}

/// A path that can only name a directory (`"zones/"`, `"."`, `".."`): a zone
/// file path must end in a file name.
fn dir_like(p: &Path) -> bool {
    p.to_string_lossy().ends_with('/')
        || !matches!(
            p.components().next_back(),
            Some(std::path::Component::Normal(_))
        )
}

/// `[rate_limit]`: each a sliding-window rule, "" disables.
fn validate_rate_limit(r: RawRateLimit, p: &mut Problems) -> Option<RateLimit> {
    let mut rule = |key: &str, v: &str| {
        p.one(
            v.parse::<Limits>()
                .map_err(|e| format!("rate_limit.{key}: {e}").into()),
        )
    };
    let dyndns_per_domain = rule("dyndns_per_domain", &r.dyndns_per_domain);
    let failed_auth_per_ip = rule("failed_auth_per_ip", &r.failed_auth_per_ip);
    let checkip_per_ip = rule("checkip_per_ip", &r.checkip_per_ip);
    let acme_per_domain = rule("acme_per_domain", &r.acme_per_domain);
    Some(RateLimit {
        dyndns_per_domain: dyndns_per_domain?,
        failed_auth_per_ip: failed_auth_per_ip?,
        checkip_per_ip: checkip_per_ip?,
        acme_per_domain: acme_per_domain?,
    })
}

/// `[standby]`: a promoted standby never replicates to the location it took over.
fn validate_standby(s: RawStandby, p: &mut Problems) -> Option<Standby> {
    let max_age = p.one(u64::try_from(s.max_age_secs).map_err(|_| {
        format!(
            "standby.max_age_secs = {}: must be 0 or more seconds",
            s.max_age_secs
        )
        .into()
    }));
    if s.litestream.is_empty() {
        p.push("standby.litestream = \"\": name the Litestream binary (default \"litestream\")");
        return None;
    }
    if !s.replica.is_empty() && s.replica == s.follow {
        p.push(format!(
            "standby.replica and standby.follow are both {:?}: a standby, once promoted, must replicate to a new location, never the one it took over",
            s.replica
        ));
        return None;
    }
    Some(Standby {
        litestream: s.litestream,
        replica: s.replica,
        follow: s.follow,
        primary: s.primary,
        max_age: Duration::from_secs(max_age?),
    })
}

/// `[limits]`: each a count, `0` = no limit.
fn validate_limits(l: RawLimits, p: &mut Problems) -> Option<Bounds> {
    let mut count = |key: &str, v: i64| {
        p.one(
            u64::try_from(v)
                .map_err(|_| format!("limits.{key} = {v}: must be 0 (no limit) or more").into()),
        )
    };
    let names_per_domain = count("names_per_domain", l.names_per_domain);
    let records_per_name = count("records_per_name", l.records_per_name);
    let domains_per_user = count("domains_per_user", l.domains_per_user);
    Some(Bounds {
        names_per_domain: names_per_domain?,
        records_per_name: records_per_name?,
        domains_per_user: domains_per_user?,
    })
}

/// SPEC 15's durations: a whole number and a unit, `s`, `m`, `h` or `d`
/// (`"90d"`, `"3s"`); at least a second.
pub fn parse_duration(v: &str) -> Result<Duration, Problem> {
    let v = v.trim();
    let (digits, unit) = v.split_at(v.len().saturating_sub(1));
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(
                format!("'{v}' is not a duration (a number and s, m, h or d: \"90d\")").into(),
            )
        }
    };
    let n: u64 = digits
        .parse()
        .ok()
        .filter(|n| *n >= 1 && *n <= 100 * 365)
        .ok_or_else(|| {
            Problem::from(format!(
                "'{v}' is not a duration (a number from 1 and s, m, h or d: \"90d\")"
            ))
        })?;
    Ok(Duration::from_secs(n * per))
}

/// `[history]`: entries per name, their age.
fn validate_history(h: RawHistory, p: &mut Problems) -> Option<History> {
    let per_name = p.one(
        u32::try_from(h.per_name)
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| {
                Problem::from(format!(
                    "history.per_name = {}: must be between 1 and 100000",
                    h.per_name
                ))
            }),
    );
    let max_age = p.one(
        parse_duration(&h.max_age).map_err(|e| Problem::from(format!("history.max_age: {e}"))),
    );
    Some(History {
        per_name: per_name?,
        max_age: max_age?,
    })
}

/// `[events]`: the command (an absolute path: it runs without a shell), its
/// timeout, and stale names.
fn validate_events(e: RawEvents, p: &mut Problems) -> Option<Events> {
    let command = if e.command.is_empty() {
        Some(None)
    } else if !Path::new(&e.command).is_absolute() {
        p.push(format!(
            "events.command = '{}': must be an absolute path (it runs without a shell)",
            e.command
        ));
        None
    } else {
        Some(Some(PathBuf::from(e.command)))
    };
    let timeout = p.one(seconds("events.timeout_secs", e.timeout_secs));
    let stale_after = if e.stale_after.is_empty() {
        Some(None)
    } else {
        p.one(
            parse_duration(&e.stale_after)
                .map(Some)
                .map_err(|m| Problem::from(format!("events.stale_after: {m}"))),
        )
    };
    Some(Events {
        command: command?,
        timeout: timeout?,
        stale_after: stale_after?,
    })
}

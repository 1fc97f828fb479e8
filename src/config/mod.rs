//! The configuration file (TOML, SPEC 3): a typed `Config` with a default for
//! every key, validated at start-up so that a bad value names its key and file.

use crate::edge::TrustedProxies;
use crate::net::cidr::Cidr;
use crate::net::name;
use crate::ratelimit::Limits;
use crate::update::bounds::Bounds;
use crate::update::ZonePolicy;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Configuration problems, each phrased for the operator who has to fix it and
/// naming its key: one load reports every problem it found, not only the first.
/// Shown one per line.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    pub fn one(problem: impl Into<String>) -> ConfigError {
        ConfigError {
            problems: vec![problem.into()],
        }
    }

    /// Every problem with `prefix: ` before it (the file's name), as one alone gets.
    fn within(problems: Vec<String>, prefix: &str) -> ConfigError {
        ConfigError {
            problems: problems
                .into_iter()
                .map(|p| format!("{prefix}: {p}"))
                .collect(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

/// The whole validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it came from (`None`: built-in defaults), for messages.
    pub source: Option<PathBuf>,
    pub server: Server,
    pub database: Database,
    pub dns: Dns,
    pub zones: Vec<Zone>,
    pub rate_limit: RateLimit,
    pub limits: Bounds,
    pub history: History,
    pub events: Events,
}

#[derive(Clone, Debug)]
pub struct Server {
    pub http_listen: Vec<SocketAddr>,
    /// The `unix:/PATH` entries of `http_listen`: for a proxy on this machine (SPEC 17).
    pub http_unix: Vec<PathBuf>,
    /// File mode and group (`""`: the service's own) of the `unix:` listeners.
    pub unix_mode: u32,
    pub unix_group: String,
    pub https_listen: Vec<SocketAddr>,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub workers: usize,
    pub max_connections: usize,
    /// `trusted_proxies` (networks and `unix:` listeners) and
    /// `trusted_proxies_allow_local_users`.
    pub trusted_proxies: TrustedProxies,
    pub hsts_max_age: u64,
    pub handshake_timeout: Duration,
    pub request_head_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_request_head_bytes: usize,
    pub checkip_hosts: Vec<String>,
    pub blocked_subnets: Vec<Cidr>,
    /// Prometheus metrics listener (`None`: off).
    pub metrics_listen: Option<SocketAddr>,
}

impl Server {
    /// SPEC 17: `trusted_proxies` trusts 127.0.0.1 or ::1 while a TCP listener
    /// is open, which every local user can connect to from there, and
    /// `trusted_proxies_allow_local_users` does not say this is meant. `check`
    /// refuses it, `serve` warns (those connections' X-Forwarded-For is ignored).
    pub fn loopback_trust_problem(&self) -> Option<String> {
        let loopback = self.trusted_proxies.trusted_loopback();
        if loopback.is_empty()
            || self.trusted_proxies.allow_local_users
            || (self.http_listen.is_empty() && self.https_listen.is_empty())
        {
            return None;
        }
        let shown: Vec<String> = loopback.iter().map(IpAddr::to_string).collect();
        Some(format!(
            "server.trusted_proxies trusts {}, but any local user can connect from there to \
             the TCP listeners and pose as the proxy; their X-Forwarded-For is ignored. Let the \
             proxy use a unix: listener (http_listen = [\"unix:/run/dedyn-update/http.sock\"], \
             trusted_proxies = [\"unix:/run/dedyn-update/http.sock\"]), or set \
             server.trusted_proxies_allow_local_users = true if every local user may",
            shown.join(" and ")
        ))
    }
}

#[derive(Clone, Debug)]
pub struct Database {
    pub path: PathBuf,
    /// `NORMAL` (survives a process crash) or `FULL` (also survives power loss).
    pub synchronous: String,
}

#[derive(Clone, Debug)]
pub struct Dns {
    pub ttl: u32,
    pub reload_command: String,
    pub publish_delay: Duration,
    pub reload_timeout: Duration,
    pub guard_fallback: Vec<Cidr>,
    pub verify_server: Option<SocketAddr>,
    /// The bounds of `domain set NAME --ttl` (SPEC 15).
    pub min_ttl: u32,
    pub max_ttl: u32,
}

#[derive(Clone, Debug)]
pub struct Zone {
    /// Lower-case, without trailing dot.
    pub name: String,
    pub file: PathBuf,
    pub dynamic: bool,
    /// Absolute names with trailing dot.
    pub nameservers: Vec<String>,
    pub hostmaster: String,
    pub include: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct RateLimit {
    pub dyndns_per_domain: Limits,
    pub failed_auth_per_ip: Limits,
    pub checkip_per_ip: Limits,
    /// acme-dns calls per registered domain (SPEC 10), apart from address updates.
    pub acme_per_domain: Limits,
}

/// `[history]` (SPEC 15): what is kept of each name's changes.
#[derive(Clone, Debug)]
pub struct History {
    /// The newest entries kept per name.
    pub per_name: u32,
    /// None older than this.
    pub max_age: Duration,
}

/// `[events]` (SPEC 15): the program run for each committed change, and stale names.
#[derive(Clone, Debug)]
pub struct Events {
    /// `None`: no events are delivered.
    pub command: Option<PathBuf>,
    /// A run of the command longer than this is killed (and retried).
    pub timeout: Duration,
    /// A name with records not updated for this long is stale; `None`: off.
    pub stale_after: Option<Duration>,
}

pub mod edit;
mod paths;
mod raw;
use raw::{
    RawConfig, RawDatabase, RawDns, RawEvents, RawHistory, RawLimits, RawRateLimit, RawServer,
    RawZone,
};

pub const DEFAULT_ZONE: &str = "dedyn.example";

impl Config {
    /// Built-in defaults: HTTP on 127.0.0.1:8080, state under `data/`, one dynamic zone.
    pub fn defaults() -> Config {
        validate(RawConfig::default(), None, &mut paths::Files::default())
            .expect("built-in defaults are valid")
    }

    /// The built-in defaults as `serve` and the commands use them: their
    /// relative paths resolved against the working directory (SPEC 12), so
    /// that every message names an absolute path.
    pub fn defaults_here() -> Result<Config, ConfigError> {
        let cwd = std::env::current_dir()
            .map_err(|e| ConfigError::one(format!("cannot read the working directory: {e}")))?;
        let mut c = Config::defaults();
        c.resolve_paths(&cwd);
        paths::check_distinct(&paths::Files::of(&c))
            .map_err(|e| ConfigError::within(e, "built-in defaults"))?;
        Ok(c)
    }

    /// Read and validate `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        // Messages name the file by its absolute path (SPEC 12).
        let path = &std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::one(format!("{}: cannot read config file: {e}", path.display()))
        })?;
        Config::parse(&text, Some(path))
    }

    pub fn parse(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
        let name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "config".into());
        let raw: RawConfig =
            basic_toml::from_str(text).map_err(|e| ConfigError::one(format!("{name}: {e}")))?;
        // The paths of the values that are usable, even when others are not.
        let mut files = paths::Files::default();
        let validated = validate(raw, path, &mut files);
        let Some(p) = path else {
            return validated.map_err(|e| ConfigError::within(e, &name));
        };
        // SPEC 12: relative paths in a file are relative to the file's
        // directory, not to wherever the command happens to be run from.
        let file = std::path::absolute(p)
            .map_err(|e| ConfigError::one(format!("{name}: cannot make the path absolute: {e}")))?;
        let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
        files.resolve(&dir);
        files.config_file(&file);
        // Only now that the paths are what the service will open (SPEC 17).
        let clashes = paths::check_distinct(&files).err().unwrap_or_default();
        match validated {
            Ok(mut config) if clashes.is_empty() => {
                config.source = Some(file);
                config.resolve_paths(&dir);
                Ok(config)
            }
            Ok(_) => Err(ConfigError::within(clashes, &name)),
            Err(mut problems) => {
                problems.extend(clashes);
                Err(ConfigError::within(problems, &name))
            }
        }
    }

    /// Make every relative file path absolute against `base`.
    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.server.tls_cert);
        fix(&mut self.server.tls_key);
        fix(&mut self.database.path);
        for z in &mut self.zones {
            fix(&mut z.file);
            if let Some(i) = z.include.as_mut() {
                fix(i);
            }
        }
    }

    /// Where the database path came from, for messages: the config file or
    /// the built-in default.
    pub fn origin(&self) -> String {
        match &self.source {
            Some(p) => format!("database.path in {}", p.display()),
            None => "the built-in default, relative to the working directory".into(),
        }
    }

    /// The configured zone that `name` lies strictly below (the longest such zone).
    pub fn zone_for(&self, name: &str) -> Option<&Zone> {
        self.zones
            .iter()
            .filter(|z| name != z.name && name::is_at_or_below(name, &z.name))
            .max_by_key(|z| z.name.len())
    }

    pub fn zone(&self, name: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.name == name)
    }
}

/// The problems one load has found so far: every check runs and adds its
/// own; a value that is unusable comes back as `None`, so that only the
/// checks that need it are skipped.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    fn count(&self) -> usize {
        self.0.len()
    }

    /// The value, or `None` with its problem noted.
    fn one<T>(&mut self, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.push(e)).ok()
    }

    /// Every entry of a list through `f`: all the values, or `None` with the
    /// problem of each bad entry noted (not only the first).
    fn every<V, T>(
        &mut self,
        values: &[V],
        mut f: impl FnMut(&V) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        let before = self.count();
        let out: Vec<T> = values.iter().filter_map(|v| self.one(f(v))).collect();
        (self.count() == before).then_some(out)
    }
}

fn listen_addr(key: &str, v: &str) -> Result<SocketAddr, String> {
    v.parse().map_err(|_| {
        format!("{key}: '{v}' is not an address:port (e.g. 127.0.0.1:8080 or [::]:443)")
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
                    return Err(format!("{key}: '{v}' is listed twice"));
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
fn unix_path(key: &str, entry: &str, path: &str) -> Result<PathBuf, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "{key}: '{entry}': the socket path must be absolute (e.g. unix:/run/dedyn-update/http.sock)"
        ));
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{key}: '{entry}': the socket path may hold only printable ASCII without spaces"
        ));
    }
    // sun_path holds 108 bytes with the NUL.
    if path.len() > 107 {
        return Err(format!(
            "{key}: '{entry}': the socket path is longer than 107 bytes"
        ));
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
                    ));
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
fn unix_mode(v: &str) -> Result<u32, String> {
    u32::from_str_radix(v.strip_prefix("0o").unwrap_or(v), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("server.unix_mode = '{v}': not an octal file mode (e.g. \"0660\")"))
}

fn cidr(key: &str, v: &str) -> Result<Cidr, String> {
    v.parse().map_err(|e| format!("{key}: {e}"))
}

fn cidrs(key: &str, values: &[String], p: &mut Problems) -> Option<Vec<Cidr>> {
    p.every(values, |v| cidr(key, v))
}

fn positive(key: &str, v: i64, max: i64) -> Result<usize, String> {
    if v < 1 || v > max {
        return Err(format!("{key} = {v}: must be between 1 and {max}"));
    }
    Ok(v as usize)
}

fn seconds(key: &str, v: f64) -> Result<Duration, String> {
    if !(v > 0.0 && v <= 86_400.0) {
        return Err(format!(
            "{key} = {v}: must be more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Absolute DNS name with trailing dot, lower-case (for SOA/NS fields).
fn absolute_name(key: &str, v: &str) -> Result<String, String> {
    let n = name::normalize(v);
    if name::check_syntax(&n).is_err() || n.starts_with('*') {
        return Err(format!("{key}: '{v}' is not a valid DNS name"));
    }
    Ok(format!("{n}."))
}

/// Every section checked, every problem found in any of them (SPEC 3: each
/// names its key); the configuration only when there is none.
/// `files` gets the paths of the values that are usable, for the check that no
/// two are one file (which needs them resolved first).
fn validate(
    raw: RawConfig,
    path: Option<&Path>,
    files: &mut paths::Files,
) -> Result<Config, Vec<String>> {
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
    let zones = validate_zones(raw.zone, &mut p, files);
    files.tls(&tls.0, &tls.1);
    let rate_limit = validate_rate_limit(raw.rate_limit, &mut p);
    let limits = validate_limits(raw.limits, &mut p);
    let history = validate_history(raw.history, &mut p);
    let events = validate_events(raw.events, &mut p);
    match (
        server, database, dns, zones, rate_limit, limits, history, events,
    ) {
        (
            Some(server),
            Some(database),
            Some(dns),
            Some(zones),
            Some(rate_limit),
            Some(limits),
            Some(history),
            Some(events),
        ) if p.0.is_empty() => Ok(Config {
            source: path.map(Path::to_path_buf),
            server,
            database,
            dns,
            zones,
            rate_limit,
            limits,
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
            ));
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
            .map_err(|_| "server.hsts_max_age: must not be negative".to_string()),
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
        p.push("server.max_request_head_bytes: must be at least 256".into());
    }
    let blocked_subnets = cidrs("server.blocked_subnets", &s.blocked_subnets, p);
    let metrics_listen = match s.metrics_listen.as_str() {
        "" => Some(None),
        v => p.one(v.parse().map(Some).map_err(|_| {
            format!("server.metrics_listen: '{v}' is not an address:port (e.g. 127.0.0.1:9153)")
        })),
    };
    if let (Some((tcp, unix)), Some(https)) = (&listeners, &https_listen) {
        if tcp.is_empty() && unix.is_empty() && https.is_empty() {
            p.push(
                "server: http_listen and https_listen are both empty: nothing to serve on".into(),
            );
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
        p.push("database.path: must not be empty".into());
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
            .ok_or_else(|| format!("dns.ttl = {}: must be between 0 and 2147483647", d.ttl)),
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
        }))
    };
    let reload_timeout = p.one(seconds("dns.reload_timeout_secs", d.reload_timeout_secs));
    let guard_fallback = cidrs("dns.guard_fallback", &d.guard_fallback, p);
    let ttl_bound = |key: &str, v: i64| {
        u32::try_from(v)
            .ok()
            .filter(|t| *t <= 2_147_483_647)
            .ok_or_else(|| format!("dns.{key} = {v}: must be between 0 and 2147483647"))
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
        p.push("zone: at least one [[zone]] is needed".into());
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
                .map_err(|e| format!("rate_limit.{key}: {e}")),
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

/// `[limits]`: each a count, `0` = no limit.
fn validate_limits(l: RawLimits, p: &mut Problems) -> Option<Bounds> {
    let mut count = |key: &str, v: i64| {
        p.one(
            u64::try_from(v)
                .map_err(|_| format!("limits.{key} = {v}: must be 0 (no limit) or more")),
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
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    let (digits, unit) = v.split_at(v.len().saturating_sub(1));
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "'{v}' is not a duration (a number and s, m, h or d: \"90d\")"
            ))
        }
    };
    let n: u64 = digits
        .parse()
        .ok()
        .filter(|n| *n >= 1 && *n <= 100 * 365)
        .ok_or_else(|| {
            format!("'{v}' is not a duration (a number from 1 and s, m, h or d: \"90d\")")
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
                format!(
                    "history.per_name = {}: must be between 1 and 100000",
                    h.per_name
                )
            }),
    );
    let max_age = p.one(parse_duration(&h.max_age).map_err(|e| format!("history.max_age: {e}")));
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
                .map_err(|m| format!("events.stale_after: {m}")),
        )
    };
    Some(Events {
        command: command?,
        timeout: timeout?,
        stale_after: stale_after?,
    })
}

/// The zone configuration as the update rules read it.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The example file says it shows every key with its default, except the
    /// two paths (absolute, for the installed service): hold it to that (a
    /// changed default or a key missing from `Config` fails here).
    #[test]
    fn example_config_shows_the_built_in_defaults() {
        let text = include_str!("../../data/dedyn-update.example.toml");
        let mut example = Config::parse(text, None).expect("the example config parses");
        let defaults = Config::defaults();
        assert_eq!(
            example.database.path,
            Path::new("/var/lib/dedyn-update/dedyn-update.sqlite3")
        );
        assert_eq!(
            example.zones[0].file,
            Path::new("/var/lib/dedyn-update/zones/dedyn.example.zone")
        );
        example.database.path = defaults.database.path.clone();
        example.zones[0].file = defaults.zones[0].file.clone();
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
        for section in [
            "[server]",
            "[database]",
            "[dns]",
            "[[zone]]",
            "[rate_limit]",
            "[limits]",
        ] {
            assert!(
                text.lines().any(|l| l.trim() == section),
                "{section} missing from the example"
            );
        }
    }

    #[test]
    fn defaults_give_a_local_instance() {
        let c = Config::defaults();
        assert_eq!(
            c.server.http_listen,
            vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(c.server.workers, 4);
        assert_eq!(c.database.path, PathBuf::from("data/dedyn-update.sqlite3"));
        assert_eq!(c.zones.len(), 1);
        assert_eq!(c.zones[0].name, "dedyn.example");
        assert_eq!(
            c.zones[0].nameservers,
            vec!["ns1.dedyn.example.".to_string()]
        );
        assert_eq!(c.dns.ttl, 60);
        assert_eq!(c.dns.guard_fallback.len(), 3);
    }

    /// SPEC 12: relative paths in a file resolve against its directory; the
    /// built-in defaults against the working directory; absolute ones stay.
    #[test]
    fn relative_paths_resolve_against_the_config_files_directory() {
        let text = "[server]\ntls_cert = \"tls/cert.pem\"\ntls_key = \"/k.pem\"\n\
                    [database]\npath = \"db.sqlite3\"\n\
                    [[zone]]\nname = \"dyn.example\"\nfile = \"../zones/dyn.zone\"\ninclude = \"static\"\n";
        let c = Config::parse(text, Some(Path::new("/etc/dd/config.toml"))).unwrap();
        assert_eq!(c.database.path, Path::new("/etc/dd/db.sqlite3"));
        assert_eq!(c.server.tls_cert, Path::new("/etc/dd/tls/cert.pem"));
        assert_eq!(c.server.tls_key, Path::new("/k.pem"));
        assert_eq!(c.zones[0].file, Path::new("/etc/dd/../zones/dyn.zone"));
        assert_eq!(
            c.zones[0].include.as_deref(),
            Some(Path::new("/etc/dd/static"))
        );
        assert_eq!(c.source.as_deref(), Some(Path::new("/etc/dd/config.toml")));
        let here = Config::defaults_here().unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(here.database.path, cwd.join("data/dedyn-update.sqlite3"));
        assert_eq!(
            here.zones[0].file,
            cwd.join("data/zones/dedyn.example.zone")
        );
    }

    /// A zone file path that cannot name a file is refused at start-up.
    #[test]
    fn zone_file_must_be_a_file_path() {
        for bad in ["", "zones/", ".", "/var/lib/x/.."] {
            let text = format!("[[zone]]\nname = \"dyn.example\"\nfile = \"{bad}\"\n");
            let e = Config::parse(&text, None).unwrap_err().to_string();
            assert!(
                e.contains("zone[0].file") && e.contains("not a file path"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse("[server]\nworkerz = 3\n", Some(Path::new("/etc/x.toml")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/x.toml") && e.contains("workerz"), "{e}");
    }

    /// One load names every problem, one per line with the file's name before
    /// each, in every section, not only the first it meets.
    #[test]
    fn every_problem_is_named_on_its_own_line() {
        let text = "[server]\nhttp_listen = [\"nonsense\", \"also:bad\"]\nworkers = 0\nunix_mode = \"rw\"\n\
                    [database]\nsynchronous = \"sometimes\"\npath = \"\"\n\
                    [dns]\nttl = -1\nguard_fallback = [\"nonsense\"]\n\
                    [[zone]]\nname = \"bad zone\"\n\
                    [[zone]]\nname = \"ok.example\"\nnameservers = []\n\
                    [rate_limit]\ndyndns_per_domain = \"lots\"\n\
                    [limits]\ndomains_per_user = -1\nnames_per_domain = -2\n";
        let e = Config::parse(text, Some(Path::new("/etc/x.toml"))).unwrap_err();
        let keys = [
            "server.http_listen: 'nonsense'",
            "server.http_listen: 'also:bad'",
            "server.unix_mode = 'rw'",
            "server.workers = 0",
            "database.synchronous = 'sometimes'",
            "database.path: must not be empty",
            "dns.ttl = -1",
            "dns.guard_fallback",
            "zone[0].name",
            "zone[1].nameservers: at least one",
            "rate_limit.dyndns_per_domain",
            "limits.names_per_domain = -2",
            "limits.domains_per_user = -1",
        ];
        assert_eq!(e.problems.len(), keys.len(), "{e}");
        for (line, key) in e.to_string().lines().zip(keys) {
            assert!(
                line.starts_with("/etc/x.toml: ") && line.contains(key),
                "{key}: {e}"
            );
        }
        // Each problem alone reads as it did when it was the only one.
        let alone = Config::parse("[server]\nworkers = 0\n", Some(Path::new("/etc/x.toml")))
            .unwrap_err()
            .to_string();
        assert_eq!(
            alone,
            "/etc/x.toml: server.workers = 0: must be between 1 and 1024"
        );
        assert!(e.problems.contains(&alone), "{e}");
    }

    /// A check that needs an unusable value is skipped, not reported as a
    /// second problem: with `http_listen` unusable, a `unix:` proxy is not
    /// called "not a listener"; a misspelt proxy entry does not also leave
    /// its listener "not in trusted_proxies"; a bad zone name no duplicate.
    #[test]
    fn a_check_that_needs_an_unusable_value_is_skipped() {
        let sock = "unix:/run/dedyn-update/http.sock";
        for (text, only) in [
            (
                format!("[server]\nhttp_listen = [\"{sock}\", \"nonsense\"]\ntrusted_proxies = [\"{sock}\"]\n"),
                "'nonsense' is not an address:port",
            ),
            (
                format!("[server]\nhttp_listen = [\"{sock}\"]\ntrusted_proxies = [\"{sock}\", \"10.0.0.0/40\"]\n"),
                "server.trusted_proxies",
            ),
            (
                "[[zone]]\nname = \"bad zone\"\n[[zone]]\nname = \"bad zone\"\nfile = \"b.zone\"\n".into(),
                "is not a valid zone name",
            ),
        ] {
            let e = Config::parse(&text, None).unwrap_err();
            assert!(
                e.problems.iter().all(|p| p.contains(only)),
                "{text}: {e}"
            );
        }
        // Two zones with a bad name each are both named, and their files too.
        let e = Config::parse(
            "[[zone]]\nname = \"a b\"\nfile = \"z/\"\n[[zone]]\nname = \"c d\"\n",
            None,
        )
        .unwrap_err();
        assert_eq!(e.problems.len(), 3, "{e}");
        assert!(e.problems[1].contains("zone[0].file"), "{e}");
        assert!(e.problems[2].contains("zone[1].name"), "{e}");
    }

    #[test]
    fn bad_value_is_named() {
        let e = Config::parse("[server]\nhttp_listen = [\"nonsense\"]\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.http_listen"), "{e}");
        let e = Config::parse("[server]\nworkers = 0\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.workers"), "{e}");
        let e = Config::parse("[rate_limit]\ndyndns_per_domain = \"lots\"\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rate_limit.dyndns_per_domain"), "{e}");
        let e = Config::parse("[[zone]]\nname = \"bad zone\"\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("zone[0].name"), "{e}");
    }

    /// SPEC 17: `unix:` listeners, named in `trusted_proxies`, and the
    /// loopback trust that `check` refuses without the allow key.
    #[test]
    fn unix_listeners_must_be_trusted_proxies_and_loopback_trust_is_a_problem() {
        let sock = "unix:/run/dedyn-update/http.sock";
        let c = Config::parse(
            &format!(
                "[server]\nhttp_listen = [\"{sock}\"]\ntrusted_proxies = [\"{sock}\", \"10.0.0.0/8\"]\nunix_mode = \"0600\"\n"
            ),
            None,
        )
        .unwrap();
        assert!(c.server.http_listen.is_empty());
        assert_eq!(
            c.server.http_unix,
            [Path::new("/run/dedyn-update/http.sock")]
        );
        assert_eq!(c.server.trusted_proxies.unix, c.server.http_unix);
        assert_eq!(c.server.trusted_proxies.nets.len(), 1);
        assert_eq!(c.server.unix_mode, 0o600);
        assert_eq!(Config::defaults().server.unix_mode, 0o660);
        for (text, key) in [
            (format!("http_listen = [\"{sock}\"]"), "server.http_listen"),
            (
                format!("trusted_proxies = [\"{sock}\"]"),
                "server.trusted_proxies",
            ),
            ("http_listen = [\"unix:run/x.sock\"]".into(), "absolute"),
            (
                "http_listen = [\"unix:/run/a b.sock\"]".into(),
                "without spaces",
            ),
            (
                format!("https_listen = [\"{sock}\"]"),
                "server.https_listen",
            ),
            ("unix_mode = \"rw\"".into(), "server.unix_mode"),
            ("unix_mode = \"01777\"".into(), "server.unix_mode"),
        ] {
            let e = Config::parse(&format!("[server]\n{text}\n"), None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let loopback = |lines: &str| {
            Config::parse(&format!("[server]\n{lines}"), None)
                .unwrap()
                .server
                .loopback_trust_problem()
        };
        let trust = "trusted_proxies = [\"127.0.0.0/8\"]\n";
        assert!(loopback(trust).is_some_and(|p| p.contains("127.0.0.1")));
        assert!(loopback(&format!(
            "{trust}trusted_proxies_allow_local_users = true\n"
        ))
        .is_none());
        // Only a unix: listener: no TCP listener a local user could reach.
        assert!(loopback(&format!(
            "http_listen = [\"{sock}\"]\ntrusted_proxies = [\"127.0.0.0/8\", \"{sock}\"]\n"
        ))
        .is_none());
    }

    #[test]
    fn limits_are_counts_and_zero_means_none() {
        let c = Config::parse("[limits]\nnames_per_domain = 0\n", None).unwrap();
        assert_eq!(c.limits.names_per_domain, 0);
        assert_eq!(c.limits.records_per_name, 32);
        assert!(!Bounds::over(0, u64::MAX));
        assert!(Bounds::over(100, 101) && !Bounds::over(100, 100));
        let e = Config::parse("[limits]\ndomains_per_user = -1\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.domains_per_user"), "{e}");
    }

    #[test]
    fn zones_are_normalised_and_matched_strictly_below() {
        let c = Config::parse(
            "[[zone]]\nname = \"Dyn.Example.\"\n[[zone]]\nname = \"a.dyn.example\"\n",
            None,
        )
        .unwrap();
        assert_eq!(c.zones[0].name, "dyn.example");
        assert_eq!(c.zone_for("x.dyn.example").unwrap().name, "dyn.example");
        assert_eq!(c.zone_for("x.a.dyn.example").unwrap().name, "a.dyn.example");
        assert!(c.zone_for("dyn.example").is_none());
        assert!(c.zone_for("xdyn.example").is_none());
    }
}

//! The validated configuration (SPEC 3) as the service reads it: `Config` and
//! its sections, each value typed and every path absolute once loaded.

use crate::edge::TrustedProxies;
use crate::net::cidr::Cidr;
use crate::net::name;
use crate::ratelimit::Limits;
use crate::update::bounds::Bounds;
use crate::update::ZonePolicy;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The whole validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it came from (`None`: built-in defaults), for messages.
    pub source: Option<PathBuf>,
    pub server: Server,
    pub database: Database,
    pub dns: Dns,
    pub dns_update: DnsUpdate,
    pub zones: Vec<Zone>,
    pub rate_limit: RateLimit,
    pub limits: Bounds,
    pub standby: Standby,
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

/// `[dns_update]`: the DNS UPDATE listeners (SPEC 14). Their TCP connections
/// are bounded by `[server]`'s `max_connections`, `keepalive_timeout_secs`,
/// `request_head_timeout_secs` and `max_request_head_bytes`, like the edge's.
#[derive(Clone, Debug)]
pub struct DnsUpdate {
    /// UDP and TCP on each (empty: off).
    pub listen: Vec<SocketAddr>,
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

impl Config {
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

/// `[standby]` (SPEC 16): where Litestream replicates this database while it
/// serves, which replica a standby follows, and the bound on a promoted copy's age.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standby {
    /// The Litestream binary (looked up in `PATH` when it has no `/`).
    pub litestream: String,
    /// This machine's replica location while it serves (`""`: none): `serve`
    /// refuses when a promoted standby has taken it over (fencing).
    pub replica: String,
    /// On a standby: the primary's replica location, the one it restores from.
    pub follow: String,
    /// `HOST:PORT` of the primary's update endpoint, asked by `standby status`.
    pub primary: String,
    /// `standby promote` refuses an older copy unless `--force`.
    pub max_age: Duration,
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

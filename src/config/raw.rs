//! The configuration file as written: every key optional with its default,
//! unknown keys refused; `super` validates it into a typed `Config`.

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub(super) server: RawServer,
    pub(super) database: RawDatabase,
    pub(super) dns: RawDns,
    pub(super) dns_update: RawDnsUpdate,
    pub(super) zone: Option<Vec<RawZone>>,
    pub(super) rate_limit: RawRateLimit,
    pub(super) limits: RawLimits,
    pub(super) standby: RawStandby,
    pub(super) history: RawHistory,
    pub(super) events: RawEvents,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    pub(super) http_listen: Vec<String>,
    pub(super) https_listen: Vec<String>,
    pub(super) tls_cert: String,
    pub(super) tls_key: String,
    pub(super) workers: i64,
    pub(super) max_connections: i64,
    pub(super) trusted_proxies: Vec<String>,
    pub(super) trusted_proxies_allow_local_users: bool,
    pub(super) unix_mode: String,
    pub(super) unix_group: String,
    pub(super) hsts_max_age: i64,
    pub(super) handshake_timeout_secs: f64,
    pub(super) request_head_timeout_secs: f64,
    pub(super) keepalive_timeout_secs: f64,
    pub(super) max_request_head_bytes: i64,
    pub(super) checkip_hosts: Vec<String>,
    pub(super) blocked_subnets: Vec<String>,
    pub(super) metrics_listen: String,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            http_listen: vec!["127.0.0.1:8080".into()],
            https_listen: vec![],
            tls_cert: "/etc/dedyn-update/fullchain.pem".into(),
            tls_key: "/etc/dedyn-update/privkey.pem".into(),
            workers: 4,
            max_connections: 1024,
            trusted_proxies: vec![],
            trusted_proxies_allow_local_users: false,
            unix_mode: "0660".into(),
            unix_group: String::new(),
            hsts_max_age: 31_536_000,
            handshake_timeout_secs: 10.0,
            request_head_timeout_secs: 10.0,
            keepalive_timeout_secs: 30.0,
            max_request_head_bytes: 8192,
            checkip_hosts: vec![],
            blocked_subnets: vec![],
            metrics_listen: String::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDatabase {
    pub(super) path: String,
    pub(super) synchronous: String,
}

impl Default for RawDatabase {
    fn default() -> Self {
        RawDatabase {
            path: "data/dedyn-update.sqlite3".into(),
            synchronous: "normal".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDns {
    pub(super) ttl: i64,
    pub(super) reload_command: String,
    pub(super) publish_delay_ms: i64,
    pub(super) reload_timeout_secs: f64,
    pub(super) guard_fallback: Vec<String>,
    pub(super) verify_server: String,
    pub(super) min_ttl: i64,
    pub(super) max_ttl: i64,
}

impl Default for RawDns {
    fn default() -> Self {
        RawDns {
            ttl: 60,
            reload_command: String::new(),
            publish_delay_ms: 100,
            reload_timeout_secs: 10.0,
            guard_fallback: vec![
                "100.64.0.0/10".into(),
                "169.254.0.0/16".into(),
                "fe80::/10".into(),
            ],
            verify_server: String::new(),
            min_ttl: 30,
            max_ttl: 86_400,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDnsUpdate {
    pub(super) listen: Vec<String>,
    pub(super) allow_nameserver_address: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZone {
    pub(super) name: String,
    #[serde(default)]
    pub(super) file: Option<String>,
    #[serde(default = "yes")]
    pub(super) dynamic: bool,
    #[serde(default)]
    pub(super) nameservers: Option<Vec<String>>,
    #[serde(default)]
    pub(super) hostmaster: Option<String>,
    #[serde(default)]
    pub(super) include: String,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRateLimit {
    pub(super) dyndns_per_domain: String,
    pub(super) failed_auth_per_ip: String,
    pub(super) checkip_per_ip: String,
    pub(super) acme_per_domain: String,
}

impl Default for RawRateLimit {
    fn default() -> Self {
        RawRateLimit {
            dyndns_per_domain: "2/120s".into(),
            failed_auth_per_ip: "10/60s".into(),
            checkip_per_ip: "60/60s".into(),
            acme_per_domain: "10/60s".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLimits {
    pub(super) names_per_domain: i64,
    pub(super) records_per_name: i64,
    pub(super) domains_per_user: i64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            names_per_domain: 100,
            records_per_name: 32,
            domains_per_user: 100,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStandby {
    pub(super) litestream: String,
    pub(super) replica: String,
    pub(super) follow: String,
    pub(super) primary: String,
    pub(super) max_age_secs: i64,
}

impl Default for RawStandby {
    fn default() -> Self {
        RawStandby {
            litestream: "litestream".into(),
            replica: String::new(),
            follow: String::new(),
            primary: String::new(),
            max_age_secs: 600,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawHistory {
    pub(super) per_name: i64,
    pub(super) max_age: String,
}

impl Default for RawHistory {
    fn default() -> Self {
        RawHistory {
            per_name: 50,
            max_age: "90d".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawEvents {
    pub(super) command: String,
    pub(super) timeout_secs: f64,
    pub(super) stale_after: String,
}

impl Default for RawEvents {
    fn default() -> Self {
        RawEvents {
            command: String::new(),
            timeout_secs: 10.0,
            stale_after: String::new(),
        }
    }
}

//! dedyn-update: a self-hosted dynDNS update server (deSEC's IP update API).
pub mod admin;
pub mod backup;
pub mod clock;
pub mod config;
pub mod dnsquery;
pub mod edge;
pub mod metrics;
pub mod publish;
pub mod ratelimit;
pub mod server;
pub mod signals;
pub mod store;
pub mod update;

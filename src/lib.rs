//! dedyn-update: a self-hosted dynDNS update server (deSEC's IP update API).
pub mod cli;
pub mod config;
pub mod edge;
pub mod metrics;
pub mod net;
pub mod os;
pub mod publish;
pub mod ratelimit;
pub mod server;
pub mod store;
pub mod update;

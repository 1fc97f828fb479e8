//! dedyn-update: a self-hosted dynDNS update server (deSEC's IP update API).
pub mod config;
pub mod edge;
pub mod ratelimit;
pub mod store;
pub mod update;

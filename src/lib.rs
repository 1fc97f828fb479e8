//! dedyn-update: a self-hosted dynDNS update server (deSEC's IP update API).
pub mod cli;
pub mod config;
pub mod edge;
pub mod http;
pub mod net;
pub mod os;
pub mod publish;
pub mod ratelimit;
pub mod serve;
pub mod store;
pub mod update;

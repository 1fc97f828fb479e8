//! dedyn-update: a self-hosted dynDNS update server (deSEC's IP update API).
//!
//! `unsafe` lives in `os/` alone, each block with its SAFETY line; everywhere
//! else it does not compile.
#![deny(unsafe_code)]
pub mod cli;
pub mod config;
pub mod dns;
pub mod dnsupdate;
pub mod edge;
pub mod events;
pub mod http;
pub mod net;
#[allow(unsafe_code)]
pub mod os;
pub mod publish;
pub mod ratelimit;
pub mod serve;
pub mod standby;
pub mod store;
pub mod update;
pub mod workers;

//! The update service behind the edge: tiny_http on the internal hop, each
//! request from intake to reply, and the metrics listener.

pub mod acme;
pub mod intake;
pub mod metrics;
pub mod service;

pub use service::{Incoming, Reply, Service};

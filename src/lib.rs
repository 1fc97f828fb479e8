//! dedyn-update: a self-hosted dynDNS update server (deSEC's IP update API).
pub mod edge;

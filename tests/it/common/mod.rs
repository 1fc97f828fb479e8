//! Test support shared by the integration tests: real nameservers (NSD, Knot),
//! zone checkers, a real ddclient, and the small process/tempdir helpers they need.
//!
//! Every external program comes from Debian; `tests/install-deps.sh` installs them.

pub mod acme;
pub mod ddclient;
pub mod dns;
pub mod edge;
pub mod ns;
pub mod proc;
pub mod readme;
pub mod server;
pub mod stock;

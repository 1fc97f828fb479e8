//! The integration tests, as one program: one binary to build and link instead
//! of one per file, each compiling all of `common` (as ripgrep's tests/ does).
//!
//! Every test starts what it needs (the real binary, nameservers, clients) on
//! its own loopback ports and temporary directories, so tests run in parallel
//! threads of this one process. The few that change something of the whole
//! process (its descriptor limit, its CPU-time reading) run in a child process
//! of their own: `common::proc::alone`.

mod common;

mod acme;
mod acme_clients;
mod api;
mod cli;
mod ddclient;
mod dns;
mod docs;
mod edge;
mod edge_nofile;
mod edge_server;
mod faults;
mod first_steps;
mod guards;
mod hop;
mod import;
mod limits;
mod logs;
mod man;
mod nameserver;
mod newcomer;
mod ns_harness;
mod operator;
mod ops;
mod proxy;
mod publishing;
mod ratelimit;
mod recipes;
mod secondary;

//! The integration tests, as one program: one binary to build and link instead
//! of one per file, each compiling all of `common` (as ripgrep's tests/ does).
//! Grouped by the area of SPEC.md each covers; a module's name says what it
//! checks, and its doc comment how.
//!
//! Every test starts what it needs (the real binary, nameservers, clients) on
//! its own loopback ports and temporary directories, so tests run in parallel
//! threads of this one process. The few that change something of the whole
//! process (its descriptor limit, its CPU-time reading) run in a child process
//! of their own: `common::proc::alone`.

mod common;

/// SPEC 4, 7, 8, 9: the update request, from the client's side.
mod update_request {
    mod api;
}

/// SPEC 5: zone files, the nameservers that load them, secondaries.
mod publishing {
    mod secondaries;
    mod served_by_nsd_and_knot;
    mod under_faults;
}

/// SPEC 6, 17: the network edge, alone and in the real binary.
mod edge {
    mod fd_exhaustion;
    mod internal_hop;
    mod real_server;
    mod stand_in_backend;
    mod trusted_proxies;
}

/// SPEC 7, 13 "Logs".
mod logging {
    mod fail2ban;
}

/// SPEC 10: certificates for the names it serves (ACME DNS-01).
mod acme {
    mod acme_dns_api;
    mod certbot_and_lego;
}

/// SPEC 14: DNS UPDATE (RFC 2136) with TSIG, the second way in.
mod dns_update {
    mod certbot_and_lego;
    mod nsupdate_and_rcodes;
}

/// SPEC 11: what the package ships.
mod packages {
    mod man_pages;
}

/// SPEC 2, 3, 12: the operator's path, install → nameserver → client.
mod operator {
    mod client_recipes;
    mod command_line;
    mod config_and_check;
    mod ddclient;
    mod import;
    mod metrics_and_backup;
    mod nameserver_command;
    mod newcomer_frictions;
    mod quick_tour;
}

/// SPEC 15: what happened to a name — history, events, stale names, TTL.
mod history_and_events {
    mod mail_and_webhook_recipes;
    mod rows_events_and_stale;
    mod ttl_per_name;
}

/// SPEC 16: a warm standby (Litestream, promotion, fencing).
mod standby {
    mod kill_and_promote;
}

/// SPEC 13, 17: under faults and abuse.
mod faults_and_abuse {
    mod bounds;
    mod data_guards;
    mod failed_start;
    mod rate_limits;
}

/// README.md and docs/: links, anchors, the configuration reference, test markers.
mod docs;

/// Self-test of `common`: the nameservers, zone checkers and ddclient it drives.
mod harness;

//! A dedyn-update server publishing into a real nameserver (NSD or Knot): the
//! wiring the DNS end-to-end tests share, and reading the publisher's log.
//!
//! The chicken-and-egg: the nameserver needs the zone file to exist when it starts,
//! and the server's config needs the nameserver's `reload_command`. So the rig
//! owns a directory of its own, writes a minimal valid zone file there (serial 1,
//! below every serial the server will ever write), starts the nameserver on it,
//! and only then starts the server with `[[zone]] file` pointing at that same path
//! and `reload_command` set. The server's first publication (SPEC §5: on start,
//! every zone is published once) replaces the placeholder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ns::{write_zone_atomic, Kind, Nameserver};
use super::proc::TempDir;
use super::server::{Response, Server, Setup};

pub const ZONE: &str = "dedyn.example";

/// The operator's static records (the zone's `include` file). A relative name on
/// purpose: it must land in the zone whatever `$ORIGIN` the renderer has set.
pub const INCLUDE: &str =
    "ns1.dedyn.example. 60 IN A 127.0.0.1\nstatic 60 IN TXT \"from the include file\"\n";

/// Server, nameserver and the directory with the zone file, dropped in this order
/// (fields drop in declaration order): the server stops before the nameserver.
pub struct Rig {
    pub server: Server,
    pub ns: Nameserver,
    pub zone_file: PathBuf,
    /// Scratch space next to the zone file (marker files for reload commands).
    pub dir: TempDir,
}

impl Rig {
    /// `kind` serving the zone, the server reloading it with the nameserver's own
    /// reload command. `setup.zones` is replaced; other `setup` lines are kept.
    pub fn start(kind: Kind, setup: Setup) -> Rig {
        Rig::start_reloading(kind, setup, |reload, _| reload.to_string())
    }

    /// Like `start`, with the reload command built by `reload(ns_reload, dir)`
    /// (e.g. one that fails until a marker file in `dir` exists).
    pub fn start_reloading(
        kind: Kind,
        setup: Setup,
        reload: impl FnOnce(&str, &Path) -> String,
    ) -> Rig {
        Rig::start_inner(kind, setup, reload, false)
    }

    /// Like `start_reloading`, with `[dns] verify_server` set to the nameserver.
    pub fn start_verified(
        kind: Kind,
        setup: Setup,
        reload: impl FnOnce(&str, &Path) -> String,
    ) -> Rig {
        Rig::start_inner(kind, setup, reload, true)
    }

    fn start_inner(
        kind: Kind,
        mut setup: Setup,
        reload: impl FnOnce(&str, &Path) -> String,
        verify: bool,
    ) -> Rig {
        let dir = TempDir::new("rig");
        let zone_file = dir.path().join(format!("{ZONE}.zone"));
        let include = dir.path().join("static.zone");
        std::fs::write(&include, INCLUDE).expect("write include file");
        write_zone_atomic(&zone_file, &placeholder_zone(ZONE));
        let ns = match kind {
            Kind::Nsd => Nameserver::start_nsd(ZONE, &zone_file),
            Kind::Knot => Nameserver::start_knot(ZONE, &zone_file),
        };
        let command = reload(&ns.reload_command(), dir.path());
        if verify {
            setup
                .dns
                .push(format!("verify_server = \"127.0.0.1:{}\"", ns.port()));
        }
        setup
            .dns
            .push(format!("reload_command = {}", toml_str(&command)));
        setup.zones = Some(format!(
            "[[zone]]\nname = \"{ZONE}\"\nfile = {}\ninclude = {}\nnameservers = [\"ns1.{ZONE}.\"]\nhostmaster = \"hostmaster.{ZONE}.\"\n",
            toml_str(&zone_file.to_string_lossy()),
            toml_str(&include.to_string_lossy()),
        ));
        let server = Server::start_with(setup);
        Rig {
            server,
            ns,
            zone_file,
            dir,
        }
    }

    /// Wait until the nameserver answers `name`/`rtype` with exactly `expected`.
    pub fn served(&self, name: &str, rtype: &str, expected: &[&str], deadline: Duration) {
        if let Err(e) = self.ns.wait_for(name, rtype, expected, deadline) {
            panic!("{e}\n--- dedyn-update log ---\n{}", self.server.log());
        }
    }

    /// The serial the nameserver serves now.
    pub fn soa_serial(&self) -> u32 {
        self.ns
            .soa_serial(ZONE)
            .unwrap_or_else(|| panic!("no SOA answer\n{}", self.ns.log()))
    }

    /// Serials of the successful publications logged so far, in order.
    pub fn published_serials(&self) -> Vec<u32> {
        published_serials(&self.server.log())
    }

    /// Wait until at least `n` publications were logged.
    pub fn wait_publications(&self, n: usize, deadline: Duration) {
        self.server
            .wait_until(&format!("{n} publications"), deadline, || {
                self.published_serials().len() >= n
            });
    }
}

/// `published zone dedyn.example serial N in M ms` lines → N.
pub fn published_serials(log: &str) -> Vec<u32> {
    let prefix = format!("published zone {ZONE} serial ");
    log.lines()
        .filter_map(|l| {
            let rest = &l[l.find(&prefix)? + prefix.len()..];
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect()
}

/// The `X-Zone-Serial` receipt of a `200` that changed something (one zone: bare).
pub fn receipt(r: &Response) -> u32 {
    assert_eq!((r.status, r.body.as_str()), (200, "good"), "{r:?}");
    r.header("X-Zone-Serial")
        .unwrap_or_else(|| panic!("no X-Zone-Serial on a change: {r:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("X-Zone-Serial is not a serial ({e}): {r:?}"))
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A minimal valid zone `zone` (serial 1): what a nameserver loads before the
/// server has published anything.
pub fn placeholder_zone(zone: &str) -> String {
    format!(
        "$ORIGIN {zone}.\n$TTL 60\n@ IN SOA ns1 hostmaster 1 3600 600 604800 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n"
    )
}

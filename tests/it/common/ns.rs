//! Real nameservers for integration tests: an NSD or Knot instance on a free
//! loopback port, serving one zone file that our server writes, with its own
//! config, control socket, pid and log in a temp dir; plus the zone checkers.
//!
//! Config choices (why each one is there):
//!
//! NSD 4.6 (`nsd -d -c nsd.conf`, foreground, so the PID we hold is the daemon):
//! - `ip-address: 127.0.0.1`, `port:` a free high port, `do-ip6: no` — loopback only.
//! - `username: ""`, `chroot: ""` — no privilege drop, works as root and as a user.
//! - `database: ""` — no nsd.db: the zone file is the only source of truth.
//! - `pidfile`, `xfrdfile`, `zonelistfile`, `xfrdir`, `logfile` in the temp dir —
//!   nothing under /var or /run is touched, parallel instances do not collide.
//! - `control-interface: <abs path>` — a unix socket: no nsd-control-setup keys and
//!   no second TCP port to race for (NSD ≥ 4.3; key/cert files are unused then).
//! - No `store-ixfr`/`create-ixfr`: the harness only queries; a production setup that
//!   serves IXFR to secondaries needs them (SPEC §5).
//! - Reload: `nsd-control reload ZONE` rereads the file only if its mtime differs
//!   from the one last loaded. NSD ≥ 4.1 compares the full `timespec` (seconds AND
//!   nanoseconds, equality only; checked in namedb.c and by experiment), so a rewrite
//!   within the same second is picked up. The one hole: two renames within one tick
//!   of the kernel's coarse file clock (a few ms) can carry the *same* mtime, and
//!   then NSD logs "zonefile ... is not modified" and keeps the old zone.
//!   `write_zone_atomic` closes it by nudging the new file's mtime 1 µs past the old
//!   one when they are equal; the server's publisher should do the same.
//!   `nsd-control reload` returns before the load is done: poll with `wait_for`.
//!
//! Knot 3.2 (`knotd -c knot.conf`, foreground):
//! - `listen: 127.0.0.1@PORT`, `control.listen: <rundir>/knot.sock`, `rundir`,
//!   `pidfile`, `storage` (journal/timer/kasp LMDBs) all in the temp dir; LMDB map
//!   sizes capped (64M/16M) so nothing large is reserved on small CI disks.
//! - `zonefile-sync: -1` — Knot never writes the zone file back (SPEC §5: it is ours).
//! - `zonefile-load: difference` + `journal-content: changes` — the production
//!   setting (diff between loaded zone and file goes to the journal, so IXFR works).
//!   On a cold start it behaves as `whole`. A reload whose file has a *lower or equal*
//!   serial with different content is refused ("zone file changed with decreased SOA
//!   serial"), which is exactly the check we want on our serials.
//! - `serial-policy: increment` (the default, spelled out) only applies to DDNS or
//!   DNSSEC signing, neither of which happens here, so the served serial is always
//!   the one in our file. (`difference-no-serial` would make Knot pick serials: no.)
//! - `user` left at its default (root:root as root; no switch otherwise).
//! - Reload: `knotc -s SOCK -b zone-reload ZONE`. `-b` blocks until the load
//!   finished and exits non-zero on a parse error or a decreased serial, so our
//!   server sees failed reloads. Knot reloads regardless of mtime.

use std::fs::{self, File};
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::proc::{self, find_tool, read_lossy, run_with_timeout, tool, TempDir};

/// How long a daemon may take to answer its first SOA query.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(10);
/// Poll interval of `wait_for`.
pub const WAIT_POLL: Duration = Duration::from_millis(50);
/// Bound on any single helper command (dig, checkzone, ...).
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a daemon gets to exit on SIGTERM before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(5);
/// Start attempts (a free port can be taken by someone else before the daemon binds).
const START_ATTEMPTS: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nsd,
    Knot,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Nsd => "nsd",
            Kind::Knot => "knot",
        }
    }
}

/// One running nameserver. Dropping it stops the daemon (by PID) and removes its dir.
pub struct Nameserver {
    kind: Kind,
    port: u16,
    child: Child,
    conf: PathBuf,
    control: PathBuf,
    log: PathBuf,
    out: PathBuf,
    dir: TempDir,
}

impl Nameserver {
    /// NSD serving `zone` from `zone_file` on 127.0.0.1 and a free high port.
    pub fn start_nsd(zone: &str, zone_file: &Path) -> Nameserver {
        Nameserver::start(Kind::Nsd, zone, zone_file)
    }

    /// Knot serving `zone` from `zone_file` on 127.0.0.1 and a free high port.
    pub fn start_knot(zone: &str, zone_file: &Path) -> Nameserver {
        Nameserver::start(Kind::Knot, zone, zone_file)
    }

    /// One NSD serving several `(zone, zone_file)` pairs (reloaded one by one:
    /// `nsd-control reload ZONE`), for tests of zones that must not wait for each other.
    pub fn start_nsd_zones(zones: &[(&str, &Path)]) -> Nameserver {
        Nameserver::start_zones(Kind::Nsd, zones)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `reload_command` for our config; the server replaces `{zone}` (and `{file}`,
    /// unused here). Tool paths are absolute: a server's PATH may lack /usr/sbin.
    pub fn reload_command(&self) -> String {
        match self.kind {
            Kind::Nsd => format!(
                "{} -c {} reload {{zone}}",
                tool("nsd-control").display(),
                self.conf.display()
            ),
            Kind::Knot => format!(
                "{} -s {} -b zone-reload {{zone}}",
                tool("knotc").display(),
                self.control.display()
            ),
        }
    }

    /// The daemon's log so far (its log file plus stdout/stderr), for failure messages.
    pub fn log(&self) -> String {
        format!(
            "--- {} log {} ---\n{}--- stdout/stderr ---\n{}",
            self.kind.tag(),
            self.log.display(),
            read_lossy(&self.log),
            read_lossy(&self.out)
        )
    }

    /// Answer RDATA for `name`/`rtype`, sorted. Panics if dig fails (timeout, no server).
    pub fn query(&self, name: &str, rtype: &str) -> Vec<String> {
        self.try_query(name, rtype)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log()))
    }

    /// Like `query`, but a failed lookup is an `Err` with dig's output.
    pub fn try_query(&self, name: &str, rtype: &str) -> Result<Vec<String>, String> {
        dig(self.port, name, rtype, self.dir.path())
    }

    /// Polls every `WAIT_POLL` until the sorted answer equals `expected` (order-free).
    pub fn wait_for(
        &self,
        name: &str,
        rtype: &str,
        expected: &[&str],
        deadline: Duration,
    ) -> Result<(), String> {
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        let end = Instant::now() + deadline;
        let max_polls = deadline.as_millis() / WAIT_POLL.as_millis() + 2;
        let mut last = Err(String::from("never queried"));
        for _ in 0..max_polls {
            last = self.try_query(name, rtype);
            if last.as_ref() == Ok(&want) {
                return Ok(());
            }
            if Instant::now() >= end {
                break;
            }
            thread::sleep(WAIT_POLL);
        }
        Err(format!(
            "{}: {name} {rtype} never became {want:?} within {deadline:?}; last answer: {last:?}\n{}",
            self.kind.tag(),
            self.log()
        ))
    }

    /// The SOA serial served for `zone`, `None` if there is no answer.
    pub fn soa_serial(&self, zone: &str) -> Option<u32> {
        let answer = self.try_query(zone, "SOA").ok()?;
        answer.first()?.split_whitespace().nth(2)?.parse().ok()
    }

    fn start(kind: Kind, zone: &str, zone_file: &Path) -> Nameserver {
        Nameserver::start_zones(kind, &[(zone, zone_file)])
    }

    fn start_zones(kind: Kind, zones: &[(&str, &Path)]) -> Nameserver {
        let zones: Vec<(&str, PathBuf)> = zones
            .iter()
            .map(|(z, f)| (*z, std::path::absolute(f).expect("absolute zone file path")))
            .collect();
        for (_, f) in &zones {
            assert!(
                !f.to_string_lossy().contains(['"', '\n']),
                "zone file path unusable in a config: {}",
                f.display()
            );
        }
        assert!(
            kind == Kind::Nsd || zones.len() == 1,
            "several zones: NSD only"
        );
        let (zone, zone_file) = (zones[0].0, zones[0].1.clone());
        let daemon = tool(match kind {
            Kind::Nsd => "nsd",
            Kind::Knot => "knotd",
        });
        let mut failures = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let dir = TempDir::new(kind.tag());
            let port = free_port();
            let (conf, control, log) = match kind {
                Kind::Nsd => write_nsd_conf(dir.path(), port, &zones),
                Kind::Knot => write_knot_conf(dir.path(), port, zone, &zone_file),
            };
            let out = dir.path().join("daemon.out");
            let out_file = File::create(&out).expect("create daemon output file");
            let err_file = out_file.try_clone().expect("clone daemon output file");
            let mut cmd = Command::new(&daemon);
            match kind {
                // -d: stay in the foreground, so the child we hold is the daemon.
                Kind::Nsd => cmd.arg("-d").arg("-c").arg(&conf),
                // knotd runs in the foreground unless given -d.
                Kind::Knot => cmd.arg("-c").arg(&conf),
            };
            let child = cmd
                .stdin(Stdio::null())
                .stdout(out_file)
                .stderr(err_file)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", daemon.display()));
            let mut ns = Nameserver {
                kind,
                port,
                child,
                conf,
                control,
                log,
                out,
                dir,
            };
            match zones.iter().try_for_each(|(z, _)| ns.wait_ready(z)) {
                Ok(()) => return ns,
                Err(e) => {
                    let log = ns.log();
                    let port_taken = log.contains("in use");
                    failures.push_str(&format!("attempt {attempt} (port {port}): {e}\n{log}\n"));
                    drop(ns);
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        panic!(
            "{} did not come up serving {zone} from {}:\n{failures}",
            kind.tag(),
            zone_file.display()
        );
    }

    /// Polls until the daemon answers the zone's SOA, or it dies, or the deadline passes.
    fn wait_ready(&mut self, zone: &str) -> Result<(), String> {
        let end = Instant::now() + STARTUP_DEADLINE;
        let max_polls = STARTUP_DEADLINE.as_millis() / WAIT_POLL.as_millis() + 2;
        let mut last = String::from("never queried");
        for _ in 0..max_polls {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("daemon exited early with {status}"));
            }
            match self.try_query(zone, "SOA") {
                Ok(answer) if !answer.is_empty() => return Ok(()),
                Ok(_) => last = "empty SOA answer".into(),
                Err(e) => last = e,
            }
            if Instant::now() >= end {
                break;
            }
            thread::sleep(WAIT_POLL);
        }
        Err(format!(
            "no SOA answer within {STARTUP_DEADLINE:?}; last: {last}"
        ))
    }
}

impl Drop for Nameserver {
    fn drop(&mut self) {
        proc::stop_tree(&mut self.child, STOP_DEADLINE);
    }
}

fn write_nsd_conf(dir: &Path, port: u16, zones: &[(&str, PathBuf)]) -> (PathBuf, PathBuf, PathBuf) {
    let conf = dir.join("nsd.conf");
    let zone_stanza: String = zones
        .iter()
        .map(|(zone, file)| {
            format!(
                "zone:\n  name: {zone}\n  zonefile: \"{}\"\n",
                file.display()
            )
        })
        .collect();
    fs::write(&conf, nsd_conf_text(dir, port, &zone_stanza)).expect("write nsd.conf");
    (conf, dir.join("nsd.ctl"), dir.join("nsd.log"))
}

/// An NSD config for a test daemon in `dir` on 127.0.0.1:`port`: no privilege
/// drop, no database, a unix control socket `dir/nsd.ctl`, log `dir/nsd.log`;
/// `sections` (zones, keys) follow as given.
pub fn nsd_conf_text(dir: &Path, port: u16, sections: &str) -> String {
    let d = dir.display();
    format!(
        r#"# written by tests/it/common/ns.rs; see the module doc for why each line is here
server:
  ip-address: 127.0.0.1
  port: {port}
  do-ip4: yes
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "{d}"
  database: ""
  pidfile: "{d}/nsd.pid"
  xfrdfile: "{d}/xfrd.state"
  zonelistfile: "{d}/zone.list"
  xfrdir: "{d}"
  logfile: "{d}/nsd.log"
  server-count: 1
  verbosity: 3
  hide-version: yes
remote-control:
  control-enable: yes
  control-interface: "{d}/nsd.ctl"
{sections}"#
    )
}

fn write_knot_conf(
    dir: &Path,
    port: u16,
    zone: &str,
    zone_file: &Path,
) -> (PathBuf, PathBuf, PathBuf) {
    let d = dir.display();
    let conf = dir.join("knot.conf");
    let control = dir.join("knot.sock");
    let log = dir.join("knot.log");
    let text = format!(
        r#"# written by tests/it/common/ns.rs; see the module doc for why each line is here
server:
    rundir: "{d}"
    pidfile: "{d}/knot.pid"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
control:
    listen: "{control}"
database:
    storage: "{d}"
    journal-db-max-size: 64M
    kasp-db-max-size: 16M
    timer-db-max-size: 16M
    catalog-db-max-size: 16M
log:
  - target: "{log}"
    any: info
template:
  - id: default
    storage: "{d}"
    zonefile-sync: -1
    zonefile-load: difference
    journal-content: changes
    serial-policy: increment
zone:
  - domain: {zone}
    file: "{zone_file}"
"#,
        log = log.display(),
        control = control.display(),
        zone_file = zone_file.display(),
    );
    fs::write(&conf, text).expect("write knot.conf");
    (conf, control, log)
}

/// `dig @127.0.0.1 -p PORT +short +norecurse`, one try of one second; sorted RDATA.
pub fn dig(port: u16, name: &str, rtype: &str, scratch: &Path) -> Result<Vec<String>, String> {
    let mut cmd = Command::new(tool("dig"));
    cmd.arg("@127.0.0.1")
        .arg("-p")
        .arg(port.to_string())
        .args(["+short", "+norecurse", "+time=1", "+tries=1"])
        .arg(name)
        .arg(rtype);
    let out = run_with_timeout(cmd, scratch, TOOL_TIMEOUT);
    if !out.success() {
        return Err(format!(
            "dig {name} {rtype} @127.0.0.1:{port} failed: {}",
            out.text.trim()
        ));
    }
    // dig +short still prints ";; ..." lines for some errors.
    let mut answer: Vec<String> = out
        .text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(String::from)
        .collect();
    answer.sort();
    Ok(answer)
}

/// A loopback port free for both UDP and TCP right now (a DNS server needs both).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
        let port = udp.local_addr().expect("UDP local addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port free for both UDP and TCP after 100 tries");
}

/// Replaces `path` the way the server must: temp file in the same dir, fsync, rename.
/// If the new file's mtime equals the old one's (same coarse clock tick), it is
/// moved 1 µs later, because NSD skips a reload when the mtime is unchanged.
pub fn write_zone_atomic(path: &Path, text: &str) {
    let old_mtime = fs::metadata(path).and_then(|m| m.modified()).ok();
    let name = path
        .file_name()
        .expect("zone file has a name")
        .to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = File::create(&tmp).expect("create temp zone file");
    f.write_all(text.as_bytes()).expect("write temp zone file");
    if let (Some(old), Ok(new)) = (old_mtime, f.metadata().and_then(|m| m.modified())) {
        if new <= old {
            f.set_modified(old + Duration::from_micros(1))
                .expect("set zone file mtime");
        }
    }
    f.sync_all().expect("sync temp zone file");
    drop(f);
    fs::rename(&tmp, path).expect("rename zone file into place");
}

/// Runs NSD's, Knot's and BIND's zone checkers on `file`; `Err` names each tool
/// that refused it, with its output.
pub fn check_zone_all(zone: &str, file: &Path) -> Result<(), String> {
    let scratch = TempDir::new("check");
    let mut failures = Vec::new();
    let mut check = |name: &str, cmd: Command| {
        let out = run_with_timeout(cmd, scratch.path(), TOOL_TIMEOUT);
        if !out.success() {
            failures.push(format!(
                "{name} rejected {}:\n{}",
                file.display(),
                out.text.trim()
            ));
        }
    };

    let mut nsd = Command::new(tool("nsd-checkzone"));
    nsd.arg(zone).arg(file);
    check("nsd-checkzone", nsd);

    // kzonecheck ships in knot-dnssecutils on Debian 12 (not in knot). Without it,
    // `knotc zone-check` runs the same loader and semantic checks from a config.
    match find_tool("kzonecheck") {
        Some(kzonecheck) => {
            let mut knot = Command::new(kzonecheck);
            knot.arg("-o").arg(zone).arg(file);
            check("kzonecheck", knot);
        }
        None => {
            let file = std::path::absolute(file).expect("absolute zone file path");
            let conf = scratch.path().join("knot-check.conf");
            let text = format!(
                "server:\n    rundir: \"{d}\"\ndatabase:\n    storage: \"{d}\"\nzone:\n  - domain: {zone}\n    file: \"{f}\"\n",
                d = scratch.path().display(),
                f = file.display()
            );
            fs::write(&conf, text).expect("write knot-check.conf");
            let mut knot = Command::new(tool("knotc"));
            knot.arg("-c").arg(&conf).arg("zone-check").arg(zone);
            check("knotc zone-check (kzonecheck not installed)", knot);
        }
    }

    let mut bind = Command::new(tool("named-checkzone"));
    bind.arg(zone).arg(file);
    check("named-checkzone", bind);

    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// Runs a `reload_command` template as our server would: `{zone}` and `{file}`
/// substituted, through `sh -c`, bounded in time. `Err` carries the output.
pub fn run_reload_command(template: &str, zone: &str, file: &Path) -> Result<String, String> {
    let command = template
        .replace("{zone}", zone)
        .replace("{file}", &file.to_string_lossy());
    let scratch = TempDir::new("reload");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(&command);
    let out = run_with_timeout(cmd, scratch.path(), TOOL_TIMEOUT);
    if out.success() {
        Ok(out.text)
    } else {
        Err(format!("`{command}` failed: {}", out.text.trim()))
    }
}

/// An NSD of a test's own config (`sections` after `nsd_conf_text`'s server
/// part: keys, zones that point at other servers), in the foreground in
/// `dir`, stopped with its children on drop. For tests whose servers point at
/// each other, so that both ports are chosen before either starts.
pub struct ForegroundNsd {
    pub child: std::process::Child,
    pub port: u16,
    pub conf: PathBuf,
    pub dir: PathBuf,
}

impl ForegroundNsd {
    pub fn start(dir: &Path, port: u16, sections: &str) -> ForegroundNsd {
        fs::create_dir_all(dir).unwrap();
        let conf = dir.join("nsd.conf");
        fs::write(&conf, nsd_conf_text(dir, port, sections)).unwrap();
        let out = fs::File::create(dir.join("daemon.out")).unwrap();
        let child = Command::new(tool("nsd"))
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start nsd");
        ForegroundNsd {
            child,
            port,
            conf,
            dir: dir.to_path_buf(),
        }
    }

    /// `dig +short`, sorted; `Err` when dig fails (no answer yet).
    pub fn dig(&self, name: &str, rtype: &str) -> Result<Vec<String>, String> {
        dig(self.port, name, rtype, &self.dir)
    }

    /// The serial of `zone`'s SOA as this server answers it.
    pub fn serial(&self, zone: &str) -> Option<u32> {
        self.dig(zone, "SOA")
            .ok()?
            .first()?
            .split_whitespace()
            .nth(2)?
            .parse()
            .ok()
    }

    /// Its log and its daemon output.
    pub fn log(&self) -> String {
        format!(
            "--- {} ---\n{}{}",
            self.dir.display(),
            super::proc::read_lossy(&self.dir.join("nsd.log")),
            super::proc::read_lossy(&self.dir.join("daemon.out"))
        )
    }
}

impl Drop for ForegroundNsd {
    fn drop(&mut self) {
        super::proc::stop_tree(&mut self.child, std::time::Duration::from_secs(5));
    }
}

//! The operator's path for real: Debian's STOCK nameserver configuration copied
//! into a temp root, `dedyn-update nameserver …`'s script run there, the daemon started.
//!
//! The only changes to what Debian ships and what the command prints are these
//! rewrites, each needed to run beside other tests without touching the system:
//! - base directories: `/etc/nsd`, `/var/lib/nsd`, `/run/nsd`, `/etc/knot`,
//!   `/var/lib/knot`, `/run/knot`, `/etc/bind`, `/var/lib/bind`, `/var/cache/bind`,
//!   `/run/named`, `/etc/apparmor.d`, `/etc/systemd/system` → the same path under
//!   the temp root (also in the stock files, and for NSD's and BIND's compiled-in
//!   defaults, which are then spelled out: NSD's database/pidfile/xfrdfile/
//!   zonelistfile/zonesdir/xfrdir, BIND's pid-file and session-keyfile);
//! - port 53 → a free loopback port (NSD `ip-address`/`port`, Knot's printed
//!   `listen`, BIND's `listen-on`, `verify_server`); BIND's implicit control
//!   channel 127.0.0.1:953 → a free port with a fresh key, and `rndc` told so;
//! - logs to the temp root or stderr instead of syslog (a container has no syslog);
//! - BIND: `dnssec-validation no`, so that named sends no query off the machine
//!   (the stock `auto` refreshes the root trust anchor at start);
//! - not root: no privilege drop (`username: ""`, no `user:`, no `-u bind`) and
//!   no `install -o nsd -g nsd` (only root can give a directory away);
//!   as root the daemons drop to their Debian users as packaged, and the temp
//!   base directories get the owners Debian gives the real ones;
//! - `usermod`, `systemctl` and `apparmor_parser` are stubs that record their
//!   arguments (they would change this machine); the test checks what was asked.
//!   `dedyn-update` is the binary under test: the script's `config set` edits the
//!   test's config file, and the test serves with the `[dns]` keys it wrote.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::ns::{dig, free_port};
use super::proc::{self, find_tool, is_root, read_lossy, run_with_timeout, tool, TempDir};
use super::server::BIN;

pub const ZONE: &str = "dedyn.example";
/// The absolute path the zone file has on a real machine; under the temp root here.
pub const ZONE_FILE: &str = "/var/lib/dedyn-update/zones/dedyn.example.zone";
/// How long a daemon may take to answer its first SOA query.
const STARTUP: Duration = Duration::from_secs(15);
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// Directories whose Debian paths are moved under the temp root.
const BASE_DIRS: &[&str] = &[
    "/etc/nsd",
    "/var/lib/nsd",
    "/run/nsd",
    "/etc/knot",
    "/var/lib/knot",
    "/run/knot",
    "/etc/bind",
    "/var/lib/bind",
    "/var/cache/bind",
    "/run/named",
    "/etc/apparmor.d",
    "/etc/systemd/system",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nsd,
    Knot,
    Bind,
}

impl Kind {
    pub fn arg(self) -> &'static str {
        match self {
            Kind::Nsd => "nsd",
            Kind::Knot => "knot",
            Kind::Bind => "bind",
        }
    }

    /// Debian's system user for the daemon.
    pub fn user(self) -> &'static str {
        match self {
            Kind::Nsd => "nsd",
            Kind::Knot => "knot",
            Kind::Bind => "bind",
        }
    }
}

/// The temp root with its ports.
pub struct Root {
    pub dir: TempDir,
    pub port: u16,
    /// BIND's control channel.
    pub ctl_port: u16,
}

impl Root {
    pub fn new(kind: Kind) -> Root {
        let dir = TempDir::new(&format!("stock-{}", kind.arg()));
        // TempDir is private to us by default on some systems: the daemons' users
        // must be able to walk into it, as they walk into /etc and /var.
        chmod(dir.path(), 0o755);
        let port = free_port();
        let mut ctl_port = free_port();
        while ctl_port == port {
            ctl_port = free_port();
        }
        Root {
            dir,
            port,
            ctl_port,
        }
    }

    /// `abs` (a Debian path) under the temp root.
    pub fn at(&self, abs: &str) -> PathBuf {
        self.dir.path().join(abs.trim_start_matches('/'))
    }

    fn root_str(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    /// Base directories and port 53 moved (see the module doc).
    pub fn rewrite(&self, text: &str) -> String {
        let mut t = text.to_string();
        for d in BASE_DIRS {
            t = t.replace(d, &format!("{}{d}", self.root_str()));
        }
        t.replace(
            "[ 0.0.0.0@53, ::@53 ]",
            &format!("[ 127.0.0.1@{} ]", self.port),
        )
        .replace("\"127.0.0.1:53\"", &format!("\"127.0.0.1:{}\"", self.port))
        .replace(" 127.0.0.1:53\n", &format!(" 127.0.0.1:{}\n", self.port))
    }

    /// Copies `/etc/...` file `abs` into the root, rewritten, then `edit`ed.
    fn copy_stock(&self, abs: &str, edit: impl FnOnce(String) -> String) {
        let text = fs::read_to_string(abs)
            .unwrap_or_else(|e| panic!("Debian's stock {abs} is missing ({e}): install-deps.sh"));
        let to = self.at(abs);
        fs::create_dir_all(to.parent().expect("a parent")).expect("create stock dir");
        fs::write(&to, edit(self.rewrite(&text))).expect("write stock copy");
    }

    /// A base directory as Debian's package leaves it (owner only as root).
    fn base_dir(&self, abs: &str, owner: &str, group: &str, mode: u32) {
        let p = self.at(abs);
        fs::create_dir_all(&p).expect("create base dir");
        chmod(&p, mode);
        if is_root() {
            let mut c = Command::new("chown");
            c.arg(format!("{owner}:{group}")).arg(&p);
            let out = run_with_timeout(c, self.dir.path(), TOOL_TIMEOUT);
            assert!(out.success(), "chown {}: {}", p.display(), out.text);
        }
    }

    /// Debian's stock configuration of `kind`, under the root.
    pub fn install_stock(&self, kind: Kind) {
        let root = self.root_str();
        match kind {
            Kind::Nsd => {
                self.copy_stock("/etc/nsd/nsd.conf", |t| {
                    let line = "        log-only-syslog: yes\n";
                    assert!(t.contains(line), "stock nsd.conf changed:\n{t}");
                    let mut server = format!(
                        "        logfile: \"{root}/nsd.log\"\n\
                         \x20       ip-address: 127.0.0.1\n\
                         \x20       port: {port}\n\
                         \x20       database: \"{root}/var/lib/nsd/nsd.db\"\n\
                         \x20       pidfile: \"{root}/run/nsd/nsd.pid\"\n\
                         \x20       xfrdfile: \"{root}/var/lib/nsd/xfrd.state\"\n\
                         \x20       zonelistfile: \"{root}/var/lib/nsd/zone.list\"\n\
                         \x20       zonesdir: \"{root}/etc/nsd\"\n\
                         \x20       xfrdir: \"{root}/tmp\"\n",
                        port = self.port
                    );
                    if !is_root() {
                        server.push_str("        username: \"\"\n");
                    }
                    t.replace(line, &server)
                });
                fs::create_dir_all(self.at("/etc/nsd/nsd.conf.d")).expect("nsd.conf.d");
                self.base_dir("/var/lib/nsd", "nsd", "nsd", 0o755);
                self.base_dir("/run/nsd", "nsd", "nsd", 0o755);
                self.base_dir("/tmp", "root", "root", 0o1777);
            }
            Kind::Knot => {
                self.copy_stock("/etc/knot/knot.conf", |t| {
                    assert!(
                        t.contains("target: syslog"),
                        "stock knot.conf changed:\n{t}"
                    );
                    let t = t.replace("target: syslog", "target: stderr");
                    if is_root() {
                        t
                    } else {
                        t.replace("    user: knot:knot\n", "")
                    }
                });
                self.base_dir("/run/knot", "knot", "knot", 0o755);
                self.base_dir("/var/lib/knot", "root", "knot", 0o770);
            }
            Kind::Bind => {
                let entries = fs::read_dir("/etc/bind").expect("/etc/bind: install-deps.sh");
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name == "rndc.key" || !e.path().is_file() {
                        continue;
                    }
                    let abs = format!("/etc/bind/{name}");
                    match name.as_str() {
                        "named.conf.options" => self.copy_stock(&abs, |t| {
                            let v6 = "\tlisten-on-v6 { any; };\n";
                            let validation = "\tdnssec-validation auto;\n";
                            assert!(
                                t.contains(v6) && t.contains(validation),
                                "stock named.conf.options changed:\n{t}"
                            );
                            t.replace(
                                v6,
                                &format!(
                                    "\tlisten-on port {} {{ 127.0.0.1; }};\n\tlisten-on-v6 {{ none; }};\n\
                                     \tpid-file \"{root}/run/named/named.pid\";\n\
                                     \tsession-keyfile \"{root}/run/named/session.key\";\n",
                                    self.port
                                ),
                            )
                            .replace(validation, "\tdnssec-validation no;\n")
                        }),
                        "named.conf" => self.copy_stock(&abs, |t| {
                            format!(
                                "{t}\ncontrols {{ inet 127.0.0.1 port {} allow {{ 127.0.0.1; }} keys {{ \"rndc-key\"; }}; }};\n\
                                 include \"{root}/etc/bind/rndc.key\";\n",
                                self.ctl_port
                            )
                        }),
                        _ => self.copy_stock(&abs, |t| t),
                    }
                }
                let mut c = Command::new(tool("rndc-confgen"));
                c.arg("-a").arg("-c").arg(self.at("/etc/bind/rndc.key"));
                if is_root() {
                    // Debian's postinst: bind:bind 0640 (named reads it after dropping root).
                    c.args(["-u", "bind"]);
                }
                let out = run_with_timeout(c, self.dir.path(), TOOL_TIMEOUT);
                assert!(out.success(), "rndc-confgen: {}", out.text);
                self.base_dir("/var/cache/bind", "root", "bind", 0o775);
                self.base_dir("/var/lib/bind", "root", "bind", 0o775);
                self.base_dir("/run/named", "bind", "bind", 0o775);
                let local = self.at("/etc/apparmor.d/local/usr.sbin.named");
                fs::create_dir_all(local.parent().expect("a parent")).expect("apparmor dir");
                let stock = fs::read("/etc/apparmor.d/local/usr.sbin.named").unwrap_or_default();
                fs::write(&local, stock).expect("write local apparmor override");
            }
        }
    }

    /// Stub `usermod`, `systemctl`, `apparmor_parser`: they log their arguments.
    /// `dedyn-update` is the real binary under test.
    fn stubs(&self) -> PathBuf {
        let bin = self.at("/stub-bin");
        fs::create_dir_all(&bin).expect("stub dir");
        let ours = bin.join("dedyn-update");
        if !ours.exists() {
            std::os::unix::fs::symlink(BIN, &ours).expect("link dedyn-update");
        }
        for name in ["usermod", "systemctl", "apparmor_parser"] {
            let p = bin.join(name);
            fs::write(
                &p,
                format!(
                    "#!/bin/sh\necho \"{name} $*\" >> '{}'\n",
                    self.stub_log().display()
                ),
            )
            .expect("write stub");
            chmod(&p, 0o755);
        }
        bin
    }

    pub fn stub_log(&self) -> PathBuf {
        self.at("/stub.log")
    }

    /// Runs the command's script (rewritten) with `sh -e`, as the README says.
    pub fn run_script(&self, script: &str) {
        let path = self.at("/nameserver.sh");
        let mut script = self.rewrite(script);
        if !is_root() {
            // Only root can give a directory to another user.
            script = script.replace(" -o nsd -g nsd", "");
        }
        fs::write(&path, script).expect("write script");
        let mut c = Command::new("sh");
        c.arg("-e").arg(&path).current_dir(self.dir.path()).env(
            "PATH",
            format!("{}:{}", self.stubs().display(), sbin_path()),
        );
        let out = run_with_timeout(c, self.dir.path(), TOOL_TIMEOUT);
        assert!(
            out.success(),
            "the script failed: {}\n--- script ---\n{}",
            out.text,
            read_lossy(&path)
        );
    }

    /// A minimal valid zone (serial 1) at the zone file's path, so the daemon has
    /// something to answer before dedyn-update's first publication replaces it.
    pub fn placeholder_zone(&self) -> PathBuf {
        let file = self.at(ZONE_FILE);
        fs::create_dir_all(file.parent().expect("a parent")).expect("zone dir");
        chmod(file.parent().expect("a parent"), 0o755);
        fs::write(&file, super::dns::placeholder_zone(ZONE)).expect("write placeholder zone");
        file
    }

    /// Starts `kind` as its Debian unit does (foreground), from the root's config.
    /// `Err(log)` when it did not come up (e.g. another test took the port first).
    pub fn start(&self, kind: Kind) -> Result<Daemon, String> {
        let mut cmd = match kind {
            Kind::Nsd => {
                let mut c = Command::new(tool("nsd"));
                c.args(["-d", "-P", ""])
                    .arg("-c")
                    .arg(self.at("/etc/nsd/nsd.conf"));
                c
            }
            Kind::Knot => {
                let mut c = Command::new(tool("knotd"));
                c.arg("-c").arg(self.at("/etc/knot/knot.conf"));
                c
            }
            Kind::Bind => {
                // Debian's AppArmor profile is attached to /usr/sbin/named and confines
                // it to /etc/bind, /var/lib/bind, /var/cache/bind: where AppArmor is on,
                // run the same binary from the temp root so that its files are reachable.
                let named = if Path::new("/sys/kernel/security/apparmor").exists() {
                    let copy = self.at("/named");
                    fs::copy(tool("named"), &copy).expect("copy named");
                    copy
                } else {
                    tool("named")
                };
                let mut c = Command::new(named);
                c.arg("-g").arg("-c").arg(self.at("/etc/bind/named.conf"));
                if is_root() {
                    c.args(["-u", "bind"]);
                }
                c
            }
        };
        let out = self.at(&format!("/{}.out", kind.arg()));
        let out_file = fs::File::create(&out).expect("daemon output file");
        let err_file = out_file.try_clone().expect("clone output file");
        let child = cmd
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out_file)
            .stderr(err_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {kind:?}: {e}"));
        let mut d = Daemon {
            kind,
            child,
            out,
            nsd_log: self.at("/nsd.log"),
            port: self.port,
            scratch: self.at("/"),
        };
        d.wait_ready()?;
        Ok(d)
    }

    /// The `[dns]` keys the script's `config set` wrote into `config`, as TOML lines
    /// (rewritten with the script); for BIND, `rndc` is pointed at the moved control
    /// channel.
    pub fn dns_keys(&self, config: &Path, kind: Kind) -> Vec<String> {
        let text = read_lossy(config);
        let keys: Vec<String> = text
            .lines()
            .skip_while(|l| l.trim() != "[dns]")
            .filter(|l| l.starts_with("reload_command = ") || l.starts_with("verify_server = "))
            .map(str::to_string)
            .collect();
        assert_eq!(
            keys.len(),
            2,
            "reload_command and verify_server in [dns] of {}:\n{text}",
            config.display()
        );
        keys.into_iter()
            .map(|l| match kind {
                Kind::Bind => l.replace(
                    "\"rndc reload",
                    &format!(
                        "\"rndc -k {} -s 127.0.0.1 -p {} reload",
                        self.at("/etc/bind/rndc.key").display(),
                        self.ctl_port
                    ),
                ),
                _ => l,
            })
            .collect()
    }
}

/// PATH with the sbin directories (nsd-control, knotc, rndc live there).
pub fn sbin_path() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{path}:/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin")
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// `dedyn-update --config CONFIG nameserver ARGS…`: the script on success.
pub fn nameserver_output(config: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("nameserver")
        .args(args)
        .env_remove("DEDYN_UPDATE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run dedyn-update nameserver");
    assert!(
        out.status.success(),
        "nameserver {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A running daemon; dropping it stops it (and the processes it forked) by PID.
pub struct Daemon {
    pub kind: Kind,
    child: Child,
    out: PathBuf,
    nsd_log: PathBuf,
    pub port: u16,
    scratch: PathBuf,
}

impl Daemon {
    pub fn log(&self) -> String {
        format!(
            "--- {:?} output ---\n{}{}",
            self.kind,
            read_lossy(&self.out),
            read_lossy(&self.nsd_log)
        )
    }

    pub fn query(&self, name: &str, rtype: &str) -> Result<Vec<String>, String> {
        dig(self.port, name, rtype, &self.scratch)
    }

    /// Polls until `name`/`rtype` answers exactly `want` (sorted), or panics with the log.
    pub fn wait_for(&self, name: &str, rtype: &str, want: &[&str], deadline: Duration) {
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        let end = Instant::now() + deadline;
        let mut last = Err("never asked".to_string());
        while Instant::now() < end {
            last = self.query(name, rtype);
            if last.as_ref() == Ok(&want) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{name} {rtype} never became {want:?} within {deadline:?}; last: {last:?}\n{}",
            self.log()
        );
    }

    pub fn soa_serial(&self) -> Option<u32> {
        let a = self.query(ZONE, "SOA").ok()?;
        a.first()?.split_whitespace().nth(2)?.parse().ok()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let end = Instant::now() + STARTUP;
        let mut last = String::from("never asked");
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!(
                    "{:?} exited at start with {st}\n{}",
                    self.kind,
                    self.log()
                ));
            }
            match self.query(ZONE, "SOA") {
                Ok(a) if !a.is_empty() => return Ok(()),
                Ok(_) => last = "empty SOA answer".into(),
                Err(e) => last = e,
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "{:?} did not answer the SOA within {STARTUP:?}: {last}\n{}",
            self.kind,
            self.log()
        ))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        proc::stop_tree(&mut self.child, STOP_DEADLINE);
    }
}

/// Runs `command` (a line of the script, rewritten) through `sh`; its output.
pub fn run_line(root: &Root, command: &str) -> Result<String, String> {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(root.rewrite(command))
        .env("PATH", sbin_path());
    let out = run_with_timeout(c, root.dir.path(), TOOL_TIMEOUT);
    if out.success() {
        Ok(out.text)
    } else {
        Err(format!("`{command}` failed: {}", out.text))
    }
}

/// The real `apparmor_parser`, not our stub, if this machine has one.
pub fn real_apparmor_parser() -> Option<PathBuf> {
    ["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            find_tool("apparmor_parser").filter(|p| !p.to_string_lossy().contains("stub-bin"))
        })
}

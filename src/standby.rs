//! A warm standby (SPEC 16) around Litestream, which does all the replicating:
//! running its binary, the fence a promotion leaves at the replica location it
//! took over, and `serve`'s heartbeat thread.
//!
//! The fence is a one-row SQLite file that Litestream itself writes next to the
//! taken-over replica (`LOCATION.fence`, with `replicate -once`) and reads back
//! (`restore -if-replica-exists`): so it works for every location Litestream
//! reaches (S3-compatible, file, SFTP, …) with the operator's credentials, and no
//! storage client of our own.

use crate::config::settings::Config;
use crate::os::clock::{now_unix, rfc3339};
use log::{info, warn};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How often `serve` rewrites its heartbeat row: the newest beat a standby's
/// copy holds is at most this old (plus the replication lag) while the primary lives.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// How long one Litestream command may take (a restore of 100k names from a
/// local S3 endpoint took 0.76 s; a remote bucket over a slow link far more).
pub const LITESTREAM_TIMEOUT: Duration = Duration::from_secs(120);

/// How long `serve` waits for Litestream to read the fence: well inside
/// systemd's start timeout (90 s), since a start that hangs on an unreachable
/// location helps no one; past it the service starts and says it could not tell.
pub const SERVE_FENCE_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the fence of a replica location lives: beside it, never inside
/// (Litestream owns the layout of the location itself). Query parameters
/// (`?endpoint=…`) stay at the end.
pub fn fence_location(replica: &str) -> String {
    let (base, query) = match replica.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (replica, None),
    };
    let base = base.trim_end_matches('/');
    match query {
        Some(q) => format!("{base}.fence?{q}"),
        None => format!("{base}.fence"),
    }
}

/// Why a Litestream command, the fence or the heartbeat thread failed: one
/// sentence naming the command or file, for the operator (nothing matches on it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StandbyError(pub String);

impl std::fmt::Display for StandbyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StandbyError {}

/// The fence a promotion writes: who took the location over, when, and where
/// the promoted standby replicates now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub at: i64,
    pub host: String,
    pub new_replica: String,
}

impl Fence {
    /// Why a primary whose replica location is `replica` must not serve.
    pub fn refusal(&self, replica: &str) -> String {
        format!(
            "refusing to serve: the replica location {replica} was taken over by a standby promoted on {} at {} (it replicates to {} now); \
             this machine must not serve as a second writer. Rebuild it as the new standby: docs/standby.md, \"Rebuilding the old primary\"",
            self.host,
            rfc3339(self.at),
            self.new_replica
        )
    }
}

/// This machine's name, for heartbeats, promotions and fences.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// `NAME` → `.NAME.TAG-PID` beside `path` (same filesystem, our own directory).
fn beside(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dedyn-update".into());
    path.with_file_name(format!(".{name}.{tag}-{}", std::process::id()))
}

fn remove_db_files(path: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Run `litestream ARGS` to its end (bounded by `LITESTREAM_TIMEOUT`); `Err`
/// names the command and carries the end of its output.
pub fn litestream(config: &Config, args: &[&str]) -> Result<(), StandbyError> {
    litestream_within(config, args, LITESTREAM_TIMEOUT)
}

fn litestream_within(
    config: &Config,
    args: &[&str],
    timeout: Duration,
) -> Result<(), StandbyError> {
    let bin = &config.standby.litestream;
    let shown = format!("{bin} {}", args.join(" "));
    // Litestream 0.5's S3 client refuses to start while AWS_CA_BUNDLE is set
    // ("unable to add custom RootCAs HTTPClient"), whatever it names.
    let mut child = Command::new(bin)
        .args(args)
        .env_remove("AWS_CA_BUNDLE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            StandbyError(format!(
                "cannot run {bin} (standby.litestream): {e}; install Litestream (docs/standby.md)"
            ))
        })?;
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stderr {
            use std::io::Read;
            let _ = s.read_to_string(&mut text);
        }
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(StandbyError(format!(
                    "{shown}: still running after {timeout:?}; killed"
                )));
            }
            Err(e) => break Err(StandbyError(format!("{shown}: {e}"))),
        }
    };
    let text = reader.join().unwrap_or_default();
    let status = status?;
    if status.success() {
        return Ok(());
    }
    let tail: Vec<&str> = text.lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(StandbyError(format!(
        "{shown}: {status}: {}",
        tail.join(" / ")
    )))
}

/// Read the fence beside `replica`, if there is one (Litestream restores it
/// into a temporary file beside the database).
pub fn read_fence(config: &Config, replica: &str) -> Result<Option<Fence>, StandbyError> {
    read_fence_within(config, replica, LITESTREAM_TIMEOUT)
}

fn read_fence_within(
    config: &Config,
    replica: &str,
    timeout: Duration,
) -> Result<Option<Fence>, StandbyError> {
    let tmp = beside(&config.database.path, "fence");
    remove_db_files(&tmp);
    let out = tmp.to_string_lossy().into_owned();
    let location = fence_location(replica);
    let result = litestream_within(
        config,
        &["restore", "-if-replica-exists", "-o", &out, &location],
        timeout,
    )
    .and_then(|()| {
        if !tmp.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(&tmp, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| StandbyError(format!("{}: {e}", tmp.display())))?;
        conn.query_row("SELECT at, host, new_replica FROM fence", [], |r| {
            Ok(Fence {
                at: r.get(0)?,
                host: r.get(1)?,
                new_replica: r.get(2)?,
            })
        })
        .map(Some)
        .map_err(|e| StandbyError(format!("the fence at {location} is not ours: {e}")))
    });
    remove_db_files(&tmp);
    result
}

/// Leave `fence` beside `replica` (SPEC 16: the old primary's start refuses).
pub fn write_fence(config: &Config, replica: &str, fence: &Fence) -> Result<(), StandbyError> {
    let dir = beside(&config.database.path, "fence-write");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| StandbyError(format!("creating {}: {e}", dir.display())))?;
    let db = dir.join("fence.sqlite3");
    let result = Connection::open(&db)
        .and_then(|c| {
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.execute_batch(
                "CREATE TABLE fence (at INTEGER NOT NULL, host TEXT NOT NULL, new_replica TEXT NOT NULL)",
            )?;
            c.execute(
                "INSERT INTO fence VALUES (?1, ?2, ?3)",
                rusqlite::params![fence.at, fence.host, fence.new_replica],
            )?;
            Ok(())
        })
        .map_err(|e| StandbyError(format!("{}: {e}", db.display())))
        .and_then(|()| {
            let db = db.to_string_lossy().into_owned();
            litestream(
                config,
                &["replicate", "-once", &db, &fence_location(replica)],
            )
        });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Processes running Litestream's follower into `db` (`litestream restore -f
/// … -o DB`): it holds no SQLite lock, so a promotion looks for it by its
/// command line, and refuses while it runs (it would go on writing the old
/// primary's changes). Processes of other users whose `/proc` entries we may
/// not read are not seen.
pub fn followers_of(db: &Path) -> Vec<u32> {
    let want = std::path::absolute(db).unwrap_or_else(|_| db.to_path_buf());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let follows = args.iter().any(|a| a == "restore")
            && args
                .iter()
                .any(|a| a == "-f" || a == "--f" || a == "-f=true");
        let out = args
            .iter()
            .position(|a| a == "-o" || a == "--o")
            .and_then(|i| args.get(i + 1));
        let (true, Some(out)) = (follows, out) else {
            continue;
        };
        let out = Path::new(out);
        let out = if out.is_absolute() {
            out.to_path_buf()
        } else {
            match std::fs::read_link(e.path().join("cwd")) {
                Ok(cwd) => cwd.join(out),
                Err(_) => continue,
            }
        };
        if out == want {
            found.push(pid);
        }
    }
    found
}

/// `serve`'s fencing (SPEC 16): with `[standby] replica`, refuse when a
/// promoted standby took that location over. When Litestream cannot tell (not
/// installed, location unreachable), a primary still serves: it says so.
/// `promoted`: when this database was promoted with no `serve` on it since
/// (`store::promoted_and_not_served_since`).
pub fn refuse_if_fenced(config: &Config, promoted: Option<i64>) -> Result<(), StandbyError> {
    let replica = &config.standby.replica;
    if replica.is_empty() {
        return Ok(());
    }
    if let Some(at) = promoted {
        // Nothing of this database has been replicated to the location yet, so
        // no standby can have taken it over: the first start after a promotion
        // does not wait for a round of requests to it.
        info!(
            "standby: first start since this copy was promoted ({}): {replica} holds nothing of it yet",
            rfc3339(at)
        );
        return Ok(());
    }
    match read_fence_within(config, replica, SERVE_FENCE_TIMEOUT) {
        Ok(Some(f)) => Err(StandbyError(f.refusal(replica))),
        Ok(None) => {
            info!("standby: {replica} is this machine's own replica location (no fence)");
            Ok(())
        }
        Err(e) => {
            warn!(
                "standby: cannot tell whether {replica} was taken over by a standby ({e}); serving"
            );
            Ok(())
        }
    }
}

/// The heartbeat thread's port: all it may do to the database is rewrite its
/// one row (`store` implements it; `serve` hands it an open connection).
pub trait Beat: Send {
    fn beat(&mut self, now: i64, started: i64, host: &str, pid: u32) -> Result<(), StandbyError>;
}

/// `serve`'s heartbeat thread: one row every `HEARTBEAT_EVERY`, the first at
/// once. Stopped (and joined) by `stop`.
pub struct HeartbeatThread {
    stop: mpsc::Sender<()>,
    handle: std::thread::JoinHandle<()>,
}

impl HeartbeatThread {
    pub fn spawn(mut store: Box<dyn Beat>) -> Result<HeartbeatThread, StandbyError> {
        let (stop, rx) = mpsc::channel::<()>();
        let host = host_name();
        let started = now_unix();
        let pid = std::process::id();
        let handle = std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || loop {
                if let Err(e) = store.beat(now_unix(), started, &host, pid) {
                    warn!("heartbeat: {e}");
                }
                match rx.recv_timeout(HEARTBEAT_EVERY) {
                    Err(RecvTimeoutError::Timeout) => continue,
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            })
            .map_err(|e| StandbyError(format!("cannot start the heartbeat thread: {e}")))?;
        Ok(HeartbeatThread { stop, handle })
    }

    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_lies_beside_the_location_with_its_query_kept() {
        assert_eq!(fence_location("/srv/replica/db"), "/srv/replica/db.fence");
        assert_eq!(
            fence_location("file:///srv/r/db/"),
            "file:///srv/r/db.fence"
        );
        assert_eq!(
            fence_location("s3://bucket/db?endpoint=http://127.0.0.1:9000&forcePathStyle=true"),
            "s3://bucket/db.fence?endpoint=http://127.0.0.1:9000&forcePathStyle=true"
        );
    }
}

//! Whether a `serve` runs on a database (SPEC 17: `check` does not try the
//! listeners of a running service, and says so): `serve` holds a shared
//! flock(2) on `DATABASE.serve-lock` while it runs; `check` asks for an
//! exclusive one without waiting.
//!
//! Why flock on a file of its own: the kernel drops it when the process ends,
//! even by SIGKILL, so no stale PID file lies; it works between users (root's
//! `check`, the service user's `serve`) and network namespaces (a unit with
//! `PrivateNetwork=` hides the ports, not the file); and it is a separate file
//! from the database, whose POSIX locks a second descriptor on the database
//! would release when closed.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file beside `db` (config::paths keeps every configured path off it).
pub fn path_for(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".serve-lock");
    PathBuf::from(p)
}

/// Held by `serve` for as long as it runs; dropping it releases the lock.
pub struct ServeLock {
    _file: File,
}

impl ServeLock {
    /// Take the shared lock beside `db`, creating the file (readable by all:
    /// it is empty, and `check` may run as another user). A `check` holds the
    /// exclusive lock for microseconds, so a busy lock is retried for a second.
    pub fn hold(db: &Path) -> io::Result<ServeLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path_for(db))?;
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match flock(&file, libc::LOCK_SH | libc::LOCK_NB) {
                Ok(()) => return Ok(ServeLock { _file: file }),
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether a `serve` holds the lock beside `db` now. No lock file: none ever
/// ran there. An error: we cannot tell (e.g. the file is not readable for us).
pub fn serve_runs(db: &Path) -> io::Result<bool> {
    let file = match File::open(path_for(db)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
        // Released when `file` is closed, at once.
        Ok(()) => Ok(false),
        Err(e) if is_busy(&e) => Ok(true),
        Err(e) => Err(e),
    }
}

fn is_busy(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EWOULDBLOCK)
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    // SAFETY: flock(2) on a descriptor `file` keeps open for the call; no pointers.
    if unsafe { libc::flock(file.as_raw_fd(), operation) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held: `serve_runs` says so (also from another descriptor, as another
    /// process would); dropped: it does not. No file: nothing runs.
    #[test]
    fn serve_runs_while_the_lock_is_held() {
        let dir = std::env::temp_dir().join(format!("dedyn-serve-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("db.sqlite3");
        assert!(!serve_runs(&db).unwrap());
        let lock = ServeLock::hold(&db).unwrap();
        assert!(serve_runs(&db).unwrap());
        // Two serves on one database share it.
        let second = ServeLock::hold(&db).unwrap();
        drop(lock);
        assert!(serve_runs(&db).unwrap());
        drop(second);
        assert!(!serve_runs(&db).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

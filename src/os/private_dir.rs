//! A fresh directory only this process's user can open (mode 0700), made at start and
//! removed on drop: where the internal socket between the edge and tiny_http lives.
//!
//! Access to a Unix-domain socket is checked against the directories on its
//! path, so a socket inside a 0700 directory of the service user cannot be
//! connected to by any other (non-root) user, whatever the socket's own mode.
//! The directory is always new: `mkdir` fails on anything that already exists
//! (including a symlink planted by someone else), and the name is random, so
//! nobody can prepare it in advance or make us use theirs.

use super::sys;
use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Attempts at a fresh random name before giving up (a clash is astronomically
/// unlikely; several mean someone is racing us, which is worth an error).
const ATTEMPTS: usize = 8;

/// A private directory, removed with everything in it when dropped.
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    /// Creates `BASE/PREFIX-<random>` with mode 0700 and checks that it is ours
    /// and closed to others (a umask can only narrow 0700, but the check is cheap
    /// and names the problem if the base directory is unusual).
    pub fn create(base: &Path, prefix: &str) -> io::Result<PrivateDir> {
        remove_stale(base, prefix);
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let path = base.join(format!(
                "{prefix}-{}-{}",
                std::process::id(),
                random_hex(8)?
            ));
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let dir = PrivateDir { path };
                    dir.check()?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "cannot create a private directory in {}: {e}",
                            base.display()
                        ),
                    ))
                }
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no attempt made")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check(&self) -> io::Result<()> {
        let meta = std::fs::symlink_metadata(&self.path)?;
        let mode = meta.permissions().mode() & 0o777;
        if !meta.is_dir() || meta.uid() != sys::effective_uid() || mode & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is not a directory of ours closed to others (mode {mode:o}, owner {})",
                    self.path.display(),
                    meta.uid()
                ),
            ));
        }
        Ok(())
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            log::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// Removes `BASE/PREFIX-<pid>-*` directories of ours whose process is gone: a
/// process killed with SIGKILL cannot remove its own. A pid that is alive (the
/// owner, or a process that reused its number) keeps its directory.
fn remove_stale(base: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let me = sys::effective_uid();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let Some(pid) = rest
            .strip_prefix('-')
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let ours =
            std::fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if ours && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `bytes` random bytes from the system's generator, as lowercase hex.
pub fn random_hex(bytes: usize) -> io::Result<String> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| io::Error::other("the system random generator failed"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_is_fresh_private_and_removed_on_drop() {
        let base = std::env::temp_dir();
        let dir = PrivateDir::create(&base, "private-dir-test").expect("create");
        let path = dir.path().to_path_buf();
        let meta = std::fs::metadata(&path).expect("exists");
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        std::fs::write(path.join("f"), b"x").expect("write inside");
        let other = PrivateDir::create(&base, "private-dir-test").expect("second");
        assert_ne!(other.path(), path, "every directory is new");
        drop(dir);
        assert!(!path.exists(), "removed with its contents");
    }

    #[test]
    fn directories_of_dead_processes_are_removed_others_kept() {
        let base = PrivateDir::create(&std::env::temp_dir(), "stale-test-base").expect("base");
        let b = base.path();
        // 999999999 is above any pid_max, so never a live process; ours is alive.
        let dead = b.join("x-999999999-aa");
        let alive = b.join(format!("x-{}-bb", std::process::id()));
        let other = b.join("y-999999999-cc");
        for d in [&dead, &alive, &other] {
            std::fs::create_dir(d).expect("mkdir");
        }
        let fresh = PrivateDir::create(b, "x").expect("create");
        assert!(!dead.exists(), "a dead process's directory is removed");
        assert!(alive.exists() && other.exists() && fresh.path().exists());
    }

    #[test]
    fn a_missing_base_is_an_error_naming_it() {
        let e = PrivateDir::create(Path::new("/nonexistent/base"), "x").expect_err("no base");
        assert!(e.to_string().contains("/nonexistent/base"), "{e}");
    }
}

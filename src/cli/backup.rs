//! `dedyn-update backup FILE` and `restore FILE`: a consistent copy of the live
//! database while serving, and its verified, atomic return (service stopped).
//!
//! Backup uses SQLite's `VACUUM INTO` rather than the online backup API: it needs no
//! extra rusqlite feature, reads one snapshot in one read transaction (the backup API
//! stepped in chunks restarts whenever the server commits, so under steady updates it
//! may never finish), never blocks writers in WAL mode, and writes a compact file.
//! The copy goes to a temporary name beside FILE and is renamed over it once synced,
//! so FILE is always either the previous backup or a complete new one.

use super::args::{print_lines, Args, Failure, Out};
use crate::config::settings::Config;
use crate::store::{self, Store};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// `NAME` → `.NAME.TAG-PID` in the same directory (same filesystem: rename is atomic).
fn sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dedyn-update".into());
    path.with_file_name(format!(".{name}.{tag}-{}", std::process::id()))
}

fn sync_file(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

/// fsync the directory holding `path`, so that a rename in it is durable.
fn sync_dir_of(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Remove `path` and the journals SQLite may leave beside it: `VACUUM INTO` writes
/// the copy with a rollback journal once it outgrows the page cache, and a write
/// that fails (disk full) leaves that `-journal` behind (SPEC 13: a failed backup
/// leaves no file).
fn remove_with_journals(path: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = fs::remove_file(PathBuf::from(p));
    }
}

/// An empty file only its owner can read and write.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    // `mode` is filtered by the umask; a umask cannot add bits, but say it exactly.
    file.set_permissions(fs::Permissions::from_mode(0o600))
}

fn io_failure(what: &str, path: &Path, e: std::io::Error) -> Failure {
    Failure::from(format!("{what} {}: {e}", path.display()))
}

/// `dedyn-update backup FILE`
pub fn backup(config: &Config, args: &[String]) -> Out {
    let a = Args::parse(args, &[])?;
    let dest = PathBuf::from(&a.exactly(1, "backup FILE")?[0]);
    // Messages name absolute paths (SPEC 12); FILE itself is relative to the
    // working directory, as any command-line file argument.
    let dest = std::path::absolute(&dest).unwrap_or(dest);
    let db = &config.database.path;
    if !db.try_exists().unwrap_or(true) {
        return Err(super::args::missing_database(config));
    }
    let store = Store::open(db, &config.database.synchronous)?;
    let tmp = sibling(&dest, "backup");
    remove_with_journals(&tmp); // a leftover of an interrupted run with our PID
                                // The copy holds token hashes and every user's addresses: 0600 from the
                                // start, whatever the admin shell's umask (VACUUM INTO fills an empty file
                                // and keeps its mode; SQLite gives its journal the same mode).
    let result = create_private(&tmp)
        .map_err(|e| io_failure("creating", &tmp, e))
        .and_then(|()| store.backup_into(&tmp).map_err(Failure::from))
        .and_then(|()| sync_file(&tmp).map_err(|e| io_failure("syncing", &tmp, e)))
        .and_then(|()| fs::rename(&tmp, &dest).map_err(|e| io_failure("renaming to", &dest, e)))
        .and_then(|()| {
            sync_dir_of(&dest).map_err(|e| io_failure("syncing the directory of", &dest, e))
        });
    if let Err(f) = result {
        remove_with_journals(&tmp);
        return Err(f);
    }
    let size = fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
    print_lines([format!(
        "backup of {} written to {} ({size} bytes)",
        db.display(),
        dest.display()
    )]);
    Ok(())
}

/// `dedyn-update restore FILE`: the service must be stopped.
pub fn restore(config: &Config, args: &[String]) -> Out {
    let a = Args::parse(args, &[])?;
    let src = PathBuf::from(&a.exactly(1, "restore FILE")?[0]);
    let db = &config.database.path;
    if !src.is_file() {
        return Err(Failure::from(format!("{}: no such file", src.display())));
    }
    store::ensure_not_in_use(db)?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| io_failure("creating", dir, e))?;
    }
    // Work on a copy beside the database: FILE stays untouched, and the final
    // rename cannot cross filesystems.
    let tmp = sibling(db, "restore");
    let staged = fs::copy(&src, &tmp)
        .map_err(|e| io_failure("copying", &src, e))
        .and_then(|_| store::check_restorable(&tmp, &src).map_err(Failure::from))
        .and_then(|info| {
            sync_file(&tmp).map_err(|e| io_failure("syncing", &tmp, e))?;
            Ok(info)
        });
    let info = match staged {
        Ok(i) => i,
        Err(f) => {
            let _ = fs::remove_file(&tmp);
            return Err(f);
        }
    };
    // The old database's -wal/-shm belong to the old file: SQLite would replay
    // that WAL into the restored one. Nothing has the database open (checked above).
    for suffix in ["-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(io_failure("removing", &p, e));
            }
        }
    }
    fs::rename(&tmp, db).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_failure("renaming into", db, e)
    })?;
    sync_dir_of(db).map_err(|e| io_failure("syncing the directory of", db, e))?;
    print_lines([format!(
        "restored {} into {} (schema {}, {} users, {} domains, {} records); start the service again",
        src.display(),
        db.display(),
        info.schema_version,
        info.users,
        info.domains,
        info.records
    )]);
    Ok(())
}

/// `COMMAND --help` text for the two commands.
pub fn help(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "backup" => "usage: dedyn-update backup FILE\nWrite a consistent copy of the database to FILE (replaced atomically), also while serving.",
        "restore" => "usage: dedyn-update restore FILE\nReplace the database with FILE. The service must be stopped; FILE must be a dedyn-update\ndatabase of a known schema version that passes PRAGMA quick_check.",
        _ => return None,
    })
}

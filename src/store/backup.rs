//! Backup and restore at the SQL level: `VACUUM INTO` a consistent copy, and check
//! that a candidate file is ours and intact before the CLI renames it into place.

use super::db::{invalid, Result, Store, StoreError, MIGRATIONS};
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// The tables every schema version has: how a file is recognised as ours.
const OUR_TABLES: [&str; 5] = ["users", "domains", "tokens", "records", "zones"];

impl Store {
    /// Write a consistent copy of the database to `dest` (which must not exist) with
    /// `VACUUM INTO`: one read transaction, so it sees one commit and, in WAL mode,
    /// never blocks the server's writers.
    pub fn backup_into(&self, dest: &Path) -> Result<()> {
        let dest = dest
            .to_str()
            .ok_or_else(|| StoreError::Invalid(format!("{}: not a UTF-8 path", dest.display())))?;
        self.conn.execute("VACUUM INTO ?1", [dest])?;
        Ok(())
    }
}

/// What `check_restorable` found in a candidate file.
#[derive(Debug)]
pub struct BackupInfo {
    pub schema_version: i64,
    pub users: i64,
    pub domains: i64,
    pub records: i64,
}

/// Fails when another connection — a running `serve`, an admin command — has the
/// database at `path` open. In WAL mode every open connection keeps a shared lock,
/// so an exclusive-mode `BEGIN EXCLUSIVE` only succeeds when we are alone.
pub fn ensure_not_in_use(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| StoreError::Db(format!("{}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_millis(200))?;
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    match conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;") {
        Ok(()) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            invalid(format!(
                "{} is in use: stop the service first (systemctl stop dedyn-update)",
                path.display()
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Check that `path` is a dedyn-update database this program knows (schema version,
/// our tables, `PRAGMA quick_check`), and make it self-contained (rollback journal,
/// no -wal beside it) so that it can be renamed into place. `shown` names the file
/// in messages (`path` is a staging copy of it).
pub fn check_restorable(path: &Path, shown: &Path) -> Result<BackupInfo> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| StoreError::Invalid(format!("{}: {e}", shown.display())))?;
    let not_ours = |why: String| {
        StoreError::Invalid(format!(
            "{}: not a dedyn-update database ({why})",
            shown.display()
        ))
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| not_ours(e.to_string()))?;
    if version < 1 || version > MIGRATIONS.len() as i64 {
        return Err(not_ours(format!(
            "schema version {version}; this program knows 1 to {}",
            MIGRATIONS.len()
        )));
    }
    for t in OUR_TABLES {
        let n: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [t],
            |r| r.get(0),
        )?;
        if n != 1 {
            return Err(not_ours(format!("no table {t}")));
        }
    }
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return invalid(format!(
            "{}: damaged, PRAGMA quick_check says: {check}",
            shown.display()
        ));
    }
    let c = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
    let info = BackupInfo {
        schema_version: version,
        users: c("SELECT count(*) FROM users")?,
        domains: c("SELECT count(*) FROM domains")?,
        records: c("SELECT count(*) FROM records")?,
    };
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    conn.close().map_err(|(_, e)| StoreError::from(e))?;
    Ok(info)
}

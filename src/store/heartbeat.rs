//! A warm standby's view of the database (SPEC 16): the serving process's
//! heartbeat row, a copy read without writing to it, and a promotion's one write.
//!
//! Replication itself is Litestream's; here are only the rows that let a standby
//! judge its copy (how old it is) and take it over (serials moved above anything
//! the old primary can have published).

use super::db::{writer_turn, Result, Store, StoreError};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

/// The newest heartbeat: which serve wrote it, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub at: i64,
    pub started: i64,
    pub host: String,
    pub pid: i64,
}

/// A promotion of a standby's copy (`standby promote`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    pub at: i64,
    pub host: String,
    pub taken_over: String,
    pub copy_age: Option<i64>,
    pub serial_floor: i64,
}

/// What a copy holds for a standby: read with a read-only connection, because
/// Litestream's follower (`restore -f`) may be writing it.
#[derive(Debug)]
pub struct CopyState {
    pub schema_version: i64,
    pub heartbeat: Option<Heartbeat>,
    /// The newest instant the copy proves the primary alive at: its heartbeat or
    /// the start of its latest publication, whichever is newer.
    pub newest: Option<i64>,
    /// Each zone and the serial its next publication would carry.
    pub serials: Vec<(String, i64)>,
    pub promotions: Vec<Promotion>,
}

/// Whether `e` says a table is not there (a copy of an older schema).
fn no_table(e: &rusqlite::Error) -> bool {
    e.to_string().contains("no such table")
}

fn read_heartbeat(conn: &Connection) -> Result<Option<Heartbeat>> {
    let row = conn
        .query_row(
            "SELECT at, started, host, pid FROM heartbeat WHERE id = 1",
            [],
            |r| {
                Ok(Heartbeat {
                    at: r.get(0)?,
                    started: r.get(1)?,
                    host: r.get(2)?,
                    pid: r.get(3)?,
                })
            },
        )
        .optional();
    match row {
        Ok(h) => Ok(h),
        Err(e) if no_table(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn read_promotions(conn: &Connection) -> Result<Vec<Promotion>> {
    let mut st = match conn
        .prepare("SELECT at, host, taken_over, copy_age, serial_floor FROM promotions ORDER BY id")
    {
        Ok(st) => st,
        Err(e) if no_table(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let rows = st
        .query_map([], |r| {
            Ok(Promotion {
                at: r.get(0)?,
                host: r.get(1)?,
                taken_over: r.get(2)?,
                copy_age: r.get(3)?,
                serial_floor: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn read_state(conn: &Connection) -> Result<CopyState> {
    let schema_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let heartbeat = read_heartbeat(conn)?;
    let mut st = conn.prepare("SELECT name, pending_serial, last_attempt_at FROM zones")?;
    let mut serials = Vec::new();
    let mut newest = heartbeat.as_ref().map(|h| h.at);
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        serials.push((r.get::<_, String>(0)?, r.get::<_, i64>(1)?));
        if let Some(at) = r.get::<_, Option<i64>>(2)? {
            newest = Some(newest.map_or(at, |n: i64| n.max(at)));
        }
    }
    Ok(CopyState {
        schema_version,
        heartbeat,
        newest,
        serials,
        promotions: read_promotions(conn)?,
    })
}

/// Read a copy without writing to it (no migration, no journal-mode change).
/// When the database at `db` was promoted and no `serve` has run on it since
/// (its heartbeat, if any, is the old primary's): the promotion's time.
pub fn promoted_and_not_served_since(db: &Path) -> Option<i64> {
    let copy = read_copy(db).ok()?;
    let promoted = copy.promotions.iter().map(|p| p.at).max()?;
    match copy.heartbeat {
        Some(h) if h.started >= promoted => None,
        _ => Some(promoted),
    }
}

pub fn read_copy(path: &Path) -> Result<CopyState> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StoreError::Db(format!("{}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    read_state(&conn)
}

impl Store {
    /// `serve`'s heartbeat: one row, rewritten. A few microseconds under the
    /// write lock every `HEARTBEAT_EVERY`.
    pub fn beat(&mut self, now: i64, started: i64, host: &str, pid: u32) -> Result<()> {
        self.check_same_file()?;
        let _turn = writer_turn();
        self.conn.execute(
            "INSERT INTO heartbeat(id, at, started, host, pid) VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET at = ?1, started = ?2, host = ?3, pid = ?4",
            params![now, started, host, pid],
        )?;
        Ok(())
    }

    /// What this database holds for a standby (see `read_copy`).
    pub fn copy_state(&self) -> Result<CopyState> {
        read_state(&self.conn)
    }

    /// Take a restored copy over (SPEC 16), in one transaction: every zone's
    /// next serial is moved to at least `serial_floor` and its generation on
    /// (so the first publication goes out at once, above whatever the old
    /// primary published), and the promotion is recorded.
    pub fn promote(&mut self, p: &Promotion) -> Result<()> {
        let _turn = writer_turn();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE zones SET pending_serial = max(pending_serial, ?1), generation = generation + 1",
            [p.serial_floor],
        )?;
        tx.execute(
            "INSERT INTO promotions(at, host, taken_over, copy_age, serial_floor)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![p.at, p.host, p.taken_over, p.copy_age, p.serial_floor],
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// The heartbeat thread's port (`standby::Beat`): this connection, its one row.
impl crate::standby::Beat for Store {
    fn beat(
        &mut self,
        now: i64,
        started: i64,
        host: &str,
        pid: u32,
    ) -> std::result::Result<(), crate::standby::StandbyError> {
        Store::beat(self, now, started, host, pid)
            .map_err(|e| crate::standby::StandbyError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_is_one_row_and_a_promotion_moves_every_serial_up() {
        let dir = std::env::temp_dir().join(format!("dedyn-hb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = dir.join("db.sqlite3");
        let mut s = Store::open(&db, "normal").unwrap();
        s.ensure_zones(&["a.example", "b.example"]).unwrap();
        assert_eq!(read_copy(&db).unwrap().heartbeat, None);
        s.beat(100, 90, "host1", 7).unwrap();
        s.beat(110, 90, "host1", 7).unwrap();
        let c = read_copy(&db).unwrap();
        assert_eq!(c.heartbeat.unwrap().at, 110);
        let before: Vec<i64> = c.serials.iter().map(|(_, s)| *s).collect();
        let floor = before.iter().max().unwrap() + 1000;
        let p = Promotion {
            at: 120,
            host: "host2".into(),
            taken_over: "/r/db".into(),
            copy_age: Some(10),
            serial_floor: floor,
        };
        s.promote(&p).unwrap();
        let c = read_copy(&db).unwrap();
        assert!(c.serials.iter().all(|(_, s)| *s == floor), "{c:?}");
        assert_eq!(c.promotions, vec![p]);
        assert_eq!(s.dirty_zones().unwrap().len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

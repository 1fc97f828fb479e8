//! Zones: their rows and serials, publication bookkeeping for the publisher, and
//! the reads of a whole zone (`for_each_record`) and of the database (`counts`).

use super::db::{blob_addr, text_at, writer_turn, Result, Store, StoreError};
use crate::os::clock::now_unix;
use crate::publish::feed::{Attempt, BadAddr, FeedError, ZoneFeed};
use crate::update::family::Family;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use std::net::IpAddr;

/// How long recording a failed publication waits for another writer.
const RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl Store {
    /// Make sure every configured zone has its row (serials start at the clock).
    pub fn ensure_zones(&mut self, zones: &[&str]) -> Result<()> {
        let now = now_unix();
        for z in zones {
            self.conn.execute(
                "INSERT INTO zones(name, pending_serial) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
                params![z, now],
            )?;
        }
        Ok(())
    }

    // ---- zones and publishing ----

    /// Zones changed since their last publication.
    pub fn dirty_zones(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT name FROM zones WHERE generation != published_generation")?;
        let rows = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

    pub fn pending_serial(&self, zone: &str) -> Result<u32> {
        let s: Option<i64> = self
            .conn
            .query_row(
                "SELECT pending_serial FROM zones WHERE name = ?1",
                [zone],
                |r| r.get(0),
            )
            .optional()?;
        Ok(s.unwrap_or_else(now_unix) as u32)
    }

    /// Every record of `zone` in stable order (name, A before AAAA, numeric), in
    /// one read transaction; `f` sees each without a copy of the name. A row
    /// whose address blob is not 4 or 16 bytes comes as `Err`, for the caller to
    /// name and count (the publisher leaves it out). Returns how many rows `f` saw.
    pub fn for_each_record(
        &self,
        zone: &str,
        mut f: impl FnMut(&str, std::result::Result<IpAddr, BadAddr>),
    ) -> Result<usize> {
        let tx = self.conn.unchecked_transaction()?;
        let mut st = tx.prepare_cached(
            "SELECT name, addr, type FROM records WHERE zone = ?1 ORDER BY name, type, addr",
        )?;
        let mut rows = st.query([zone])?;
        let mut n = 0;
        while let Some(r) = rows.next()? {
            let name = text_at(r, 0)?;
            let b = r
                .get_ref(1)?
                .as_blob()
                .map_err(|e| StoreError::Db(e.to_string()))?;
            let stored = match blob_addr(b) {
                Ok(a) => Ok(a),
                Err(len) => {
                    // The schema allows only 'A' and 'AAAA'.
                    let family = match text_at(r, 2)? {
                        "A" => Family::V4,
                        _ => Family::V6,
                    };
                    Err(BadAddr { family, len })
                }
            };
            f(name, stored);
            n += 1;
        }
        Ok(n)
    }

    /// The zone's change counter and the one its last proven publication
    /// contained (`None`: no row). They differ while a change is unpublished.
    pub fn generations(&self, zone: &str) -> Result<Option<(i64, i64)>> {
        Ok(self
            .conn
            .prepare_cached("SELECT generation, published_generation FROM zones WHERE name = ?1")?
            .query_row([zone], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Start a publication: move the zone's pending serial on, in a short write
    /// transaction, and return the serial this publication carries with the
    /// generation it contains. Read the records afterwards (`for_each_record`):
    /// every change committed before this call carries this serial or an older
    /// one and is in that read; a change committed in between carries the next
    /// serial and may already be in it — its receipt is then conservative, never
    /// too early. Holding the write lock while reading a large zone would stall
    /// every update instead. Nothing here counts the zone as published: only
    /// `record_published`, after the publisher has proved it, does.
    pub fn start_publication(&mut self, zone: &str) -> Result<Attempt> {
        let _turn = writer_turn();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row: Option<(i64, i64)> = tx
            .query_row(
                "SELECT pending_serial, generation FROM zones WHERE name = ?1",
                [zone],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (serial, generation) = match row {
            Some(r) => r,
            None => return Err(StoreError::Db(format!("zone {zone} has no row"))),
        };
        // Serials look like the clock when publications are rare, and still increase
        // strictly when they are not; u32 wraps in 2106.
        let next = (serial + 1).max(now_unix());
        tx.execute(
            "UPDATE zones SET pending_serial = ?2, last_attempt_at = ?3,
                attempt_generation = ?4, attempt_serial = ?5 WHERE name = ?1",
            params![zone, next, now_unix(), generation, serial],
        )?;
        tx.commit()?;
        Ok(Attempt {
            serial: serial as u32,
            generation,
        })
    }

    /// A publication the publisher proved (reload succeeded, and `verify_server`
    /// serves it when configured): one statement, so it either all happens or
    /// not at all — and if not, the zone is merely published again later.
    /// Never moves backwards.
    pub fn record_published(&mut self, zone: &str, a: Attempt) -> Result<()> {
        let _turn = writer_turn();
        self.conn.execute(
            "UPDATE zones SET published_generation = ?2, published_serial = ?3, published_at = ?4,
                written_generation = ?2, written_serial = ?3, last_error = NULL, last_error_at = NULL
             WHERE name = ?1 AND published_generation <= ?2",
            params![zone, a.generation, a.serial, now_unix()],
        )?;
        Ok(())
    }

    /// A publication that failed, for `status`: its error, and the file it wrote
    /// if it got that far. Bookkeeping only — the zone stays dirty whether or not
    /// this succeeds, since the published generation was never moved.
    pub fn record_failure(
        &mut self,
        zone: &str,
        error: &str,
        written: Option<Attempt>,
    ) -> Result<()> {
        let _turn = writer_turn();
        // Bookkeeping only: it must not make the lane wait out a long CLI writer
        // (LOCK_WAIT) before its next attempt; failing here changes nothing.
        self.conn.busy_timeout(RECORD_WAIT)?;
        let recorded = self.conn.execute(
            "UPDATE zones SET last_error = ?2, last_error_at = ?3,
                written_generation = coalesce(?4, written_generation),
                written_serial = coalesce(?5, written_serial)
             WHERE name = ?1",
            params![
                zone,
                error,
                now_unix(),
                written.map(|a| a.generation),
                written.map(|a| a.serial)
            ],
        );
        self.conn.busy_timeout(super::db::LOCK_WAIT)?;
        recorded?;
        Ok(())
    }

    /// Everything `status` says about a zone's publication (`None`: no row).
    pub fn publication(&self, zone: &str) -> Result<Option<Publication>> {
        Ok(self
            .conn
            .query_row(
                "SELECT generation, pending_serial, published_generation, published_serial,
                    published_at, written_generation, written_serial, last_attempt_at,
                    last_error, last_error_at, attempt_generation, attempt_serial
                 FROM zones WHERE name = ?1",
                [zone],
                |r| {
                    Ok(Publication {
                        generation: r.get(0)?,
                        pending_serial: r.get::<_, i64>(1)? as u32,
                        published_generation: r.get(2)?,
                        published_serial: r.get::<_, Option<i64>>(3)?.map(|v| v as u32),
                        published_at: r.get(4)?,
                        written_generation: r.get(5)?,
                        written_serial: r.get::<_, Option<i64>>(6)?.map(|v| v as u32),
                        last_attempt_at: r.get(7)?,
                        last_error: r.get(8)?,
                        last_error_at: r.get(9)?,
                        attempt_generation: r.get(10)?,
                        attempt_serial: r.get::<_, Option<i64>>(11)?.map(|v| v as u32),
                    })
                },
            )
            .optional()?)
    }

    /// Every domain with a zone that is not configured (for `check`).
    pub fn domains_outside(&self, zones: &[&str]) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT name, zone FROM domains ORDER BY name")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for r in rows {
            let (n, z) = r?;
            if !zones.contains(&z.as_str()) {
                out.push(format!("{n} (zone {z})"));
            }
        }
        Ok(out)
    }

    /// How many rows each table holds (for `check`).
    pub fn counts(&self) -> Result<Counts> {
        let c = |sql: &str| self.conn.query_row(sql, [], |r| r.get::<_, i64>(0));
        Ok(Counts {
            users: c("SELECT count(*) FROM users")?,
            domains: c("SELECT count(*) FROM domains")?,
            tokens: c("SELECT count(*) FROM tokens")?,
            records: c("SELECT count(*) FROM records")?,
        })
    }
}

/// A zone's publication bookkeeping, as `status` reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Publication {
    pub generation: i64,
    pub pending_serial: u32,
    pub published_generation: i64,
    pub published_serial: Option<u32>,
    pub published_at: Option<i64>,
    pub written_generation: Option<i64>,
    pub written_serial: Option<u32>,
    pub last_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// The latest attempt (in flight, failed or proved): what it contains, its serial.
    pub attempt_generation: Option<i64>,
    pub attempt_serial: Option<u32>,
}

/// The size of the database, as `check` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    pub users: i64,
    pub domains: i64,
    pub tokens: i64,
    pub records: i64,
}

/// The publisher's port: the store's own methods, their failures as the feed's.
impl ZoneFeed for Store {
    fn generations(&self, zone: &str) -> std::result::Result<Option<(i64, i64)>, FeedError> {
        Ok(Store::generations(self, zone)?)
    }

    fn start_publication(&mut self, zone: &str) -> std::result::Result<Attempt, FeedError> {
        Ok(Store::start_publication(self, zone)?)
    }

    fn record_published(&mut self, zone: &str, a: Attempt) -> std::result::Result<(), FeedError> {
        Ok(Store::record_published(self, zone, a)?)
    }

    fn record_failure(
        &mut self,
        zone: &str,
        error: &str,
        written: Option<Attempt>,
    ) -> std::result::Result<(), FeedError> {
        Ok(Store::record_failure(self, zone, error, written)?)
    }

    fn for_each_record(
        &self,
        zone: &str,
        f: &mut dyn FnMut(&str, std::result::Result<IpAddr, BadAddr>),
    ) -> std::result::Result<usize, FeedError> {
        Ok(Store::for_each_record(self, zone, f)?)
    }

    fn for_each_acme_value(
        &self,
        zone: &str,
        now: i64,
        f: &mut dyn FnMut(&str, &str),
    ) -> std::result::Result<usize, FeedError> {
        Ok(Store::for_each_acme_value(self, zone, now, f)?)
    }

    fn expire_acme(&mut self, now: i64) -> std::result::Result<Vec<String>, FeedError> {
        Ok(Store::expire_acme(self, now)?)
    }

    fn touch(
        &mut self,
        used: &[(i64, i64)],
        seen: &[crate::publish::feed::Seen],
    ) -> std::result::Result<(), FeedError> {
        Ok(Store::touch(self, used, seen)?)
    }

    fn domain_ttls(&self, zone: &str) -> std::result::Result<Vec<(String, u32)>, FeedError> {
        Ok(Store::domain_ttls(self, zone)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(tag: &str) -> (Store, std::path::PathBuf) {
        let path =
            std::env::temp_dir().join(format!("dedyn-zones-{tag}-{}.sqlite3", std::process::id()));
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        let mut s = Store::open(&path, "NORMAL").unwrap();
        s.ensure_zones(&["z.example"]).unwrap();
        (s, path)
    }

    fn remove(path: &std::path::Path) {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
    }

    fn dirty(s: &Store) -> bool {
        s.dirty_zones().unwrap() == ["z.example"]
    }

    /// Starting or failing a publication never makes a zone clean; only a
    /// recorded success does, and only up to the generation it contained.
    #[test]
    fn only_a_recorded_success_makes_a_zone_clean() {
        let (mut s, path) = store("clean");
        assert!(dirty(&s), "a new zone is unpublished");
        let a = s.start_publication("z.example").unwrap();
        assert!(dirty(&s), "started is not published");
        s.record_failure("z.example", "reload command failed", Some(a))
            .unwrap();
        assert!(dirty(&s), "a failure is not published");
        let p = s.publication("z.example").unwrap().unwrap();
        assert_eq!(p.written_generation, Some(a.generation));
        assert_eq!(p.last_error.as_deref(), Some("reload command failed"));

        let b = s.start_publication("z.example").unwrap();
        assert!(b.serial > a.serial);
        // A change committed while `b` was in flight.
        s.conn
            .execute(
                "UPDATE zones SET generation = generation + 1 WHERE name = 'z.example'",
                [],
            )
            .unwrap();
        s.record_published("z.example", b).unwrap();
        assert!(
            dirty(&s),
            "the change after the attempt's read is not published"
        );
        let p = s.publication("z.example").unwrap().unwrap();
        assert_eq!((p.published_serial, p.last_error), (Some(b.serial), None));

        let c = s.start_publication("z.example").unwrap();
        s.record_published("z.example", c).unwrap();
        assert!(!dirty(&s));
        // An older success recorded late does not move the zone backwards.
        s.record_published("z.example", b).unwrap();
        let p = s.publication("z.example").unwrap().unwrap();
        assert_eq!(p.published_serial, Some(c.serial));
        drop(s);
        remove(&path);
    }
}

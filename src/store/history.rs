//! What happened to a name (SPEC 15), as plain queries: history rows written in
//! the transaction of the change, last changed / last seen / stale per name, the
//! events' outbox over the history (its delivered-up-to mark, pruning), and the
//! per-domain TTL the zone carries.

use super::db::{blob_addr, invalid, text_at, writer_turn, Result, Store};
use crate::events::outbox::Keep;
use crate::events::{Change, Outbox, OutboxError, StaleName};
use crate::publish::feed::Seen;
use crate::update::address::Family;
use crate::update::ledger::Provenance;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::net::IpAddr;

/// Rows one pruning transaction looks at: the write lock is held for
/// milliseconds, so an update never waits behind the pruning.
const PRUNE_BATCH: i64 = 500;

/// `status NAME`'s view of a name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameState {
    pub last_changed: Option<i64>,
    pub last_seen: Option<i64>,
    /// When it was found stale; `None`: not stale.
    pub stale_at: Option<i64>,
}

/// Addresses as the history keeps them: numeric order, space-separated.
fn addr_text(a: &[IpAddr]) -> String {
    a.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One history row: `name`'s `family` records went from `old` to `new`, in the
/// publication `serial` of `zone`. Called inside the change's transaction.
#[allow(clippy::too_many_arguments)]
pub(super) fn record_change(
    conn: &Connection,
    at: i64,
    zone: &str,
    name: &str,
    family: Family,
    old: &[IpAddr],
    new: &[IpAddr],
    from: &Provenance,
    serial: u32,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO history(at, zone, name, type, old, new, via, client, token, serial)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        at,
        zone,
        name,
        family.rtype(),
        addr_text(old),
        addr_text(new),
        from.via.as_str(),
        from.client.map(|c| c.to_string()),
        from.token,
        serial
    ])?;
    Ok(())
}

/// SPEC 15: `domain remove` / `user remove` record the removal of each name's
/// records of domain `domain` as a change to nothing, via `cli`. Inside the
/// removal's transaction, before the rows go; the zone's generation must
/// already be bumped (the serial is the one that publishes the removal).
pub(super) fn record_removal(conn: &Connection, domain: i64, at: i64) -> Result<()> {
    let mut st = conn.prepare_cached(
        "SELECT r.zone, r.name, r.type, r.addr, z.pending_serial FROM records r
         LEFT JOIN zones z ON z.name = r.zone
         WHERE r.domain = ?1 ORDER BY r.zone, r.name, r.type, r.addr",
    )?;
    let mut rows = st.query([domain])?;
    // (zone, name, type, serial) and its addresses, one group at a time.
    let mut group: Option<(String, String, String, u32, Vec<IpAddr>)> = None;
    let from = Provenance {
        via: crate::update::ledger::Via::Cli,
        client: None,
        token: None,
    };
    let flush = |g: (String, String, String, u32, Vec<IpAddr>)| -> Result<()> {
        let family = if g.2 == "A" { Family::V4 } else { Family::V6 };
        record_change(conn, at, &g.0, &g.1, family, &g.4, &[], &from, g.3)
    };
    while let Some(r) = rows.next()? {
        let (zone, name, rtype) = (text_at(r, 0)?, text_at(r, 1)?, text_at(r, 2)?);
        let addr = blob_addr(&r.get::<_, Vec<u8>>(3)?).ok();
        let serial = r.get::<_, Option<i64>>(4)?.unwrap_or(0) as u32;
        let same = group
            .as_ref()
            .is_some_and(|g| g.0 == zone && g.1 == name && g.2 == rtype);
        if !same {
            if let Some(g) = group.take() {
                flush(g)?;
            }
            group = Some((zone.into(), name.into(), rtype.into(), serial, Vec::new()));
        }
        if let (Some(g), Some(a)) = (group.as_mut(), addr) {
            g.4.push(a);
        }
    }
    if let Some(g) = group.take() {
        flush(g)?;
    }
    Ok(())
}

fn change_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Change> {
    let words = |s: String| -> Vec<String> { s.split_whitespace().map(str::to_string).collect() };
    Ok(Change {
        id: r.get(0)?,
        at: r.get(1)?,
        name: r.get(2)?,
        rtype: r.get(3)?,
        old: words(r.get(4)?),
        new: words(r.get(5)?),
        via: r.get(6)?,
        client: r.get(7)?,
        token: r.get(8)?,
        serial: r.get::<_, i64>(9)? as u32,
    })
}

const CHANGE_COLUMNS: &str = "id, at, name, type, old, new, via, client, token, serial";

/// The ids of `?1`'s history entries: those `history_names` indexes, and the
/// few after the `indexed` mark (not indexed yet: a table scan of the tail).
const IDS_OF_NAME: &str = "SELECT id FROM history_names WHERE name = ?1
    UNION ALL
    SELECT id FROM history WHERE name = ?1 AND id > coalesce(
        (SELECT up_to FROM history_marks WHERE what = 'indexed'), 0)";

/// Rows the events thread indexes by name in one transaction.
const INDEX_BATCH: i64 = 2000;

fn mark(conn: &Connection, what: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT up_to FROM history_marks WHERE what = ?1")?
        .query_row([what], |r| r.get(0))
        .optional()?)
}

fn set_mark(conn: &Connection, what: &str, up_to: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO history_marks(what, up_to) VALUES (?1, ?2)
         ON CONFLICT(what) DO UPDATE SET up_to = max(up_to, excluded.up_to)",
    )?
    .execute(params![what, up_to])?;
    Ok(())
}

impl Store {
    /// `history NAME`: its entries, newest first, at most `limit`.
    pub fn history(&self, name: &str, limit: u32) -> Result<Vec<Change>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {CHANGE_COLUMNS} FROM history WHERE id IN ({IDS_OF_NAME})
             ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = st
            .query_map(params![name, limit], change_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Last changed, last seen and stale, for `status NAME`. Last changed is
    /// the newest history entry's time (written with the change), or the
    /// batched one once the history of the name has aged out.
    pub fn name_state(&self, name: &str) -> Result<NameState> {
        let mut state = self
            .conn
            .prepare_cached(
                "SELECT last_changed, last_seen, stale_at FROM name_state WHERE name = ?1",
            )?
            .query_row([name], |r| {
                Ok(NameState {
                    last_changed: r.get(0)?,
                    last_seen: r.get(1)?,
                    stale_at: r.get(2)?,
                })
            })
            .optional()?
            .unwrap_or_default();
        let newest: Option<i64> = self
            .conn
            .prepare_cached(&format!(
                "SELECT at FROM history WHERE id IN ({IDS_OF_NAME}) ORDER BY id DESC LIMIT 1"
            ))?
            .query_row([name], |r| r.get(0))
            .optional()?;
        state.last_changed = state.last_changed.max(newest);
        Ok(state)
    }

    /// Record when tokens were last used and names last seen and changed (SPEC
    /// 15), in one write for the batch. A name whose domain went meanwhile is
    /// left out; a name seen is no longer stale.
    pub fn touch(&mut self, used: &[(i64, i64)], seen: &[Seen]) -> Result<()> {
        if used.is_empty() && seen.is_empty() {
            return Ok(());
        }
        let _turn = writer_turn();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare_cached(
                "UPDATE tokens SET last_used = max(coalesce(last_used, 0), ?2) WHERE id = ?1",
            )?;
            for (id, at) in used {
                st.execute(params![id, at])?;
            }
            let mut st = tx.prepare_cached(
                "INSERT INTO name_state(name, zone, domain, last_seen, last_changed)
                 SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS(SELECT 1 FROM domains WHERE id = ?3)
                 ON CONFLICT(name) DO UPDATE SET
                     last_seen = max(coalesce(last_seen, 0), excluded.last_seen),
                     last_changed = coalesce(max(last_changed, excluded.last_changed),
                                             last_changed, excluded.last_changed),
                     stale_at = NULL, stale_notified = 0",
            )?;
            for s in seen {
                st.execute(params![s.name, s.zone, s.domain, s.at, s.changed])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// `domain set NAME --ttl`: the TTL of the records of the domain and the
    /// names below it (`None`: `dns.ttl`); its zone is republished.
    pub fn set_domain_ttl(&mut self, name: &str, ttl: Option<u32>) -> Result<()> {
        let _turn = writer_turn();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let zone: Option<String> = tx
            .query_row(
                "UPDATE domains SET ttl = ?2 WHERE name = ?1 RETURNING zone",
                params![name, ttl],
                |r| r.get(0),
            )
            .optional()?;
        let Some(zone) = zone else {
            return invalid(format!("no domain {name}"));
        };
        tx.execute(
            "UPDATE zones SET generation = generation + 1 WHERE name = ?1",
            [zone],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The TTL set for domain `id`, if any.
    pub fn domain_ttl(&self, id: i64) -> Result<Option<u32>> {
        Ok(self
            .conn
            .prepare_cached("SELECT ttl FROM domains WHERE id = ?1")?
            .query_row([id], |r| r.get::<_, Option<u32>>(0))
            .optional()?
            .flatten())
    }

    /// The domains of `zone` with a TTL of their own.
    pub fn domain_ttls(&self, zone: &str) -> Result<Vec<(String, u32)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT name, ttl FROM domains WHERE zone = ?1 AND ttl IS NOT NULL ORDER BY name",
        )?;
        let rows = st
            .query_map([zone], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn write<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let _turn = writer_turn();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

/// The events thread's port: the store's queries, their failures as the outbox's.
impl Outbox for Store {
    fn delivered(&self) -> std::result::Result<Option<i64>, OutboxError> {
        outbox(|| mark(&self.conn, "delivered"))
    }

    fn set_delivered(&mut self, id: Option<i64>) -> std::result::Result<(), OutboxError> {
        outbox(|| {
            self.write(|c| match id {
                Some(id) => set_mark(c, "delivered", id),
                None => {
                    c.execute("DELETE FROM history_marks WHERE what = 'delivered'", [])?;
                    Ok(())
                }
            })
        })
    }

    fn newest(&self) -> std::result::Result<i64, OutboxError> {
        outbox(|| {
            Ok(self
                .conn
                .prepare_cached("SELECT coalesce(max(id), 0) FROM history")?
                .query_row([], |r| r.get(0))?)
        })
    }

    fn changes_after(
        &self,
        after: i64,
        limit: usize,
    ) -> std::result::Result<Vec<Change>, OutboxError> {
        outbox(|| {
            let mut st = self.conn.prepare_cached(&format!(
                "SELECT {CHANGE_COLUMNS} FROM history WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = st
                .query_map(params![after, limit as i64], change_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn indexed(&self) -> std::result::Result<i64, OutboxError> {
        outbox(|| Ok(mark(&self.conn, "indexed")?.unwrap_or(0)))
    }

    fn index_names(&mut self) -> std::result::Result<u64, OutboxError> {
        outbox(|| {
            let from = mark(&self.conn, "indexed")?.unwrap_or(0);
            let newest: i64 = self
                .conn
                .prepare_cached("SELECT coalesce(max(id), 0) FROM history")?
                .query_row([], |r| r.get(0))?;
            if newest <= from {
                return Ok(0);
            }
            self.write(|c| {
                let n = c
                    .prepare_cached(
                        "INSERT OR IGNORE INTO history_names(name, id)
                         SELECT name, id FROM history WHERE id > ?1 ORDER BY id LIMIT ?2",
                    )?
                    .execute(params![from, INDEX_BATCH])?;
                let last: i64 = c
                    .prepare_cached(
                        "SELECT coalesce(max(id), ?1) FROM
                             (SELECT id FROM history WHERE id > ?1 ORDER BY id LIMIT ?2)",
                    )?
                    .query_row(params![from, INDEX_BATCH], |r| r.get(0))?;
                set_mark(c, "indexed", last)?;
                Ok(n as u64)
            })
        })
    }

    fn prune_names(
        &mut self,
        cursor: i64,
        keep: &Keep,
    ) -> std::result::Result<(i64, u64), OutboxError> {
        outbox(|| {
            // The names written since `cursor` (a read, no lock), then each
            // pruned to its newest `per_name` in one short write.
            let mut names: Vec<String> = Vec::new();
            let mut last = cursor;
            {
                let mut st = self.conn.prepare_cached(
                    "SELECT id, name FROM history WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
                )?;
                let mut rows = st.query(params![cursor, keep.up_to, PRUNE_BATCH])?;
                while let Some(r) = rows.next()? {
                    last = r.get(0)?;
                    let name: String = r.get(1)?;
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            // Only the names over `per_name` take the write lock (a read each).
            let per_name = i64::from(keep.per_name.max(1));
            let mut over = self.conn.prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM history_names WHERE name = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            )?;
            let mut full = Vec::new();
            for n in names {
                if over.query_row(params![n, per_name], |r| r.get::<_, bool>(0))? {
                    full.push(n);
                }
            }
            drop(over);
            let names = full;
            if names.is_empty() {
                return Ok((last, 0));
            }
            let up_to = keep.up_to;
            let gone = self.write(|c| {
                // The ids to go: beyond the newest per_name, and not past up_to.
                let mut ids = c.prepare_cached(
                    "SELECT id FROM history_names WHERE name = ?1 AND id <= ?2 AND id < (
                         SELECT id FROM history_names WHERE name = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?3)",
                )?;
                let mut del = c.prepare_cached("DELETE FROM history WHERE id = ?1")?;
                let mut unindex =
                    c.prepare_cached("DELETE FROM history_names WHERE name = ?1 AND id = ?2")?;
                let mut gone = 0u64;
                for n in &names {
                    let old: Vec<i64> = ids
                        .query_map(params![n, up_to, per_name - 1], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    for id in old {
                        gone += del.execute([id])? as u64;
                        unindex.execute(params![n, id])?;
                    }
                }
                Ok(gone)
            })?;
            Ok((last, gone))
        })
    }

    fn prune_age(&mut self, keep: &Keep) -> std::result::Result<u64, OutboxError> {
        outbox(|| {
            // The oldest row first, by id (the table's own order, one page):
            // `at` has no index, and asking for any old row would read the
            // whole history every second while none is old. Rows are written
            // in time order, so the old ones are at the head (after a clock
            // step back, a younger row at the head holds the age rule back
            // until it is old itself; `per_name` still bounds the history).
            let head: Option<i64> = self
                .conn
                .prepare_cached("SELECT at FROM history WHERE id <= ?1 ORDER BY id LIMIT 1")?
                .query_row([keep.up_to], |r| r.get(0))
                .optional()?;
            if head.is_none_or(|at| at >= keep.older_than) {
                return Ok(0);
            }
            self.write(|c| {
                Ok(c.prepare_cached(
                    "DELETE FROM history WHERE id IN (
                         SELECT id FROM history WHERE id <= ?2 ORDER BY id LIMIT ?3) AND at < ?1",
                )?
                .execute(params![keep.older_than, keep.up_to, PRUNE_BATCH])?
                    as u64)
            })
        })
    }

    fn mark_stale(
        &mut self,
        cutoff: i64,
        now: i64,
        notify: bool,
    ) -> std::result::Result<u64, OutboxError> {
        const NEWLY: &str = "stale_at IS NULL AND last_seen < ?1 AND EXISTS(
            SELECT 1 FROM records r WHERE r.zone = name_state.zone AND r.name = name_state.name)";
        outbox(|| {
            let any: bool = self
                .conn
                .prepare_cached(&format!(
                    "SELECT EXISTS(SELECT 1 FROM name_state WHERE {NEWLY})"
                ))?
                .query_row([cutoff], |r| r.get(0))?;
            if any {
                self.write(|c| {
                    c.prepare_cached(&format!(
                        "UPDATE name_state SET stale_at = ?2, stale_notified = ?3 WHERE {NEWLY}"
                    ))?
                    .execute(params![cutoff, now, !notify])?;
                    Ok(())
                })?;
            }
            Ok(self
                .conn
                .prepare_cached("SELECT count(*) FROM name_state WHERE stale_at IS NOT NULL")?
                .query_row([], |r| r.get::<_, i64>(0))? as u64)
        })
    }

    fn next_stale(&self) -> std::result::Result<Option<StaleName>, OutboxError> {
        outbox(|| {
            Ok(self
                .conn
                .prepare_cached(
                    "SELECT name, last_seen, stale_at FROM name_state
                     WHERE stale_at IS NOT NULL AND stale_notified = 0 ORDER BY stale_at, name LIMIT 1",
                )?
                .query_row([], |r| {
                    Ok(StaleName {
                        name: r.get(0)?,
                        last_seen: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                        since: r.get(2)?,
                    })
                })
                .optional()?)
        })
    }

    fn stale_delivered(&mut self, s: &StaleName) -> std::result::Result<(), OutboxError> {
        outbox(|| {
            self.write(|c| {
                c.prepare_cached(
                    "UPDATE name_state SET stale_notified = 1 WHERE name = ?1 AND stale_at = ?2",
                )?
                .execute(params![s.name, s.since])?;
                Ok(())
            })
        })
    }
}

/// A store query as the events port answers it (its failure in the port's words).
fn outbox<T>(f: impl FnOnce() -> Result<T>) -> std::result::Result<T, OutboxError> {
    Ok(f()?)
}

#[cfg(test)]
mod tests {
    use super::super::accounts::NewToken;
    use super::*;
    use crate::update::address::{ActionSource, AddressAction};
    use crate::update::bounds::Bounds;
    use crate::update::ledger::Via;
    use crate::update::{FamilyPlan, NamePlan};

    const NAME: &str = "a.dedyn.example";

    /// A store with one user, one domain and one token; the token's id.
    fn store(tag: &str) -> (Store, std::path::PathBuf, i64) {
        let path = std::env::temp_dir().join(format!(
            "dedyn-history-{tag}-{}.sqlite3",
            std::process::id()
        ));
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        let mut s = Store::open(&path, "NORMAL").unwrap();
        s.ensure_zones(&["dedyn.example"]).unwrap();
        let b = s.batch().unwrap();
        b.add_user("a@x.org").unwrap();
        let owner = b.user_id("a@x.org").unwrap();
        b.add_domain(NAME, "dedyn.example", owner).unwrap();
        let token = NewToken {
            hash: crate::update::token_hash("a"),
            ..NewToken::default()
        };
        let tok = b.add_token(owner, &token).unwrap();
        b.commit().unwrap();
        (s, path, tok)
    }

    fn set(s: &mut Store, tok: i64, ip: &str) {
        let d = s.domain_holding(NAME).unwrap().unwrap();
        let plan = NamePlan {
            name: NAME.into(),
            domain_id: d.id,
            domain: d.name,
            zone: d.zone,
            v4: FamilyPlan {
                action: AddressAction::Set(vec![ip.parse().unwrap()]),
                source: ActionSource::Connection,
            },
            v6: FamilyPlan {
                action: AddressAction::Preserve,
                source: ActionSource::NotNamedForThisName,
            },
        };
        let from = Provenance {
            via: Via::Http,
            client: Some("192.0.2.99".parse().unwrap()),
            token: Some(tok),
        };
        s.apply_with(
            &[plan],
            &from,
            d.owner,
            &crate::update::outcome::decide,
            &Bounds::NONE,
        )
        .unwrap();
    }

    /// A change is in the history with its provenance; an unchanged update
    /// adds nothing.
    #[test]
    fn a_change_is_recorded_with_its_provenance_and_an_unchanged_one_is_not() {
        let (mut s, path, tok) = store("record");
        set(&mut s, tok, "192.0.2.1");
        set(&mut s, tok, "192.0.2.1");
        set(&mut s, tok, "192.0.2.2");
        let h = s.history(NAME, 10).unwrap();
        assert_eq!(h.len(), 2, "{h:#?}");
        // The same once the events thread indexed it by name.
        assert_eq!(s.index_names().unwrap(), 2);
        assert_eq!(s.history(NAME, 10).unwrap(), h);
        assert_eq!(
            (h[0].old.as_slice(), h[0].new.as_slice()),
            (
                &["192.0.2.1".to_string()][..],
                &["192.0.2.2".to_string()][..]
            )
        );
        assert_eq!(h[0].via, "http");
        assert_eq!(h[0].client.as_deref(), Some("192.0.2.99"));
        assert_eq!(h[0].token, Some(tok));
        assert!(s.name_state(NAME).unwrap().last_changed.is_some());
        let _ = std::fs::remove_file(path);
    }

    /// NAME's history ids, oldest first.
    fn ids_oldest_first(s: &Store) -> Vec<i64> {
        let newest_first = s.history(NAME, 10).unwrap();
        newest_first.iter().map(|c| c.id).rev().collect()
    }

    /// Pruning keeps the newest `per_name`, and never goes past the mark
    /// (`up_to`): an undelivered change stays whatever the count.
    #[test]
    fn pruning_keeps_the_newest_and_nothing_undelivered() {
        let (mut s, path, tok) = store("prune");
        for i in 1..=5 {
            set(&mut s, tok, &format!("192.0.2.{i}"));
        }
        assert_eq!(s.index_names().unwrap(), 5);
        let ids = ids_oldest_first(&s);
        let keep = |up_to| Keep {
            per_name: 2,
            older_than: 0,
            up_to,
        };
        let (cursor, gone) = s.prune_names(0, &keep(ids[1])).unwrap();
        assert_eq!((cursor, gone), (ids[1], 2));
        let (cursor, gone) = s.prune_names(cursor, &keep(ids[4])).unwrap();
        assert_eq!((cursor, gone), (ids[4], 1));
        let left = ids_oldest_first(&s);
        assert_eq!(left, ids[3..]);
        let _ = std::fs::remove_file(path);
    }
}

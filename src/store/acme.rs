//! The `_acme-challenge` TXT values in SQLite (SPEC 10): write one keeping the most
//! recent per name, clear a name, read them for `records` and the renderer, expire them.
//!
//! The rules (value syntax, how many, how long) are `update::acme`'s; this is their SQL.
//! Every write bumps the zone's generation in the same transaction, like `apply`,
//! so the publisher sees it and the writer gets the receipt serial.

use super::db::{
    bump_generation, check_domain_held, check_token_held, invalid, text_at, writer_turn, Result,
    Store,
};
use super::update::check_room_for_name;
use crate::os::clock::now_unix;
use crate::update::acme::{challenge_name, expiry_cutoff as cutoff, VALUES_PER_NAME};
use crate::update::bounds::Bounds;
use crate::update::ledger::AcmeWriter;
use crate::update::Domain;
use rusqlite::{params, TransactionBehavior};

impl Store {
    /// Write `value` for `name` (held through `domain`): it becomes the most recent,
    /// and all but the [`VALUES_PER_NAME`] most recent of the name are deleted.
    /// A name without live values is a new name of the domain, held to
    /// `limits.names_per_domain` (SPEC 17; `OverLimit` naming the bound).
    /// Returns the serial of the publication that will contain it.
    pub fn acme_set(
        &mut self,
        domain: &Domain,
        name: &str,
        value: &str,
        who: AcmeWriter,
        limits: &Bounds,
    ) -> Result<u32> {
        self.check_same_file()?;
        let _turn = writer_turn();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let owner = match who {
            AcmeWriter::Token { id, owner } => {
                check_token_held(&tx, id, owner)?;
                Some(owner)
            }
            AcmeWriter::Operator => None,
        };
        check_domain_held(&tx, domain.id, &domain.name, owner)?;
        // Under the write lock, so that concurrent calls cannot both squeeze under it.
        Self::check_acme_name_room(&tx, domain, name, limits.names_per_domain)?;
        tx.prepare_cached("DELETE FROM acme_txt WHERE zone = ?1 AND name = ?2 AND value = ?3")?
            .execute(params![domain.zone, name, value])?;
        tx.prepare_cached(
            "INSERT INTO acme_txt(zone, name, value, written, domain) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![domain.zone, name, value, now_unix(), domain.id])?;
        tx.prepare_cached(
            "DELETE FROM acme_txt WHERE zone = ?1 AND name = ?2 AND id NOT IN
                (SELECT id FROM acme_txt WHERE zone = ?1 AND name = ?2 ORDER BY id DESC LIMIT ?3)",
        )?
        .execute(params![domain.zone, name, VALUES_PER_NAME as i64])?;
        let serial = bump_generation(&tx, &domain.zone)?;
        tx.commit()?;
        Ok(serial)
    }

    /// SPEC 17: `_acme-challenge.NAME` counts against `names_per_domain` (`max`,
    /// `0` = none) like any other name. A name with live values already has its
    /// place; a new one may not take the domain past the bound.
    fn check_acme_name_room(
        conn: &rusqlite::Connection,
        domain: &Domain,
        name: &str,
        max: u64,
    ) -> Result<()> {
        if max == 0 {
            return Ok(());
        }
        let now = now_unix();
        let live: bool = conn
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM acme_txt WHERE zone = ?1 AND name = ?2 AND written > ?3)",
            )?
            .query_row(params![domain.zone, name, cutoff(now)], |r| r.get(0))?;
        if live {
            return Ok(());
        }
        check_room_for_name(conn, domain, &challenge_name(name), max, now)
    }

    /// Delete every value of `name` (`acme clear`); `Invalid` when it had none.
    pub fn acme_clear(&mut self, zone: &str, name: &str) -> Result<u32> {
        let _turn = writer_turn();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx
            .prepare_cached("DELETE FROM acme_txt WHERE zone = ?1 AND name = ?2")?
            .execute(params![zone, name])?;
        if n == 0 {
            return invalid(format!("{name} has no _acme-challenge values"));
        }
        let serial = bump_generation(&tx, zone)?;
        tx.commit()?;
        Ok(serial)
    }

    /// The live values of `name`, oldest first, with when each was written.
    pub fn acme_values(&self, zone: &str, name: &str) -> Result<Vec<(String, i64)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT value, written FROM acme_txt WHERE zone = ?1 AND name = ?2 AND written > ?3 ORDER BY id",
        )?;
        let rows = st
            .query_map(params![zone, name, cutoff(now_unix())], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Every live value of `zone` in stable order (name, then oldest first), for
    /// the renderer; an expired value is never rendered, even before it is deleted.
    pub fn for_each_acme_value(
        &self,
        zone: &str,
        now: i64,
        mut f: impl FnMut(&str, &str),
    ) -> Result<usize> {
        let mut st = self.conn.prepare_cached(
            "SELECT name, value FROM acme_txt WHERE zone = ?1 AND written > ?2 ORDER BY name, id",
        )?;
        let mut rows = st.query(params![zone, cutoff(now)])?;
        let mut n = 0;
        while let Some(r) = rows.next()? {
            let (name, value) = (text_at(r, 0)?, text_at(r, 1)?);
            f(name, value);
            n += 1;
        }
        Ok(n)
    }

    /// Delete the values that expired at `now`; their zones are marked for
    /// publication. Returns those zones (none: nothing was written).
    pub fn expire_acme(&mut self, now: i64) -> Result<Vec<String>> {
        let any: bool = self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM acme_txt WHERE written <= ?1)",
            [cutoff(now)],
            |r| r.get(0),
        )?;
        if !any {
            return Ok(Vec::new());
        }
        let _turn = writer_turn();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let zones: Vec<String> = tx
            .prepare("SELECT DISTINCT zone FROM acme_txt WHERE written <= ?1")?
            .query_map([cutoff(now)], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        tx.execute("DELETE FROM acme_txt WHERE written <= ?1", [cutoff(now)])?;
        for z in &zones {
            bump_generation(&tx, z)?;
        }
        tx.commit()?;
        Ok(zones)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn store(tag: &str) -> (Store, std::path::PathBuf, Domain) {
        let path =
            std::env::temp_dir().join(format!("dedyn-acme-{tag}-{}.sqlite3", std::process::id()));
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        let mut s = Store::open(&path, "NORMAL").expect("open");
        s.ensure_zones(&["dedyn.example"]).expect("zones");
        let b = s.batch().expect("batch");
        b.add_user("a@x.org").expect("user");
        let owner = b.user_id("a@x.org").expect("owner");
        b.add_domain("a.dedyn.example", "dedyn.example", owner)
            .expect("domain");
        b.commit().expect("commit");
        let d = s
            .domain_holding("a.dedyn.example")
            .expect("query")
            .expect("held");
        (s, path, d)
    }

    fn values(s: &Store, name: &str) -> Vec<String> {
        s.acme_values("dedyn.example", name)
            .expect("values")
            .into_iter()
            .map(|(v, _)| v)
            .collect()
    }

    fn count(s: &Store) -> i64 {
        s.conn
            .query_row("SELECT count(*) FROM acme_txt", [], |r| r.get(0))
            .expect("count")
    }

    fn cleanup(path: &std::path::Path) {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
    }

    #[test]
    fn a_third_value_replaces_the_oldest_and_a_repeat_becomes_newest() {
        let (mut s, path, d) = store("keep");
        for v in ["v1", "v2", "v3"] {
            s.acme_set(
                &d,
                "a.dedyn.example",
                v,
                AcmeWriter::Operator,
                &Bounds::NONE,
            )
            .expect("set");
        }
        assert_eq!(values(&s, "a.dedyn.example"), ["v2", "v3"]);
        s.acme_set(
            &d,
            "a.dedyn.example",
            "v2",
            AcmeWriter::Operator,
            &Bounds::NONE,
        )
        .expect("set");
        assert_eq!(values(&s, "a.dedyn.example"), ["v3", "v2"]);
        // Another name below the same domain has its own two.
        s.acme_set(
            &d,
            "www.a.dedyn.example",
            "w1",
            AcmeWriter::Operator,
            &Bounds::NONE,
        )
        .expect("set");
        assert_eq!(values(&s, "a.dedyn.example"), ["v3", "v2"]);
        let mut seen = Vec::new();
        s.for_each_acme_value("dedyn.example", now_unix(), |n, v| {
            seen.push(format!("{n} {v}"))
        })
        .expect("render");
        assert_eq!(
            seen,
            [
                "a.dedyn.example v3",
                "a.dedyn.example v2",
                "www.a.dedyn.example w1"
            ]
        );
        cleanup(&path);
    }

    #[test]
    fn the_database_refuses_a_value_that_could_break_a_zone_file() {
        let (mut s, path, d) = store("check");
        for bad in ["a\"b", "a b", "a\nb", ""] {
            assert!(
                s.acme_set(
                    &d,
                    "a.dedyn.example",
                    bad,
                    AcmeWriter::Operator,
                    &Bounds::NONE
                )
                .is_err(),
                "{bad:?} was stored"
            );
        }
        assert!(values(&s, "a.dedyn.example").is_empty());
        cleanup(&path);
    }

    #[test]
    fn expired_values_are_not_rendered_and_are_deleted_with_a_republication() {
        let (mut s, path, d) = store("expire");
        s.acme_set(
            &d,
            "a.dedyn.example",
            "old",
            AcmeWriter::Operator,
            &Bounds::NONE,
        )
        .expect("set");
        let now = now_unix();
        let later = now + 3600;
        let mut rendered = 0;
        s.for_each_acme_value("dedyn.example", later, |_, _| rendered += 1)
            .expect("render");
        assert_eq!(rendered, 0);
        let generation = |s: &Store| -> i64 {
            s.conn
                .query_row("SELECT generation FROM zones", [], |r| r.get(0))
                .expect("generation")
        };
        let before = generation(&s);
        assert!(s.expire_acme(now).expect("expire").is_empty());
        assert_eq!(generation(&s), before);
        assert_eq!(s.expire_acme(later).expect("expire"), ["dedyn.example"]);
        assert_eq!(generation(&s), before + 1);
        assert_eq!(count(&s), 0);
        cleanup(&path);
    }

    /// SPEC 17: a new `_acme-challenge` name takes a place of `names_per_domain`,
    /// a name that has live values keeps its own, and one whose values all
    /// expired frees it.
    #[test]
    fn acme_names_count_against_names_per_domain() {
        let (mut s, path, d) = store("bound");
        let two = Bounds {
            names_per_domain: 2,
            ..Bounds::NONE
        };
        s.acme_set(&d, "a.dedyn.example", "v1", AcmeWriter::Operator, &two)
            .expect("first name");
        s.acme_set(&d, "x.a.dedyn.example", "v1", AcmeWriter::Operator, &two)
            .expect("second name");
        // The same names again: no new place needed.
        s.acme_set(&d, "a.dedyn.example", "v2", AcmeWriter::Operator, &two)
            .expect("a name already counted");
        let r = s.acme_set(&d, "y.a.dedyn.example", "v1", AcmeWriter::Operator, &two);
        match r {
            Err(StoreError::OverLimit(m)) => assert_eq!(
                m,
                "limits.names_per_domain: a.dedyn.example already has 2 names with records; \
                 _acme-challenge.y.a.dedyn.example would make it 3 (at most 2)"
            ),
            other => panic!("{other:?}"),
        }
        assert!(values(&s, "y.a.dedyn.example").is_empty());
        s.conn
            .execute(
                "UPDATE acme_txt SET written = written - 3600 WHERE name = 'x.a.dedyn.example'",
                [],
            )
            .expect("age");
        s.acme_set(&d, "y.a.dedyn.example", "v1", AcmeWriter::Operator, &two)
            .expect("an expired name freed its place");
        cleanup(&path);
    }

    #[test]
    fn a_revoked_token_or_a_domain_gone_writes_nothing() {
        let (mut s, path, d) = store("revoked");
        let owner: i64 = s
            .conn
            .query_row("SELECT id FROM users", [], |r| r.get(0))
            .expect("owner");
        let r = s.acme_set(
            &d,
            "a.dedyn.example",
            "v",
            AcmeWriter::Token { id: 999, owner },
            &Bounds::NONE,
        );
        assert!(matches!(r, Err(StoreError::Revoked)), "{r:?}");
        s.remove_domain("a.dedyn.example").expect("remove");
        let r = s.acme_set(
            &d,
            "a.dedyn.example",
            "v",
            AcmeWriter::Operator,
            &Bounds::NONE,
        );
        assert!(matches!(r, Err(StoreError::Gone(_))), "{r:?}");
        assert_eq!(count(&s), 0);
        cleanup(&path);
    }
}

//! The update write transaction (all names or none, re-checked under the write
//! lock), its dry run for `explain`, and the `Directory` the pipeline reads.

use super::{addr_blob, blob_addr, writer_turn, Result, Store, StoreError};
use crate::update::address::{self, Family};
use crate::update::{Directory, Domain, FamilyPolicy, NamePlan, Outcome, Token};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::net::IpAddr;

/// What `apply` did: per name, the outcome of each family; per changed zone, the
/// serial of the publication that will contain the change.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub outcomes: Vec<(String, [Outcome; 2])>,
    pub serials: Vec<(String, u32)>,
}

impl Applied {
    pub fn changed(&self) -> bool {
        !self.serials.is_empty()
    }
}

impl Store {
    // ---- records ----

    fn current(conn: &Connection, zone: &str, name: &str, f: Family) -> Result<Vec<IpAddr>> {
        let mut st = conn.prepare_cached(
            "SELECT addr FROM records WHERE zone = ?1 AND name = ?2 AND type = ?3 ORDER BY addr",
        )?;
        let rows = st.query_map(params![zone, name, f.rtype()], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for b in rows {
            out.extend(blob_addr(&b?));
        }
        Ok(out)
    }

    /// The A and AAAA records stored for `name` (A first, numeric order).
    pub fn records(&self, zone: &str, name: &str) -> Result<Vec<IpAddr>> {
        let mut out = Self::current(&self.conn, zone, name, Family::V4)?;
        out.extend(Self::current(&self.conn, zone, name, Family::V6)?);
        Ok(out)
    }

    /// Apply an update plan atomically: all names or none. Nothing is written when
    /// nothing changes (checked first without taking the write lock).
    pub fn apply(&mut self, names: &[NamePlan], token: i64, owner: i64) -> Result<Applied> {
        {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Deferred)?;
            let (applied, changes) = Self::compute(&tx, names)?;
            if changes.is_empty() {
                return Ok(applied);
            }
        }
        let _turn = writer_turn();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // The plan was made outside this transaction: make sure, under the write
        // lock, that the token still exists and every domain is still the owner's
        // (an admin command may have revoked or removed it in between, and a
        // removed domain's id may be reused by a new registration).
        let token_ok: bool = tx
            .prepare_cached("SELECT EXISTS(SELECT 1 FROM tokens WHERE id = ?1 AND owner = ?2)")?
            .query_row(params![token, owner], |r| r.get(0))?;
        if !token_ok {
            return Err(StoreError::Revoked);
        }
        for n in names {
            let held: bool = tx
                .prepare_cached(
                    "SELECT EXISTS(SELECT 1 FROM domains WHERE id = ?1 AND name = ?2 AND owner = ?3)",
                )?
                .query_row(params![n.domain_id, n.domain, owner], |r| r.get(0))?;
            if !held {
                return Err(StoreError::Gone(n.domain.clone()));
            }
        }
        let (mut applied, changes) = Self::compute(&tx, names)?;
        {
            let mut del = tx.prepare_cached(
                "DELETE FROM records WHERE zone = ?1 AND name = ?2 AND type = ?3",
            )?;
            let mut ins = tx.prepare_cached(
                "INSERT INTO records(zone, name, type, addr, domain) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (n, f, after) in &changes {
                del.execute(params![n.zone, n.name, f.rtype()])?;
                for a in after {
                    ins.execute(params![
                        n.zone,
                        n.name,
                        f.rtype(),
                        addr_blob(a),
                        n.domain_id
                    ])?;
                }
            }
        }
        let mut zones: Vec<&str> = changes.iter().map(|(n, _, _)| n.zone.as_str()).collect();
        zones.sort_unstable();
        zones.dedup();
        let mut bump = tx.prepare_cached(
            "UPDATE zones SET generation = generation + 1 WHERE name = ?1 RETURNING pending_serial",
        )?;
        for z in zones {
            let serial: Option<i64> = bump.query_row([z], |r| r.get(0)).optional()?;
            applied
                .serials
                .push((z.to_string(), serial.unwrap_or(0) as u32));
        }
        drop(bump);
        tx.commit()?;
        Ok(applied)
    }

    /// What `apply` would do, without writing (`explain`).
    pub fn dry_run(&mut self, names: &[NamePlan]) -> Result<Applied> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let (mut applied, changes) = Self::compute(&tx, names)?;
        let mut zones: Vec<String> = changes.iter().map(|(n, _, _)| n.zone.clone()).collect();
        drop(tx);
        zones.sort_unstable();
        zones.dedup();
        for z in zones {
            let serial = self.pending_serial(&z)?;
            applied.serials.push((z, serial));
        }
        Ok(applied)
    }

    #[allow(clippy::type_complexity)]
    fn compute<'p>(
        conn: &Connection,
        names: &'p [NamePlan],
    ) -> Result<(Applied, Vec<(&'p NamePlan, Family, Vec<IpAddr>)>)> {
        let mut applied = Applied::default();
        let mut changes = Vec::new();
        for n in names {
            let mut out = [Outcome::Unchanged; 2];
            for f in Family::BOTH {
                let action = n.action(f);
                let before = Self::current(conn, &n.zone, &n.name, f)?;
                let after = address::apply(action, &before);
                out[f as usize] = Outcome::decide(action, &before, &after);
                if before != after {
                    changes.push((n, f, after));
                }
            }
            applied.outcomes.push((n.name.clone(), out));
        }
        Ok((applied, changes))
    }
}

impl Directory for Store {
    fn token_by_hash(&mut self, hash: &[u8; 32]) -> std::result::Result<Option<Token>, String> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT t.id, t.owner, u.email, t.expires, t.allowed_subnets, t.domains, t.family
                 FROM tokens t JOIN users u ON u.id = t.owner WHERE t.hash = ?1",
            )
            .map_err(|e| e.to_string())?;
        let row = st
            .query_row([&hash[..]], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .optional()
            .map_err(|e| e.to_string())?;
        Ok(row.map(
            |(id, owner, owner_email, expires, subnets, domains, family)| Token {
                id,
                owner,
                owner_email,
                expires,
                allowed_subnets: subnets
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect(),
                domains: domains.split_whitespace().map(str::to_string).collect(),
                family: FamilyPolicy::parse(&family).unwrap_or(FamilyPolicy::Both),
            },
        ))
    }

    fn domains_of(&mut self, owner: i64) -> std::result::Result<Vec<Domain>, String> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, name, zone FROM domains WHERE owner = ?1 ORDER BY name")
            .map_err(|e| e.to_string())?;
        let rows = st
            .query_map([owner], |r| {
                Ok(Domain {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    zone: r.get(2)?,
                })
            })
            .map_err(|e| e.to_string())?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| e.to_string());
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewToken;
    use crate::update::address::{ActionSource, AddressAction};

    fn store(tag: &str) -> (Store, std::path::PathBuf) {
        let path =
            std::env::temp_dir().join(format!("dedyn-store-{tag}-{}.sqlite3", std::process::id()));
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        let mut s = Store::open(&path, "NORMAL").unwrap();
        s.ensure_zones(&["dedyn.example"]).unwrap();
        (s, path)
    }

    fn plan_for(s: &Store, name: &str, ip: &str) -> NamePlan {
        let d = s.domain_holding(name).unwrap().unwrap();
        let set = (
            AddressAction::Set(vec![ip.parse().unwrap()]),
            ActionSource::Connection,
        );
        let keep = (AddressAction::Preserve, ActionSource::NotNamedForThisName);
        NamePlan {
            name: name.into(),
            domain_id: d.id,
            domain: d.name,
            zone: d.zone,
            v4: set,
            v6: keep,
        }
    }

    #[test]
    fn a_token_revoked_between_plan_and_write_writes_nothing() {
        let (mut s, path) = store("revoked");
        s.add_user("a@x.org").unwrap();
        s.add_domain("a.dedyn.example", "dedyn.example", "a@x.org")
            .unwrap();
        let (tok, _) = s.add_token("a@x.org", &NewToken::default()).unwrap();
        let owner = 1; // the first user
        let plan = plan_for(&s, "a.dedyn.example", "1.2.3.4");
        s.revoke_token(tok).unwrap();
        assert!(matches!(
            s.apply(&[plan], tok, owner),
            Err(StoreError::Revoked)
        ));
        assert!(s
            .records("dedyn.example", "a.dedyn.example")
            .unwrap()
            .is_empty());
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_domain_that_changed_hands_between_plan_and_write_is_not_written() {
        let (mut s, path) = store("gone");
        s.add_user("a@x.org").unwrap();
        s.add_user("b@x.org").unwrap();
        s.add_domain("a.dedyn.example", "dedyn.example", "a@x.org")
            .unwrap();
        let (tok, _) = s.add_token("a@x.org", &NewToken::default()).unwrap();
        let plan = plan_for(&s, "a.dedyn.example", "1.2.3.4");
        let owner_a = 1;
        // Removed and registered again, by someone else: the id may well be reused.
        s.remove_domain("a.dedyn.example").unwrap();
        s.add_domain("a.dedyn.example", "dedyn.example", "b@x.org")
            .unwrap();
        assert!(matches!(
            s.apply(&[plan], tok, owner_a),
            Err(StoreError::Gone(_))
        ));
        assert!(s
            .records("dedyn.example", "a.dedyn.example")
            .unwrap()
            .is_empty());
        let _ = std::fs::remove_file(path);
    }
}

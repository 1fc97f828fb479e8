//! Accounts: users, their domains and their tokens — added one by one or in one
//! `Batch` (`import`), listed, removed — as plain queries; the CLI owns the rules.

use super::db::{invalid, reverse_labels, Result, Store, StoreError};
use super::history::record_removal;
use crate::net::cidr::Cidr;
use crate::os::clock::now_unix;
use crate::update::directory::{Scope, TsigKey};
use crate::update::{name_and_parents, Domain, FamilyPolicy};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// A token as `token list` shows it.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    pub id: i64,
    pub owner: String,
    pub name: String,
    pub created: i64,
    pub last_used: Option<i64>,
    pub expires: Option<i64>,
    pub allowed_subnets: String,
    pub domains: String,
    pub family: String,
    pub scope: String,
    /// A TSIG key's name (`token add --tsig`); never its secret.
    pub tsig_name: Option<String>,
}

/// A token row to insert: the CLI has checked it and made the secret whose hash
/// this is (the secret itself is never stored).
#[derive(Clone, Debug, Default)]
pub struct NewToken {
    pub hash: [u8; 32],
    pub name: String,
    pub allowed_subnets: Vec<Cidr>,
    pub expires_in: Option<u64>,
    pub domains: Vec<String>,
    pub family: Option<FamilyPolicy>,
    pub scope: Scope,
    /// `--tsig`: the key stored for HMACs (SPEC 14).
    pub tsig: Option<TsigKey>,
}

/// `PRAGMA cache_size` of a batch, in KiB when negative: 256 MiB at most.
const BATCH_CACHE_KIB: i64 = -262_144;

impl Store {
    // ---- users ----

    pub fn list_users(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT email FROM users ORDER BY email")?;
        let rows = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

    /// The id of the user with exactly this (normalized) email.
    fn user_id(&self, email: &str) -> Result<i64> {
        user_id(&self.conn, email)
    }

    /// Delete a user with domains, tokens and records; their zones are republished.
    pub fn remove_user(&mut self, email: &str) -> Result<()> {
        let id = self.user_id(email)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE zones SET generation = generation + 1 WHERE name IN (SELECT DISTINCT zone FROM records WHERE domain IN (SELECT id FROM domains WHERE owner = ?1) UNION SELECT DISTINCT zone FROM acme_txt WHERE domain IN (SELECT id FROM domains WHERE owner = ?1))",
            [id],
        )?;
        let domains: Vec<i64> = tx
            .prepare("SELECT id FROM domains WHERE owner = ?1")?
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let now = now_unix();
        for d in domains {
            record_removal(&tx, d, now)?;
        }
        tx.execute("DELETE FROM users WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    // ---- domains ----

    /// (name, owner email, its own TTL), sorted by name.
    pub fn list_domains(&self, owner: Option<&str>) -> Result<Vec<(String, String, Option<u32>)>> {
        let owner_id = owner.map(|o| self.user_id(o)).transpose()?;
        let mut st = self.conn.prepare(
            "SELECT d.name, u.email, d.ttl FROM domains d JOIN users u ON u.id = d.owner WHERE ?1 IS NULL OR d.owner = ?1 ORDER BY d.name",
        )?;
        let rows = st
            .query_map([owner_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn remove_domain(&mut self, name: &str) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, zone FROM domains WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, zone)) = found else {
            return invalid(format!("no domain {name}"));
        };
        let had_records: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM records WHERE domain = ?1) OR EXISTS(SELECT 1 FROM acme_txt WHERE domain = ?1)",
            [id],
            |r| r.get(0),
        )?;
        if had_records {
            tx.execute(
                "UPDATE zones SET generation = generation + 1 WHERE name = ?1",
                [zone],
            )?;
            record_removal(&tx, id, now_unix())?;
        }
        tx.execute("DELETE FROM domains WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// The registered domain that holds `name` (equal or above it), with its zone
    /// and owner: one indexed lookup per label of `name`, whatever the size of the
    /// account (registered domains never nest, so the first found is the one).
    pub fn domain_holding(&self, name: &str) -> Result<Option<Domain>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, name, zone, owner FROM domains WHERE name = ?1")?;
        for candidate in name_and_parents(name) {
            let d = st
                .query_row([candidate], |r| {
                    Ok(Domain {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        zone: r.get(2)?,
                        owner: r.get(3)?,
                    })
                })
                .optional()?;
            if d.is_some() {
                return Ok(d);
            }
        }
        Ok(None)
    }

    /// At most two of the owner's domains (any two): enough to know whether the
    /// owner has exactly one, without reading a long list.
    pub fn two_domains_of(&self, owner: i64) -> Result<Vec<Domain>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, name, zone, owner FROM domains WHERE owner = ?1 LIMIT 2")?;
        let rows = st.query_map([owner], |r| {
            Ok(Domain {
                id: r.get(0)?,
                name: r.get(1)?,
                zone: r.get(2)?,
                owner: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether `name` equals or lies below one of the `--domain` names of `token`:
    /// one indexed lookup per label of `name`, whatever the length of the list.
    pub fn token_covers(&self, token: i64, name: &str) -> Result<bool> {
        let mut st = self.conn.prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM token_domains WHERE token = ?1 AND name = ?2)",
        )?;
        for candidate in name_and_parents(name) {
            if st.query_row(params![token, candidate], |r| r.get::<_, bool>(0))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    // ---- tokens ----

    /// Start a batch of additions: one write transaction for all of them (`import`).
    pub fn batch(&mut self) -> Result<Batch<'_>> {
        // A large import touches more pages than SQLite's default 2 MB cache: a
        // cache that spills writes pages to the WAL mid-transaction, while the
        // service waits for the lock. The cache grows only as far as it is used.
        self.conn
            .pragma_update(None, "cache_size", BATCH_CACHE_KIB)?;
        Ok(Batch {
            tx: self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
        })
    }

    pub fn list_tokens(&self, owner: Option<&str>) -> Result<Vec<TokenInfo>> {
        let owner_id = owner.map(|o| self.user_id(o)).transpose()?;
        let mut st = self.conn.prepare(
            "SELECT t.id, u.email, t.name, t.created, t.last_used, t.expires, t.allowed_subnets, t.domains, t.family, t.scope, t.tsig_name
             FROM tokens t JOIN users u ON u.id = t.owner WHERE ?1 IS NULL OR t.owner = ?1 ORDER BY t.id",
        )?;
        let rows = st
            .query_map([owner_id], |r| {
                Ok(TokenInfo {
                    id: r.get(0)?,
                    owner: r.get(1)?,
                    name: r.get(2)?,
                    created: r.get(3)?,
                    last_used: r.get(4)?,
                    expires: r.get(5)?,
                    allowed_subnets: r.get(6)?,
                    domains: r.get(7)?,
                    family: r.get(8)?,
                    scope: r.get(9)?,
                    tsig_name: r.get(10)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn revoke_token(&mut self, id: i64) -> Result<()> {
        if self
            .conn
            .execute("DELETE FROM tokens WHERE id = ?1", [id])?
            == 0
        {
            return invalid(format!("no token {id}"));
        }
        Ok(())
    }
}

fn user_id(conn: &Connection, email: &str) -> Result<i64> {
    conn.prepare_cached("SELECT id FROM users WHERE email = ?1")?
        .query_row([email], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::Invalid(format!("no user {email}")))
}

/// Additions of users, domains and tokens in one write transaction: the single
/// admin commands are a batch of one, `import` a batch of many (all or nothing).
/// Only the queries and inserts live here; the CLI checks each addition with them
/// (src/cli/rules.rs), so both validate exactly alike. Dropped without `commit`,
/// nothing is written.
pub struct Batch<'a> {
    tx: rusqlite::Transaction<'a>,
}

/// Registered domains that overlap a name: the nearest one above it, the name
/// itself, one below it. The rules of `domain add` decide what that means.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overlap {
    pub above: Option<String>,
    pub same: bool,
    pub below: Option<String>,
}

impl Batch<'_> {
    /// The id of the user with exactly this (normalized) email.
    pub fn user_id(&self, email: &str) -> Result<i64> {
        user_id(&self.tx, email)
    }

    /// Insert a user (email already checked and normalized).
    pub fn add_user(&self, email: &str) -> Result<()> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO users(email, created) VALUES (?1, ?2) ON CONFLICT(email) DO NOTHING",
            )?
            .execute(params![email, now_unix()])?;
        if n == 0 {
            return invalid(format!("user {email} already exists"));
        }
        Ok(())
    }

    /// The registered domains above, at and below `name` (normalized).
    pub fn domains_overlapping(&self, name: &str) -> Result<Overlap> {
        let mut lookup = self
            .tx
            .prepare_cached("SELECT name FROM domains WHERE name = ?1")?;
        let mut above = None;
        let mut parent = name;
        while let Some((_, rest)) = parent.split_once('.') {
            above = lookup.query_row([rest], |r| r.get(0)).optional()?;
            if above.is_some() {
                break;
            }
            parent = rest;
        }
        let same = lookup
            .query_row([name], |r| r.get::<_, String>(0))
            .optional()?
            .is_some();
        // Below: a registered domain's reversed name starts with ours and a dot
        // ('/' sorts right after '.').
        let below = self
            .tx
            .prepare_cached(
                "SELECT name FROM domains WHERE rname > ?1 || '.' AND rname < ?1 || '/' LIMIT 1",
            )?
            .query_row([reverse_labels(name)], |r| r.get(0))
            .optional()?;
        Ok(Overlap { above, same, below })
    }

    /// Insert `name` (normalized, checked) in `zone` for the user `owner_id`.
    pub fn add_domain(&self, name: &str, zone: &str, owner_id: i64) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO domains(name, rname, zone, owner, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![name, reverse_labels(name), zone, owner_id, now_unix()])?;
        Ok(())
    }

    /// How many domains `owner_id` holds (`[limits] domains_per_user`).
    pub fn domain_count_of(&self, owner_id: i64) -> Result<u64> {
        let n: i64 = self
            .tx
            .prepare_cached("SELECT count(*) FROM domains WHERE owner = ?1")?
            .query_row([owner_id], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// The names of the domains `owner_id` holds.
    pub fn domain_names_of(&self, owner_id: i64) -> Result<Vec<String>> {
        let mut st = self
            .tx
            .prepare_cached("SELECT name FROM domains WHERE owner = ?1")?;
        let rows = st.query_map([owner_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The id of the token whose TSIG key is named `name`, if any.
    pub fn tsig_name_owner(&self, name: &str) -> Result<Option<i64>> {
        Ok(self
            .tx
            .prepare_cached("SELECT id FROM tokens WHERE tsig_name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?)
    }

    /// Insert a token for `owner_id`; returns its id. It expires `expires_in`
    /// seconds after its creation, counted here so both come from one clock read.
    pub fn add_token(&self, owner_id: i64, t: &NewToken) -> Result<i64> {
        let now = now_unix();
        let expires = t
            .expires_in
            .map(|s| now.saturating_add(s.min(i64::MAX as u64 / 2) as i64));
        let subnets: Vec<String> = t.allowed_subnets.iter().map(Cidr::to_string).collect();
        self.tx.prepare_cached(
            "INSERT INTO tokens(owner, hash, name, created, expires, allowed_subnets, domains, family, scope, tsig_name, tsig_algorithm, tsig_secret) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?.execute(params![
                owner_id,
                &t.hash[..],
                t.name,
                now,
                expires,
                subnets.join(" "),
                t.domains.join(" "),
                t.family.unwrap_or(FamilyPolicy::Both).as_str(),
                t.scope.as_str(),
                t.tsig.as_ref().map(|k| &k.name),
                t.tsig.as_ref().map(|k| &k.algorithm),
                t.tsig.as_ref().map(|k| &k.secret),
            ])?;
        let id = self.tx.last_insert_rowid();
        let mut scope = self
            .tx
            .prepare_cached("INSERT OR IGNORE INTO token_domains(token, name) VALUES (?1, ?2)")?;
        for d in &t.domains {
            scope.execute(params![id, d])?;
        }
        Ok(id)
    }

    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_overlapping_finds_the_nearest_above_the_same_and_one_below() {
        let path = std::env::temp_dir().join(format!(
            "dedyn-store-overlap-{}.sqlite3",
            std::process::id()
        ));
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        let mut s = Store::open(&path, "NORMAL").unwrap();
        let b = s.batch().unwrap();
        b.add_user("a@x.org").unwrap();
        let id = b.user_id("a@x.org").unwrap();
        // "ab" shares a prefix with "a" but is not below it.
        for d in ["a.dedyn.example", "ab.dedyn.example", "c.b.dedyn.example"] {
            b.add_domain(d, "dedyn.example", id).unwrap();
        }
        let none = b.domains_overlapping("z.dedyn.example").unwrap();
        assert_eq!(none, Overlap::default());
        let above = b.domains_overlapping("y.x.a.dedyn.example").unwrap();
        assert_eq!(above.above.as_deref(), Some("a.dedyn.example"));
        assert!(!above.same);
        let same = b.domains_overlapping("a.dedyn.example").unwrap();
        assert_eq!((same.above, same.same, same.below), (None, true, None));
        let below = b.domains_overlapping("b.dedyn.example").unwrap();
        assert_eq!(below.below.as_deref(), Some("c.b.dedyn.example"));
        match b.user_id("nobody@x.org") {
            Err(StoreError::Invalid(m)) => assert_eq!(m, "no user nobody@x.org"),
            other => panic!("expected 'no user', got {other:?}"),
        }
        drop(b);
        let _ = std::fs::remove_file(path);
    }

    fn fresh(tag: &str) -> (Store, std::path::PathBuf) {
        let path =
            std::env::temp_dir().join(format!("dedyn-store-{tag}-{}.sqlite3", std::process::id()));
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        (Store::open(&path, "NORMAL").unwrap(), path)
    }

    #[test]
    fn lookups_by_name_find_the_holding_domain_its_owner_and_at_most_two() {
        let (mut s, path) = fresh("lookups");
        let b = s.batch().unwrap();
        for u in ["a@x.org", "b@x.org", "c@x.org"] {
            b.add_user(u).unwrap();
        }
        let (a, bob) = (b.user_id("a@x.org").unwrap(), b.user_id("b@x.org").unwrap());
        for d in ["a1.dedyn.example", "a2.dedyn.example", "a3.dedyn.example"] {
            b.add_domain(d, "dedyn.example", a).unwrap();
        }
        b.add_domain("b.dedyn.example", "dedyn.example", bob)
            .unwrap();
        b.commit().unwrap();
        let held = s.domain_holding("*.www.a2.dedyn.example").unwrap().unwrap();
        assert_eq!((held.name.as_str(), held.owner), ("a2.dedyn.example", a));
        assert_eq!(
            s.domain_holding("b.dedyn.example").unwrap().unwrap().owner,
            bob
        );
        for not_held in [
            "dedyn.example",
            "xa1.dedyn.example",
            "a1.dedyn.example.org",
            "",
        ] {
            assert_eq!(s.domain_holding(not_held).unwrap(), None, "{not_held}");
        }
        // longer than any hostname: skipped up to the part that can be one
        let long = format!("{}.a1.dedyn.example", "x.".repeat(200));
        assert_eq!(
            s.domain_holding(&long).unwrap().unwrap().name,
            "a1.dedyn.example"
        );
        assert_eq!(s.two_domains_of(a).unwrap().len(), 2);
        assert_eq!(s.two_domains_of(bob).unwrap().len(), 1);
        let c = user_id(&s.conn, "c@x.org").unwrap();
        assert!(s.two_domains_of(c).unwrap().is_empty());
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_tokens_domains_are_looked_up_by_name_and_go_with_the_token() {
        let (mut s, path) = fresh("covers");
        let b = s.batch().unwrap();
        b.add_user("a@x.org").unwrap();
        let a = b.user_id("a@x.org").unwrap();
        b.add_domain("a.dedyn.example", "dedyn.example", a).unwrap();
        let scoped = NewToken {
            hash: [1; 32],
            domains: vec!["www.a.dedyn.example".into(), "www.a.dedyn.example".into()],
            ..NewToken::default()
        };
        let t = b.add_token(a, &scoped).unwrap();
        let other = b.add_token(a, &NewToken::default()).unwrap();
        b.commit().unwrap();
        assert!(s.token_covers(t, "www.a.dedyn.example").unwrap());
        assert!(s.token_covers(t, "x.www.a.dedyn.example").unwrap());
        assert!(!s.token_covers(t, "a.dedyn.example").unwrap());
        assert!(!s.token_covers(t, "xwww.a.dedyn.example").unwrap());
        assert!(!s.token_covers(other, "www.a.dedyn.example").unwrap());
        use crate::update::Directory;
        let found = |s: &mut Store, h| s.token_by_hash(&[h; 32]).unwrap().unwrap();
        assert!(found(&mut s, 1).scoped);
        assert!(!found(&mut s, 0).scoped);
        s.revoke_token(t).unwrap();
        let left: i64 = s
            .conn
            .query_row("SELECT count(*) FROM token_domains", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn migration_4_indexes_the_domains_of_existing_tokens() {
        let path = std::env::temp_dir().join(format!(
            "dedyn-store-migrate-{}.sqlite3",
            std::process::id()
        ));
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        {
            // A database as version 1 left it, with a scoped and an unscoped token.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(super::super::db::MIGRATIONS[0]).unwrap();
            c.execute_batch(
                "PRAGMA user_version = 1;
                 INSERT INTO users(id, email, created) VALUES (1, 'a@x.org', 0);
                 INSERT INTO tokens(id, owner, hash, created, domains)
                   VALUES (7, 1, x'01', 0, 'x.a.dedyn.example  y.a.dedyn.example'),
                          (8, 1, x'02', 0, '');",
            )
            .unwrap();
        }
        let s = Store::open(&path, "NORMAL").unwrap();
        assert_eq!(
            s.schema_version().unwrap(),
            super::super::db::MIGRATIONS.len() as i64
        );
        assert!(s.token_covers(7, "x.a.dedyn.example").unwrap());
        assert!(s.token_covers(7, "w.y.a.dedyn.example").unwrap());
        assert!(!s.token_covers(7, "a.dedyn.example").unwrap());
        assert!(!s.token_covers(8, "x.a.dedyn.example").unwrap());
        let rows: i64 = s
            .conn
            .query_row("SELECT count(*) FROM token_domains", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
        let _ = std::fs::remove_file(path);
    }
}

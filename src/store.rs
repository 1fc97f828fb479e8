//! The only place with SQL: schema and migrations (`PRAGMA user_version`), the
//! queries of the pipeline, the admin commands and the publisher, and their transactions.

use crate::net::cidr::Cidr;
use crate::net::name;
use crate::update::address::{self, Family};
use crate::update::{Directory, Domain, FamilyPolicy, NamePlan, Outcome, Token};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// A store failure, phrased for the operator (or the admin command's user).
#[derive(Debug)]
pub enum StoreError {
    /// Bad input to an admin command: nothing was changed.
    Invalid(String),
    /// The database itself failed.
    Db(String),
    /// Between planning and writing an update, its token was revoked (or its
    /// owner removed): nothing was written.
    Revoked,
    /// Between planning and writing an update, this domain was removed or
    /// changed hands: nothing was written.
    Gone(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Invalid(m) => f.write_str(m),
            StoreError::Db(m) => write!(f, "database error: {m}"),
            StoreError::Revoked => f.write_str("the token was revoked during the update"),
            StoreError::Gone(d) => write!(f, "domain {d} was removed during the update"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

type Result<T> = std::result::Result<T, StoreError>;

fn invalid<T>(m: impl Into<String>) -> Result<T> {
    Err(StoreError::Invalid(m.into()))
}

pub use crate::os::clock::now_unix;

/// Schema migrations, applied in order; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: users, domains, tokens, records, zones
    "CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        created INTEGER NOT NULL
    );
    CREATE TABLE domains (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        rname TEXT NOT NULL UNIQUE,      -- labels reversed, for 'names below' range queries
        zone TEXT NOT NULL,
        owner INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created INTEGER NOT NULL
    );
    CREATE INDEX domains_owner ON domains(owner);
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        owner INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        hash BLOB NOT NULL UNIQUE,       -- SHA-256 of the secret; the secret is never stored
        name TEXT NOT NULL DEFAULT '',
        created INTEGER NOT NULL,
        last_used INTEGER,
        expires INTEGER,
        allowed_subnets TEXT NOT NULL DEFAULT '',
        domains TEXT NOT NULL DEFAULT '',
        family TEXT NOT NULL DEFAULT 'both'
    );
    CREATE INDEX tokens_owner ON tokens(owner);
    CREATE TABLE records (
        zone TEXT NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('A', 'AAAA')),
        addr BLOB NOT NULL,              -- 4 or 16 octets: sorts in numeric order
        domain INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
        PRIMARY KEY (zone, name, type, addr)
    ) WITHOUT ROWID;
    CREATE INDEX records_domain ON records(domain);
    CREATE TABLE zones (
        name TEXT PRIMARY KEY,
        pending_serial INTEGER NOT NULL,  -- the serial the next publication carries
        generation INTEGER NOT NULL DEFAULT 0,
        published_generation INTEGER NOT NULL DEFAULT -1,
        published_serial INTEGER,
        published_at INTEGER
    );",
];

fn reverse_labels(name: &str) -> String {
    name.rsplit('.').collect::<Vec<_>>().join(".")
}

fn addr_blob(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn blob_addr(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// A new token secret: 192 random bits, URL-safe.
fn new_secret() -> Result<String> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| StoreError::Db("the system random generator failed".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

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
}

/// Options of `token add`.
#[derive(Clone, Debug, Default)]
pub struct NewToken {
    pub name: String,
    pub allowed_subnets: Vec<Cidr>,
    pub expires_in: Option<u64>,
    pub domains: Vec<String>,
    pub family: Option<FamilyPolicy>,
}

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

/// Writers of this process take turns here before `BEGIN IMMEDIATE`: SQLite's own
/// busy handler sleeps 1, 2, 5, 10 … ms between tries, which under a steady write
/// load turns lock contention into milliseconds of latency. Other processes (the
/// admin commands) still meet `busy_timeout`.
static WRITERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn writer_turn() -> std::sync::MutexGuard<'static, ()> {
    WRITERS.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Store {
    conn: Connection,
}

impl Store {
    /// Open (creating if needed) and migrate. One `Store` per thread.
    pub fn open(path: &Path, synchronous: &str) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Db(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // NORMAL in WAL: a commit survives a crash of the process (the OS has the
        // data); FULL also survives power loss, at one fsync per commit.
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: usize =
            tx.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
        if version > MIGRATIONS.len() {
            return Err(StoreError::Db(format!(
                "database schema version {version} is newer than this program knows ({}); use a newer dedyn-update",
                MIGRATIONS.len()
            )));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    pub fn quick_check(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))?)
    }

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

    // ---- users ----

    pub fn add_user(&mut self, email: &str) -> Result<()> {
        let b = self.batch()?;
        b.add_user(email)?;
        b.commit()
    }

    pub fn list_users(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT email FROM users ORDER BY email")?;
        let rows = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

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
            "UPDATE zones SET generation = generation + 1 WHERE name IN (SELECT DISTINCT zone FROM records WHERE domain IN (SELECT id FROM domains WHERE owner = ?1))",
            [id],
        )?;
        tx.execute("DELETE FROM users WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    // ---- domains ----

    /// Register `name` (already normalized) in `zone` for the user `owner`.
    pub fn add_domain(&mut self, name: &str, zone: &str, owner: &str) -> Result<()> {
        let b = self.batch()?;
        b.add_domain(name, zone, owner)?;
        b.commit()
    }

    /// (name, owner email), sorted by name.
    pub fn list_domains(&self, owner: Option<&str>) -> Result<Vec<(String, String)>> {
        let owner_id = owner.map(|o| self.user_id(o)).transpose()?;
        let mut st = self.conn.prepare(
            "SELECT d.name, u.email FROM domains d JOIN users u ON u.id = d.owner WHERE ?1 IS NULL OR d.owner = ?1 ORDER BY d.name",
        )?;
        let rows = st
            .query_map([owner_id], |r| Ok((r.get(0)?, r.get(1)?)))?
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
            "SELECT EXISTS(SELECT 1 FROM records WHERE domain = ?1)",
            [id],
            |r| r.get(0),
        )?;
        tx.execute("DELETE FROM domains WHERE id = ?1", [id])?;
        if had_records {
            tx.execute(
                "UPDATE zones SET generation = generation + 1 WHERE name = ?1",
                [zone],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The registered domain that holds `name` (equal or above it), with its zone.
    pub fn domain_holding(&self, name: &str) -> Result<Option<Domain>> {
        let mut candidate = name;
        loop {
            let d = self
                .conn
                .query_row(
                    "SELECT id, name, zone FROM domains WHERE name = ?1",
                    [candidate],
                    |r| {
                        Ok(Domain {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            zone: r.get(2)?,
                        })
                    },
                )
                .optional()?;
            if d.is_some() {
                return Ok(d);
            }
            match candidate.split_once('.') {
                Some((_, rest)) => candidate = rest,
                None => return Ok(None),
            }
        }
    }

    // ---- tokens ----

    /// Create a token; returns (id, secret). The secret is shown once and only its hash stored.
    pub fn add_token(&mut self, owner: &str, t: &NewToken) -> Result<(i64, String)> {
        let b = self.batch()?;
        let r = b.add_token(owner, t)?;
        b.commit()?;
        Ok(r)
    }

    /// Start a batch of additions: one write transaction for all of them (`import`).
    pub fn batch(&mut self) -> Result<Batch<'_>> {
        Ok(Batch {
            tx: self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
        })
    }

    pub fn list_tokens(&self, owner: Option<&str>) -> Result<Vec<TokenInfo>> {
        let owner_id = owner.map(|o| self.user_id(o)).transpose()?;
        let mut st = self.conn.prepare(
            "SELECT t.id, u.email, t.name, t.created, t.last_used, t.expires, t.allowed_subnets, t.domains, t.family
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

    /// Record when tokens were last used (coalesced by the caller: one write per batch).
    pub fn touch_tokens(&mut self, used: &[(i64, i64)]) -> Result<()> {
        if used.is_empty() {
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
        }
        tx.commit()?;
        Ok(())
    }

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
    /// one read transaction; `f` sees each without a copy of the name.
    pub fn for_each_record(&self, zone: &str, mut f: impl FnMut(&str, IpAddr)) -> Result<usize> {
        let tx = self.conn.unchecked_transaction()?;
        let mut st = tx.prepare_cached(
            "SELECT name, addr FROM records WHERE zone = ?1 ORDER BY name, type, addr",
        )?;
        let mut rows = st.query([zone])?;
        let mut n = 0;
        while let Some(r) = rows.next()? {
            let name = r
                .get_ref(0)?
                .as_str()
                .map_err(|e| StoreError::Db(e.to_string()))?;
            let b = r
                .get_ref(1)?
                .as_blob()
                .map_err(|e| StoreError::Db(e.to_string()))?;
            if let Some(a) = blob_addr(b) {
                f(name, a);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Start a publication: move the zone's pending serial on, in a short write
    /// transaction, and return the serial this publication carries. Read the
    /// records afterwards (`for_each_record`): every change committed before this
    /// call carries this serial or an older one and is in that read; a change
    /// committed in between carries the next serial and may already be in it —
    /// its receipt is then conservative, never too early. Holding the write lock
    /// while reading a large zone would stall every update instead.
    pub fn start_publication(&mut self, zone: &str) -> Result<u32> {
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
            "UPDATE zones SET pending_serial = ?2, published_generation = ?3, published_serial = ?4, published_at = ?5 WHERE name = ?1",
            params![zone, next, generation, serial, now_unix()],
        )?;
        tx.commit()?;
        Ok(serial as u32)
    }

    /// A publication that failed: the zone stays dirty so it is tried again.
    pub fn mark_unpublished(&mut self, zone: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE zones SET published_generation = -1 WHERE name = ?1",
            [zone],
        )?;
        Ok(())
    }

    /// The serial of the last publication (for `status`).
    pub fn published_serial(&self, zone: &str) -> Result<Option<u32>> {
        let s: Option<Option<i64>> = self
            .conn
            .query_row(
                "SELECT published_serial FROM zones WHERE name = ?1",
                [zone],
                |r| r.get(0),
            )
            .optional()?;
        Ok(s.flatten().map(|v| v as u32))
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

    pub fn counts(&self) -> Result<(i64, i64, i64, i64)> {
        let c = |sql: &str| self.conn.query_row(sql, [], |r| r.get::<_, i64>(0));
        Ok((
            c("SELECT count(*) FROM users")?,
            c("SELECT count(*) FROM domains")?,
            c("SELECT count(*) FROM tokens")?,
            c("SELECT count(*) FROM records")?,
        ))
    }
}

fn user_id(conn: &Connection, email: &str) -> Result<i64> {
    let email = email.trim().to_ascii_lowercase();
    conn.prepare_cached("SELECT id FROM users WHERE email = ?1")?
        .query_row([&email], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::Invalid(format!("no user {email}")))
}

/// Additions of users, domains and tokens in one write transaction: the single
/// admin commands are a batch of one, `import` a batch of many (all or nothing).
/// Every check lives here, so both validate exactly alike. Dropped without
/// `commit`, nothing is written.
pub struct Batch<'a> {
    tx: rusqlite::Transaction<'a>,
}

impl Batch<'_> {
    pub fn add_user(&self, email: &str) -> Result<()> {
        let email = email.trim().to_ascii_lowercase();
        if email.is_empty()
            || !email.contains('@')
            || email.contains(char::is_whitespace)
            || email.len() > 254
        {
            return invalid(format!("'{email}' is not an email address"));
        }
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

    /// Register `name` (already normalized) in `zone` for the user `owner`.
    pub fn add_domain(&self, name: &str, zone: &str, owner: &str) -> Result<()> {
        if let Err(e) = name::check_syntax(name) {
            return invalid(e);
        }
        if name.starts_with('*') {
            return invalid(format!("{name}: a domain cannot be a wildcard name"));
        }
        let owner_id = user_id(&self.tx, owner)?;
        let tx = &self.tx;
        let rname = reverse_labels(name);
        // Above: one of the name's parent domains is registered.
        let mut parent = name;
        while let Some((_, rest)) = parent.split_once('.') {
            let taken: Option<String> = tx
                .prepare_cached("SELECT name FROM domains WHERE name = ?1")?
                .query_row([rest], |r| r.get(0))
                .optional()?;
            if let Some(t) = taken {
                return invalid(format!("{name} lies below the registered domain {t}"));
            }
            parent = rest;
        }
        let same: Option<String> = tx
            .prepare_cached("SELECT name FROM domains WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        if same.is_some() {
            return invalid(format!("domain {name} is already registered"));
        }
        // Below: a registered domain lies below the new name ('/' sorts right after '.').
        let below: Option<String> = tx
            .prepare_cached(
                "SELECT name FROM domains WHERE rname > ?1 || '.' AND rname < ?1 || '/' LIMIT 1",
            )?
            .query_row([&rname], |r| r.get(0))
            .optional()?;
        if let Some(b) = below {
            return invalid(format!("{name} would contain the registered domain {b}"));
        }
        tx.prepare_cached(
            "INSERT INTO domains(name, rname, zone, owner, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![name, rname, zone, owner_id, now_unix()])?;
        Ok(())
    }

    /// Create a token; returns (id, secret).
    pub fn add_token(&self, owner: &str, t: &NewToken) -> Result<(i64, String)> {
        let owner_id = user_id(&self.tx, owner)?;
        // Only looked up when needed: an owner may hold many domains.
        let held: Vec<String> = if t.domains.is_empty() {
            Vec::new()
        } else {
            let mut st = self
                .tx
                .prepare_cached("SELECT name FROM domains WHERE owner = ?1")?;
            let rows = st.query_map([owner_id], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for d in &t.domains {
            if !held.iter().any(|h| name::is_at_or_below(d, h)) {
                return invalid(format!(
                    "--domain {d}: not held by {}",
                    owner.trim().to_ascii_lowercase()
                ));
            }
        }
        let secret = new_secret()?;
        let hash = crate::update::token_hash(&secret);
        let now = now_unix();
        let expires = t
            .expires_in
            .map(|s| now.saturating_add(s.min(i64::MAX as u64 / 2) as i64));
        let subnets: Vec<String> = t.allowed_subnets.iter().map(Cidr::to_string).collect();
        self.tx.prepare_cached(
            "INSERT INTO tokens(owner, hash, name, created, expires, allowed_subnets, domains, family) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?.execute(params![
                owner_id,
                &hash[..],
                t.name,
                now,
                expires,
                subnets.join(" "),
                t.domains.join(" "),
                t.family.unwrap_or(FamilyPolicy::Both).as_str()
            ])?;
        Ok((self.tx.last_insert_rowid(), secret))
    }

    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }
}

// ---- backup and restore (`dedyn-update backup|restore`, see src/backup.rs) ----

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
    use crate::update::address::{ActionSource, AddressAction};
    use crate::update::FamilyPlan;

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
        let set = FamilyPlan {
            action: AddressAction::Set(vec![ip.parse().unwrap()]),
            source: ActionSource::Connection,
        };
        let keep = FamilyPlan {
            action: AddressAction::Preserve,
            source: ActionSource::NotNamedForThisName,
        };
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

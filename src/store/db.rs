//! The database itself: opening it, its schema and migrations (`PRAGMA user_version`),
//! the store's typed error, and the helpers the store's parts share.

use rusqlite::{Connection, TransactionBehavior};
use std::fmt;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A store failure, phrased for the operator (or the admin command's user).
#[derive(Debug)]
pub enum StoreError {
    /// What an admin command asked for is not there (no user, no domain, no token)
    /// or already is (a user), or a file is not a database of ours: nothing was changed.
    Invalid(String),
    /// The database itself failed.
    Db(String),
    /// Between planning and writing an update, its token was revoked (or its
    /// owner removed): nothing was written.
    Revoked,
    /// Between planning and writing an update, this domain was removed or
    /// changed hands: nothing was written.
    Gone(String),
    /// The update would take a name or a domain over a `[limits]` bound (SPEC 13);
    /// the message names the bound: nothing was written.
    OverLimit(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Invalid(m) => f.write_str(m),
            StoreError::Db(m) => write!(f, "database error: {m}"),
            StoreError::Revoked => f.write_str("the token was revoked during the update"),
            StoreError::Gone(d) => write!(f, "domain {d} was removed during the update"),
            StoreError::OverLimit(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StoreError {}

/// A failed write in the words of the worker's port: the outcomes the rules
/// turn into refusals keep their kind, every other failure is the database's.
impl From<StoreError> for crate::update::ledger::LedgerError {
    fn from(e: StoreError) -> Self {
        use crate::update::ledger::LedgerError;
        match e {
            StoreError::Revoked => LedgerError::Revoked,
            StoreError::Gone(d) => LedgerError::Gone(d),
            StoreError::OverLimit(m) => LedgerError::OverLimit(m),
            e @ (StoreError::Invalid(_) | StoreError::Db(_)) => LedgerError::Failed(e.to_string()),
        }
    }
}

/// A failure in the words of the publisher's port.
impl From<StoreError> for crate::publish::feed::FeedError {
    fn from(e: StoreError) -> Self {
        crate::publish::feed::FeedError(e.to_string())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

pub(super) type Result<T> = std::result::Result<T, StoreError>;

pub(super) fn invalid<T>(m: impl Into<String>) -> Result<T> {
    Err(StoreError::Invalid(m.into()))
}

/// Schema migrations, applied in order; `PRAGMA user_version` is the number applied.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 2: _acme-challenge TXT values and token scope (SPEC 10)
    // (the values' table; each token's scope, default `update`: a token made
    // before the migration keeps doing exactly what it did)
    "CREATE TABLE acme_txt (
        id INTEGER PRIMARY KEY,          -- insertion order: 'most recent' even within a second
        zone TEXT NOT NULL,
        name TEXT NOT NULL,              -- the held name; the record is _acme-challenge.NAME
        value TEXT NOT NULL CHECK (length(value) BETWEEN 1 AND 255
                                   AND value NOT GLOB '*[^A-Za-z0-9_-]*'),
        written INTEGER NOT NULL,        -- unix seconds; removed at written + 3600
        domain INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
        UNIQUE (zone, name, value)
    );
    CREATE INDEX acme_txt_domain ON acme_txt(domain);
    CREATE INDEX acme_txt_written ON acme_txt(written);
    ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'update'
        CHECK (scope IN ('update', 'acme', 'both'));",
    // 3: what a publication proved, for `status` (another process than the
    // publisher): the latest attempt (what it contains, its serial, when, its
    // error) and the newest file written.
    // published_* are written only after the reload (and verify_server) succeeded.
    "ALTER TABLE zones ADD COLUMN attempt_generation INTEGER;
    ALTER TABLE zones ADD COLUMN attempt_serial INTEGER;
    ALTER TABLE zones ADD COLUMN written_generation INTEGER;
    ALTER TABLE zones ADD COLUMN written_serial INTEGER;
    ALTER TABLE zones ADD COLUMN last_attempt_at INTEGER;
    ALTER TABLE zones ADD COLUMN last_error TEXT;
    ALTER TABLE zones ADD COLUMN last_error_at INTEGER;",
    // 4: each token's `--domain` names as rows, so that an update asks "does this
    // token cover NAME" with indexed lookups instead of reading a list that may
    // hold thousands of names. tokens.domains stays the list as given (`token
    // list` shows it); both are written together and tokens never change.
    "CREATE TABLE token_domains (
        token INTEGER NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        PRIMARY KEY (token, name)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO token_domains(token, name)
    WITH RECURSIVE split(token, name, rest) AS (
        SELECT id, '', domains || ' ' FROM tokens WHERE domains <> ''
        UNION ALL
        SELECT token, substr(rest, 1, instr(rest, ' ') - 1), substr(rest, instr(rest, ' ') + 1)
        FROM split WHERE rest <> ''
    )
    SELECT token, name FROM split WHERE name <> '';",
    // 5: TSIG keys (SPEC 14): a token made with `--tsig` has a key name, an
    // algorithm and the secret the server computes HMACs with (the database is
    // readable by the service user alone). Its `hash` is of a secret nobody was
    // given, so it is never usable over HTTP. Other tokens: NULL.
    "ALTER TABLE tokens ADD COLUMN tsig_name TEXT;
    ALTER TABLE tokens ADD COLUMN tsig_algorithm TEXT
        CHECK (tsig_algorithm IN ('hmac-sha256', 'hmac-sha512'));
    ALTER TABLE tokens ADD COLUMN tsig_secret BLOB;
    CREATE UNIQUE INDEX tokens_tsig_name ON tokens(tsig_name) WHERE tsig_name IS NOT NULL;",
    // 6: a warm standby (SPEC 16): the serving process's heartbeat (one row,
    // rewritten at most every 10 s, so a standby's copy tells a dead primary
    // from an idle one), and each promotion of a standby's copy (what it took
    // over and the serial floor it set), which is also what makes it idempotent.
    "CREATE TABLE heartbeat (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        at INTEGER NOT NULL,             -- unix seconds of the newest beat
        started INTEGER NOT NULL,        -- when this serve started
        host TEXT NOT NULL,
        pid INTEGER NOT NULL
    );
    CREATE TABLE promotions (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        host TEXT NOT NULL,
        taken_over TEXT NOT NULL,        -- the replica location it was restored from
        copy_age INTEGER,                -- seconds between the copy's newest heartbeat and `at`
        serial_floor INTEGER NOT NULL    -- every zone's serial was moved to at least this
    );",
    // 7: what happened to a name (SPEC 15). `history`: each committed change of a
    // name's A or AAAA records, in commit order (the id; pruning never removes
    // the newest row, so an id is never given out twice and the events'
    // delivered-up-to mark stays meaningful); addresses as text, numeric order,
    // space-separated. No index: a change appends its row and nothing else
    // (S2). `history_names` indexes it by name, filled in batches by the events
    // thread up to the mark `indexed`; `delivered` is the outbox's mark.
    // `name_state`: last seen and last changed as the workers saw them (written
    // in batches), stale. `domains.ttl`: `domain set NAME --ttl`, NULL: dns.ttl.
    "CREATE TABLE history (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        zone TEXT NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('A', 'AAAA')),
        old TEXT NOT NULL,
        new TEXT NOT NULL,
        via TEXT NOT NULL,               -- http, dns-update, cli
        client TEXT,
        token INTEGER,                   -- no reference: the history outlives the token
        serial INTEGER NOT NULL          -- the zone serial that publishes it
    );
    CREATE TABLE history_names (
        name TEXT NOT NULL,
        id INTEGER NOT NULL,
        PRIMARY KEY (name, id)
    ) WITHOUT ROWID;
    CREATE TABLE name_state (
        name TEXT PRIMARY KEY,
        zone TEXT NOT NULL,
        domain INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
        last_changed INTEGER,
        last_seen INTEGER,
        stale_at INTEGER,                -- found stale then; NULL: not stale
        stale_notified INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX name_state_domain ON name_state(domain);
    CREATE TABLE history_marks (
        what TEXT PRIMARY KEY CHECK (what IN ('delivered', 'indexed')),
        up_to INTEGER NOT NULL           -- a history id
    ) WITHOUT ROWID;
    ALTER TABLE domains ADD COLUMN ttl INTEGER;",
];

/// Under the write lock: token `token` still exists and is `owner`'s, else
/// `Revoked` (an admin may have revoked it since the request was planned).
pub(super) fn check_token_held(conn: &Connection, token: i64, owner: i64) -> Result<()> {
    let held: bool = conn
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM tokens WHERE id = ?1 AND owner = ?2)")?
        .query_row(rusqlite::params![token, owner], |r| r.get(0))?;
    if held {
        Ok(())
    } else {
        Err(StoreError::Revoked)
    }
}

/// Under the write lock: domain `id` is still registered as `name` (and, with an
/// owner, still theirs), else `Gone(name)` — a removed domain's id may be reused.
pub(super) fn check_domain_held(
    conn: &Connection,
    id: i64,
    name: &str,
    owner: Option<i64>,
) -> Result<()> {
    let held: bool = match owner {
        Some(owner) => conn
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM domains WHERE id = ?1 AND name = ?2 AND owner = ?3)",
            )?
            .query_row(rusqlite::params![id, name, owner], |r| r.get(0))?,
        None => conn
            .prepare_cached("SELECT EXISTS(SELECT 1 FROM domains WHERE id = ?1 AND name = ?2)")?
            .query_row(rusqlite::params![id, name], |r| r.get(0))?,
    };
    if held {
        Ok(())
    } else {
        Err(StoreError::Gone(name.to_string()))
    }
}

/// The events port's failures: the store's message.
impl From<StoreError> for crate::events::OutboxError {
    fn from(e: StoreError) -> Self {
        crate::events::OutboxError(e.to_string())
    }
}

/// Bump `zone`'s generation (a change its publisher will see); the serial its
/// next publication carries.
pub(super) fn bump_generation(conn: &Connection, zone: &str) -> Result<u32> {
    use rusqlite::OptionalExtension;
    let serial: Option<i64> = conn
        .prepare_cached(
            "UPDATE zones SET generation = generation + 1 WHERE name = ?1 RETURNING pending_serial",
        )?
        .query_row([zone], |r| r.get(0))
        .optional()?;
    Ok(serial.unwrap_or(0) as u32)
}

/// Column `i` of a row as text, without a copy (a wrong type is a database error).
pub(super) fn text_at<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str> {
    r.get_ref(i)?
        .as_str()
        .map_err(|e| StoreError::Db(e.to_string()))
}

pub(super) fn reverse_labels(name: &str) -> String {
    name.rsplit('.').collect::<Vec<_>>().join(".")
}

pub(super) fn addr_blob(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// A stored address: 4 bytes for A, 16 for AAAA. A blob of any other length was
/// not written by us (a hand edit, a damaged file): `Err` with its length, so
/// that the reader names the row instead of skipping it silently.
pub(super) fn blob_addr(b: &[u8]) -> std::result::Result<IpAddr, usize> {
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        return Ok(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(b)
        .map(IpAddr::from)
        .map_err(|_| b.len())
}

/// How long a connection waits for another's write lock before it fails with
/// `database is locked` (SPEC 13: no CLI command may make an update fail). It is
/// twice the longest any writer holds the lock: the CLI's largest transaction,
/// `import`, gives up at `MAX_CLI_HOLD`; every other writer takes milliseconds.
pub const LOCK_WAIT: Duration = Duration::from_secs(60);

/// The longest a CLI command may hold the write lock: `import` stops (and writes
/// nothing) past it, so that the service's `LOCK_WAIT` is never exceeded.
pub const MAX_CLI_HOLD: Duration = Duration::from_secs(30);

/// Writers of this process take turns here before `BEGIN IMMEDIATE`: SQLite's own
/// busy handler sleeps 1, 2, 5, 10 … ms between tries, which under a steady write
/// load turns lock contention into milliseconds of latency. Other processes (the
/// admin commands) still meet `busy_timeout`.
static WRITERS: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
static WRITER_DONE: std::sync::Condvar = std::sync::Condvar::new();

/// The writer turn of this process, held until dropped. Unlike a mutex guard
/// it may be let go by another thread than the one that took it: the group
/// commit's transaction is opened by one worker and committed by another.
pub(super) struct Turn(());

pub(super) fn writer_turn() -> Turn {
    let mut held = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
    while *held {
        held = WRITER_DONE.wait(held).unwrap_or_else(|e| e.into_inner());
    }
    *held = true;
    Turn(())
}

impl Drop for Turn {
    fn drop(&mut self) {
        *WRITERS.lock().unwrap_or_else(|e| e.into_inner()) = false;
        WRITER_DONE.notify_one();
    }
}

/// SPEC 14: the database holds TSIG secrets, so whichever command creates it
/// creates it readable by its owner alone (0600; SQLite gives the -wal and -shm
/// files the same mode). An existing file keeps the mode the operator gave it.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Db(format!("{}: {e}", path.display()))),
    }
}

/// A write transaction shared with other connections (the group commit,
/// `group.rs`): runs `write` in it and returns once that is committed.
pub(super) trait SharedWriter: Send + Sync {
    fn write_shared(&self, write: &mut dyn FnMut(&Connection) -> Result<()>) -> Result<()>;
}

/// Prepared statements each connection keeps (see `Store::open`).
const STATEMENT_CACHE: usize = 64;

/// One connection to the database; one `Store` per thread. Its methods live in
/// the file of their job (accounts, update, zones, backup).
pub struct Store {
    pub(super) conn: Connection,
    /// The serving process's shared write connection (group commit); `None`:
    /// this connection writes on its own (commands, tests).
    pub(super) group: Option<std::sync::Arc<dyn SharedWriter>>,
    /// The configured path and the file (device, inode) the connection opened.
    path: PathBuf,
    opened: Option<(u64, u64)>,
}

impl Store {
    /// Open (creating if needed) and migrate. One `Store` per thread.
    pub fn open(path: &Path, synchronous: &str) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", dir.display())))?;
        }
        create_private(path)?;
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Db(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(LOCK_WAIT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // NORMAL in WAL: a commit survives a crash of the process (the OS has the
        // data); FULL also survives power loss, at one fsync per commit.
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // A worker runs some 30 distinct statements (auth, the update's reads
        // and writes, history, DNS messages); rusqlite keeps 16 by default, and
        // each statement evicted is parsed again on its next use.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // After the open, so that it is the file SQLite has (created or found).
        let opened = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        let mut store = Store {
            conn,
            group: None,
            path: path.to_path_buf(),
            opened,
        };
        store.migrate()?;
        Ok(store)
    }

    /// A connection of the serving process: like `open`, but it never
    /// checkpoints the write-ahead log inside its own COMMIT (which holds the
    /// writer turn); the group commit's checkpoint thread does that for every
    /// connection of the process (`group.rs`).
    pub fn open_serving(path: &Path, synchronous: &str) -> Result<Store> {
        let store = Store::open(path, synchronous)?;
        store.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(store)
    }

    /// SPEC 17: the file at the configured path is still the one this
    /// connection has open. A database removed (`rm`) or replaced (renamed
    /// over) while serving would take every later write into a file nobody
    /// will open again, and answer `good` for it; instead the write fails
    /// (`911`, logged as an ERROR). One stat(2) per write: microseconds
    /// against the transaction's commit.
    pub(super) fn check_same_file(&self) -> Result<()> {
        let Some((dev, ino)) = self.opened else {
            return Ok(());
        };
        let now = std::fs::metadata(&self.path).map(|m| (m.dev(), m.ino()));
        if matches!(now, Ok(id) if id == (dev, ino)) {
            return Ok(());
        }
        let what = match now {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "was removed",
            Err(_) => "cannot be looked at any more",
            Ok(_) => "was replaced by another file",
        };
        Err(StoreError::Db(format!(
            "the database file {} {what} while the service had it open; nothing was written. \
             Restore the database (or put the file back) and restart the service",
            self.path.display()
        )))
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
}

/// A database in the temp directory for a unit test, removed (with its -wal
/// and -shm) when dropped.
#[cfg(test)]
pub(crate) struct ScratchDb {
    pub path: PathBuf,
}

#[cfg(test)]
impl ScratchDb {
    /// A fresh database named after `tag` (and this process), opened, with `zones`.
    pub(crate) fn open(tag: &str, zones: &[&str]) -> (Store, ScratchDb) {
        let path = std::env::temp_dir().join(format!("dedyn-{tag}-{}.sqlite3", std::process::id()));
        let scratch = ScratchDb { path };
        scratch.remove();
        let mut store = Store::open(&scratch.path, "NORMAL").expect("open a scratch database");
        store.ensure_zones(zones).expect("zones");
        (store, scratch)
    }

    fn remove(&self) {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", self.path.display()));
        }
    }
}

#[cfg(test)]
impl Drop for ScratchDb {
    fn drop(&mut self) {
        self.remove();
    }
}

//! Group commit: the workers' write transactions share one connection, and
//! the updates that arrive while one is being written are committed together.
//!
//! A worker takes the group's connection, opens the transaction if none is
//! open (taking the process's writer turn), runs its own write (inside a
//! savepoint when it is not the first, so that its failure rolls back only
//! its own part), and then
//! commits — unless another worker is already waiting for the connection, in
//! which case that worker adds its write to the same transaction and the
//! decision passes on to it. The last of a run commits for all of them (at
//! most `MAX_BATCH` writes a transaction). Every worker answers only once the
//! commit that holds its write is done, and a failed commit fails every write
//! in it: nothing is acknowledged that is not on disk, as before. A worker
//! alone commits at once, as before: batching only happens when writers queue.
//!
//! The group's connection never checkpoints the write-ahead log itself:
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses 1,000
//! pages, with two fsyncs, while that commit holds the writer turn and every
//! queued update waits (5–10 ms, once every ~200 commits: the whole p99 of
//! S5). A thread of its own (`Checkpoints`) runs the same passive checkpoint
//! on its own connection instead, which writers do not wait for; the serving
//! process's other connections (publisher, events, heartbeat: `open_serving`)
//! leave it to that thread as well, since their commits hold the writer turn
//! just the same.

use super::db::{writer_turn, Result, SharedWriter, Store, StoreError, Turn};
use rusqlite::Connection;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// The most writes one transaction holds: a bound on how long the writer turn
/// is held for other writers (publisher, events, heartbeat).
const MAX_BATCH: usize = 64;

/// Group commits between two checkpoints (at 3–5 pages a commit, about
/// SQLite's own 1,000 pages); and one every `CHECKPOINT_IDLE` in any case.
const CHECKPOINT_EVERY: u64 = 200;
const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);

/// The transaction the workers are filling.
struct Open {
    /// The process's writer turn, held from BEGIN to COMMIT.
    _turn: Turn,
    /// How it ended, for each of its writers.
    ended: Arc<Ended>,
    writes: usize,
}

/// How one transaction ended: `None` until it has; then `Ok` (committed) or
/// the commit's failure.
#[derive(Default)]
struct Ended {
    outcome: Mutex<Option<std::result::Result<(), String>>>,
    told: Condvar,
}

impl Ended {
    fn tell(&self, outcome: std::result::Result<(), String>) {
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        self.told.notify_all();
    }

    /// Wait until the transaction has ended; the commit's failure if it failed.
    fn wait(&self) -> Result<()> {
        let mut outcome = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match &*outcome {
                Some(Ok(())) => return Ok(()),
                Some(Err(msg)) => {
                    return Err(StoreError::Db(format!(
                        "the commit failed: {msg}; nothing of this update was written"
                    )))
                }
                None => outcome = self.told.wait(outcome).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}

struct Inner {
    store: Store,
    open: Option<Open>,
}

/// The shared write connection of one serving process.
pub struct WriteGroup {
    inner: Mutex<Inner>,
    /// Workers that want the connection now: while any do, a write leaves the
    /// transaction open for them.
    waiting: AtomicUsize,
    checkpoints: Arc<Checkpoints>,
    checkpointer: Option<JoinHandle<()>>,
}

impl WriteGroup {
    /// A connection of its own to `path`, like a worker's, and the thread
    /// that checkpoints for it (with one more).
    pub fn open(path: &std::path::Path, synchronous: &str) -> Result<WriteGroup> {
        let store = Store::open_serving(path, synchronous)?;
        let checkpoints = Arc::new(Checkpoints::default());
        let (ck, conn) = (checkpoints.clone(), Store::open(path, synchronous)?);
        let checkpointer = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || ck.run(&conn.conn))
            .map_err(|e| StoreError::Db(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(WriteGroup {
            inner: Mutex::new(Inner { store, open: None }),
            waiting: AtomicUsize::new(0),
            checkpoints,
            checkpointer: Some(checkpointer),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        g
    }

    /// Run `write` in the group's transaction and return its result once that
    /// transaction is committed (its error at once: nothing of it stays).
    pub fn write<T>(&self, write: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut g = self.lock();
        let (ended, out) = match Self::begin(&mut g) {
            Ok(ended) => (Some(ended), Self::run_one(&mut g, write)),
            Err(e) => (None, Err(Caught::Failed(e))),
        };
        if let Some(o) = g.open.as_mut() {
            o.writes += 1;
        }
        let full = g.open.as_ref().is_some_and(|o| o.writes >= MAX_BATCH);
        if full || self.waiting.load(Ordering::SeqCst) == 0 {
            self.commit(&mut g);
        }
        drop(g);
        let value = match out {
            Ok(v) => v,
            Err(Caught::Failed(e)) => return Err(e),
            Err(Caught::Panicked(p)) => std::panic::resume_unwind(p),
        };
        if let Some(ended) = ended {
            ended.wait()?;
        }
        Ok(value)
    }

    /// The open transaction (opening one, and taking the writer turn, if none is).
    fn begin(g: &mut Inner) -> Result<Arc<Ended>> {
        g.store.check_same_file()?;
        if g.store.conn.is_autocommit() {
            // SQLite ended the open transaction itself (it rolls back the
            // whole of it on some errors: a full disk, I/O, memory): its
            // writes are gone, and a write added now would commit on its own.
            if let Some(Open { _turn, ended, .. }) = g.open.take() {
                drop(_turn);
                ended.tell(Err("SQLite rolled the transaction back".into()));
            }
        } else if g.open.is_none() {
            // A failed COMMIT whose ROLLBACK failed too left one behind.
            run(&g.store.conn, "ROLLBACK")?;
        }
        if let Some(o) = &g.open {
            return Ok(o.ended.clone());
        }
        let turn = writer_turn();
        run(&g.store.conn, "BEGIN IMMEDIATE")?;
        let ended = Arc::new(Ended::default());
        g.open = Some(Open {
            _turn: turn,
            ended: ended.clone(),
            writes: 0,
        });
        Ok(ended)
    }

    /// `write` in the open transaction. The first write of a transaction runs
    /// as it is, and when it fails (or panics) the whole transaction, which
    /// holds nothing else, is rolled back; a later one runs inside a savepoint,
    /// rolled back on its own. (Most transactions hold one write: the
    /// savepoint's two statements are spent only where they are needed.)
    fn run_one<T>(
        g: &mut Inner,
        write: impl FnOnce(&Connection) -> Result<T>,
    ) -> std::result::Result<T, Caught> {
        let first = g.open.as_ref().is_some_and(|o| o.writes == 0);
        let conn = &g.store.conn;
        if !first {
            run(conn, "SAVEPOINT one_write").map_err(Caught::Failed)?;
        }
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write(conn)));
        let failed = match out {
            Ok(Ok(v)) if first => return Ok(v),
            Ok(Ok(v)) => match run(conn, "RELEASE one_write") {
                Ok(()) => return Ok(v),
                Err(e) => Caught::Failed(e),
            },
            Ok(Err(e)) => Caught::Failed(e),
            Err(p) => Caught::Panicked(p),
        };
        if first {
            let _ = run(conn, "ROLLBACK");
            // Nobody else is in it yet: it ends here, and the writer turn
            // goes with it.
            g.open = None;
        } else {
            let _ = run(conn, "ROLLBACK TO one_write");
            let _ = run(conn, "RELEASE one_write");
        }
        Err(failed)
    }

    /// Commit the open transaction (if any), let go of the writer turn, and
    /// tell its writers how it ended.
    fn commit(&self, g: &mut Inner) {
        let Some(open) = g.open.take() else {
            return;
        };
        let outcome = if g.store.conn.is_autocommit() {
            // Rolled back by SQLite under a later write (see `begin`).
            Err("SQLite rolled the transaction back".to_string())
        } else {
            Self::commit_open(&g.store.conn)
        };
        let committed = outcome.is_ok();
        let Open { _turn, ended, .. } = open;
        drop(_turn);
        ended.tell(outcome);
        if committed {
            self.checkpoints.committed();
        }
    }

    /// COMMIT, or ROLLBACK when that fails; the failure's message.
    fn commit_open(conn: &Connection) -> std::result::Result<(), String> {
        match run(conn, "COMMIT") {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = run(conn, "ROLLBACK");
                Err(e.to_string())
            }
        }
    }
}

impl SharedWriter for WriteGroup {
    fn write_shared(&self, write: &mut dyn FnMut(&Connection) -> Result<()>) -> Result<()> {
        self.write(write)
    }
}

impl Drop for WriteGroup {
    fn drop(&mut self) {
        self.checkpoints.stop();
        if let Some(t) = self.checkpointer.take() {
            let _ = t.join();
        }
    }
}

/// The group's commits since the last checkpoint, for the checkpoint thread.
#[derive(Default)]
struct Checkpoints {
    /// (commits since the last checkpoint, stop).
    due: Mutex<(u64, bool)>,
    wake: Condvar,
}

impl Checkpoints {
    fn committed(&self) {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        due.0 += 1;
        if due.0 == CHECKPOINT_EVERY {
            self.wake.notify_one();
        }
    }

    fn stop(&self) {
        self.due.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.wake.notify_one();
    }

    /// Checkpoint (passive: copy what no reader still needs, never wait for a
    /// writer) every `CHECKPOINT_EVERY` group commits, and every
    /// `CHECKPOINT_IDLE` in any case (the serving process's other writers
    /// leave it to this thread too); until stopped.
    fn run(&self, conn: &Connection) {
        let mut failing = false;
        loop {
            {
                let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
                while !due.1 && due.0 < CHECKPOINT_EVERY {
                    let (d, timeout) = self
                        .wake
                        .wait_timeout(due, CHECKPOINT_IDLE)
                        .unwrap_or_else(|e| e.into_inner());
                    due = d;
                    if timeout.timed_out() {
                        break;
                    }
                }
                if due.1 {
                    return;
                }
                due.0 = 0;
            }
            match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    log::warn!("checkpointing the write-ahead log failed: {e}; it grows until a checkpoint succeeds");
                }
                Err(_) => {}
            }
        }
    }
}

/// One statement of the transaction's own, prepared once per connection.
fn run(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

enum Caught {
    Failed(StoreError),
    Panicked(Box<dyn std::any::Any + Send>),
}

impl Store {
    /// Write through `group` from now on (the serving process's workers).
    pub fn join(&mut self, group: std::sync::Arc<WriteGroup>) {
        self.group = Some(group);
    }

    /// Run `write` in a write transaction: the group's when this connection
    /// has joined one, else one of its own.
    pub(super) fn write_tx<T>(
        &mut self,
        write: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        if let Some(group) = &self.group {
            let (mut write, mut out) = (Some(write), None);
            group.write_shared(&mut |c| {
                let write = write
                    .take()
                    .ok_or_else(|| StoreError::Db("a shared write was run twice".to_string()))?;
                out = Some(write(c)?);
                Ok(())
            })?;
            return out.ok_or_else(|| StoreError::Db("a shared write did not run".to_string()));
        }
        self.check_same_file()?;
        let _turn = writer_turn();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = write(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ScratchDb;
    use std::time::{Duration, Instant};

    fn count(store: &Store, x: i64) -> i64 {
        store
            .conn
            .query_row("SELECT count(*) FROM t WHERE x = ?1", [x], |r| r.get(0))
            .unwrap()
    }

    fn setup(tag: &str) -> (Store, ScratchDb, Arc<WriteGroup>) {
        let (store, scratch) = ScratchDb::open(tag, &["example.org"]);
        store
            .conn
            .execute_batch(
                "CREATE TABLE t(x INTEGER PRIMARY KEY, d INTEGER REFERENCES domains(id))",
            )
            .unwrap();
        let group = Arc::new(WriteGroup::open(&scratch.path, "NORMAL").unwrap());
        (store, scratch, group)
    }

    fn insert(c: &Connection, x: i64, d: Option<i64>) -> Result<()> {
        c.execute(
            "INSERT INTO t(x, d) VALUES (?1, ?2)",
            rusqlite::params![x, d],
        )?;
        Ok(())
    }

    #[test]
    fn a_write_alone_is_committed_before_it_returns() {
        let (reader, _scratch, group) = setup("group-alone");
        group.write(|c| insert(c, 1, None)).unwrap();
        assert_eq!(
            count(&reader, 1),
            1,
            "committed, seen by another connection"
        );
    }

    #[test]
    fn a_writer_waiting_joins_the_transaction_and_its_failure_undoes_only_its_part() {
        let (reader, _scratch, group) = setup("group-join");
        let g2 = group.clone();
        let mut second = None;
        let first = group.write(|c| {
            insert(c, 1, None)?;
            // A second writer comes while this one holds the connection: it
            // waits, so this transaction stays open for it.
            second = Some(std::thread::spawn(move || {
                g2.write(|c| {
                    insert(c, 2, None)?;
                    insert(c, 1, None) // a duplicate key: this write fails
                })
            }));
            let deadline = Instant::now() + Duration::from_secs(10);
            while group.waiting.load(Ordering::SeqCst) == 0 {
                assert!(Instant::now() < deadline, "the second writer never waited");
                std::thread::yield_now();
            }
            Ok(7)
        });
        let second = second.unwrap().join().unwrap();
        assert!(second.is_err(), "the duplicate key fails the second write");
        assert_eq!(first.unwrap(), 7);
        assert_eq!(count(&reader, 1), 1, "the first write is committed");
        assert_eq!(count(&reader, 2), 0, "nothing of the failed write stays");
    }

    #[test]
    fn a_transaction_sqlite_rolled_back_fails_its_writers_and_the_next_write_starts_afresh() {
        let (reader, _scratch, group) = setup("group-vanished");
        let (g2, g3) = (group.clone(), group.clone());
        let wait_for_one = |g: &WriteGroup| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while g.waiting.load(Ordering::SeqCst) == 0 {
                assert!(Instant::now() < deadline, "no writer came to wait");
                std::thread::yield_now();
            }
        };
        let mut second = None;
        let first = group.write(|c| {
            insert(c, 1, None)?;
            let g3 = g3.clone();
            second = Some(std::thread::spawn(move || {
                let mut third = None;
                let r = g2.write(|c| {
                    let g3 = g3.clone();
                    third = Some(std::thread::spawn(move || g3.write(|c| insert(c, 3, None))));
                    wait_for_one(&g2);
                    // What SQLite does on some errors: the whole transaction
                    // goes, the first write's row with it.
                    c.execute_batch("ROLLBACK")?;
                    Ok(())
                });
                (r, third.unwrap().join().unwrap())
            }));
            wait_for_one(&group);
            Ok(())
        });
        let (second, third) = second.unwrap().join().unwrap();
        assert!(first.is_err(), "the first write was rolled back: {first:?}");
        assert!(
            second.is_err(),
            "the second write is not in any transaction"
        );
        third.expect("the third write, in a transaction of its own, commits");
        assert_eq!(count(&reader, 1), 0);
        assert_eq!(count(&reader, 3), 1);
    }

    #[test]
    fn a_failed_commit_fails_every_write_in_it_and_writes_nothing() {
        let (reader, _scratch, group) = setup("group-commit-fails");
        // Foreign keys checked at COMMIT: a row pointing at no domain makes the
        // commit itself fail, after the write returned Ok.
        let r = group.write(|c| {
            c.execute_batch("PRAGMA defer_foreign_keys = ON")?;
            insert(c, 1, None)?;
            insert(c, 2, Some(424242))
        });
        let e = r.expect_err("the commit fails");
        assert!(e.to_string().contains("the commit failed"), "{e}");
        assert_eq!(count(&reader, 1), 0);
        assert_eq!(count(&reader, 2), 0);
        // And the group goes on.
        group.write(|c| insert(c, 3, None)).unwrap();
        assert_eq!(count(&reader, 3), 1);
    }

    #[test]
    fn the_checkpoint_thread_moves_the_groups_commits_into_the_database_file() {
        let (_reader, scratch, group) = setup("group-checkpoint");
        let size = || std::fs::metadata(&scratch.path).unwrap().len();
        let before = size();
        // The group's connection does not checkpoint: only the thread can move
        // these pages from the log into the file.
        for x in 0..(CHECKPOINT_EVERY as i64 + 10) {
            group
                .write(|c| {
                    c.execute("INSERT INTO t(x, d) VALUES (?1, NULL)", [x])?;
                    c.execute_batch("CREATE TABLE IF NOT EXISTS pad(b BLOB)")?;
                    c.execute("INSERT INTO pad(b) VALUES (zeroblob(4000))", [])?;
                    Ok(())
                })
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while size() < before + 200 * 4000 {
            assert!(
                Instant::now() < deadline,
                "the database file stayed at {} bytes (was {before})",
                size()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_panicking_write_leaves_nothing_and_the_group_goes_on() {
        let (reader, _scratch, group) = setup("group-panic");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            group.write(|c| -> Result<()> {
                insert(c, 1, None)?;
                panic!("a bug in a write")
            })
        }));
        assert!(r.is_err(), "the panic reaches the caller");
        group.write(|c| insert(c, 2, None)).unwrap();
        assert_eq!(count(&reader, 1), 0);
        assert_eq!(count(&reader, 2), 1);
    }
}

//! SQLite's one writer, with group commit at the SQL level: a thread of its own holds the only
//! writing connection, takes every write queued while it was busy, runs them in one transaction
//! (each in a savepoint of its own, so one write's failure costs no other write) and commits
//! once. The connection syncs the WAL on commit (`synchronous = FULL`), and SQLite makes a
//! commit visible to readers only after that sync: so no answer leaves before its write is on
//! disk, no reader sees a row that a crash could still take away, and concurrent writes share
//! one sync instead of queueing for one each.
//!
//! A write is a closure over the connection, run on this thread without any await in between:
//! no hop between threads per statement, as an async driver takes, and no probe of the
//! connection's state between writes — a failure is followed by a rollback, and a batch starts
//! by ending any transaction a failure left open.

use std::path::Path;
use std::sync::{Arc, mpsc};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::checkpoint::{Checkpointer, WAL_FILE_LIMIT};
use super::error::StoreError;
use super::sqlite;

/// At most this many writes share a transaction: past it, the ones still queued take the next.
/// Bounds how long the first write of a batch waits for the last.
const MAX_BATCH: usize = 256;

/// A queued write, run on the writer's thread inside the batch's transaction. It says whether
/// it succeeded (a failed one is rolled back to its savepoint) and how to tell its caller once
/// the batch's commit is known; or, never run, it tells its caller why.
trait Job: Send {
    fn run(self: Box<Self>, connection: &Connection) -> (bool, Reply);
    fn refuse(self: Box<Self>, error: &Arc<rusqlite::Error>);

    fn is_stop(&self) -> bool {
        false
    }
}

/// Tells a caller its write's result, given whether the batch committed.
type Reply = Box<dyn FnOnce(Result<(), &Arc<rusqlite::Error>>) + Send>;

/// A write and the caller waiting for it.
struct Queued<W, T> {
    write: W,
    answer: oneshot::Sender<Result<T, StoreError>>,
}

impl<W, T> Job for Queued<W, T>
where
    T: Send + 'static,
    W: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, connection: &Connection) -> (bool, Reply) {
        let Queued { write, answer } = *self;
        let result = write(connection);
        let succeeded = result.is_ok();
        let reply: Reply = Box::new(move |committed| {
            let result = match committed {
                Ok(()) => result,
                // The write was rolled back with its batch, whatever it returned.
                Err(error) => Err(StoreError::Sqlite(Arc::clone(error))),
            };
            // A caller that stopped waiting does not want the answer.
            let _ = answer.send(result);
        });
        (succeeded, reply)
    }

    fn refuse(self: Box<Self>, error: &Arc<rusqlite::Error>) {
        let _ = self.answer.send(Err(StoreError::Sqlite(Arc::clone(error))));
    }
}

/// The handle writes are queued through.
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    /// Batches committed (logged at close; the tests see writes sharing a commit).
    commits: Arc<std::sync::atomic::AtomicU64>,
    /// Taken by `close`: the thread, joined once the writes queued before are done.
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The last job of a writer: the thread ends after it, closing the connection (SQLite
/// checkpoints its WAL into the database then).
struct Stop;

impl Job for Stop {
    fn run(self: Box<Self>, _: &Connection) -> (bool, Reply) {
        (true, Box::new(|_| {}))
    }

    fn refuse(self: Box<Self>, _: &Arc<rusqlite::Error>) {}

    fn is_stop(&self) -> bool {
        true
    }
}

impl Writer {
    /// Opens the writing connection to `path` (its schema migrated already) and starts the thread.
    pub fn start(path: &Path) -> Result<Self, StoreError> {
        let connection = open(path).map_err(StoreError::from)?;
        let checkpointer = Checkpointer::start(path)?;
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let commits = Arc::default();
        let counted = Arc::clone(&commits);
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(connection, queue, checkpointer, &counted))
            .map_err(StoreError::Thread)?;
        Ok(Self {
            jobs,
            commits,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Lets the writes queued so far finish, then closes the connection. Later writes fail.
    pub async fn close(&self) {
        let thread = match self.thread.lock() {
            Ok(mut thread) => thread.take(),
            Err(_) => None,
        };
        if let Some(thread) = thread
            && self.jobs.send(Box::new(Stop)).is_ok()
        {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            let commits = self.commits.load(std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(commits, "SQLite's writer closed");
        }
    }

    /// Runs `write` in the next batch, and returns its result once the batch is durable. A
    /// caller that stops waiting does not cancel it: once queued, a write runs and commits.
    pub async fn write<T, W>(&self, write: W) -> Result<T, StoreError>
    where
        T: Send + 'static,
        W: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send(Box::new(Queued { write, answer }))
            .map_err(|_| StoreError::Interrupted)?;
        answered.await.unwrap_or(Err(StoreError::Interrupted))
    }
}

fn open(path: &Path) -> Result<Connection, rusqlite::Error> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(sqlite::BUSY_TIMEOUT)?;
    // `journal_mode` answers with a row; the others do not.
    connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    // No checkpoint inside a commit: `Checkpointer` copies the WAL into the database apart from
    // the writes. A WAL started over under load is written over in place, not cut back and grown
    // again by the commit that follows (see `WAL_FILE_LIMIT`); the checkpoint thread cuts the
    // file once writes pause.
    connection.execute_batch("PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;")?;
    connection.query_row(
        &format!("PRAGMA journal_size_limit = {WAL_FILE_LIMIT}"),
        [],
        |_| Ok(()),
    )?;
    connection.pragma_update(None, "cache_size", sqlite::WRITER_CACHE)?;
    // Statements are prepared once and kept: every write reuses them.
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

/// The writer's loop: a batch is whatever was queued when the last one finished.
fn run(
    connection: Connection,
    queue: mpsc::Receiver<Box<dyn Job>>,
    checkpointer: Checkpointer,
    commits: &std::sync::atomic::AtomicU64,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = Vec::with_capacity(16);
        let mut stop = first.is_stop();
        batch.push(first);
        while !stop && batch.len() < MAX_BATCH {
            let Ok(next) = queue.try_recv() else { break };
            stop = next.is_stop();
            batch.push(next);
        }
        commit_batch(&connection, batch, commits);
        checkpointer.committed(&connection);
        if stop {
            break;
        }
    }
    // Writes queued after the stop are refused: their callers hear the writer has gone.
    drop(queue);
    // The writer's connection closes last: SQLite then copies what is left of the WAL into the
    // database and removes it.
    checkpointer.stop();
    let _ = connection.close();
}

/// Runs and commits one batch, counting it in `commits` when it did.
fn commit_batch(
    connection: &Connection,
    batch: Vec<Box<dyn Job>>,
    commits: &std::sync::atomic::AtomicU64,
) {
    // A failure may have left a transaction open (SQLite keeps some after an I/O error): end it
    // rather than let this batch's writes run inside it.
    if !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    if let Err(error) = statement(connection, "BEGIN IMMEDIATE") {
        let error = Arc::new(error);
        tracing::warn!(%error, "a batch of store writes could not begin");
        for job in batch {
            job.refuse(&error);
        }
        return;
    }
    let mut replies = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    while let Some(job) = jobs.next() {
        if let Err(error) = statement(connection, "SAVEPOINT write") {
            return abort(connection, replies, jobs, error);
        }
        // A write that panics (a bug) is rolled back like a failed one, and its caller hears the
        // write was interrupted; the thread, and every other write, goes on.
        let (succeeded, reply) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(connection)))
                .unwrap_or_else(|_| (false, Box::new(|_| {})));
        replies.push(reply);
        let ended = if succeeded {
            statement(connection, "RELEASE write")
        } else {
            statement(connection, "ROLLBACK TO write")
                .and_then(|()| statement(connection, "RELEASE write"))
        };
        // SQLite rolls the whole transaction back after some failures (a full disk, an I/O
        // error): then nothing of this batch is left to commit.
        if let Err(error) = ended.and_then(|()| still_in_transaction(connection)) {
            return abort(connection, replies, jobs, error);
        }
    }
    match statement(connection, "COMMIT") {
        Ok(()) => {
            commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for reply in replies {
                reply(Ok(()));
            }
        }
        Err(error) => abort(connection, replies, jobs, error),
    }
}

/// `sql` prepared once for the connection, its `$1`, `$2`… (as PostgreSQL numbers parameters,
/// so both databases share the text) read as SQLite's numbered parameters `?1`, `?2`…, bound in
/// the order of their numbers.
pub fn prepare<'c>(
    connection: &'c Connection,
    sql: &str,
) -> Result<rusqlite::CachedStatement<'c>, rusqlite::Error> {
    connection.prepare_cached(&sql.replace('$', "?"))
}

fn statement(connection: &Connection, sql: &str) -> Result<(), rusqlite::Error> {
    connection.prepare_cached(sql)?.execute([]).map(drop)
}

fn still_in_transaction(connection: &Connection) -> Result<(), rusqlite::Error> {
    if connection.is_autocommit() {
        Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
            Some("the batch's transaction was rolled back".into()),
        ))
    } else {
        Ok(())
    }
}

/// Rolls the batch back and tells every caller why: those whose write ran, and those whose
/// write the batch never reached.
fn abort(
    connection: &Connection,
    replies: Vec<Reply>,
    not_run: impl Iterator<Item = Box<dyn Job>>,
    error: rusqlite::Error,
) {
    if !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    let error = Arc::new(error);
    tracing::warn!(%error, "a batch of store writes was rolled back");
    for reply in replies {
        reply(Err(&error));
    }
    for job in not_run {
        job.refuse(&error);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::Ordering;

    use super::*;

    fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (v INTEGER UNIQUE)")
            .unwrap();
        let writer = Writer::start(&path).unwrap();
        (dir, writer)
    }

    fn insert(v: i64) -> impl FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static {
        move |db| {
            prepare(db, "INSERT INTO t (v) VALUES ($1)")?.execute([v])?;
            Ok(())
        }
    }

    fn count(db: &Connection) -> Result<i64, StoreError> {
        Ok(db.query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))?)
    }

    /// A setting of the writer's connection, read on its thread.
    async fn setting(writer: &Writer, pragma: &'static str) -> i64 {
        let sql = format!("PRAGMA {pragma}");
        writer
            .write(move |db| Ok(db.query_row(&sql, [], |row| row.get(0))?))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_writer_keeps_a_small_page_cache() {
        let (_dir, writer) = writer();
        let size = setting(&writer, "cache_size").await;
        assert_eq!(size, i64::from(sqlite::WRITER_CACHE));
    }

    #[tokio::test]
    async fn the_wals_file_is_cut_back_at_a_restart_only_past_its_limit() {
        let (_dir, writer) = writer();
        let limit = setting(&writer, "journal_size_limit").await;
        assert_eq!(u64::try_from(limit).unwrap(), WAL_FILE_LIMIT);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_queued_while_a_batch_runs_share_the_next_commit() {
        let (_dir, writer) = writer();
        // The first write holds the thread until ten more are queued behind it.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (running, started) = std::sync::mpsc::channel::<()>();
        let mut first = Box::pin(writer.write(move |db| {
            running.send(()).unwrap();
            held.recv().unwrap();
            insert(0)(db)
        }));
        let mut queued: Vec<_> = (1..=10)
            .map(|v| Box::pin(writer.write(insert(v))))
            .collect();
        // A write is queued at its first poll: the first runs, the ten are queued behind it,
        // then it may finish.
        std::future::poll_fn(|cx| {
            assert!(first.as_mut().poll(cx).is_pending());
            started.recv().unwrap();
            for write in &mut queued {
                assert!(write.as_mut().poll(cx).is_pending());
            }
            std::task::Poll::Ready(())
        })
        .await;
        release.send(()).unwrap();
        first.await.unwrap();
        for write in queued {
            write.await.unwrap();
        }
        assert_eq!(writer.commits.load(Ordering::Relaxed), 2);
        assert_eq!(writer.write(count).await.unwrap(), 11);
    }

    #[tokio::test]
    async fn a_failed_write_is_rolled_back_alone_and_its_batch_commits() {
        let (_dir, writer) = writer();
        writer.write(insert(1)).await.unwrap();
        // Half done, then refused: nothing of it stays.
        let failed = writer
            .write(|db| {
                insert(2)(db)?;
                insert(1)(db)
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Sqlite(_))), "{failed:?}");
        writer.write(insert(3)).await.unwrap();
        assert_eq!(writer.write(count).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_write_that_panics_is_rolled_back_and_the_writer_goes_on() {
        let (_dir, writer) = writer();
        let panicked = writer
            .write(|db| -> Result<(), StoreError> {
                insert(1)(db)?;
                panic!("a bug in a write")
            })
            .await;
        assert!(
            matches!(panicked, Err(StoreError::Interrupted)),
            "{panicked:?}"
        );
        writer.write(insert(2)).await.unwrap();
        assert_eq!(writer.write(count).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn writes_after_close_are_refused_and_those_before_it_are_kept() {
        let (dir, writer) = writer();
        writer.write(insert(1)).await.unwrap();
        writer.close().await;
        assert!(matches!(
            writer.write(insert(2)).await,
            Err(StoreError::Interrupted)
        ));
        let db = Connection::open(dir.path().join("tokens.db")).unwrap();
        assert_eq!(count(&db).unwrap(), 1);
    }
}

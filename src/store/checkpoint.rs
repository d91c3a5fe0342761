//! Copying SQLite's WAL back into the database, apart from the writes. SQLite checkpoints in the
//! connection that commits, by default: the writer thread would stop every thousand pages to copy
//! them and sync the database file, and every write queued meanwhile would wait. Here a thread of
//! its own copies what the writer committed, at most every `INTERVAL` (a page written many times
//! in between is copied once), in passes until one finds little new; once the WAL is long, the
//! writer copies only that little rest, so that SQLite can start the WAL over from the
//! beginning. Once writes pause, the thread cuts the WAL's file back to nothing.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rusqlite::Connection;

use super::error::StoreError;
use super::sqlite;

/// The pause between two checkpoints of the thread: pages written many times in between are
/// copied once.
const INTERVAL: Duration = Duration::from_secs(2);

/// A pass of the thread that copied at most this many frames (about 1 MiB with 1 KiB pages) was
/// short, so little was written meanwhile: the writer may copy that rest itself, and the WAL
/// starts over at its next transaction. SQLite starts a WAL over only when all of it is copied
/// as a write begins (and no reader still uses its old frames), which under steady writes only
/// the writer can see to.
const FEW_FRAMES: u64 = 1024;

/// The writer copies the thread's rest only once the WAL is this long (about 200,000 frames with
/// 1 KiB pages): every write queued meanwhile waits for that copy and two syncs, 3 to 80 ms on a
/// virtual disk, so the fewer times the better (under a full load of callbacks, every 5 s or so
/// instead of every 2 s; wrk's p99 in two pairs of three 10 s runs on one store: 13 to 23 ms
/// against 16 to 41). With writes that pause now and then, the WAL starts over by itself
/// whenever the thread has just copied all of it.
const RESTART_BYTES: u64 = 200 * 1024 * 1024;

/// The thread's passes in a row at most: each copies what was written during the one before.
/// Under writes so fast that no pass is short, the WAL starts over only at the writer's limit
/// (`Checkpointer::limit_frames`).
const MAX_PASSES: usize = 4;

/// The most the WAL's file keeps when the WAL starts over (`journal_size_limit`, set by the
/// writer): above what it grows to here (`RESTART_BYTES`, at most three times that when the
/// thread falls behind), so the commit after a restart does not cut the file and sync its
/// freed blocks (54 to 68 ms here); a WAL a long reader kept from starting over is cut back.
pub const WAL_FILE_LIMIT: u64 = 4 * RESTART_BYTES;

pub struct Checkpointer {
    signals: Arc<Signals>,
    /// Wakes the thread, once per commit that finds `Signals::committed` clear: not at every
    /// commit (a thousand wake-ups a second under load, each a context switch on the cores the
    /// requests need). Dropped, it ends the thread.
    nudge: mpsc::SyncSender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Past this many frames in the WAL (three times `RESTART_BYTES`), the writer checkpoints
    /// whatever the thread managed: when writes outpace the thread's passes. Each time it does,
    /// every write queued meanwhile waits for the copy and the database's sync.
    limit_frames: u64,
}

/// What the writer and the thread tell each other.
#[derive(Default)]
struct Signals {
    /// Set by the writer's commits, cleared by the thread as it starts its passes.
    committed: AtomicBool,
    /// The WAL's length in frames as of the thread's last checkpoint.
    wal_frames: AtomicU64,
    /// Set by the thread when its last pass left only a few frames to copy; taken by the writer,
    /// which copies them.
    rest_is_few: AtomicBool,
}

impl Checkpointer {
    /// Starts the thread, on a connection of its own to `path`. It ends with the writer.
    pub fn start(path: &Path) -> Result<Self, StoreError> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(sqlite::BUSY_TIMEOUT)?;
        // A checkpoint syncs the WAL before it copies and the database after (SQLite's default,
        // named: with `OFF` a crash could lose what a restarted WAL wrote over).
        connection.pragma_update(None, "synchronous", "FULL")?;
        let page_size: i64 = connection.query_row("PRAGMA page_size", [], |row| row.get(0))?;
        // SQLite's pages are 512 bytes to 64 KiB.
        let restart_frames = restart_frames(u64::try_from(page_size).unwrap_or(512));
        let (nudge, nudged) = mpsc::sync_channel(1);
        let signals = Arc::new(Signals::default());
        let shared = Arc::clone(&signals);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || copy_while_written(&connection, &nudged, &shared, restart_frames))
            .map_err(StoreError::Thread)?;
        Ok(Self {
            signals,
            nudge,
            thread: Some(thread),
            limit_frames: 3 * restart_frames,
        })
    }

    /// Ends the thread (after the checkpoint under way, if any) and waits for it: its connection
    /// is closed when this returns.
    pub fn stop(self) {
        let Self { nudge, thread, .. } = self;
        drop(nudge);
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Called by the writer after each commit, between its transactions. Wakes the thread; and
    /// when the thread left only a few frames to copy, or the WAL has grown past `limit_frames`,
    /// checkpoints on the writer's connection: writes that never pause leave the thread no
    /// moment in which all of the WAL is copied, and once all of it is, the writer's next
    /// transaction starts the WAL over instead of growing it.
    pub fn committed(&self, writer: &Connection) {
        let signals = &self.signals;
        if !signals.committed.swap(true, Ordering::AcqRel) {
            let _ = self.nudge.try_send(());
        }
        if signals.rest_is_few.swap(false, Ordering::Acquire)
            || signals.wal_frames.load(Ordering::Relaxed) > self.limit_frames
        {
            match checkpoint(writer) {
                // All of it copied: the WAL starts over at the writer's next transaction.
                Ok(Some(copied)) if copied.is_complete() => {
                    signals.wal_frames.store(0, Ordering::Relaxed);
                }
                // A reader still uses old frames, or the thread was copying at that moment: past
                // the limit, again after the next commit; a rest, at the thread's next passes.
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "WAL checkpoint failed; trying again later"),
            }
        }
    }
}

/// The thread: after each commit that wakes it, passes (`catch_up`), then a pause; once writes
/// pause, the WAL's file is cut. Ends when the writer has gone.
fn copy_while_written(
    connection: &Connection,
    nudged: &mpsc::Receiver<()>,
    signals: &Signals,
    restart_frames: u64,
) {
    let mut wanted = nudged.recv().is_ok();
    while wanted {
        // Cleared first: a commit from now on is copied by the next passes. The swap acquires
        // what the commits that set the flag wrote before setting it.
        signals.committed.swap(false, Ordering::AcqRel);
        let all_copied = match catch_up(connection, restart_frames) {
            Ok(Some(CaughtUp { last, rest_is_few })) => {
                signals.wal_frames.store(last.wal_frames, Ordering::Relaxed);
                if rest_is_few {
                    signals.rest_is_few.store(true, Ordering::Release);
                }
                last.is_complete()
            }
            // The writer's own checkpoint was under way.
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(%error, "WAL checkpoint failed; trying again later");
                false
            }
        };
        // When idle, nothing was committed since the passes began. Only a WAL they copied all
        // of is cut: cutting copies any rest first, with the writer kept waiting.
        wanted = pause(nudged, &signals.committed, || {
            if all_copied {
                // The WAL starts over now: no rest for the writer to copy.
                signals.rest_is_few.store(false, Ordering::Relaxed);
                if let Err(error) = shrink(connection) {
                    tracing::warn!(%error, "the WAL's file could not be cut back");
                }
            }
        });
    }
}

/// The WAL's length in frames at which the writer copies the thread's rest: `RESTART_BYTES` of
/// frames (a page and a 24-byte header each).
fn restart_frames(page_size: u64) -> u64 {
    RESTART_BYTES / (page_size + 24)
}

/// Waits out `INTERVAL`, and then, unless a commit came meanwhile, runs `idle` and waits for
/// the next commit; whether to checkpoint again (`false` once the writer has gone).
fn pause(nudged: &mpsc::Receiver<()>, committed: &AtomicBool, idle: impl FnOnce()) -> bool {
    let resume = std::time::Instant::now() + INTERVAL;
    loop {
        let left = resume.saturating_duration_since(std::time::Instant::now());
        match nudged.recv_timeout(left) {
            // A commit's wake-up: it is seen through `committed` once the pause is over.
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => return false,
        }
    }
    // A commit that finds the flag clear after this load sends a wake-up.
    if committed.load(Ordering::Acquire) {
        return true;
    }
    idle();
    nudged.recv().is_ok()
}

/// The thread's passes, and whether the writer is to copy what is left.
struct CaughtUp {
    last: Copied,
    rest_is_few: bool,
}

/// Checkpoints in passes, each copying what was written during the one before, until a pass
/// copies at most `FEW_FRAMES`: then what was written during that short pass is left for the
/// writer (see `after`). `None` if another checkpoint (the writer's) was under way.
fn catch_up(
    connection: &Connection,
    restart_frames: u64,
) -> Result<Option<CaughtUp>, rusqlite::Error> {
    let Some(mut last) = checkpoint(connection)? else {
        return Ok(None);
    };
    let mut rest_is_few = false;
    for _ in 1..MAX_PASSES {
        let Some(pass) = checkpoint(connection)? else {
            break;
        };
        let next = after(&last, &pass, restart_frames);
        last = pass;
        match next {
            Next::Again => {}
            Next::WriterFinishes => {
                rest_is_few = true;
                break;
            }
            Next::Pause => break,
        }
    }
    Ok(Some(CaughtUp { last, rest_is_few }))
}

/// What follows a pass of the thread.
#[derive(Debug, PartialEq)]
enum Next {
    /// Much was written during the pass before: copy it.
    Again,
    /// This pass was short and copied all it saw, and the WAL is long enough to start over:
    /// the writer copies the few frames written meanwhile.
    WriterFinishes,
    /// Nothing is left for now, or nothing can be done about it: the WAL started over, nothing
    /// was written (the writer's next transaction starts it over), the WAL is still short, or
    /// a frame could not be copied (a reader still using old frames).
    Pause,
}

fn after(previous: &Copied, pass: &Copied, restart_frames: u64) -> Next {
    if !previous.is_complete() || !pass.is_complete() {
        return Next::Pause;
    }
    match pass.wal_frames.checked_sub(previous.wal_frames) {
        None | Some(0) => Next::Pause,
        Some(frames) if frames <= FEW_FRAMES && pass.wal_frames >= restart_frames => {
            Next::WriterFinishes
        }
        Some(frames) if frames <= FEW_FRAMES => Next::Pause,
        Some(_) => Next::Again,
    }
}

/// Cuts the WAL's file to nothing, if no reader or writer is using it at that moment: the
/// checkpoint waits for none of them, and takes the writer's lock only for the truncation and
/// its sync (the WAL being all copied already).
fn shrink(connection: &Connection) -> Result<(), rusqlite::Error> {
    connection.busy_timeout(Duration::ZERO)?;
    let truncated = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    connection.busy_timeout(sqlite::BUSY_TIMEOUT)?;
    truncated
}

/// What a checkpoint found and did, in frames.
struct Copied {
    /// The WAL's length.
    wal_frames: u64,
    /// How many of them are in the database now.
    copied: u64,
}

impl Copied {
    /// Whether all of the WAL it saw is in the database.
    fn is_complete(&self) -> bool {
        self.copied >= self.wal_frames
    }
}

/// A passive checkpoint (it never waits for the writer or readers): copies every frame it may.
/// `None` if another checkpoint was under way: then it did nothing.
fn checkpoint(connection: &Connection) -> Result<Option<Copied>, rusqlite::Error> {
    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        let busy: i64 = row.get(0)?;
        let (wal_frames, copied): (i64, i64) = (row.get(1)?, row.get(2)?);
        Ok(
            match (busy, u64::try_from(wal_frames), u64::try_from(copied)) {
                (0, Ok(wal_frames), Ok(copied)) => Some(Copied { wal_frames, copied }),
                _ => None,
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Instant;

    use super::*;

    /// The WAL's length in frames, read without copying any of it.
    fn wal_frames(path: &Path) -> u64 {
        Connection::open(path)
            .unwrap()
            .query_row("PRAGMA wal_checkpoint(NOOP)", [], |row| {
                row.get::<_, i64>(1)
            })
            .map(|frames| u64::try_from(frames).unwrap())
            .unwrap()
    }

    /// A checkpointer whose thread is not running, and the wake-ups the writer sends it.
    fn without_thread() -> (Checkpointer, mpsc::Receiver<()>) {
        let (nudge, nudged) = mpsc::sync_channel(1);
        let checkpointer = Checkpointer {
            signals: Arc::default(),
            nudge,
            thread: None,
            limit_frames: 3 * restart_frames(1024),
        };
        (checkpointer, nudged)
    }

    /// A database in a directory of its own, and a connection set up as the writer's: WAL, and
    /// no checkpoint inside its commits.
    fn wal_writer() -> (tempfile::TempDir, PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
                 CREATE TABLE t (v BLOB)",
            )
            .unwrap();
        (dir, path, writer)
    }

    /// Commits a row of three pages to the WAL.
    fn grow(writer: &Connection) {
        writer
            .execute("INSERT INTO t (v) VALUES (randomblob(3000))", [])
            .unwrap();
    }

    /// Ten rows in the WAL; then `trigger` on a checkpointer without its thread, and a commit:
    /// the writer's next write must find the WAL started over.
    fn the_writer_starts_the_wal_over_after(trigger: impl FnOnce(&Checkpointer)) -> Checkpointer {
        let (_dir, path, writer) = wal_writer();
        let (checkpointer, _nudged) = without_thread();
        for _ in 0..10 {
            grow(&writer);
        }
        let grown = wal_frames(&path);
        assert!(grown >= 10, "{grown} frames");
        trigger(&checkpointer);
        checkpointer.committed(&writer);
        grow(&writer);
        let restarted = wal_frames(&path);
        assert!(
            restarted < grown,
            "{restarted} frames, not fewer than {grown}"
        );
        checkpointer
    }

    /// Waits until the database file itself (not the WAL) holds `marker`.
    fn copied_into_the_database(path: &Path, marker: &str) {
        let deadline = Instant::now() + INTERVAL * 5;
        while !std::fs::read(path)
            .unwrap()
            .windows(marker.len())
            .any(|window| window == marker.as_bytes())
        {
            assert!(Instant::now() < deadline, "{marker} never checkpointed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn commits_wake_the_thread_once_until_it_starts_its_next_checkpoint() {
        let writer = Connection::open_in_memory().unwrap();
        let (checkpointer, nudged) = without_thread();
        for _ in 0..100 {
            checkpointer.committed(&writer);
        }
        assert_eq!(nudged.try_iter().count(), 1, "one wake-up for 100 commits");
        // As the thread does before each checkpoint: the next commit wakes it again.
        checkpointer
            .signals
            .committed
            .store(false, Ordering::Relaxed);
        checkpointer.committed(&writer);
        checkpointer.committed(&writer);
        assert_eq!(nudged.try_iter().count(), 1);
    }

    #[test]
    fn the_thread_copies_the_first_commit_and_a_commit_made_after_its_pause() {
        let (_dir, path, writer) = wal_writer();
        let checkpointer = Checkpointer::start(&path).unwrap();
        let commit = |marker: &str| {
            writer
                .execute("INSERT INTO t (v) VALUES (?1)", [marker])
                .unwrap();
            checkpointer.committed(&writer);
        };
        commit("first-commit-marker");
        copied_into_the_database(&path, "first-commit-marker");
        // The thread is pausing now, or waiting for a commit: either way this one is copied.
        commit("later-commit-marker");
        copied_into_the_database(&path, "later-commit-marker");
        checkpointer.stop();
    }

    fn copied(wal_frames: u64, copied: u64) -> Copied {
        Copied { wal_frames, copied }
    }

    #[test]
    fn passes_go_on_while_much_was_written_during_the_last_and_leave_a_short_ones_rest_to_the_writer()
     {
        let long = restart_frames(1024);
        let after = |previous, pass| after(&previous, &pass, long);
        let first = copied(long, long);
        // 3,000 frames written while the first pass copied: another pass.
        assert_eq!(
            after(first, copied(long + 3_000, long + 3_000)),
            Next::Again
        );
        // 400 written during that (short) pass: the writer copies what comes after.
        assert_eq!(
            after(
                copied(long + 3_000, long + 3_000),
                copied(long + 3_400, long + 3_400)
            ),
            Next::WriterFinishes
        );
        assert_eq!(
            after(
                copied(long, long),
                copied(long + FEW_FRAMES, long + FEW_FRAMES)
            ),
            Next::WriterFinishes
        );
        // A WAL still short is left to grow: the writer's copy holds up the writes behind it.
        let short = long / 2;
        assert_eq!(
            after(copied(short, short), copied(short + 400, short + 400)),
            Next::Pause
        );
        // Nothing written: the WAL is all copied, and starts over at the next write.
        assert_eq!(after(copied(long, long), copied(long, long)), Next::Pause);
        // Started over meanwhile.
        assert_eq!(after(copied(long, long), copied(500, 500)), Next::Pause);
        // A reader holds frames back: neither the thread nor the writer can copy them yet.
        assert_eq!(
            after(copied(long, long), copied(long + 400, long + 100)),
            Next::Pause
        );
        assert_eq!(
            after(copied(long, long - 1_000), copied(long + 400, long + 400)),
            Next::Pause
        );
    }

    #[test]
    fn the_writer_restarts_a_wal_of_about_200_mib_whatever_the_page_size() {
        for page_size in [1024, 4096, 65_536] {
            let bytes = restart_frames(page_size) * (page_size + 24);
            assert!(
                bytes <= RESTART_BYTES && bytes > RESTART_BYTES - (page_size + 24),
                "{page_size}: {bytes}"
            );
        }
    }

    #[test]
    fn the_threads_passes_copy_what_was_written_before_them_and_leave_no_rest() {
        let (_dir, path, writer) = wal_writer();
        for _ in 0..10 {
            grow(&writer);
        }
        let grown = wal_frames(&path);
        let caught = catch_up(&Connection::open(&path).unwrap(), restart_frames(1024))
            .unwrap()
            .unwrap();
        assert_eq!((caught.last.wal_frames, caught.last.copied), (grown, grown));
        assert!(!caught.rest_is_few, "nothing was written during the passes");
    }

    #[test]
    fn cutting_the_wal_waits_for_no_reader_and_leaves_the_connection_as_it_was() {
        let (_dir, path, writer) = wal_writer();
        grow(&writer);
        let reader = Connection::open(&path).unwrap();
        reader
            .execute_batch("BEGIN; SELECT COUNT(*) FROM t;")
            .unwrap();
        let checkpointer = Connection::open(&path).unwrap();
        checkpointer.busy_timeout(sqlite::BUSY_TIMEOUT).unwrap();
        let wal = path.with_extension("db-wal");
        let started = Instant::now();
        shrink(&checkpointer).unwrap();
        // Not the 5 s of a busy timeout: the reader's snapshot keeps the WAL as it is.
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        let timeout: i64 = checkpointer
            .query_row("PRAGMA busy_timeout", [], |row| row.get(0))
            .unwrap();
        assert_eq!(
            u128::try_from(timeout).unwrap(),
            sqlite::BUSY_TIMEOUT.as_millis()
        );
        // With the reader done, it is cut.
        reader.execute_batch("COMMIT").unwrap();
        shrink(&checkpointer).unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
    }

    #[test]
    fn a_rest_left_by_the_thread_is_copied_by_the_writer_and_the_wal_starts_over() {
        // Far below the limit, but the thread's last pass left only a few frames.
        let checkpointer = the_writer_starts_the_wal_over_after(|checkpointer| {
            checkpointer
                .signals
                .rest_is_few
                .store(true, Ordering::Relaxed);
        });
        assert!(
            !checkpointer.signals.rest_is_few.load(Ordering::Relaxed),
            "taken"
        );
    }

    #[test]
    fn once_writes_pause_the_wals_file_is_cut_back() {
        let (_dir, path, writer) = wal_writer();
        let checkpointer = Checkpointer::start(&path).unwrap();
        for _ in 0..10 {
            grow(&writer);
            checkpointer.committed(&writer);
        }
        let wal = path.with_extension("db-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 30_000);
        let deadline = Instant::now() + INTERVAL * 5;
        while std::fs::metadata(&wal).unwrap().len() > 0 {
            assert!(
                Instant::now() < deadline,
                "the WAL's file was never cut back"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Still a database: the rows are there.
        let rows: i64 = writer
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 10);
        checkpointer.stop();
    }

    #[test]
    fn a_long_wal_is_finished_by_the_writer_and_starts_over() {
        // As if the thread had last seen a WAL past the limit.
        let checkpointer = the_writer_starts_the_wal_over_after(|checkpointer| {
            let past = checkpointer.limit_frames + 1;
            checkpointer
                .signals
                .wal_frames
                .store(past, Ordering::Relaxed);
        });
        assert_eq!(checkpointer.signals.wal_frames.load(Ordering::Relaxed), 0);
    }
}

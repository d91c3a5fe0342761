//! Copying SQLite's WAL back into the database, apart from the writes. SQLite checkpoints in the
//! connection that commits, by default: the writer thread would stop every thousand pages to copy
//! them and sync the database file, and every write queued meanwhile would wait. Here a thread of
//! its own copies what the writer committed, at most every `INTERVAL` (a page written many times
//! in between is copied once); the writer only finishes the job, when the WAL has grown long,
//! so that SQLite can start it over from the beginning.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rusqlite::Connection;

use super::error::StoreError;

/// The pause between two checkpoints of the thread: pages written many times in between are
/// copied once.
const INTERVAL: Duration = Duration::from_secs(2);

/// Past this many frames in the WAL (about 130 MB with 1 KiB pages), the writer checkpoints too
/// (see `Checkpointer::committed`). Each time it does, every write queued meanwhile waits for the
/// copy and the database's sync: a limit of 16,384 frames, reached every fraction of a second
/// under a full load of callbacks, put those waits into p99 (39 ms against 20 ms with this one,
/// paired runs). `journal_size_limit` (see `writer::open`) gives the space back once the WAL
/// starts over.
const WAL_FRAMES_LIMIT: u64 = 131_072;

pub struct Checkpointer {
    /// Set by the writer's commits, cleared by the thread as it starts a checkpoint.
    committed: Arc<AtomicBool>,
    /// Wakes the thread, once per commit that finds `committed` clear: not at every commit (a
    /// thousand wake-ups a second under load, each a context switch on the cores the requests
    /// need). Dropped, it ends the thread.
    nudge: mpsc::SyncSender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The WAL's length in frames as of the thread's last checkpoint.
    wal_frames: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Starts the thread, on a connection of its own to `path`. It ends with the writer.
    pub fn start(path: &Path) -> Result<Self, StoreError> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(Duration::from_secs(5))?;
        let (nudge, nudged) = mpsc::sync_channel(1);
        let committed = Arc::new(AtomicBool::new(false));
        let pending = Arc::clone(&committed);
        let wal_frames = Arc::new(AtomicU64::new(0));
        let measured = Arc::clone(&wal_frames);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut wanted = nudged.recv().is_ok();
                while wanted {
                    // Cleared first: a commit from now on is copied by the next checkpoint. The
                    // swap acquires what the commits that set the flag wrote before setting it.
                    pending.swap(false, Ordering::AcqRel);
                    match checkpoint(&connection) {
                        Ok(Copied { wal_frames, .. }) => {
                            measured.store(wal_frames, Ordering::Relaxed);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "WAL checkpoint failed; trying again later")
                        }
                    }
                    wanted = pause(&nudged, &pending);
                }
            })
            .map_err(StoreError::Thread)?;
        Ok(Self {
            committed,
            nudge,
            thread: Some(thread),
            wal_frames,
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
    /// when the WAL has grown past `WAL_FRAMES_LIMIT` (writes that never pause leave the thread
    /// no moment in which all of it is copied), checkpoints on the writer's connection: little
    /// is left to copy by then, and once all of it is, the writer's next transaction starts the
    /// WAL over instead of growing it.
    pub fn committed(&self, writer: &Connection) {
        if !self.committed.swap(true, Ordering::AcqRel) {
            let _ = self.nudge.try_send(());
        }
        if self.wal_frames.load(Ordering::Relaxed) > WAL_FRAMES_LIMIT {
            match checkpoint(writer) {
                // All of it copied: the WAL starts over at the writer's next transaction.
                Ok(copied) if copied.copied >= copied.wal_frames => {
                    self.wal_frames.store(0, Ordering::Relaxed);
                }
                // The thread was copying at that moment: again after the next commit.
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "WAL checkpoint failed; trying again later"),
            }
        }
    }
}

/// Waits out `INTERVAL`, and then for the next commit unless one came meanwhile; whether to
/// checkpoint again (`false` once the writer has gone).
fn pause(nudged: &mpsc::Receiver<()>, committed: &AtomicBool) -> bool {
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
    committed.load(Ordering::Acquire) || nudged.recv().is_ok()
}

/// What a checkpoint found and did, in frames.
struct Copied {
    /// The WAL's length.
    wal_frames: u64,
    /// How many of them are in the database now.
    copied: u64,
}

/// A passive checkpoint (it never waits for the writer or readers): copies every frame it may.
/// Another checkpoint under way makes it copy nothing.
fn checkpoint(connection: &Connection) -> Result<Copied, rusqlite::Error> {
    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        let frames = |index| {
            row.get::<_, i64>(index)
                .map(|frames| u64::try_from(frames).unwrap_or(0))
        };
        Ok(Copied {
            wal_frames: frames(1)?,
            copied: frames(2)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn wal_frames(path: &Path) -> u64 {
        checkpoint(&Connection::open(path).unwrap())
            .unwrap()
            .wal_frames
    }

    /// A checkpointer whose thread is not running, and the wake-ups the writer sends it.
    fn without_thread() -> (Checkpointer, mpsc::Receiver<()>) {
        let (nudge, nudged) = mpsc::sync_channel(1);
        let checkpointer = Checkpointer {
            committed: Arc::default(),
            nudge,
            thread: None,
            wal_frames: Arc::default(),
        };
        (checkpointer, nudged)
    }

    /// A connection set up as the writer's: WAL, and no checkpoint inside its commits.
    fn wal_writer(path: &Path) -> Connection {
        let writer = Connection::open(path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
                 CREATE TABLE t (v BLOB)",
            )
            .unwrap();
        writer
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
        checkpointer.committed.store(false, Ordering::Relaxed);
        checkpointer.committed(&writer);
        checkpointer.committed(&writer);
        assert_eq!(nudged.try_iter().count(), 1);
    }

    #[test]
    fn the_thread_copies_the_first_commit_and_a_commit_made_after_its_pause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.db");
        let writer = wal_writer(&path);
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

    #[test]
    fn a_long_wal_is_finished_by_the_writer_and_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.db");
        let writer = wal_writer(&path);
        // Without the thread: what the writer does on its own.
        let (checkpointer, _nudged) = without_thread();
        let write = || {
            writer
                .execute("INSERT INTO t (v) VALUES (randomblob(3000))", [])
                .unwrap();
        };
        for _ in 0..10 {
            write();
        }
        let grown = wal_frames(&path);
        assert!(grown >= 10, "{grown} frames");
        // As if the thread had last seen a WAL past the limit.
        checkpointer
            .wal_frames
            .store(WAL_FRAMES_LIMIT + 1, Ordering::Relaxed);
        checkpointer.committed(&writer);
        assert_eq!(checkpointer.wal_frames.load(Ordering::Relaxed), 0);
        write();
        let restarted = wal_frames(&path);
        assert!(
            restarted < grown,
            "{restarted} frames, not fewer than {grown}"
        );
    }
}

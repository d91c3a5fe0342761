//! Group commit for SQLite. The writer connection commits with `synchronous = NORMAL` (its
//! frames reach the WAL file without an fsync), then every writer waits here until the WAL file
//! has been synced once after its commit. One `fdatasync` covers every commit made before it
//! started, so concurrent exchanges share one sync — and still no answer leaves before its
//! record is durable, as with `synchronous = FULL` (which syncs the WAL after each commit).

use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

pub struct GroupSync {
    wal: Arc<PathBuf>,
    /// Commits made so far, each a ticket.
    committed: AtomicU64,
    /// The highest ticket known durable; the lock is held while a sync runs.
    synced: Mutex<u64>,
    /// Syncs done, for the tests to see commits sharing them.
    syncs: AtomicU64,
}

impl GroupSync {
    pub fn new(database: &std::path::Path) -> Self {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        Self {
            wal: Arc::new(PathBuf::from(wal)),
            committed: AtomicU64::new(0),
            synced: Mutex::new(0),
            syncs: AtomicU64::new(0),
        }
    }

    /// Returns once everything committed before this call is on disk.
    pub async fn durable(&self) -> std::io::Result<()> {
        let ticket = self.committed.fetch_add(1, Ordering::SeqCst) + 1;
        let mut synced = self.synced.lock().await;
        if *synced >= ticket {
            // A sync that started after our commit has finished meanwhile.
            return Ok(());
        }
        // Every ticket handed out so far belongs to a commit that has already happened.
        let covered = self.committed.load(Ordering::SeqCst);
        let wal = Arc::clone(&self.wal);
        tokio::task::spawn_blocking(move || match std::fs::File::open(wal.as_path()) {
            Ok(file) => file.sync_data(),
            // No WAL: the last connection closed, and SQLite checkpointed and synced it away.
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        })
        .await
        .map_err(std::io::Error::other)??;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        *synced = covered;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_waiting_during_a_sync_share_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("tokens.db");
        std::fs::write(dir.path().join("tokens.db-wal"), b"frames").unwrap();
        let group = Arc::new(GroupSync::new(&database));

        group.durable().await.unwrap();
        group.durable().await.unwrap();
        assert_eq!(
            group.syncs.load(Ordering::Relaxed),
            2,
            "one after another, each syncs"
        );

        // While a sync is under way, ten commits arrive; one sync then covers them all.
        let in_progress = group.synced.lock().await;
        let waiting: Vec<_> = (0..10)
            .map(|_| {
                let group = Arc::clone(&group);
                tokio::spawn(async move { group.durable().await })
            })
            .collect();
        while group.committed.load(Ordering::SeqCst) < 12 {
            tokio::task::yield_now().await;
        }
        drop(in_progress);
        for commit in waiting {
            commit.await.unwrap().unwrap();
        }
        assert_eq!(group.syncs.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_missing_wal_has_nothing_to_sync() {
        let dir = tempfile::tempdir().unwrap();
        GroupSync::new(&dir.path().join("tokens.db"))
            .durable()
            .await
            .unwrap();
    }
}

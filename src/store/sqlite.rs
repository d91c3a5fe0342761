//! Opening the embedded SQLite store: one file, WAL, and a full sync on every commit so that a
//! record acknowledged to anyone survives a crash or power loss.

use std::path::Path;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::error::StoreError;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "tokens and exchanges",
        include_str!("../../migrations/sqlite/0001_tokens_and_exchanges.sql"),
    ),
    (
        2,
        "callbacks",
        include_str!("../../migrations/sqlite/0002_callbacks.sql"),
    ),
    (
        3,
        "health",
        include_str!("../../migrations/sqlite/0003_health.sql"),
    ),
    (
        4,
        "a stored token marks its exchange",
        include_str!("../../migrations/sqlite/0004_token_marks_exchange.sql"),
    ),
    (
        5,
        "bounded failure outcomes, no free text from MondiaPay",
        include_str!("../../migrations/sqlite/0005_bounded_outcomes_no_free_text.sql"),
    ),
    (
        6,
        "an unavailable outcome's cause, not its page's status",
        include_str!("../../migrations/sqlite/0006_outcome_cause_not_page_status.sql"),
    ),
    (
        7,
        "purchases",
        include_str!("../../migrations/sqlite/0007_purchases.sql"),
    ),
    (
        8,
        "renewals, retired tokens",
        include_str!("../../migrations/sqlite/0008_renewals_and_retired_tokens.sql"),
    ),
    (
        9,
        "events",
        include_str!("../../migrations/sqlite/0009_events.sql"),
    ),
];

/// Below this much free space no new exchange starts: once MondiaPay has answered, its token
/// must fit on the disk, and SQLite finds out that it does not only when it writes.
pub const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// Free space for unprivileged writers on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let stats = rustix::fs::statvfs(path)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Opens the file as two pools: readers, and one writer connection. SQLite takes one writer at a
/// time; queueing writes on one connection spares them the busy-wait sleeps of several
/// connections contending for the lock (WAL readers never wait for the writer).
pub async fn open(path: &Path) -> Result<(SqlitePool, SqlitePool), StoreError> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Open {
            path: dir.display().to_string(),
            source: source.into(),
        })?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5));
    let open_error = |source| StoreError::Open {
        path: path.display().to_string(),
        source,
    };
    // The writer does not sync on commit: `GroupSync` syncs the WAL for many commits at once.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        // A write that failed on a full or read-only disk can leave the connection inside a
        // transaction, where later statements would seem to succeed without ever committing.
        // Such a connection is closed, not reused; the pool opens a fresh one.
        .after_release(|connection, _| {
            Box::pin(async move {
                let idle = sqlx::query("BEGIN").execute(&mut *connection).await.is_ok()
                    && sqlx::query("ROLLBACK")
                        .execute(&mut *connection)
                        .await
                        .is_ok();
                Ok(idle)
            })
        })
        .connect_with(options.clone().synchronous(SqliteSynchronous::Normal))
        .await
        .map_err(open_error)?;
    super::pool::migrator(MIGRATIONS)
        .run(&writer)
        .await
        .map_err(|source| StoreError::Migrate(source.into()))?;
    let readers = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(open_error)?;
    Ok((readers, writer))
}

//! Opening the embedded SQLite store: one file, WAL, and a full sync on every commit so that a
//! record acknowledged to anyone survives a crash or power loss (the commits are grouped by the
//! writer thread, `writer.rs`).

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
    (
        10,
        "outcome keys",
        include_str!("../../migrations/sqlite/0010_outcome_keys.sql"),
    ),
    (
        11,
        "short code hashes",
        include_str!("../../migrations/sqlite/0011_short_code_hashes.sql"),
    ),
];

/// How long a connection waits for another's lock before it gives up: the readers, the writer
/// and the checkpoint thread alike.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The page size of a new database. Every commit writes each page it touched in full, to the
/// WAL and later to the database, and a callback touches a handful of index pages at random
/// places (its code's hash and its `ref`, in two indexes each): with 4 KiB pages
/// that is about four times the bytes written and synced for the same rows.
pub const PAGE_SIZE: u32 = 1024;

/// Each reader's page cache (`PRAGMA cache_size`: negative is KiB), SQLite's own default, named
/// so that a query that must not fill it (`TokenStore::count_live_tokens`) can put it back.
pub const READER_CACHE: &str = "-2000";

/// The writer's page cache (`PRAGMA cache_size`, in pages: 256 KiB with this version's pages).
/// The index a callback writes into at a random place (its code's hash) outgrows any cache, so a
/// larger one holds pages that are not asked for again: SQLite's default of 2 MiB held 7.9 MiB
/// of the writer thread's heap after a callback load, for no more callbacks a second than this
/// size (bench/analysis.md). A batch that touches more pages than this writes the rest to the
/// WAL before its commit: more to write, nothing less safe.
pub const WRITER_CACHE: i32 = 256;

/// The page cache of a reader while it reads through a whole table once.
pub const PASSING_CACHE: &str = "-64";

/// Below this much free space no new exchange starts: once MondiaPay has answered, its token
/// must fit on the disk, and SQLite finds out that it does not only when it writes.
pub const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// Free space for unprivileged writers on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let stats = rustix::fs::statvfs(path)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Creates the file if need be, migrates its schema, and opens the readers' pool. Writes go to
/// the writer thread (`writer.rs`), SQLite's one writer: WAL readers never wait for it.
pub async fn open(path: &Path) -> Result<SqlitePool, StoreError> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Open {
            path: dir.display().to_string(),
            source: source.into(),
        })?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        // A new database gets small pages (see `PAGE_SIZE`); an existing one keeps its own.
        .page_size(PAGE_SIZE)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        .pragma("cache_size", READER_CACHE);
    let open_error = |source| StoreError::Open {
        path: path.display().to_string(),
        source,
    };
    // The schema is migrated on a connection of its own, closed before SQLite's writer thread
    // (`writer.rs`) opens the file for every later write.
    let migrating = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await
        .map_err(open_error)?;
    super::pool::migrator(MIGRATIONS)
        .run(&migrating)
        .await
        .map_err(|source| StoreError::Migrate(source.into()))?;
    migrating.close().await;
    let readers = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(open_error)?;
    Ok(readers)
}

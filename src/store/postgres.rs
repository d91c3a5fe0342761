//! Opening the PostgreSQL store, for several replicas sharing one database. Migrations take an
//! advisory lock, so replicas starting together apply them once.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::error::StoreError;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "tokens and exchanges",
        include_str!("../../migrations/postgres/0001_tokens_and_exchanges.sql"),
    ),
    (
        2,
        "callbacks",
        include_str!("../../migrations/postgres/0002_callbacks.sql"),
    ),
    (
        3,
        "health",
        include_str!("../../migrations/postgres/0003_health.sql"),
    ),
    (
        4,
        "a stored token marks its exchange",
        include_str!("../../migrations/postgres/0004_token_marks_exchange.sql"),
    ),
    (
        5,
        "bounded failure outcomes, no free text from MondiaPay",
        include_str!("../../migrations/postgres/0005_bounded_outcomes_no_free_text.sql"),
    ),
    (
        6,
        "an unavailable outcome's cause, not its page's status",
        include_str!("../../migrations/postgres/0006_outcome_cause_not_page_status.sql"),
    ),
    (
        7,
        "purchases",
        include_str!("../../migrations/postgres/0007_purchases.sql"),
    ),
    (
        8,
        "renewals, retired tokens",
        include_str!("../../migrations/postgres/0008_renewals_and_retired_tokens.sql"),
    ),
    (
        9,
        "events",
        include_str!("../../migrations/postgres/0009_events.sql"),
    ),
    (
        10,
        "outcome keys",
        include_str!("../../migrations/postgres/0010_outcome_keys.sql"),
    ),
    (
        11,
        "short code hashes",
        include_str!("../../migrations/postgres/0011_short_code_hashes.sql"),
    ),
];

/// A request waits at most this long for a connection: a database that is down answers
/// `503` quickly instead of holding the request.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn open(url: &str) -> Result<PgPool, StoreError> {
    let options: PgConnectOptions = url.parse().map_err(|source| StoreError::Open {
        path: "store.url".to_owned(),
        source,
    })?;
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // No round trip to test a connection before each use: sqlx tests every connection as it
        // is returned to the pool, and closes one that fails, so a dead one is found by the error
        // of the request that used it (after a server restart, one request per idle connection
        // is answered 503) rather than by a probe on every request.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Open {
            path: "store.url (PostgreSQL)".to_owned(),
            source,
        })?;
    let migrator = super::pool::migrator(MIGRATIONS);
    migrator
        .run(&pool)
        .await
        .map_err(|source| StoreError::Migrate(source.into()))?;
    Ok(pool)
}

//! The two databases behind one store. Every query is written once, with `$N` placeholders
//! both understand, and `on_pool!` compiles it for each; rows are read as the structs of `rows`.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, FromRow, PgPool, SqlitePool};

/// Clones share the pool.
#[derive(Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool is configured; the body must produce the
/// same type for both (decode rows inside it).
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::store::pool::Pool::Sqlite($p) => $body,
            $crate::store::pool::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Pool {
    /// `ORDER BY` for "newest first" among rows with equal times: SQLite's insertion order is
    /// its `rowid`; PostgreSQL tables carry an identity column `seq` for it.
    pub fn newest_first(&self) -> &'static str {
        match self {
            Pool::Sqlite(_) => "rowid",
            Pool::Postgres(_) => "seq",
        }
    }

    /// The row `sql` finds for `key` (its one parameter), if any.
    pub async fn fetch_optional<T>(&self, sql: String, key: &str) -> Result<Option<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(key)
                .fetch_optional(pool)
                .await
        })
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

/// The embedded migrations of one backend: `(version, description, SQL)`.
pub(super) fn migrator(migrations: &[(i64, &str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|(version, description, sql)| {
                let description = (*description).to_owned().into();
                Migration::new(
                    *version,
                    description,
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

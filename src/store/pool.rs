//! The two databases behind one store. Every query is written once, with `$N` placeholders
//! both understand, and `on_pool!` compiles it for each; rows are read through `Columns`.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{PgPool, Row, SqlitePool};

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

/// Reading a column by name, the same way from either database's rows.
pub trait Columns {
    fn text(&self, name: &str) -> Result<String, sqlx::Error>;
    fn optional_text(&self, name: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, name: &str) -> Result<i64, sqlx::Error>;
    fn optional_int(&self, name: &str) -> Result<Option<i64>, sqlx::Error>;
    fn bytes(&self, name: &str) -> Result<Vec<u8>, sqlx::Error>;
}

macro_rules! columns_for {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, name: &str) -> Result<String, sqlx::Error> {
                self.try_get(name)
            }
            fn optional_text(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(name)
            }
            fn int(&self, name: &str) -> Result<i64, sqlx::Error> {
                self.try_get(name)
            }
            fn optional_int(&self, name: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(name)
            }
            fn bytes(&self, name: &str) -> Result<Vec<u8>, sqlx::Error> {
                self.try_get(name)
            }
        }
    };
}

columns_for!(SqliteRow);
columns_for!(PgRow);

impl Pool {
    /// `ORDER BY` for "newest first" among rows with equal times: SQLite's insertion order is
    /// its `rowid`; PostgreSQL tables carry an identity column `seq` for it.
    pub fn newest_first(&self) -> &'static str {
        match self {
            Pool::Sqlite(_) => "rowid",
            Pool::Postgres(_) => "seq",
        }
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

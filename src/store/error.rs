//! What can go wrong in the store, for its callers; none of it speaks of HTTP.

use std::sync::Arc;

use crate::crypto::UnsealError;
use crate::domain::UnknownState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store ({path})")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot apply the store's migrations")]
    Migrate(#[source] sqlx::Error),
    #[error("the store is unavailable")]
    Database(#[from] sqlx::Error),
    /// SQLite's writer refused a write, or rolled back the batch it was in (shared by every
    /// write of the batch).
    #[error("the store is unavailable")]
    Sqlite(#[source] Arc<rusqlite::Error>),
    #[error("cannot start the store's writer")]
    Thread(#[source] std::io::Error),
    #[error(transparent)]
    Unseal(#[from] UnsealError),
    #[error("the disk holding the store has less than {min_free} bytes free")]
    DiskFull { min_free: u64 },
    #[error("a store operation stopped unexpectedly")]
    Interrupted,
    /// A callback outcome was neither recorded nor found standing. Only a fault of the store's
    /// own logic does that (a purge in between would need a replay of an outcome older than
    /// `store.retention_secs` at the very moment of the purge), so it is treated as one.
    #[error("the callback outcome was neither recorded nor found")]
    OutcomeMissing,
    /// MondiaPay gave a purchase token it had given another purchase: the purchase is not
    /// stored (notifications name purchases by that token, so it must be unique).
    #[error("MondiaPay's purchase token belongs to another purchase")]
    PurchaseTokenTaken,
    /// A stored value this version does not know: a newer version's, or a damaged row.
    #[error("a stored row cannot be read")]
    UnknownState(#[from] UnknownState),
}

impl StoreError {
    /// Whether the store's own logic or data is at fault, not the database's availability:
    /// asking again will not help, and it is a bug to look into.
    pub fn is_fault(&self) -> bool {
        matches!(self, Self::OutcomeMissing | Self::UnknownState(_))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sqlite(Arc::new(error))
    }
}

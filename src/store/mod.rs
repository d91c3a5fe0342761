//! The token store: exchanges (one per code, by keyed hash), tokens (sealed) and callback
//! outcomes, on SQLite (one instance) or PostgreSQL (several replicas). Callers see plaintext
//! records; everything secret is sealed before it reaches the database.

mod cache;
mod callbacks;
mod checkpoint;
mod error;
mod events;
mod exchanges;
mod pool;
mod postgres;
mod purchases;
mod renewals;
mod rows;
mod sqlite;
mod tokens;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use callbacks::ReplayKey;
pub use error::StoreError;
pub use events::Stored;
pub use exchanges::Verdict;
pub use purchases::{KeyClaim, NewPurchase, PurchasesTidied};
pub use renewals::{RenewalClaim, RenewalRow};
pub use tokens::OwnerColumn;

use crate::crypto::Keyring;
use crate::domain::{CallbackOutcome, ExchangeState, Owner, TokenRecord, UpstreamError};
use crate::settings::StoreBackend;
use pool::Pool;

/// The stored outcome of a code.
#[derive(Debug, Clone)]
pub struct ExchangeRow {
    pub state: ExchangeState,
    pub lease_until: Option<i64>,
    pub token_id: Option<String>,
    pub rejection: Option<UpstreamError>,
    /// The outcome recorded for a callback with the code, when a claim found the code taken
    /// (read with the claim: a replayed callback gets it back without a read of its own).
    pub callback: Option<Box<CallbackOutcome>>,
}

/// The result of trying to claim a code for an exchange.
#[derive(Debug)]
pub enum Claim {
    /// This caller holds the code; `attempt` identifies the claim when it completes. `owner`
    /// is whom the code's token belongs to: whoever first claimed the code, which is not
    /// necessarily this caller when an earlier attempt got no usable answer.
    Claimed { attempt: i64, owner: Owner },
    /// Someone else holds it, or its outcome is final.
    Taken(ExchangeRow),
}

/// What one purge deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub tokens: u64,
    pub exchanges: u64,
    pub callbacks: u64,
}

impl Purged {
    pub fn any(&self) -> bool {
        self.tokens + self.exchanges + self.callbacks > 0
    }
}

/// Cheap to clone: every part is shared, so a write can run as a task of its own (see
/// `to_completion`).
#[derive(Clone)]
pub struct TokenStore {
    backend: Backend,
    keys: Arc<Keyring>,
    /// A token this close to its expiry counts as expired (`store.expiry_margin_secs`).
    expiry_margin_secs: i64,
    /// At most this many failure outcomes are kept in all (see `callbacks`).
    max_failure_outcomes: i64,
    /// Failure outcomes this process recorded: every `callbacks::TRIM_EVERY`th enforces the cap.
    failures_recorded: Arc<std::sync::atomic::AtomicU64>,
}

/// The database behind the store, and what only that backend has.
#[derive(Clone)]
enum Backend {
    Sqlite(Arc<SqliteParts>),
    /// One pool for reads and writes; PostgreSQL syncs its own commits.
    Postgres(Pool),
}

/// One SQLite file and what serves it.
struct SqliteParts {
    /// Reads go here.
    readers: Pool,
    /// Writes go here: SQLite's single writer, with group commit (see `writer`).
    writer: writer::Writer,
    /// Lookups by id (see `cache`).
    cache: cache::TokenCache,
    /// The directory of the file, whose free space is checked before an exchange.
    directory: PathBuf,
}

impl TokenStore {
    pub async fn open(backend: &StoreBackend, keys: Keyring) -> Result<Self, StoreError> {
        let backend = match backend {
            StoreBackend::Sqlite { path } => {
                let directory = match path.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
                    _ => PathBuf::from("."),
                };
                let readers = sqlite::open(path).await?;
                let writer = writer::Writer::start(path)?;
                Backend::Sqlite(Arc::new(SqliteParts {
                    readers: Pool::Sqlite(readers),
                    writer,
                    cache: cache::TokenCache::default(),
                    directory,
                }))
            }
            StoreBackend::Postgres { url } => {
                Backend::Postgres(Pool::Postgres(postgres::open(url).await?))
            }
        };
        Ok(Self {
            backend,
            keys: Arc::new(keys),
            expiry_margin_secs: 0,
            max_failure_outcomes: callbacks::DEFAULT_MAX_FAILURE_OUTCOMES,
            failures_recorded: Arc::default(),
        })
    }

    /// Reads go here.
    fn pool(&self) -> &Pool {
        match &self.backend {
            Backend::Sqlite(sqlite) => &sqlite.readers,
            Backend::Postgres(pool) => pool,
        }
    }

    /// The PostgreSQL pool; only for code that runs on PostgreSQL alone (SQLite's writes run on
    /// its writer thread).
    fn postgres(&self) -> &sqlx::PgPool {
        match &self.backend {
            Backend::Postgres(Pool::Postgres(pool)) => pool,
            _ => unreachable!("called on PostgreSQL only"),
        }
    }

    /// Whether other processes write to this store too (PostgreSQL, several replicas); a SQLite
    /// file has this one process as its only writer.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Lookups by id, for SQLite only (see `cache`).
    fn cache(&self) -> Option<&cache::TokenCache> {
        match &self.backend {
            Backend::Sqlite(sqlite) => Some(&sqlite.cache),
            Backend::Postgres(_) => None,
        }
    }

    /// Counts a token as expired `secs` before it expires (`store.expiry_margin_secs`): such a
    /// token is never handed out.
    pub fn with_expiry_margin(mut self, secs: u64) -> Self {
        self.expiry_margin_secs = secs as i64;
        self
    }

    /// Whether a token is still valid past the expiry margin.
    pub fn is_live(&self, record: &TokenRecord) -> bool {
        record.expires_at > self.valid_until()
    }

    /// Tokens expiring before this are no longer handed out.
    fn valid_until(&self) -> i64 {
        now_unix() + self.expiry_margin_secs
    }

    /// Keeps at most `limit` failure outcomes in all (`store.max_failure_outcomes`).
    pub fn with_max_failure_outcomes(mut self, limit: u64) -> Self {
        self.max_failure_outcomes = i64::try_from(limit).unwrap_or(i64::MAX).max(1);
        self
    }

    /// Runs a store operation to completion as a task of its own, whatever becomes of the
    /// caller. A request future dropped mid-operation (a client that hangs up) would otherwise
    /// cancel it part-way: sqlx 0.9 on PostgreSQL then returns a connection whose `BEGIN` was
    /// sent but not yet answered to the pool as if idle, and the next borrower's statements run
    /// inside that stale transaction (transact-rs/sqlx issue 4393). Every PostgreSQL write goes
    /// through here; SQLite's writes need not: the writer thread finishes every write queued to it.
    async fn to_completion<T, Op, Done>(&self, op: Op) -> Result<T, StoreError>
    where
        Op: FnOnce(TokenStore) -> Done,
        Done: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        spawn_operation(op, self.clone())
            .await
            .unwrap_or(Err(StoreError::Interrupted))
    }

    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    /// Whether the database takes a write: readable but full or read-only is not ready.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.ensure_room()?;
        let now = now_unix();
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite
                    .writer
                    .write(move |db| {
                        writer::prepare(db, PING)?.execute([now])?;
                        Ok(())
                    })
                    .await
            }
            Backend::Postgres(_) => {
                self.to_completion(move |store| async move {
                    sqlx::query(PING)
                        .bind(now)
                        .execute(store.postgres())
                        .await?;
                    Ok(())
                })
                .await
            }
        }
    }

    /// Refuses to start an exchange whose token might not fit on the disk.
    fn ensure_room(&self) -> Result<(), StoreError> {
        let Backend::Sqlite(sqlite) = &self.backend else {
            return Ok(());
        };
        match sqlite::free_bytes(&sqlite.directory) {
            Ok(free) if free < sqlite::MIN_FREE_BYTES => Err(StoreError::DiskFull {
                min_free: sqlite::MIN_FREE_BYTES,
            }),
            // Unknown free space is SQLite's to find out.
            _ => Ok(()),
        }
    }

    /// Flushes and closes the connections (SQLite checkpoints its WAL on the last close).
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite.readers.close().await;
                sqlite.writer.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

const PING: &str = "INSERT INTO health (id, checked_at) VALUES (1, $1) \
                    ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at";

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Starts `op`'s future as a task. Never inlined: the future, built here before it is moved to
/// the task, is large for PostgreSQL's operations (sqlx's, about 70 KiB), and inlined into the
/// callers' code (every store operation, and what awaits them) it made each of their stack
/// frames that large, SQLite's path included. A frame that large is touched page by page on
/// every call (the stack probes), so on SQLite each connection thread kept about 170 KiB of
/// stack resident, 60 KiB since. On PostgreSQL's path this one frame remains.
#[inline(never)]
fn spawn_operation<T, Op, Done>(
    op: Op,
    store: TokenStore,
) -> tokio::task::JoinHandle<Result<T, StoreError>>
where
    Op: FnOnce(TokenStore) -> Done,
    Done: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    T: Send + 'static,
{
    tokio::spawn(op(store))
}

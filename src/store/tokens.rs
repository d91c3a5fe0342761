//! Stored tokens: lookups (only while valid past the safety margin and not retired), deletion,
//! retirement, the purge.

use std::sync::Arc;

use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use sqlx::AssertSqlSafe;

use sqlx::Row;

use super::pool::{Pool, on_pool};
use super::rows::{OwnerColumns, TokenRow};
use super::{Backend, Purged, StoreError, TokenStore, now_unix, sqlite, writer};
use crate::crypto::{Keyring, UnsealError};
use crate::domain::{Owner, TokenRecord, UserToken};

const COLUMNS: &str = "id, sealed, token_type, obtained_at, expires_at, ref, uuid";

impl TokenStore {
    /// The token `id` if it is still valid past the expiry margin.
    pub async fn live_token(&self, id: &str) -> Result<Option<Arc<TokenRecord>>, StoreError> {
        let valid_until = self.valid_until();
        if let Some(hit) = self.cache().and_then(|cache| cache.get(id, valid_until)) {
            return Ok(Some(hit));
        }
        let generation = self.cache().map(|cache| cache.generation());
        let found = self.first_live("id", id).await?.map(Arc::new);
        if let (Some(cache), Some(generation), Some(record)) = (self.cache(), generation, &found) {
            cache.put(Arc::clone(record), generation);
        }
        Ok(found)
    }

    /// The first token recorded for a merchant reference among those still valid past the
    /// expiry margin. The first, not the newest: a `ref` in a callback's query string is only a
    /// claim, and a later token from another code must not take the order over while the first
    /// one is live.
    pub async fn first_for_ref(&self, reference: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.first_live("ref", reference).await
    }

    /// The first token recorded for a MondiaPay user among those still valid past the expiry
    /// margin (see `first_for_ref`).
    pub async fn first_for_uuid(&self, uuid: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.first_live("uuid", uuid).await
    }

    /// The first token whose `column` is `value` among those still valid past the expiry
    /// margin and not retired (by `id`: that token), handed out only once it is on disk.
    async fn first_live(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<TokenRecord>, StoreError> {
        // Oldest obtained first; tokens of the same second in the order they were stored.
        let sql = format!(
            "SELECT {COLUMNS} FROM tokens WHERE {column} = $1 AND expires_at > $2 \
             AND retired_at IS NULL ORDER BY obtained_at ASC, {} ASC LIMIT 1",
            self.pool().newest_first()
        );
        let row: Option<TokenRow> = on_pool!(self.pool(), pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(value)
                .bind(self.valid_until())
                .fetch_optional(pool)
                .await?
        });
        // Every token is written by SQLite's writer thread, whose commits become visible only
        // once synced (or by PostgreSQL, which syncs its own): a row read here is on disk.
        row.map(|row| record(&self.keys, row)).transpose()
    }

    /// Stores a token MondiaPay issued, sealed, under `owner`: when this returns it is durable.
    /// `code_hash` is the keyed hash of the code it came from (`NO_CODE` for a renewal).
    pub(super) async fn insert_token(
        &self,
        token: &UserToken,
        owner: &Owner,
        code_hash: &str,
    ) -> Result<TokenRecord, StoreError> {
        let record = self.issued_record(token, owner);
        let new = self.new_token(&record, code_hash);
        // Taken before the row is visible: a deletion of it from then on keeps it out of the cache.
        let generation = self.cache().map(|cache| cache.generation());
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.writer.write(move |db| new.on_sqlite(db)).await?,
            Backend::Postgres(_) => {
                self.to_completion(move |store| async move {
                    let mut connection = store.postgres().acquire().await?;
                    new.in_postgres(&mut connection).await
                })
                .await?
            }
        }
        if let (Some(cache), Some(generation)) = (self.cache(), generation) {
            cache.put(Arc::new(record.clone()), generation);
        }
        Ok(record)
    }

    /// `record`, sealed, ready to store; `code_hash` names the code it came from.
    pub(super) fn new_token(&self, record: &TokenRecord, code_hash: &str) -> NewToken {
        NewToken {
            sealed: self
                .keys
                .seal(&sealed_secrets(record), record.id.as_bytes()),
            id: record.id.clone(),
            token_type: record.token_type.clone(),
            obtained_at: record.obtained_at,
            expires_at: record.expires_at,
            reference: record.reference.clone(),
            uuid: record.uuid.clone(),
            code_hash: code_hash.to_owned(),
        }
    }

    /// Deletes a token; deleting one that is gone is not an error.
    pub async fn delete_token(&self, id: &str) -> Result<(), StoreError> {
        self.unserve(id, "DELETE FROM tokens WHERE id = $1", None)
            .await
    }

    /// Retires a token MondiaPay refused: no lookup serves it again, and a renewed token takes
    /// its place for its `ref` and `uuid`. The row stays until the purge, like an expired one.
    pub async fn retire_token(&self, id: &str) -> Result<(), StoreError> {
        self.unserve(
            id,
            "UPDATE tokens SET retired_at = $2 WHERE id = $1 AND retired_at IS NULL",
            Some(now_unix()),
        )
        .await
    }

    /// Runs `sql` on the token `id` (and `now`, its `$2`, when given), after which the token is
    /// never served again: the cache forgets it in the same task.
    async fn unserve(
        &self,
        id: &str,
        sql: &'static str,
        now: Option<i64>,
    ) -> Result<(), StoreError> {
        use super::{Backend, writer};
        let id = id.to_owned();
        // A task of its own even on SQLite, whose writer finishes a write whatever the caller
        // does: the cache must forget the token once the write is committed.
        self.to_completion(move |store| async move {
            match &store.backend {
                Backend::Sqlite(sqlite) => {
                    let id = id.clone();
                    sqlite
                        .writer
                        .write(move |db| {
                            let mut statement = writer::prepare(db, sql)?;
                            match now {
                                Some(now) => statement.execute(rusqlite::params![id, now])?,
                                None => statement.execute([id])?,
                            };
                            Ok(())
                        })
                        .await?;
                }
                Backend::Postgres(_) => {
                    let pool = store.postgres();

                    let mut statement = sqlx::query(sql).bind(&id);
                    if let Some(now) = now {
                        statement = statement.bind(now);
                    }
                    statement.execute(pool).await.map(drop)
                }?,
            }
            if let Some(cache) = store.cache() {
                cache.remove(&id);
            }
            Ok(())
        })
        .await
    }

    /// Whom the newest token whose `column` (`id`, `ref` or `uuid`) is `value` and that names
    /// a uuid belonged to, live or not: the user a renewal is for when no live token is left.
    pub async fn last_owner(
        &self,
        column: OwnerColumn,
        value: &str,
    ) -> Result<Option<Owner>, StoreError> {
        let sql = format!(
            "SELECT ref, uuid FROM tokens WHERE {} = $1 AND uuid IS NOT NULL \
             ORDER BY obtained_at DESC, {} DESC LIMIT 1",
            column.name(),
            self.pool().newest_first()
        );
        let row: Option<OwnerColumns> = self.pool().fetch_optional(sql, value).await?;
        Ok(row.map(Owner::from))
    }

    /// How many tokens are still valid past the expiry margin.
    pub async fn count_live_tokens(&self) -> Result<i64, StoreError> {
        const COUNT: &str =
            "SELECT COUNT(*) AS live FROM tokens WHERE expires_at > $1 AND retired_at IS NULL";
        let valid_until = self.valid_until();
        let live = match self.pool() {
            Pool::Sqlite(pool) => {
                // The count reads every live token's row. On a reader with SQLite's usual page
                // cache those pages would stay in it (2 MiB a connection, every reader in turn,
                // since the count runs every few seconds); with a small one they pass through,
                // and the cache it had is given back as it shrinks.
                let cache = |size| AssertSqlSafe(format!("PRAGMA cache_size = {size}"));
                let mut reader = pool.acquire().await?;
                sqlx::query(cache(sqlite::PASSING_CACHE))
                    .execute(&mut *reader)
                    .await?;
                let counted = sqlx::query(COUNT)
                    .bind(valid_until)
                    .fetch_one(&mut *reader)
                    .await;
                sqlx::query(cache(sqlite::READER_CACHE))
                    .execute(&mut *reader)
                    .await?;
                counted?.try_get::<i64, _>("live")?
            }
            Pool::Postgres(pool) => sqlx::query(COUNT)
                .bind(valid_until)
                .fetch_one(pool)
                .await?
                .try_get::<i64, _>("live")?,
        };
        Ok(live)
    }

    /// Deletes tokens that expired before `cutoff`, and finished exchanges and callback outcomes
    /// last touched before it. An exchange whose token is still stored is kept: it is what stops
    /// that token's code from being exchanged again; so is one whose callback outcome is still
    /// stored: it is how the code finds that outcome. Failure outcomes beyond the store's cap go
    /// too, oldest first.
    pub async fn purge(&self, cutoff: i64) -> Result<Purged, StoreError> {
        use super::{Backend, writer};
        const PURGE_TOKENS: &str = "DELETE FROM tokens WHERE expires_at < $1";
        // A finished renewal's row only serves requests that waited on it.
        const PURGE_RENEWALS: &str =
            "DELETE FROM renewals WHERE updated_at < $1 AND state <> 'pending'";
        const PURGE_EXCHANGES: &str = "DELETE FROM exchanges WHERE updated_at < $1 \
             AND state <> 'pending' AND (token_id IS NULL OR token_id NOT IN (SELECT id FROM tokens)) \
             AND NOT EXISTS (SELECT 1 FROM callbacks WHERE replay_key = exchanges.outcome_key)";
        const PURGE_CALLBACKS: &str = "DELETE FROM callbacks WHERE updated_at < $1";
        let cap = self.max_failure_outcomes;
        let trim = super::callbacks::trim_failures_sql(self.pool());
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite
                    .writer
                    .write(move |db| {
                        // One savepoint: all of it, or none.
                        let tokens = writer::prepare(db, PURGE_TOKENS)?.execute([cutoff])? as u64;
                        writer::prepare(db, PURGE_RENEWALS)?.execute([cutoff])?;
                        // Outcomes first: an exchange whose outcome goes now goes with it.
                        let callbacks =
                            writer::prepare(db, PURGE_CALLBACKS)?.execute([cutoff])? as u64;
                        let exchanges =
                            writer::prepare(db, PURGE_EXCHANGES)?.execute([cutoff])? as u64;
                        let over_cap =
                            writer::prepare(db, &trim)?.execute(rusqlite::params![cap, ""])? as u64;
                        Ok(Purged {
                            tokens,
                            exchanges,
                            callbacks: callbacks + over_cap,
                        })
                    })
                    .await
            }
            Backend::Postgres(_) => {
                self.to_completion(move |store| async move {
                    let purged = {
                        let pool = store.postgres();

                        let mut tx = pool.begin().await?;
                        let tokens = sqlx::query(PURGE_TOKENS)
                            .bind(cutoff)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        sqlx::query(PURGE_RENEWALS)
                            .bind(cutoff)
                            .execute(&mut *tx)
                            .await?;
                        let callbacks = sqlx::query(PURGE_CALLBACKS)
                            .bind(cutoff)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        let exchanges = sqlx::query(PURGE_EXCHANGES)
                            .bind(cutoff)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        let over_cap = sqlx::query(AssertSqlSafe(trim))
                            .bind(cap)
                            .bind("")
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        tx.commit().await?;
                        Purged {
                            tokens,
                            exchanges,
                            callbacks: callbacks + over_cap,
                        }
                    };
                    Ok(purged)
                })
                .await
            }
        }
    }
}

/// A column a token's owner is looked up by.
#[derive(Debug, Clone, Copy)]
pub enum OwnerColumn {
    Id,
    Ref,
    Uuid,
}

impl TokenStore {
    /// The live token `column = value` names: the token by id, or the first live one recorded
    /// for a ref or a uuid.
    pub async fn live_token_for(
        &self,
        column: OwnerColumn,
        value: &str,
    ) -> Result<Option<TokenRecord>, StoreError> {
        match column {
            OwnerColumn::Id => Ok(self.live_token(value).await?.map(Arc::unwrap_or_clone)),
            OwnerColumn::Ref => self.first_for_ref(value).await,
            OwnerColumn::Uuid => self.first_for_uuid(value).await,
        }
    }
}

impl OwnerColumn {
    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Ref => "ref",
            Self::Uuid => "uuid",
        }
    }
}

/// A token's row, sealed, ready to write. In the same statement the trigger of migration 4 marks
/// its code's exchange succeeded.
pub(super) struct NewToken {
    id: String,
    sealed: Vec<u8>,
    token_type: String,
    obtained_at: i64,
    expires_at: i64,
    reference: Option<String>,
    uuid: Option<String>,
    code_hash: String,
}

const INSERT: &str = "INSERT INTO tokens (id, sealed, token_type, obtained_at, expires_at, ref, uuid, code_hash) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

impl NewToken {
    pub(super) fn on_sqlite(&self, db: &rusqlite::Connection) -> Result<(), StoreError> {
        writer::prepare(db, INSERT)?.execute(rusqlite::params![
            self.id,
            self.sealed,
            self.token_type,
            self.obtained_at,
            self.expires_at,
            self.reference,
            self.uuid,
            self.code_hash
        ])?;
        Ok(())
    }

    pub(super) async fn in_postgres(&self, db: &mut sqlx::PgConnection) -> Result<(), StoreError> {
        sqlx::query(INSERT)
            .bind(&self.id)
            .bind(&self.sealed)
            .bind(&self.token_type)
            .bind(self.obtained_at)
            .bind(self.expires_at)
            .bind(self.reference.as_deref())
            .bind(self.uuid.as_deref())
            .bind(&self.code_hash)
            .execute(db)
            .await?;
        Ok(())
    }
}

fn record(keys: &Keyring, row: TokenRow) -> Result<TokenRecord, StoreError> {
    let id = row.id;
    let secrets: SealedSecrets =
        serde_json::from_slice(&keys.open(&row.sealed, id.as_bytes())?).map_err(|_| UnsealError)?;
    Ok(TokenRecord {
        id,
        access_token: secrets.access_token.into(),
        refresh_token: secrets.refresh_token.map(Into::into),
        token_type: row.token_type,
        obtained_at: row.obtained_at,
        expires_at: row.expires_at,
        reference: row.owner.reference,
        uuid: row.owner.uuid,
        extra: secrets.extra,
    })
}

/// What is sealed for a token: everything MondiaPay said that is not plain metadata.
#[derive(serde::Serialize, serde::Deserialize)]
struct SealedSecrets {
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    extra: Map<String, Value>,
}

/// The secrets of a record, as sealed.
pub(super) fn sealed_secrets(record: &TokenRecord) -> Vec<u8> {
    serde_json::to_vec(&SealedSecrets {
        access_token: record.access_token.expose_secret().to_owned(),
        refresh_token: record
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        extra: record.extra.clone(),
    })
    .expect("strings and JSON values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::StoreBackend;

    #[tokio::test]
    async fn counting_live_tokens_leaves_every_reader_its_usual_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let backend = StoreBackend::Sqlite {
            path: dir.path().join("tokens.db"),
        };
        let store = TokenStore::open(&backend, Keyring::new(&[9; 32]))
            .await
            .unwrap();
        let Pool::Sqlite(pool) = store.pool() else {
            unreachable!("a SQLite store")
        };
        for _ in 0..pool.options().get_max_connections() {
            assert_eq!(store.count_live_tokens().await.unwrap(), 0);
        }
        // Every reader at once, so each one is asked.
        let mut readers = Vec::new();
        for _ in 0..pool.options().get_max_connections() {
            readers.push(pool.acquire().await.unwrap());
        }
        for reader in &mut readers {
            let (size,): (i64,) = sqlx::query_as("PRAGMA cache_size")
                .fetch_one(&mut **reader)
                .await
                .unwrap();
            assert_eq!(size.to_string(), sqlite::READER_CACHE);
        }
        drop(readers);
        store.close().await;
    }
}

//! Stored tokens: lookups (only while valid past the safety margin), deletion, the purge.

use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use sqlx::AssertSqlSafe;

use sqlx::Row;

use super::pool::on_pool;
use super::rows::TokenRow;
use super::{Purged, StoreError, TokenStore};
use crate::crypto::{Keyring, UnsealError};
use crate::domain::TokenRecord;

const COLUMNS: &str = "id, sealed, token_type, obtained_at, expires_at, ref, uuid";

impl TokenStore {
    /// The token `id` if it is still valid past the expiry margin.
    pub async fn live_token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let valid_until = self.valid_until();
        if let Some(hit) = self.cache().and_then(|cache| cache.get(id, valid_until)) {
            return Ok(Some(hit));
        }
        let generation = self.cache().map(|cache| cache.generation());
        let found = self.first_live("id", id).await?;
        if let (Some(cache), Some(generation), Some(record)) = (self.cache(), generation, &found) {
            cache.put(record, generation);
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
    /// margin (by `id`: that token), handed out only once it is on disk.
    async fn first_live(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<TokenRecord>, StoreError> {
        // Oldest obtained first; tokens of the same second in the order they were stored.
        let sql = format!(
            "SELECT {COLUMNS} FROM tokens WHERE {column} = $1 AND expires_at > $2 \
             ORDER BY obtained_at ASC, {} ASC LIMIT 1",
            self.pool().newest_first()
        );
        let row: Option<TokenRow> = on_pool!(self.pool(), pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(value)
                .bind(self.valid_until())
                .fetch_optional(pool)
                .await?
        });
        let found = row.map(|row| record(&self.keys, row)).transpose()?;
        if found.is_some() {
            // The row may be committed but not yet synced: hand it out only once it is on disk.
            self.durable().await?;
        }
        Ok(found)
    }

    /// Deletes a token; deleting one that is gone is not an error.
    pub async fn delete_token(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        // The cache forgets the token in the same task: a deleted token is never served again.
        self.to_completion(move |store| async move {
            on_pool!(store.writer(), pool => {
                sqlx::query("DELETE FROM tokens WHERE id = $1").bind(&id).execute(pool).await.map(drop)
            })?;
            store.durable().await?;
            if let Some(cache) = store.cache() {
                cache.remove(&id);
            }
            Ok(())
        })
        .await
    }

    /// How many tokens are still valid past the expiry margin.
    pub async fn count_live_tokens(&self) -> Result<i64, StoreError> {
        let valid_until = self.valid_until();
        let live = on_pool!(self.pool(), pool => {
            sqlx::query("SELECT COUNT(*) AS live FROM tokens WHERE expires_at > $1")
                .bind(valid_until)
                .fetch_one(pool)
                .await?
                .try_get::<i64, _>("live")?
        });
        Ok(live)
    }

    /// Deletes tokens that expired before `cutoff`, and finished exchanges and callback outcomes
    /// last touched before it. An exchange whose token is still stored is kept: it is what stops
    /// that token's code from being exchanged again. Failure outcomes beyond the store's cap go
    /// too, oldest first.
    pub async fn purge(&self, cutoff: i64) -> Result<Purged, StoreError> {
        self.to_completion(move |store| async move {
            let cap = store.max_failure_outcomes;
            let purged = on_pool!(store.writer(), pool => {
                let mut tx = pool.begin().await?;
                let tokens = sqlx::query("DELETE FROM tokens WHERE expires_at < $1")
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let exchanges = sqlx::query(
                    "DELETE FROM exchanges WHERE updated_at < $1 AND state <> 'pending' \
                     AND (token_id IS NULL OR token_id NOT IN (SELECT id FROM tokens))",
                )
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let callbacks = sqlx::query("DELETE FROM callbacks WHERE updated_at < $1")
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let over_cap = sqlx::query(AssertSqlSafe(super::callbacks::trim_failures_sql(
                    store.writer(),
                )))
                .bind(cap)
                .bind("")
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Purged { tokens, exchanges, callbacks: callbacks + over_cap }
            });
            Ok(purged)
        })
        .await
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

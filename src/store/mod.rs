//! The token store: exchanges (one per code, by keyed hash) and tokens (sealed), on SQLite.
//! Callers see plaintext records; everything secret is sealed before it reaches the database.

mod callbacks;
mod record;
mod sqlite;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use sqlx::{Row, SqlitePool};

pub use callbacks::{CallbackOutcome, NewCallback, OutcomeKind, ReplayKey};
pub use record::{TokenRecord, new_token_id, rfc3339};

use crate::crypto::{CodeHash, Keyring, UnsealError};
use crate::mondiapay::{UpstreamError, UserToken};
use crate::settings::StoreBackend;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot apply the store's migrations")]
    Migrate(#[source] sqlx::Error),
    #[error("the store is unavailable")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Unseal(#[from] UnsealError),
    #[error(
        "the disk holding the store has less than {} bytes free",
        sqlite::MIN_FREE_BYTES
    )]
    DiskFull,
}

/// Where a code's exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeState {
    /// Claimed by an exchange under way until the lease ends.
    Pending,
    Succeeded,
    Rejected,
    /// Ended without a usable answer: may be claimed again.
    Failed,
}

impl ExchangeState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "pending" => Self::Pending,
            "succeeded" => Self::Succeeded,
            "rejected" => Self::Rejected,
            _ => Self::Failed,
        }
    }
}

/// The stored outcome of a code.
#[derive(Debug, Clone)]
pub struct ExchangeRow {
    pub state: ExchangeState,
    pub lease_until: Option<i64>,
    pub token_id: Option<String>,
    pub rejection: Option<UpstreamError>,
}

/// The result of trying to claim a code for an exchange.
#[derive(Debug)]
pub enum Claim {
    /// This caller holds the code; `attempt` identifies the claim when it completes.
    Claimed { attempt: i64 },
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

/// Who the token belongs to, as the caller named them.
#[derive(Debug, Clone, Default)]
pub struct Owner {
    pub reference: Option<String>,
    pub uuid: Option<String>,
}

pub struct TokenStore {
    pool: SqlitePool,
    keys: Keyring,
    /// The directory of the SQLite file, whose free space is checked before an exchange.
    directory: PathBuf,
}

impl TokenStore {
    pub async fn open(backend: &StoreBackend, keys: Keyring) -> Result<Self, StoreError> {
        let StoreBackend::Sqlite { path } = backend;
        let pool = sqlite::open(path).await?;
        let directory = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        Ok(Self {
            pool,
            keys,
            directory,
        })
    }

    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    /// Whether the database takes a write: readable but full or read-only is not ready.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.ensure_room()?;
        sqlx::query(
            "INSERT INTO health (id, checked_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(now_unix())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Refuses to start an exchange whose token might not fit on the disk.
    fn ensure_room(&self) -> Result<(), StoreError> {
        match sqlite::free_bytes(&self.directory) {
            Ok(free) if free < sqlite::MIN_FREE_BYTES => Err(StoreError::DiskFull),
            // Unknown free space is SQLite's to find out.
            _ => Ok(()),
        }
    }

    /// Flushes and closes the connections (the WAL is checkpointed on the last close).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Claims `code` for one exchange, atomically: a new code, a code whose last exchange got no
    /// usable answer, or a code whose claim outlived its lease. Anything else is `Taken`.
    pub async fn claim(
        &self,
        code: &CodeHash,
        owner: &Owner,
        lease_until: i64,
    ) -> Result<Claim, StoreError> {
        self.ensure_room()?;
        let now = now_unix();
        let claimed = sqlx::query(
            "INSERT INTO exchanges (code_hash, state, lease_until, attempt, ref, uuid, created_at, updated_at) \
             VALUES ($1, 'pending', $2, 1, $3, $4, $5, $5) \
             ON CONFLICT (code_hash) DO UPDATE SET state = 'pending', lease_until = excluded.lease_until, \
                 attempt = exchanges.attempt + 1, updated_at = excluded.updated_at, \
                 ref = COALESCE(exchanges.ref, excluded.ref), uuid = COALESCE(exchanges.uuid, excluded.uuid) \
             WHERE exchanges.state = 'failed' OR (exchanges.state = 'pending' AND exchanges.lease_until <= excluded.updated_at) \
             RETURNING attempt",
        )
        .bind(code.as_str())
        .bind(lease_until)
        .bind(owner.reference.as_deref())
        .bind(owner.uuid.as_deref())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = claimed {
            return Ok(Claim::Claimed {
                attempt: row.try_get("attempt")?,
            });
        }
        // The insert did nothing, so the row existed; should it have vanished since, the caller
        // sees a released code and claims again.
        let row = self.exchange(code).await?;
        Ok(Claim::Taken(row.unwrap_or(ExchangeRow {
            state: ExchangeState::Failed,
            lease_until: None,
            token_id: None,
            rejection: None,
        })))
    }

    pub async fn exchange(&self, code: &CodeHash) -> Result<Option<ExchangeRow>, StoreError> {
        let row = sqlx::query(
            "SELECT state, lease_until, token_id, error, message, http_status FROM exchanges WHERE code_hash = $1",
        )
        .bind(code.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let error: Option<String> = row.try_get("error")?;
        let http_status: Option<i64> = row.try_get("http_status")?;
        Ok(Some(ExchangeRow {
            state: ExchangeState::parse(row.try_get("state")?),
            lease_until: row.try_get("lease_until")?,
            token_id: row.try_get("token_id")?,
            rejection: error.map(|error| UpstreamError {
                http_status: http_status.unwrap_or_default() as u16,
                error,
                message: row.try_get("message").ok().flatten(),
            }),
        }))
    }

    /// Stores the token and marks the code succeeded, in one transaction: when this returns, both
    /// are durable. Success is final whatever happened to the claim meanwhile.
    pub async fn complete_success(
        &self,
        code: &CodeHash,
        owner: &Owner,
        token: &UserToken,
    ) -> Result<TokenRecord, StoreError> {
        let id = new_token_id();
        let obtained_at = now_unix();
        let expires_at = obtained_at + token.expires_in as i64;
        let sealed = self.keys.seal(&sealed_secrets(token), id.as_bytes());
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO tokens (id, sealed, token_type, obtained_at, expires_at, ref, uuid, code_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&sealed)
        .bind(&token.token_type)
        .bind(obtained_at)
        .bind(expires_at)
        .bind(owner.reference.as_deref())
        .bind(owner.uuid.as_deref())
        .bind(code.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE exchanges SET state = 'succeeded', token_id = $2, lease_until = NULL, updated_at = $3 \
             WHERE code_hash = $1",
        )
        .bind(code.as_str())
        .bind(&id)
        .bind(obtained_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(TokenRecord {
            id,
            access_token: token.access_token.expose_secret().into(),
            refresh_token: token
                .refresh_token
                .as_ref()
                .map(|t| t.expose_secret().into()),
            token_type: token.token_type.clone(),
            obtained_at,
            expires_at,
            reference: owner.reference.clone(),
            uuid: owner.uuid.clone(),
            extra: token.extra.clone(),
        })
    }

    /// Records MondiaPay's final verdict on the code.
    pub async fn complete_rejection(
        &self,
        code: &CodeHash,
        attempt: i64,
        error: &UpstreamError,
    ) -> Result<(), StoreError> {
        self.finish(code, attempt, ExchangeState::Rejected, Some(error))
            .await
    }

    /// Releases the claim without a verdict: a later request may try the code again.
    pub async fn release(&self, code: &CodeHash, attempt: i64) -> Result<(), StoreError> {
        self.finish(code, attempt, ExchangeState::Failed, None)
            .await
    }

    async fn finish(
        &self,
        code: &CodeHash,
        attempt: i64,
        state: ExchangeState,
        error: Option<&UpstreamError>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE exchanges SET state = $3, lease_until = NULL, error = $4, message = $5, http_status = $6, updated_at = $7 \
             WHERE code_hash = $1 AND attempt = $2 AND state = 'pending'",
        )
        .bind(code.as_str())
        .bind(attempt)
        .bind(state.as_str())
        .bind(error.map(|e| e.error.as_str()))
        .bind(error.and_then(|e| e.message.as_deref()))
        .bind(error.map(|e| i64::from(e.http_status)))
        .bind(now_unix())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The token `id` if it is still valid `margin_secs` from now.
    pub async fn live_token(
        &self,
        id: &str,
        margin_secs: i64,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, sealed, token_type, obtained_at, expires_at, ref, uuid FROM tokens \
             WHERE id = $1 AND expires_at > $2",
        )
        .bind(id)
        .bind(now_unix() + margin_secs)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| self.record(&row)).transpose()
    }

    /// The newest token for a merchant reference that is still valid `margin_secs` from now.
    pub async fn newest_for_ref(
        &self,
        reference: &str,
        margin_secs: i64,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, sealed, token_type, obtained_at, expires_at, ref, uuid FROM tokens \
             WHERE ref = $1 AND expires_at > $2 ORDER BY obtained_at DESC, rowid DESC LIMIT 1",
        )
        .bind(reference)
        .bind(now_unix() + margin_secs)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| self.record(&row)).transpose()
    }

    /// The newest token for a MondiaPay user that is still valid `margin_secs` from now.
    pub async fn newest_for_uuid(
        &self,
        uuid: &str,
        margin_secs: i64,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, sealed, token_type, obtained_at, expires_at, ref, uuid FROM tokens \
             WHERE uuid = $1 AND expires_at > $2 ORDER BY obtained_at DESC, rowid DESC LIMIT 1",
        )
        .bind(uuid)
        .bind(now_unix() + margin_secs)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| self.record(&row)).transpose()
    }

    /// Deletes a token; deleting one that is gone is not an error.
    pub async fn delete_token(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM tokens WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How many tokens are still valid `margin_secs` from now.
    pub async fn count_live_tokens(&self, margin_secs: i64) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS live FROM tokens WHERE expires_at > $1")
            .bind(now_unix() + margin_secs)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("live")?)
    }

    /// Deletes tokens that expired before `cutoff`, and finished exchanges and callback outcomes
    /// last touched before it. An exchange whose token is still stored is kept: it is what stops
    /// that token's code from being exchanged again.
    pub async fn purge(&self, cutoff: i64) -> Result<Purged, StoreError> {
        let mut tx = self.pool.begin().await?;
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
        tx.commit().await?;
        Ok(Purged {
            tokens,
            exchanges,
            callbacks,
        })
    }

    fn record(&self, row: &sqlx::sqlite::SqliteRow) -> Result<TokenRecord, StoreError> {
        let id: String = row.try_get("id")?;
        let sealed: Vec<u8> = row.try_get("sealed")?;
        let secrets: SealedSecrets =
            serde_json::from_slice(&self.keys.open(&sealed, id.as_bytes())?)
                .map_err(|_| UnsealError)?;
        Ok(TokenRecord {
            id,
            access_token: secrets.access_token.into(),
            refresh_token: secrets.refresh_token.map(Into::into),
            token_type: row.try_get("token_type")?,
            obtained_at: row.try_get("obtained_at")?,
            expires_at: row.try_get("expires_at")?,
            reference: row.try_get("ref")?,
            uuid: row.try_get("uuid")?,
            extra: secrets.extra,
        })
    }
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

fn sealed_secrets(token: &UserToken) -> Vec<u8> {
    serde_json::to_vec(&SealedSecrets {
        access_token: token.access_token.expose_secret().to_owned(),
        refresh_token: token
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        extra: token.extra.clone(),
    })
    .expect("strings and JSON values serialize")
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

//! The exchange of each code: claimed before MondiaPay is called, completed with its verdict.

use secrecy::ExposeSecret;

use super::pool::{Columns, on_pool};
use super::tokens::sealed_secrets;
use super::{Claim, ExchangeRow, ExchangeState, Owner, StoreError, TokenRecord, TokenStore};
use super::{new_token_id, now_unix};
use crate::crypto::CodeHash;
use crate::mondiapay::{UpstreamError, UserToken};

const CLAIM: &str = "INSERT INTO exchanges (code_hash, state, lease_until, attempt, ref, uuid, created_at, updated_at) \
     VALUES ($1, 'pending', $2, 1, $3, $4, $5, $5) \
     ON CONFLICT (code_hash) DO UPDATE SET state = 'pending', lease_until = excluded.lease_until, \
         attempt = exchanges.attempt + 1, updated_at = excluded.updated_at, \
         ref = COALESCE(exchanges.ref, excluded.ref), uuid = COALESCE(exchanges.uuid, excluded.uuid) \
     WHERE exchanges.state = 'failed' \
         OR (exchanges.state = 'pending' AND exchanges.lease_until <= excluded.updated_at) \
     RETURNING attempt";

impl TokenStore {
    /// Claims `code` for one exchange, atomically, also across replicas: a new code, a code
    /// whose last exchange got no usable answer, or a code whose claim outlived its lease (its
    /// process died). Anything else is `Taken`.
    pub async fn claim(
        &self,
        code: &CodeHash,
        owner: &Owner,
        lease_until: i64,
    ) -> Result<Claim, StoreError> {
        self.ensure_room()?;
        let now = now_unix();
        // An explicit transaction: with `RETURNING`, SQLite hands out the row before its
        // autocommit commits, and a failed commit would go unnoticed — and the code out.
        let attempt: Option<i64> = on_pool!(&self.writer, pool => {
            let mut tx = pool.begin().await?;
            let row = sqlx::query(CLAIM)
                .bind(code.as_str())
                .bind(lease_until)
                .bind(owner.reference.as_deref())
                .bind(owner.uuid.as_deref())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            let attempt = row.map(|row| row.int("attempt")).transpose()?;
            tx.commit().await?;
            attempt
        });
        if let Some(attempt) = attempt {
            // The claim is on disk before MondiaPay sees the code.
            self.durable().await?;
            return Ok(Claim::Claimed { attempt });
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
        let row = on_pool!(&self.pool, pool => {
            sqlx::query(
                "SELECT state, lease_until, token_id, error, message, http_status FROM exchanges \
                 WHERE code_hash = $1",
            )
            .bind(code.as_str())
            .fetch_optional(pool)
            .await?
            .map(|row| exchange_row(&row))
            .transpose()?
        });
        Ok(row)
    }

    /// Stores the token and marks the code succeeded, atomically: when this returns, both are
    /// durable. Success is final whatever happened to the claim meanwhile.
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
        // Taken before the row is visible: a deletion of it from then on keeps it out of the cache.
        let generation = self.cache.as_ref().map(|cache| cache.generation());
        // One statement: the trigger of migration 4 marks the exchange succeeded with it.
        on_pool!(&self.writer, pool => {
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
            .execute(pool)
            .await
            .map(drop)
        })?;
        self.durable().await?;
        let record = TokenRecord {
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
        };
        if let (Some(cache), Some(generation)) = (&self.cache, generation) {
            cache.put(&record, generation);
        }
        Ok(record)
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

    /// Only the claim that made the attempt may finish it: a claim taken over after its lease
    /// is not overwritten by the process that lost it.
    async fn finish(
        &self,
        code: &CodeHash,
        attempt: i64,
        state: ExchangeState,
        error: Option<&UpstreamError>,
    ) -> Result<(), StoreError> {
        let now = now_unix();
        on_pool!(&self.writer, pool => {
            sqlx::query(
                "UPDATE exchanges SET state = $3, lease_until = NULL, error = $4, message = $5, \
                     http_status = $6, updated_at = $7 \
                 WHERE code_hash = $1 AND attempt = $2 AND state = 'pending'",
            )
            .bind(code.as_str())
            .bind(attempt)
            .bind(state.as_str())
            .bind(error.map(|e| e.error.as_str()))
            .bind(error.and_then(|e| e.message.as_deref()))
            .bind(error.map(|e| i64::from(e.http_status)))
            .bind(now)
            .execute(pool)
            .await
            .map(drop)
        })?;
        self.durable().await
    }
}

fn exchange_row(row: &impl Columns) -> Result<ExchangeRow, sqlx::Error> {
    let error = row.optional_text("error")?;
    let http_status = row.optional_int("http_status")?;
    let message = row.optional_text("message")?;
    Ok(ExchangeRow {
        state: ExchangeState::parse(&row.text("state")?),
        lease_until: row.optional_int("lease_until")?,
        token_id: row.optional_text("token_id")?,
        rejection: error.map(|error| UpstreamError {
            http_status: u16::try_from(http_status.unwrap_or_default()).unwrap_or_default(),
            error,
            message,
        }),
    })
}

//! The exchange of each code: claimed before MondiaPay is called, completed with its verdict.

use sqlx::AssertSqlSafe;

use super::now_unix;

use super::pool::{Pool, on_pool};
use super::rows::{ClaimRow, ExchangeStateRow};
use super::{Claim, ExchangeRow, StoreError, TokenStore};
use crate::crypto::{CodeHash, random_id};
use crate::domain::{ExchangeState, Owner, TokenRecord, UpstreamError, UserToken};

/// The claim, with `$NOW` for the database's clock. The lease is taken and compared on that one
/// clock: replicas whose own clocks disagree cannot both hold a code. The first claim's `ref`
/// and `uuid` stay on the row, and are what a claim returns: a code's token belongs to the
/// request that first claimed the code, not to whoever replays it after a failed attempt.
macro_rules! claim {
    ($now:literal) => {
        concat!(
            "INSERT INTO exchanges (code_hash, state, lease_until, attempt, ref, uuid, created_at, updated_at) \
             VALUES ($1, 'pending', ", $now, " + $2, 1, $3, $4, ", $now, ", ", $now, ") \
             ON CONFLICT (code_hash) DO UPDATE SET state = 'pending', lease_until = excluded.lease_until, \
                 attempt = exchanges.attempt + 1, updated_at = excluded.updated_at \
             WHERE exchanges.state = 'failed' \
                 OR (exchanges.state = 'pending' AND exchanges.lease_until <= excluded.updated_at) \
             RETURNING attempt, ref, uuid"
        )
    };
}

const CLAIM_SQLITE: &str = claim!("unixepoch()");
const CLAIM_POSTGRES: &str = claim!("CAST(FLOOR(EXTRACT(EPOCH FROM now())) AS BIGINT)");

impl TokenStore {
    /// Claims `code` for one exchange, atomically, also across replicas: a new code, a code
    /// whose last exchange got no usable answer, or a code whose claim outlived its lease (its
    /// process died). Anything else is `Taken`. The claim holds for `lease_secs` seconds of
    /// the database's clock.
    pub async fn claim(
        &self,
        code: &CodeHash,
        owner: &Owner,
        lease_secs: i64,
    ) -> Result<Claim, StoreError> {
        self.ensure_room()?;
        let (code_hash, owner) = (code.clone(), owner.clone());
        let claimed = self
            .to_completion(move |store| async move {
                // An explicit transaction: with `RETURNING`, SQLite hands out the row before its
                // autocommit commits, and a failed commit would go unnoticed — and the code out.
                let claimed = on_pool!(store.writer(), pool => {
                    let sql = match store.writer() {
                        Pool::Sqlite(_) => CLAIM_SQLITE,
                        Pool::Postgres(_) => CLAIM_POSTGRES,
                    };
                    let mut tx = pool.begin().await?;
                    let row = sqlx::query_as::<_, ClaimRow>(sql)
                        .bind(code_hash.as_str())
                        .bind(lease_secs)
                        .bind(owner.reference.as_deref())
                        .bind(owner.uuid.as_deref())
                        .fetch_optional(&mut *tx)
                        .await?;
                    let claimed = row.map(|row| (row.attempt, Owner::from(row.owner)));
                    tx.commit().await?;
                    claimed
                });
                if claimed.is_some() {
                    // The claim is on disk before MondiaPay sees the code.
                    store.durable().await?;
                }
                Ok(claimed)
            })
            .await?;
        if let Some((attempt, owner)) = claimed {
            return Ok(Claim::Claimed { attempt, owner });
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
        let sql = "SELECT state, lease_until, token_id, error, http_status FROM exchanges \
                   WHERE code_hash = $1";
        let row = self
            .pool()
            .fetch_optional(sql.to_owned(), code.as_str())
            .await?;
        row.map(exchange_row).transpose()
    }

    /// Stores the token and marks the code succeeded, atomically: when this returns, both are
    /// durable. Success is final whatever happened to the claim meanwhile.
    pub async fn complete_success(
        &self,
        code: &CodeHash,
        owner: &Owner,
        token: &UserToken,
    ) -> Result<TokenRecord, StoreError> {
        self.insert_token(token, owner, code.as_str().to_owned())
            .await
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
        let claim = ClaimKey {
            table: ClaimTable::Exchanges,
            key: code.as_str().to_owned(),
            attempt,
        };
        // A pending exchange has no token: a token marks its exchange succeeded itself.
        self.finish_claim(claim, state.as_str(), None, error).await
    }

    /// Ends the claim `claim` in `state`, naming its token or MondiaPay's error, if the claim
    /// still holds: only the claim that made the attempt may finish it.
    pub(super) async fn finish_claim(
        &self,
        claim: ClaimKey,
        state: &'static str,
        token_id: Option<&str>,
        error: Option<&UpstreamError>,
    ) -> Result<(), StoreError> {
        let now = now_unix();
        let token_id = token_id.map(str::to_owned);
        // MondiaPay's error code and status only: its free-text `message` may carry anything
        // (even what was sent to it) and is never stored.
        let error_code = error.map(|e| e.error.clone());
        let http_status = error.map(|e| i64::from(e.http_status));
        let (table, key_column) = match claim.table {
            ClaimTable::Exchanges => ("exchanges", "code_hash"),
            ClaimTable::Renewals => ("renewals", "uuid"),
        };
        let sql = format!(
            "UPDATE {table} SET state = $3, lease_until = NULL, token_id = $4, error = $5, \
                 http_status = $6, updated_at = $7 \
             WHERE {key_column} = $1 AND attempt = $2 AND state = 'pending'"
        );
        self.to_completion(move |store| async move {
            on_pool!(store.writer(), pool => {
                sqlx::query(AssertSqlSafe(sql))
                    .bind(&claim.key)
                    .bind(claim.attempt)
                    .bind(state)
                    .bind(token_id.as_deref())
                    .bind(error_code.as_deref())
                    .bind(http_status)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(drop)
            })?;
            store.durable().await
        })
        .await
    }
}

/// The tables of leased claims: a code's exchange, a user's renewal.
#[derive(Debug, Clone, Copy)]
pub(super) enum ClaimTable {
    Exchanges,
    Renewals,
}

/// One claim: its table, its key there (a code's keyed hash, a uuid) and its attempt.
pub(super) struct ClaimKey {
    pub table: ClaimTable,
    pub key: String,
    pub attempt: i64,
}

fn exchange_row(row: ExchangeStateRow) -> Result<ExchangeRow, StoreError> {
    let http_status = row.http_status;
    Ok(ExchangeRow {
        state: ExchangeState::parse(&row.state)?,
        lease_until: row.lease_until,
        token_id: row.token_id,
        rejection: row.error.map(|error| UpstreamError {
            http_status: u16::try_from(http_status.unwrap_or_default()).unwrap_or_default(),
            error,
            message: None,
        }),
    })
}

/// `tok_` and 128 random bits, URL-safe: unguessable, so an id alone reveals nothing.
pub fn new_token_id() -> String {
    random_id("tok_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_are_unique_and_url_safe() {
        let (a, b) = (new_token_id(), new_token_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 22);
        assert!(
            a[4..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }
}

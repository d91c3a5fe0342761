//! The renewal of each user's token (`grant_type=user_credentials`): claimed per uuid before
//! MondiaPay is called, completed with the token stored or MondiaPay's verdict, which requests
//! that waited on the claim read.

use rusqlite::OptionalExtension;

use super::exchanges::{ClaimKey, ClaimTable};
use super::{Backend, StoreError, TokenStore, writer};
use crate::domain::{Owner, RenewalState, TokenRecord, UpstreamError, UserToken};

/// What a renewed token has in the `code_hash` column, which every token has: no code was spent
/// for it, and no code's keyed hash (hex) can read so, so no exchange is marked by it.
const NO_CODE: &str = "renewed";

/// The claim, with `$NOW` for the database's clock (see the exchanges' claim). A finished
/// renewal is claimed again only by a request that saw that very attempt (`$3`): one that saw
/// an earlier one takes the outcome of the attempt that ran while it waited. A pending claim
/// whose lease ran out (its process died) is anybody's.
macro_rules! claim {
    ($now:literal) => {
        concat!(
            "INSERT INTO renewals (uuid, state, lease_until, attempt, updated_at) \
             VALUES ($1, 'pending', ", $now, " + $2, 1, ", $now, ") \
             ON CONFLICT (uuid) DO UPDATE SET state = 'pending', lease_until = excluded.lease_until, \
                 attempt = renewals.attempt + 1, token_id = NULL, error = NULL, http_status = NULL, \
                 updated_at = excluded.updated_at \
             WHERE (renewals.state <> 'pending' AND renewals.attempt = $3) \
                 OR (renewals.state = 'pending' AND renewals.lease_until <= excluded.updated_at) \
             RETURNING attempt"
        )
    };
}

const CLAIM_SQLITE: &str = claim!("unixepoch()");
const CLAIM_POSTGRES: &str = claim!("CAST(FLOOR(EXTRACT(EPOCH FROM now())) AS BIGINT)");

/// Where a user's renewal stands.
#[derive(Debug, Clone)]
pub struct RenewalRow {
    pub state: RenewalState,
    pub attempt: i64,
    pub token_id: Option<String>,
    /// MondiaPay's error code and status, for `refused` and a `failed` whose credentials were
    /// refused.
    pub error: Option<UpstreamError>,
}

/// The result of trying to claim a user's renewal.
#[derive(Debug)]
pub enum RenewalClaim {
    /// This caller renews; `attempt` identifies the claim when it completes.
    Claimed { attempt: i64 },
    /// Someone else is renewing, or renewed after the attempt this caller saw.
    Taken(Option<RenewalRow>),
}

#[derive(sqlx::FromRow)]
struct Row {
    state: String,
    attempt: i64,
    token_id: Option<String>,
    error: Option<String>,
    http_status: Option<i64>,
}

impl TokenStore {
    /// Where `uuid`'s renewal stands, if it was ever renewed.
    pub async fn renewal(&self, uuid: &str) -> Result<Option<RenewalRow>, StoreError> {
        let sql =
            "SELECT state, attempt, token_id, error, http_status FROM renewals WHERE uuid = $1";
        let row: Option<Row> = self.pool().fetch_optional(sql.to_owned(), uuid).await?;
        row.map(|row| {
            Ok(RenewalRow {
                state: RenewalState::parse(&row.state)?,
                attempt: row.attempt,
                token_id: row.token_id,
                error: row.error.map(|error| UpstreamError {
                    http_status: u16::try_from(row.http_status.unwrap_or_default())
                        .unwrap_or_default(),
                    error,
                    message: None,
                }),
            })
        })
        .transpose()
    }

    /// Claims `uuid`'s renewal, atomically, also across replicas: a user never renewed, one
    /// whose last renewal is the attempt `seen` (0: none), or one whose claim outlived its lease.
    /// The claim holds for `lease_secs` seconds of the database's clock.
    pub async fn claim_renewal(
        &self,
        uuid: &str,
        seen: i64,
        lease_secs: i64,
    ) -> Result<RenewalClaim, StoreError> {
        self.ensure_room()?;
        let key = uuid.to_owned();
        // The claim is on disk before MondiaPay is asked: durable when the write returns.
        let claimed: Option<i64> = match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite
                    .writer
                    .write(move |db| {
                        // The row is handed out only once committed, as for a code's claim: the
                        // writer answers after its batch's commit.
                        let attempt = writer::prepare(db, CLAIM_SQLITE)?
                            .query_row(rusqlite::params![key, lease_secs, seen], |row| row.get(0))
                            .optional()?;
                        Ok(attempt)
                    })
                    .await?
            }
            Backend::Postgres(_) => {
                self.to_completion(move |store| async move {
                    let claimed = {
                        let pool = store.postgres();

                        // An explicit transaction, as for a code's claim: the row is handed out
                        // only once committed.
                        let mut tx = pool.begin().await?;
                        let attempt = sqlx::query_scalar(CLAIM_POSTGRES)
                            .bind(&key)
                            .bind(lease_secs)
                            .bind(seen)
                            .fetch_optional(&mut *tx)
                            .await?;
                        tx.commit().await?;
                        attempt
                    };
                    Ok(claimed)
                })
                .await?
            }
        };
        match claimed {
            Some(attempt) => Ok(RenewalClaim::Claimed { attempt }),
            None => Ok(RenewalClaim::Taken(self.renewal(uuid).await?)),
        }
    }

    /// Stores a renewed token under `owner`: durable when this returns. The claim is finished
    /// with it afterwards (`finish_renewal`); should the process die in between, the claim's
    /// lease runs out and the next claimer finds the token live.
    pub async fn store_renewed_token(
        &self,
        owner: &Owner,
        token: &UserToken,
    ) -> Result<TokenRecord, StoreError> {
        self.insert_token(token, owner, NO_CODE).await
    }

    /// Ends the claim `attempt` on `uuid`'s renewal: `succeeded` with the token it stored or
    /// found live, `refused` or `failed` with MondiaPay's error. Only the claim that made the
    /// attempt may finish it.
    pub async fn finish_renewal(
        &self,
        uuid: &str,
        attempt: i64,
        state: RenewalState,
        token_id: Option<&str>,
        error: Option<&UpstreamError>,
    ) -> Result<(), StoreError> {
        let claim = ClaimKey {
            table: ClaimTable::Renewals,
            key: uuid.to_owned(),
            attempt,
        };
        self.finish_claim(claim, state.as_str(), token_id, error)
            .await
    }
}

//! Callback outcomes: what each browser callback ended in, for the result page, replays, and
//! `GET /v1/callbacks`.
//!
//! Anyone can send a browser to the callback with `error=…&ref=…`, so failures are bounded: a
//! failed purchase or a rejected code is recorded once per (`ref`, outcome, error) — a repeat
//! refreshes it — and an `unavailable` outcome once per code, until a retry of the code replaces
//! it; a `ref` (or the group of callbacks without one) keeps its newest `MAX_FAILURES_PER_REF`
//! failures, and the store at most `max_failure_outcomes` in all. A `succeeded` outcome takes a
//! code MondiaPay exchanged: those are never pushed out by failures.

use base64::Engine;
use sha2::{Digest, Sha256};
use sqlx::AssertSqlSafe;

use super::pool::{Pool, on_pool};
use super::rows::{CallbackRow, ListedCallbackRow};
use super::{StoreError, TokenStore, now_unix};
use crate::crypto::{CodeHash, random_bytes};
use crate::domain::{CallbackOutcome, NewCallback, OutcomeKind, UnavailableCause, UnknownState};

/// At most this many `succeeded` outcomes are listed for one ref, newest first.
const MAX_LISTED_SUCCEEDED: i64 = 100;

/// Failure outcomes kept for one ref (and for the group of callbacks without a ref).
pub const MAX_FAILURES_PER_REF: i64 = 20;

/// The default of `store.max_failure_outcomes`: failure outcomes kept in all.
pub const DEFAULT_MAX_FAILURE_OUTCOMES: i64 = 10_000;

/// The cap on failure outcomes in all is enforced at every this many failures a process records
/// (and by every purge): each process adds fewer than this many between two enforcements. A
/// count of our own, so that no sender can steer which requests enforce it.
pub const TRIM_EVERY: u64 = 64;

/// What makes two successful callbacks the same one: the code's keyed hash. (A failure's key is
/// its `ref`, outcome and error, see `failure_key`; a replayed code that failed finds its verdict
/// in the exchanges, and its outcome again under that key.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayKey(String);

impl ReplayKey {
    /// A callback whose code is exchanged.
    pub fn exchange(code: &CodeHash) -> Self {
        Self(code.as_str().to_owned())
    }
}

/// The key of a failure outcome: one row per (`ref`, outcome, error). Hashed, so the unique
/// index holds short keys whatever the query carried; the prefix keeps it apart from code keys.
fn failure_key(new: &NewCallback) -> String {
    let identity = serde_json::to_vec(&(
        new.kind.as_str(),
        new.error.as_deref(),
        new.reference.as_deref(),
    ))
    .expect("strings serialize");
    format!(
        "failure:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(identity))
    )
}

impl TokenStore {
    /// Records an outcome and returns the one that stands.
    ///
    /// A `succeeded` or `unavailable` outcome is keyed by its code (`code_key`): a replay gets
    /// the first final outcome back (same id, same page) instead of recording another, and a
    /// final outcome replaces an `unavailable` one of its code. A failed purchase or a rejected
    /// code is keyed by (`ref`, outcome, error) — unless it replaces its code's `unavailable`
    /// outcome — and a repeat gets the recorded one back, refreshed. Failures beyond the bounds
    /// go, oldest first; the outcome recorded stays.
    pub async fn record_callback(
        &self,
        code_key: Option<&ReplayKey>,
        new: &NewCallback,
    ) -> Result<CallbackOutcome, StoreError> {
        let id = format!(
            "res_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<16>())
        );
        let now = now_unix();
        let failure = new.kind != OutcomeKind::Succeeded;
        let by_failure = matches!(
            new.kind,
            OutcomeKind::PurchaseFailed | OutcomeKind::CodeRejected
        );
        let code = code_key.map(|key| key.0.clone());
        let key = if by_failure {
            Some(failure_key(new))
        } else {
            code.clone()
        };
        let trim_all = failure
            && self
                .failures_recorded
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                % TRIM_EVERY
                == TRIM_EVERY - 1;
        let new = new.clone();
        let recorded = self
            .to_completion(move |store| async move {
                let record = format!(
                    "{RECORD} {} RETURNING {COLUMNS}",
                    if by_failure { ON_FAILURE } else { ON_CODE }
                );
                let finish = format!("{FINISH_UNAVAILABLE} RETURNING {COLUMNS}");
                let cap = store.max_failure_outcomes;
                // An explicit transaction, so that a failed commit is seen (see `claim`).
                let recorded = on_pool!(store.writer(), pool => {
                    let mut tx = pool.begin().await?;
                    let mut row = None;
                    if let (true, Some(code)) = (by_failure, &code) {
                        row = sqlx::query_as::<_, CallbackRow>(AssertSqlSafe(finish))
                            .bind(code)
                            .bind(new.kind.as_str())
                            .bind(new.cause.map(UnavailableCause::as_str))
                            .bind(new.error.as_deref())
                            .bind(now)
                            .fetch_optional(&mut *tx)
                            .await?;
                    }
                    if row.is_none() {
                        row = sqlx::query_as(AssertSqlSafe(record))
                            .bind(&id)
                            .bind(key.as_deref())
                            .bind(new.kind.as_str())
                            .bind(new.cause.map(UnavailableCause::as_str))
                            .bind(&new.request_id)
                            .bind(new.reference.as_deref())
                            .bind(new.uuid.as_deref())
                            .bind(new.status.as_deref())
                            .bind(new.error.as_deref())
                            .bind(new.token_id.as_deref())
                            .bind(now)
                            .fetch_optional(&mut *tx)
                            .await?;
                    }
                    let recorded = row.map(outcome).transpose()?;
                    if let (true, Some(kept)) = (failure, &recorded) {
                        // Older failures make room for the one just recorded.
                        let with_ref = kept.outcome.reference.is_some();
                        sqlx::query(AssertSqlSafe(trim_ref_sql(store.writer(), with_ref)))
                            .bind(kept.outcome.reference.as_deref())
                            .bind(&kept.id)
                            .bind(MAX_FAILURES_PER_REF - 1)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    recorded
                });
                store.durable().await?;
                if let (true, Some(kept)) = (trim_all, &recorded) {
                    // Apart from the outcome's own transaction: trims of two replicas may
                    // deadlock, and that must not cost a user the outcome just recorded.
                    let trimmed = on_pool!(store.writer(), pool => {
                        sqlx::query(AssertSqlSafe(trim_failures_sql(store.writer())))
                            .bind(cap - 1)
                            .bind(&kept.id)
                            .execute(pool)
                            .await
                            .map(drop)
                    });
                    if let Err(error) = trimmed {
                        tracing::warn!(%error, "failure outcomes over store.max_failure_outcomes not trimmed this time");
                    }
                }
                Ok(recorded)
            })
            .await?;
        match (recorded, code_key) {
            (Some(recorded), _) => Ok(recorded),
            // The outcome for this code was already final: that one stands.
            (None, Some(key)) => self
                .callback_for(key)
                .await?
                .ok_or(StoreError::OutcomeMissing),
            (None, None) => Err(StoreError::OutcomeMissing),
        }
    }

    /// The outcome recorded for a code, if any.
    pub async fn callback_for(
        &self,
        key: &ReplayKey,
    ) -> Result<Option<CallbackOutcome>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM callbacks WHERE replay_key = $1");
        self.pool()
            .fetch_optional(sql, &key.0)
            .await?
            .map(outcome)
            .transpose()
    }

    /// The outcome a result page shows.
    pub async fn callback(&self, id: &str) -> Result<Option<CallbackOutcome>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM callbacks WHERE id = $1");
        self.pool()
            .fetch_optional(sql, id)
            .await?
            .map(outcome)
            .transpose()
    }

    /// The outcomes recorded for a merchant reference, newest first: its newest
    /// `MAX_LISTED_SUCCEEDED` successes and its failures (at most `MAX_FAILURES_PER_REF`), so
    /// no number of failures can push a success out of the list.
    pub async fn callbacks_for_ref(
        &self,
        reference: &str,
    ) -> Result<Vec<CallbackOutcome>, StoreError> {
        let seq = self.pool().newest_first();
        let mut listed = Vec::new();
        for (outcomes, limit) in [
            ("outcome = 'succeeded'", MAX_LISTED_SUCCEEDED),
            ("outcome <> 'succeeded'", MAX_FAILURES_PER_REF),
        ] {
            let sql = format!(
                "SELECT {COLUMNS}, {seq} AS seq FROM callbacks WHERE ref = $1 AND {outcomes} \
                 ORDER BY created_at DESC, {seq} DESC LIMIT $2"
            );
            let rows: Vec<ListedCallbackRow> = on_pool!(self.pool(), pool => {
                sqlx::query_as(AssertSqlSafe(sql))
                    .bind(reference)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            });
            for row in rows {
                listed.push((outcome(row.callback)?, row.seq));
            }
        }
        listed.sort_by_key(|(outcome, seq)| std::cmp::Reverse((outcome.created_at, *seq)));
        Ok(listed.into_iter().map(|(outcome, _)| outcome).collect())
    }
}

const COLUMNS: &str =
    "id, outcome, cause, request_id, ref, uuid, status, error, token_id, created_at";

const RECORD: &str = "INSERT INTO callbacks (id, replay_key, outcome, cause, request_id, ref, uuid, status, \
         error, token_id, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)";

/// A code's outcome is final once it is not `unavailable`.
const ON_CODE: &str = "ON CONFLICT (replay_key) DO UPDATE SET outcome = excluded.outcome, \
         cause = excluded.cause, error = excluded.error, token_id = excluded.token_id, \
         updated_at = excluded.updated_at \
     WHERE callbacks.outcome = 'unavailable'";

/// A code's `unavailable` outcome (`$1`) becomes its final one: the same result page, now
/// saying what happened.
const FINISH_UNAVAILABLE: &str = "UPDATE callbacks SET outcome = $2, cause = $3, error = $4, \
         token_id = NULL, updated_at = $5 \
     WHERE replay_key = $1 AND outcome = 'unavailable'";

/// A failure seen again is the same outcome, last seen now.
const ON_FAILURE: &str = "ON CONFLICT (replay_key) DO UPDATE SET updated_at = excluded.updated_at";

/// Deletes a ref's failures (`$1`; without a ref, those without one) beyond the newest `$3`,
/// sparing `$2`.
fn trim_ref_sql(pool: &Pool, with_ref: bool) -> String {
    let seq = pool.newest_first();
    // `ref IS NULL` rather than a null-safe comparison, which PostgreSQL cannot look up in the
    // index; `$1 IS NULL` keeps the parameter in the statement.
    let of_ref = if with_ref {
        "ref = $1"
    } else {
        "ref IS NULL AND $1 IS NULL"
    };
    format!(
        "DELETE FROM callbacks WHERE {of_ref} AND outcome <> 'succeeded' AND id <> $2 \
         AND id NOT IN (SELECT id FROM callbacks WHERE {of_ref} AND outcome <> 'succeeded' \
             AND id <> $2 ORDER BY updated_at DESC, {seq} DESC LIMIT $3)"
    )
}

/// Deletes failures beyond the newest `$1` of all, sparing `$2`.
pub(super) fn trim_failures_sql(pool: &Pool) -> String {
    let seq = pool.newest_first();
    format!(
        "DELETE FROM callbacks WHERE outcome <> 'succeeded' AND id <> $2 \
         AND id NOT IN (SELECT id FROM callbacks WHERE outcome <> 'succeeded' AND id <> $2 \
             ORDER BY updated_at DESC, {seq} DESC LIMIT $1)"
    )
}

fn outcome(row: CallbackRow) -> Result<CallbackOutcome, StoreError> {
    let kind = OutcomeKind::parse(&row.outcome)?;
    let cause = row
        .cause
        .as_deref()
        .map(UnavailableCause::parse)
        .transpose()?;
    // Every `unavailable` outcome is written with its cause (migration 6 gave old rows theirs):
    // one without is damaged, not a guess at 502.
    if kind == OutcomeKind::Unavailable && cause.is_none() {
        return Err(UnknownState::new("cause of an unavailable outcome", "").into());
    }
    Ok(CallbackOutcome {
        id: row.id,
        created_at: row.created_at,
        outcome: NewCallback {
            kind,
            cause,
            request_id: row.request_id,
            reference: row.owner.reference,
            uuid: row.owner.uuid,
            status: row.status,
            error: row.error,
            token_id: row.token_id,
        },
    })
}

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
use rusqlite::OptionalExtension;
use sha2::{Digest, Sha256};
use sqlx::AssertSqlSafe;

use super::pool::{Pool, on_pool};
use super::rows::sqlite as sqlite_rows;
use super::rows::{CallbackRow, ListedCallbackRow};
use super::writer;
use super::{Backend, StoreError, TokenStore, now_unix};
use crate::crypto::{CodeHash, time_ordered_id};
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

/// What makes two successful callbacks the same one: their code. Its outcome's `replay_key` is
/// the one its exchange names (`outcome_key`, see `code_key!`), or the code's keyed hash while the
/// code has no exchange. (A failure's key is its `ref`, outcome and error, see `failure_key`; a
/// replayed code that failed finds its verdict in the exchanges, and its outcome again under that
/// key.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayKey(String);

impl ReplayKey {
    /// A callback whose code is exchanged.
    pub fn exchange(code: &CodeHash) -> Self {
        Self(code.as_str().to_owned())
    }
}

/// The `replay_key` of the outcome of the code whose keyed hash is the parameter `$p`: the key
/// its exchange names, or the hash itself while the code has no exchange. Through the exchange,
/// whose row the callback's writes touch anyway, an outcome's key on SQLite is time-ordered:
/// recording one appends to the replay index instead of writing a page at a random place in it.
/// (On PostgreSQL the exchange names the code's hash, see `CLAIM_POSTGRES`.)
macro_rules! code_key {
    ($p:literal) => {
        concat!(
            "COALESCE((SELECT outcome_key FROM exchanges WHERE code_hash = ",
            $p,
            "), ",
            $p,
            ")"
        )
    };
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
        let recording = self.recording(code_key, new);
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite
                    .writer
                    .write(move |db| record_on_sqlite(db, &recording))
                    .await
            }
            Backend::Postgres(_) => {
                let recorded = self
                    .to_completion(
                        move |store| async move { store.record_on_postgres(recording).await },
                    )
                    .await?;
                match (recorded, code_key) {
                    (Some(recorded), _) => Ok(recorded),
                    // The outcome for this code was already final: that one stands.
                    (None, Some(key)) => self.standing_outcome(key).await,
                    (None, None) => Err(StoreError::OutcomeMissing),
                }
            }
        }
    }

    /// What recording `new` writes, decided before the write: its id, time and key, and whether
    /// it enforces the cap on failures in all.
    pub(super) fn recording(&self, code_key: Option<&ReplayKey>, new: &NewCallback) -> Recording {
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
        Recording {
            id: time_ordered_id("res_"),
            now: now_unix(),
            code,
            key,
            failure,
            by_failure,
            trim_all,
            cap: self.max_failure_outcomes,
            new: new.clone(),
        }
    }

    /// `record_callback` on PostgreSQL, in its own transaction: `None` when the code's outcome
    /// was final already.
    async fn record_on_postgres(
        &self,
        recording: Recording,
    ) -> Result<Option<CallbackOutcome>, StoreError> {
        let pool = self.postgres();
        // An explicit transaction, so that a failed commit is seen (see `claim`).
        let mut tx = pool.begin().await?;
        let recorded = record_in_postgres(&mut tx, &recording).await?;
        tx.commit().await?;
        trim_all_on_postgres(pool, &recording, recorded.as_ref()).await;
        Ok(recorded)
    }

    /// The outcome recorded for a code whose recording found it final already: a fault if none.
    pub(super) async fn standing_outcome(
        &self,
        key: &ReplayKey,
    ) -> Result<CallbackOutcome, StoreError> {
        self.callback_for(key)
            .await?
            .ok_or(StoreError::OutcomeMissing)
    }

    /// The outcome recorded for a code, if any.
    pub async fn callback_for(
        &self,
        key: &ReplayKey,
    ) -> Result<Option<CallbackOutcome>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM callbacks WHERE replay_key = {}",
            code_key!("$1")
        );
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

/// Records an outcome under the key `$2`: a failure's key, or a code's hash (see `code_key!`).
macro_rules! record {
    ($key:expr) => {
        concat!(
            "INSERT INTO callbacks (id, replay_key, outcome, cause, request_id, ref, uuid, status, \
                 error, token_id, created_at, updated_at) \
             VALUES ($1, ",
            $key,
            ", $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)"
        )
    };
}

/// A code's outcome is final once it is not `unavailable`.
const RECORD_FOR_CODE: &str = concat!(
    record!(code_key!("$2")),
    " ON CONFLICT (replay_key) DO UPDATE SET outcome = excluded.outcome, \
         cause = excluded.cause, error = excluded.error, token_id = excluded.token_id, \
         updated_at = excluded.updated_at \
     WHERE callbacks.outcome = 'unavailable'"
);

/// A code's `unavailable` outcome (code `$1`) becomes its final one: the same result page, now
/// saying what happened.
const FINISH_UNAVAILABLE: &str = concat!(
    "UPDATE callbacks SET outcome = $2, cause = $3, error = $4, token_id = NULL, updated_at = $5 \
     WHERE outcome = 'unavailable' AND replay_key = ",
    code_key!("$1")
);

/// A failure seen again is the same outcome, last seen now.
const RECORD_FAILURE: &str = concat!(
    record!("$2"),
    " ON CONFLICT (replay_key) DO UPDATE SET updated_at = excluded.updated_at"
);

/// The statement that records an outcome and returns the one that stands.
fn record_sql(by_failure: bool) -> String {
    let record = if by_failure {
        RECORD_FAILURE
    } else {
        RECORD_FOR_CODE
    };
    format!("{record} RETURNING {COLUMNS}")
}

/// Deletes a ref's failures (`$1`; without a ref, those without one) beyond the newest `$3`,
/// sparing `$2`.
fn trim_ref_sql(seq: &str, with_ref: bool) -> String {
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
    trim_failures_sql_by(pool.newest_first())
}

/// `trim_failures_sql`, for the table's order column `seq`.
fn trim_failures_sql_by(seq: &str) -> String {
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

/// SQLite's order of insertion (see `Pool::newest_first`).
const SQLITE_ORDER: &str = "rowid";
/// PostgreSQL's (its identity column).
const POSTGRES_ORDER: &str = "seq";

/// One outcome to record, everything about it decided before the write.
pub(super) struct Recording {
    id: String,
    now: i64,
    /// The code's keyed hash, when the callback carried a code.
    code: Option<String>,
    /// The row's `replay_key`: the failure's (see `failure_key`), or the code's hash, which the
    /// statement turns into the key its exchange names (see `code_key!`).
    key: Option<String>,
    failure: bool,
    by_failure: bool,
    /// Whether this recording enforces `store.max_failure_outcomes` (every `TRIM_EVERY`th).
    trim_all: bool,
    cap: i64,
    new: NewCallback,
}

/// `record_callback` on SQLite's writer thread: one write, returning the outcome that stands.
pub(super) fn record_on_sqlite(
    db: &rusqlite::Connection,
    recording: &Recording,
) -> Result<CallbackOutcome, StoreError> {
    let Recording {
        id,
        now,
        code,
        key,
        failure,
        by_failure,
        trim_all,
        cap,
        new,
    } = recording;
    let mut row = None;
    if let (true, Some(code)) = (by_failure, code) {
        let finish = format!("{FINISH_UNAVAILABLE} RETURNING {COLUMNS}");
        row = writer::prepare(db, &finish)?
            .query_row(
                rusqlite::params![
                    code,
                    new.kind.as_str(),
                    new.cause.map(UnavailableCause::as_str),
                    new.error,
                    now
                ],
                sqlite_rows::callback,
            )
            .optional()?;
    }
    if row.is_none() {
        row = writer::prepare(db, &record_sql(*by_failure))?
            .query_row(
                rusqlite::params![
                    id,
                    key,
                    new.kind.as_str(),
                    new.cause.map(UnavailableCause::as_str),
                    new.request_id,
                    new.reference,
                    new.uuid,
                    new.status,
                    new.error,
                    new.token_id,
                    now
                ],
                sqlite_rows::callback,
            )
            .optional()?;
    }
    let recorded = match (row, code) {
        (Some(row), _) => outcome(row)?,
        // The outcome for this code was already final: that one stands.
        (None, Some(code)) => {
            outcome_for_code_on_sqlite(db, code)?.ok_or(StoreError::OutcomeMissing)?
        }
        (None, None) => return Err(StoreError::OutcomeMissing),
    };
    if *failure {
        // Older failures make room for the one just recorded.
        let reference = recorded.outcome.reference.as_deref();
        writer::prepare(db, &trim_ref_sql(SQLITE_ORDER, reference.is_some()))?.execute(
            rusqlite::params![reference, recorded.id, MAX_FAILURES_PER_REF - 1],
        )?;
        if *trim_all {
            writer::prepare(db, &trim_failures_sql_by(SQLITE_ORDER))?
                .execute(rusqlite::params![cap - 1, recorded.id])?;
        }
    }
    Ok(recorded)
}

/// The outcome recorded for the code `code` (its keyed hash), read on SQLite's writer thread.
pub(super) fn outcome_for_code_on_sqlite(
    db: &rusqlite::Connection,
    code: &str,
) -> Result<Option<CallbackOutcome>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM callbacks WHERE replay_key = {}",
        code_key!("$1")
    );
    writer::prepare(db, &sql)?
        .query_row([code], sqlite_rows::callback)
        .optional()?
        .map(outcome)
        .transpose()
}

/// `record_callback`'s statements on PostgreSQL, inside the caller's transaction: `None` when the
/// code's outcome was final already.
pub(super) async fn record_in_postgres(
    tx: &mut sqlx::PgConnection,
    recording: &Recording,
) -> Result<Option<CallbackOutcome>, StoreError> {
    let Recording {
        id,
        now,
        code,
        key,
        failure,
        by_failure,
        new,
        ..
    } = recording;
    let mut row = None;
    if let (true, Some(code)) = (by_failure, code) {
        let finish = format!("{FINISH_UNAVAILABLE} RETURNING {COLUMNS}");
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
        row = sqlx::query_as(AssertSqlSafe(record_sql(*by_failure)))
            .bind(id)
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
        sqlx::query(AssertSqlSafe(trim_ref_sql(POSTGRES_ORDER, with_ref)))
            .bind(kept.outcome.reference.as_deref())
            .bind(&kept.id)
            .bind(MAX_FAILURES_PER_REF - 1)
            .execute(&mut *tx)
            .await?;
    }
    Ok(recorded)
}

/// Enforces `store.max_failure_outcomes` when `recording` is one that does, apart from the
/// outcome's own transaction: trims of two replicas may deadlock, and that must not cost a user
/// the outcome just recorded.
pub(super) async fn trim_all_on_postgres(
    pool: &sqlx::PgPool,
    recording: &Recording,
    recorded: Option<&CallbackOutcome>,
) {
    let (true, Some(kept)) = (recording.trim_all, recorded) else {
        return;
    };
    let trimmed = sqlx::query(AssertSqlSafe(trim_failures_sql_by(POSTGRES_ORDER)))
        .bind(recording.cap - 1)
        .bind(&kept.id)
        .execute(pool)
        .await;
    if let Err(error) = trimmed {
        tracing::warn!(%error, "failure outcomes over store.max_failure_outcomes not trimmed this time");
    }
}

//! Callback outcomes: what each browser callback ended in, for the result page, replays, and
//! `GET /v1/callbacks`.

use base64::Engine;
use serde::ser::{Serialize, SerializeMap, Serializer};
use sqlx::AssertSqlSafe;

use super::pool::{Columns, on_pool};
use super::{StoreError, TokenStore, now_unix, rfc3339};
use crate::crypto::{CodeHash, random_bytes};

/// At most this many outcomes are listed for one ref.
const MAX_LISTED: i64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Succeeded,
    /// MondiaPay's redirect said the purchase failed.
    PurchaseFailed,
    /// MondiaPay rejected the code.
    CodeRejected,
    /// MondiaPay gave no usable answer; a later callback with the same code may try again.
    Unavailable,
}

impl OutcomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::PurchaseFailed => "purchase_failed",
            Self::CodeRejected => "code_rejected",
            Self::Unavailable => "unavailable",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "succeeded" => Self::Succeeded,
            "purchase_failed" => Self::PurchaseFailed,
            "code_rejected" => Self::CodeRejected,
            _ => Self::Unavailable,
        }
    }
}

/// What makes two callbacks the same one: the code's keyed hash, with failed purchases apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayKey(String);

impl ReplayKey {
    /// A callback whose code is exchanged.
    pub fn exchange(code: &CodeHash) -> Self {
        Self(code.as_str().to_owned())
    }

    /// A callback that reported a failed purchase with a code. Kept apart from the exchange key
    /// so that a forged failure carrying someone's code cannot block that code's real callback.
    pub fn failed_purchase(code: &CodeHash) -> Self {
        Self(format!("failed:{}", code.as_str()))
    }
}

/// A callback's outcome, as about to be recorded.
#[derive(Debug, Clone)]
pub struct NewCallback {
    pub kind: OutcomeKind,
    /// The HTTP status of the result page.
    pub page_status: u16,
    pub request_id: String,
    pub reference: Option<String>,
    pub uuid: Option<String>,
    /// MondiaPay's `status` redirect parameter.
    pub status: Option<String>,
    /// MondiaPay's `error` redirect parameter, or its error code when it rejected the code.
    pub error: Option<String>,
    pub message: Option<String>,
    pub token_id: Option<String>,
}

/// A recorded callback outcome; `id` names its result page.
#[derive(Debug, Clone)]
pub struct CallbackOutcome {
    pub id: String,
    pub created_at: i64,
    pub outcome: NewCallback,
}

impl TokenStore {
    /// Records an outcome. With a replay key, the first final outcome stays: a replay gets it
    /// back (same id, same page) instead of recording another.
    pub async fn record_callback(
        &self,
        key: Option<&ReplayKey>,
        new: &NewCallback,
    ) -> Result<CallbackOutcome, StoreError> {
        let id = format!(
            "res_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<16>())
        );
        let now = now_unix();
        // An explicit transaction, so that a failed commit is seen (see `TokenStore::claim`).
        let recorded = on_pool!(&self.writer, pool => {
            let mut tx = pool.begin().await?;
            let recorded = sqlx::query(RECORD)
                .bind(&id)
                .bind(key.map(|key| key.0.as_str()))
                .bind(new.kind.as_str())
                .bind(i64::from(new.page_status))
                .bind(&new.request_id)
                .bind(new.reference.as_deref())
                .bind(new.uuid.as_deref())
                .bind(new.status.as_deref())
                .bind(new.error.as_deref())
                .bind(new.message.as_deref())
                .bind(new.token_id.as_deref())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| outcome(&row))
                .transpose()?;
            tx.commit().await?;
            recorded
        });
        self.durable().await?;
        match (recorded, key) {
            (Some(recorded), _) => Ok(recorded),
            // The outcome for this key was already final: that one stands.
            (None, Some(key)) => self
                .callback_for(key)
                .await?
                .ok_or(StoreError::Database(sqlx::Error::RowNotFound)),
            (None, None) => Err(StoreError::Database(sqlx::Error::RowNotFound)),
        }
    }

    pub async fn callback_for(
        &self,
        key: &ReplayKey,
    ) -> Result<Option<CallbackOutcome>, StoreError> {
        self.callback_where("replay_key", &key.0).await
    }

    pub async fn callback(&self, id: &str) -> Result<Option<CallbackOutcome>, StoreError> {
        self.callback_where("id", id).await
    }

    async fn callback_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<CallbackOutcome>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM callbacks WHERE {column} = $1");
        let found = on_pool!(&self.pool, pool => {
            sqlx::query(AssertSqlSafe(sql))
                .bind(value)
                .fetch_optional(pool)
                .await?
                .map(|row| outcome(&row))
                .transpose()?
        });
        Ok(found)
    }

    /// The outcomes recorded for a merchant reference, newest first.
    pub async fn callbacks_for_ref(
        &self,
        reference: &str,
    ) -> Result<Vec<CallbackOutcome>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM callbacks WHERE ref = $1 ORDER BY created_at DESC, {} DESC LIMIT $2",
            self.pool.newest_first()
        );
        let listed = on_pool!(&self.pool, pool => {
            sqlx::query(AssertSqlSafe(sql))
                .bind(reference)
                .bind(MAX_LISTED)
                .fetch_all(pool)
                .await?
                .iter()
                .map(outcome)
                .collect::<Result<Vec<_>, _>>()?
        });
        Ok(listed)
    }
}

const COLUMNS: &str =
    "id, outcome, page_status, request_id, ref, uuid, status, error, message, token_id, created_at";

const RECORD: &str = "INSERT INTO callbacks (id, replay_key, outcome, page_status, request_id, ref, uuid, status, \
         error, message, token_id, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
     ON CONFLICT (replay_key) DO UPDATE SET outcome = excluded.outcome, page_status = excluded.page_status, \
         error = excluded.error, message = excluded.message, token_id = excluded.token_id, \
         updated_at = excluded.updated_at \
     WHERE callbacks.outcome = 'unavailable' \
     RETURNING id, outcome, page_status, request_id, ref, uuid, status, error, message, token_id, created_at";

fn outcome(row: &impl Columns) -> Result<CallbackOutcome, sqlx::Error> {
    let page_status = row.int("page_status")?;
    Ok(CallbackOutcome {
        id: row.text("id")?,
        created_at: row.int("created_at")?,
        outcome: NewCallback {
            kind: OutcomeKind::parse(&row.text("outcome")?),
            page_status: u16::try_from(page_status).unwrap_or(500),
            request_id: row.text("request_id")?,
            reference: row.optional_text("ref")?,
            uuid: row.optional_text("uuid")?,
            status: row.optional_text("status")?,
            error: row.optional_text("error")?,
            message: row.optional_text("message")?,
            token_id: row.optional_text("token_id")?,
        },
    })
}

/// The shape `GET /v1/callbacks` lists.
impl Serialize for CallbackOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let o = &self.outcome;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("time", &rfc3339(self.created_at))?;
        map.serialize_entry("outcome", o.kind.as_str())?;
        map.serialize_entry("mondiapay_error", &o.error)?;
        map.serialize_entry("mondiapay_status", &o.status)?;
        map.serialize_entry("mondiapay_message", &o.message)?;
        map.serialize_entry("ref", &o.reference)?;
        map.serialize_entry("uuid", &o.uuid)?;
        map.serialize_entry("token_id", &o.token_id)?;
        map.serialize_entry("request_id", &o.request_id)?;
        map.end()
    }
}

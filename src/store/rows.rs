//! The rows the store reads, column by column as the tables name them, decoded the same way from
//! either database (`#[derive(sqlx::FromRow)]`, through `sqlx::query_as`). Each becomes a domain
//! value where it is queried.

use crate::domain::Owner;

/// `ref` and `uuid`: whom a token, a claim or a callback belongs to, as the caller named them.
#[derive(sqlx::FromRow)]
pub(super) struct OwnerColumns {
    #[sqlx(rename = "ref")]
    pub reference: Option<String>,
    pub uuid: Option<String>,
}

impl From<OwnerColumns> for Owner {
    fn from(columns: OwnerColumns) -> Self {
        Self {
            reference: columns.reference,
            uuid: columns.uuid,
        }
    }
}

/// `tokens`: the sealed secrets and the plain metadata of one token.
#[derive(sqlx::FromRow)]
pub(super) struct TokenRow {
    pub id: String,
    pub sealed: Vec<u8>,
    pub token_type: String,
    pub obtained_at: i64,
    pub expires_at: i64,
    #[sqlx(flatten)]
    pub owner: OwnerColumns,
}

/// `exchanges`: where a code's exchange stands.
#[derive(sqlx::FromRow)]
pub(super) struct ExchangeStateRow {
    pub state: String,
    pub lease_until: Option<i64>,
    pub token_id: Option<String>,
    pub error: Option<String>,
    pub http_status: Option<i64>,
}

/// What a claim returns: its attempt and the code's owner.
#[derive(sqlx::FromRow)]
pub(super) struct ClaimRow {
    pub attempt: i64,
    #[sqlx(flatten)]
    pub owner: OwnerColumns,
}

/// `callbacks`: one recorded callback outcome.
#[derive(sqlx::FromRow)]
pub(super) struct CallbackRow {
    pub id: String,
    pub created_at: i64,
    pub outcome: String,
    pub cause: Option<String>,
    pub request_id: String,
    #[sqlx(flatten)]
    pub owner: OwnerColumns,
    pub status: Option<String>,
    pub error: Option<String>,
    pub token_id: Option<String>,
}

/// A callback outcome as listed, with its place in the order of insertion.
#[derive(sqlx::FromRow)]
pub(super) struct ListedCallbackRow {
    #[sqlx(flatten)]
    pub callback: CallbackRow,
    pub seq: i64,
}

/// The same rows as SQLite's writer thread reads them (rusqlite), by the same column names.
pub(super) mod sqlite {
    use rusqlite::{Result, Row};

    use super::{CallbackRow, ClaimRow, ExchangeStateRow, OwnerColumns};

    fn owner(row: &Row) -> Result<OwnerColumns> {
        Ok(OwnerColumns {
            reference: row.get("ref")?,
            uuid: row.get("uuid")?,
        })
    }

    pub fn claim(row: &Row) -> Result<ClaimRow> {
        Ok(ClaimRow {
            attempt: row.get("attempt")?,
            owner: owner(row)?,
        })
    }

    pub fn exchange_state(row: &Row) -> Result<ExchangeStateRow> {
        Ok(ExchangeStateRow {
            state: row.get("state")?,
            lease_until: row.get("lease_until")?,
            token_id: row.get("token_id")?,
            error: row.get("error")?,
            http_status: row.get("http_status")?,
        })
    }

    pub fn callback(row: &Row) -> Result<CallbackRow> {
        Ok(CallbackRow {
            id: row.get("id")?,
            created_at: row.get("created_at")?,
            outcome: row.get("outcome")?,
            cause: row.get("cause")?,
            request_id: row.get("request_id")?,
            owner: owner(row)?,
            status: row.get("status")?,
            error: row.get("error")?,
            token_id: row.get("token_id")?,
        })
    }
}

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

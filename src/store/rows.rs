//! The rows the store reads, column by column as the tables name them, decoded the same way from
//! either database (`#[derive(sqlx::FromRow)]`). Each becomes a domain value where it is queried.

/// `tokens`: the sealed secrets and the plain metadata of one token.
#[derive(sqlx::FromRow)]
pub(super) struct TokenRow {
    pub id: String,
    pub sealed: Vec<u8>,
    pub token_type: String,
    pub obtained_at: i64,
    pub expires_at: i64,
    #[sqlx(rename = "ref")]
    pub reference: Option<String>,
    pub uuid: Option<String>,
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
    #[sqlx(rename = "ref")]
    pub reference: Option<String>,
    pub uuid: Option<String>,
}

/// `callbacks`: one recorded callback outcome.
#[derive(sqlx::FromRow)]
pub(super) struct CallbackRow {
    pub id: String,
    pub created_at: i64,
    pub outcome: String,
    pub cause: Option<String>,
    pub request_id: String,
    #[sqlx(rename = "ref")]
    pub reference: Option<String>,
    pub uuid: Option<String>,
    pub status: Option<String>,
    pub error: Option<String>,
    pub token_id: Option<String>,
}

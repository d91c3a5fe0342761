//! The token routes: exchange a code, look a token up by id, ref or uuid, delete it.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, IntoResponses, ToSchema};

use super::problem::ApiError;
use crate::domain::{Code, MAX_LABEL_CHARS, Owner, TokenRecord, is_acceptable_label};
use crate::exchange::Renewer;
use crate::http::state::AppState;
use crate::store::{OwnerColumn, TokenStore};
use crate::subscriptions::renew_for;

/// `Json` whose rejections answer in problem+json. As an answer, it is serialized into one
/// buffer sized for a token record (axum's `Json` starts at 128 bytes and grows twice for one).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// A token record's answer is about 440 bytes with a refresh token (the benchmark's); the rest
/// leaves room for a longer token or a few unknown fields of MondiaPay's answer.
const ANSWER_BYTES: usize = 640;

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(ANSWER_BYTES);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body,
            )
                .into_response(),
            Err(error) => {
                tracing::error!(%error, "an answer could not be serialized");
                ApiError::Refused(StatusCode::INTERNAL_SERVER_ERROR).into_response()
            }
        }
    }
}

/// `Query` whose rejections answer in problem+json.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    /// The single-use authorization code from MondiaPay's redirect; it must also start with
    /// `mondiapay.code_prefix` when one is configured.
    #[schema(pattern = "^[A-Za-z0-9._~-]{1,512}$")]
    code: String,
    /// The merchant reference (order id), at most 256 printable characters; empty or null
    /// means none.
    #[serde(rename = "ref")]
    #[schema(max_length = 256)]
    reference: Option<String>,
    /// MondiaPay's user uuid, at most 256 printable characters; empty or null means none.
    #[schema(max_length = 256)]
    uuid: Option<String>,
}

/// Exchange an authorization code for a user token, exactly once
///
/// The same code again returns the same record without a second call to MondiaPay. A code
/// MondiaPay rejected stays rejected (the same `422` again, no call). `502`, `503` and `504`
/// leave the code usable: submit it again later.
#[utoipa::path(
    post, path = "/v1/exchange", tag = "tokens", operation_id = "exchange",
    request_body = ExchangeRequest,
    responses(
        (status = 200, body = TokenRecord, description = "The token record for this code (new, or the one stored by an earlier exchange of it)."),
        (status = 400, description = "Malformed code (empty, wrong prefix, characters outside `A-Z a-z 0-9 . _ ~ -`, over 512 bytes), broken JSON, unknown fields, or a `ref`/`uuid` over 256 printable characters (`bad-request`)."),
        (status = 408, description = "Over `internal.request_timeout_secs` (`request-timeout`); an exchange under way still completes and is stored, so the same code again returns its record."),
        (status = 410, description = "The code's token has expired or was deleted (`token-gone`)."),
        (status = 413, description = "The body is over 16 KiB (`payload-too-large`)."),
        (status = 415, description = "The body is not JSON: `Content-Type: application/json` is missing (`unsupported-media-type`)."),
        (status = 422, description = "MondiaPay rejected the code (`code-rejected`); `mondiapay_error` carries MondiaPay's error code and `detail` a fixed sentence for it, never MondiaPay's own text. Final for this code."),
        (status = 500, description = "The exchange stopped unexpectedly (`internal`)."),
        (status = 502, description = "MondiaPay refused this service's client credentials (`credentials-rejected`) or gave no usable answer (`upstream-unavailable`): the code was not used up. Or MondiaPay answered 2xx without a usable token (`no-token-in-answer`): the code is spent, final for this code."),
        (status = 503, description = "The store is unavailable or its disk is nearly full (`store-unavailable`; the code was not sent), another exchange of this code is under way (`exchange-in-progress`), or too many exchanges are under way (`exchange-capacity`). The code was not used up."),
        (status = 504, description = "MondiaPay did not answer in time (`upstream-timeout`). The code was not used up."),
    ),
)]
pub async fn exchange(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ExchangeRequest>,
) -> Result<ApiJson<TokenRecord>, ApiError> {
    let code = Code::parse(&body.code, &state.code_prefix)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let owner = Owner {
        reference: label("ref", body.reference)?,
        uuid: label("uuid", body.uuid)?,
    };
    Ok(ApiJson(state.exchanger.exchange(code, owner).await?))
}

/// A live token by id
#[utoipa::path(
    get, path = "/v1/tokens/{id}", tag = "tokens", operation_id = "getToken", params(TokenId),
    responses(
        (status = 200, body = TokenRecord, description = "The token record."),
        (status = 404, description = "No token with this id, or it has expired (within `store.expiry_margin_secs` of its expiry counts as expired) (`not-found`)."),
    ),
)]
pub async fn get_token(
    State(store): State<Arc<TokenStore>>,
    Path(id): Path<String>,
) -> Result<ApiJson<Arc<TokenRecord>>, ApiError> {
    store
        .live_token(&id)
        .await?
        .map(ApiJson)
        .ok_or(ApiError::NotFound("no live token with this id"))
}

/// The path parameter of `/v1/tokens/{id}`.
#[derive(IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
struct TokenId(
    /// The token record's id (`tok_` and 22 URL-safe characters).
    #[allow(
        dead_code,
        reason = "only described: the handlers take the id as `Path<String>`"
    )]
    String,
);

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// The merchant reference given at exchange or on the callback.
    #[serde(rename = "ref")]
    #[param(value_type = String, required = false, max_length = 256)]
    reference: Option<String>,
    /// MondiaPay's user uuid.
    #[param(value_type = String, required = false, max_length = 256)]
    uuid: Option<String>,
    /// `true`: when no live token exists and the user's uuid is known (the `uuid` given, or
    /// for a `ref` the uuid of its most recent token), a new token is obtained from MondiaPay
    /// (`grant_type=user_credentials`), stored under the same `ref` and `uuid`, and returned.
    #[param(value_type = bool, required = false)]
    renew: Option<bool>,
}

/// The first live token recorded for a merchant reference or a MondiaPay uuid
///
/// Give exactly one of `ref` or `uuid` (an empty value counts as absent). Unknown query parameters
/// are refused. With `renew=true`, a user without a live token gets a renewed one: one renewal
/// per user at a time (also across replicas), never while a live token exists.
#[utoipa::path(
    get, path = "/v1/tokens", tag = "tokens", operation_id = "findToken", params(Lookup),
    responses(
        (status = 200, body = TokenRecord, description = "The first live token record for it (oldest obtained; a later token from another code cannot take a `ref` or `uuid` over while the first is live)."),
        (status = 400, description = "Not exactly one of `ref` or `uuid`, an unknown parameter, or a value over 256 printable characters (`bad-request`)."),
        UserTokenErrors,
    ),
)]
pub async fn find_token(
    State(store): State<Arc<TokenStore>>,
    State(renewer): State<Arc<Renewer>>,
    ApiQuery(lookup): ApiQuery<Lookup>,
) -> Result<ApiJson<TokenRecord>, ApiError> {
    let (column, value) = match (label("ref", lookup.reference)?, label("uuid", lookup.uuid)?) {
        (Some(reference), None) => (OwnerColumn::Ref, reference),
        (None, Some(uuid)) => (OwnerColumn::Uuid, uuid),
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of ref or uuid".to_owned(),
            ));
        }
    };
    let found = match store.live_token_for(column, &value).await? {
        None if lookup.renew == Some(true) => renew_for(&store, &renewer, column, &value).await?,
        found => found,
    };
    found
        .map(ApiJson)
        .ok_or(ApiError::NotFound("no live token for this ref or uuid"))
}

/// Delete a token
#[utoipa::path(
    delete, path = "/v1/tokens/{id}", tag = "tokens", operation_id = "deleteToken", params(TokenId),
    responses(
        (status = 204, description = "Deleted, or there was no such token."),
    ),
)]
pub async fn delete_token(
    State(store): State<Arc<TokenStore>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    store.delete_token(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A merchant reference or uuid: empty means absent; long or control characters are refused.
pub fn label(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(value) if !is_acceptable_label(&value) => Err(ApiError::BadRequest(format!(
            "{name} must be at most {MAX_LABEL_CHARS} printable characters"
        ))),
        Some(value) if !value.is_empty() => Ok(Some(value)),
        _ => Ok(None),
    }
}

/// What may go wrong where the user's token is renewed or used: said once for every such route.
#[derive(IntoResponses)]
#[allow(
    dead_code,
    reason = "only described: the handlers answer with `ApiError`"
)]
pub enum UserTokenErrors {
    /// No live token for the user and, where a renewal is asked for, no uuid to renew one for
    /// (`not-found`).
    #[response(status = 404)]
    NotFound,
    /// MondiaPay refused to renew the user's token, e.g. an unknown uuid (`renewal-refused`), or
    /// refused a Subscription Management call (`mondiapay-refused`); `mondiapay_error` carries
    /// MondiaPay's error code.
    #[response(status = 422)]
    Refused,
    /// MondiaPay refused the user's token also once renewed (`token-refused`, with
    /// `mondiapay_error`), refused this service's client credentials (`credentials-rejected`),
    /// or gave no usable answer (`upstream-unavailable`).
    #[response(status = 502)]
    BadGateway,
    /// Another renewal of this user's token has been under way for longer than a claim's lease
    /// (`renewal-in-progress`).
    #[response(status = 503)]
    RenewalInProgress,
    /// MondiaPay did not answer in time (`upstream-timeout`).
    #[response(status = 504)]
    Timeout,
}

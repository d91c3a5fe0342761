//! The token routes: exchange a code, look a token up by id, ref or uuid, delete it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::problem::ApiError;
use crate::domain::{Code, MAX_LABEL_CHARS, Owner, TokenRecord, is_acceptable_label};
use crate::http::state::AppState;
use crate::store::TokenStore;

/// `Json` whose rejections answer in problem+json.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Query` whose rejections answer in problem+json.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeBody {
    code: String,
    #[serde(rename = "ref")]
    reference: Option<String>,
    uuid: Option<String>,
}

pub async fn exchange(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ExchangeBody>,
) -> Result<Json<TokenRecord>, ApiError> {
    let code = Code::parse(&body.code, &state.code_prefix)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let owner = Owner {
        reference: label("ref", body.reference)?,
        uuid: label("uuid", body.uuid)?,
    };
    Ok(Json(state.exchanger.exchange(code, owner).await?))
}

pub async fn get_token(
    State(store): State<Arc<TokenStore>>,
    Path(id): Path<String>,
) -> Result<Json<TokenRecord>, ApiError> {
    store
        .live_token(&id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("no live token with this id"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    #[serde(rename = "ref")]
    reference: Option<String>,
    uuid: Option<String>,
}

pub async fn find_token(
    State(store): State<Arc<TokenStore>>,
    ApiQuery(lookup): ApiQuery<Lookup>,
) -> Result<Json<TokenRecord>, ApiError> {
    let found = match (label("ref", lookup.reference)?, label("uuid", lookup.uuid)?) {
        (Some(reference), None) => store.first_for_ref(&reference).await?,
        (None, Some(uuid)) => store.first_for_uuid(&uuid).await?,
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of ref or uuid".to_owned(),
            ));
        }
    };
    found
        .map(Json)
        .ok_or(ApiError::NotFound("no live token for this ref or uuid"))
}

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

//! `GET /v1/callbacks?ref=…`: what each browser callback for an order ended in, so the order
//! service learns why a purchase failed.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::problem::ApiError;
use super::tokens::{ApiQuery, label};
use crate::domain::CallbackOutcome;
use crate::store::TokenStore;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ForRef {
    /// The merchant reference.
    #[serde(rename = "ref")]
    #[param(value_type = String, required = true, min_length = 1, max_length = 256)]
    reference: Option<String>,
}

/// What the browser callbacks for a merchant reference ended in
///
/// Newest first: the ref's newest 100 `succeeded` outcomes, always, and its failures
/// (`purchase_failed`, `code_rejected`, `unavailable`), one per outcome and MondiaPay error, the
/// newest 20 kept. Tells an order service why a purchase failed.
#[utoipa::path(
    get, path = "/v1/callbacks", tag = "callbacks", operation_id = "listCallbacks", params(ForRef),
    responses(
        (status = 200, body = Vec<CallbackOutcome>, description = "The recorded callback outcomes for this ref (possibly none)."),
        (status = 400, description = "`ref` missing or empty, an unknown parameter, or a value over 256 printable characters (`bad-request`)."),
    ),
)]
pub async fn list(
    State(store): State<Arc<TokenStore>>,
    ApiQuery(query): ApiQuery<ForRef>,
) -> Result<Json<Vec<CallbackOutcome>>, ApiError> {
    let reference = label("ref", query.reference)?
        .ok_or_else(|| ApiError::BadRequest("ref is required".to_owned()))?;
    Ok(Json(store.callbacks_for_ref(&reference).await?))
}

//! `GET /v1/callbacks?ref=…`: what each browser callback for an order ended in, so the order
//! service learns why a purchase failed.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::problem::ApiError;
use super::tokens::{ApiQuery, label};
use crate::domain::CallbackOutcome;
use crate::store::TokenStore;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForRef {
    #[serde(rename = "ref")]
    reference: Option<String>,
}

pub async fn list(
    State(store): State<Arc<TokenStore>>,
    ApiQuery(query): ApiQuery<ForRef>,
) -> Result<Json<Vec<CallbackOutcome>>, ApiError> {
    let reference = label("ref", query.reference)?
        .ok_or_else(|| ApiError::BadRequest("ref is required".to_owned()))?;
    Ok(Json(store.callbacks_for_ref(&reference).await?))
}

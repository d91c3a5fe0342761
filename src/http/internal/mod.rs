//! The internal listener: the token API under `/v1` (API key required) and the operations
//! routes. Reachable from the merchant's network only.

pub mod auth;
mod callbacks;
mod problem;
mod tokens;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_http::set_header::SetResponseHeaderLayer;

pub use problem::ApiError;

use crate::exchange::Exchanger;
use crate::http::layers::{self, Edge};
use crate::http::state::AppState;
use crate::metrics::Metrics;
use crate::store::TokenStore;

/// The JSON bodies of the API are a few hundred bytes.
const MAX_BODY_BYTES: usize = 16 * 1024;

pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let v1 = Router::new()
        .route("/exchange", post(tokens::exchange))
        .route("/tokens", get(tokens::find_token))
        .route(
            "/tokens/{id}",
            get(tokens::get_token).delete(tokens::delete_token),
        )
        .route("/callbacks", get(callbacks::list))
        .route_layer(from_fn_with_state(state.clone(), auth::require_api_key))
        // Answers may carry a token: no cache anywhere may keep them.
        .layer(SetResponseHeaderLayer::overriding(
            CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    let routes = Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(layers::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .with_state(state.clone());
    let edge = Edge {
        listener: "internal",
        state,
        request_timeout,
        max_body_bytes: MAX_BODY_BYTES,
        refuse,
        // Internal services may trace a call through with their own id.
        takes_caller_request_id: true,
    };
    layers::stack(routes, edge)
}

/// Refusals on the internal listener are problems, like every other error there.
fn refuse(_: &AppState, status: StatusCode, _: &str) -> Response {
    ApiError::Refused(status).into_response()
}

/// The problem for a request hyper refused before routing (see `serve`).
pub fn bare_answer(status: StatusCode, _: &str) -> Response {
    ApiError::Refused(status).into_response()
}

/// Prometheus text (OpenMetrics); the live token count is read from the store at each scrape.
async fn metrics(
    State(store): State<Arc<TokenStore>>,
    State(metrics): State<Arc<Metrics>>,
) -> Response {
    let live = match store.count_live_tokens().await {
        Ok(live) => live,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(CONTENT_TYPE, content_type)], metrics.render(live)).into_response()
}

/// Ready when the store answers and MondiaPay did not refuse our credentials last time.
async fn readyz(
    State(store): State<Arc<TokenStore>>,
    State(exchanger): State<Arc<Exchanger>>,
) -> (StatusCode, Json<Value>) {
    let store = store.ping().await.is_ok();
    let credentials = !exchanger.credentials_refused();
    let status = if store && credentials {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "store": if store { "ok" } else { "unavailable" },
            "mondiapay_credentials": if credentials { "ok" } else { "refused" },
        })),
    )
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route")
}

/// The OpenAPI 3.1 description of this listener's API, kept by hand in `openapi.json`.
async fn openapi() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

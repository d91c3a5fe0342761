//! The internal listener: the token API under `/v1` (API key required) and the operations
//! routes. Reachable from the merchant's network only.

pub mod auth;
mod callbacks;
mod contract;
mod events;
mod problem;
mod purchases;
mod subscriptions;
mod tokens;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use problem::ApiError;

use crate::exchange::Exchanger;
use crate::http::layers::{self, Edge};
use crate::http::state::AppState;
use crate::metrics::Metrics;
use crate::store::TokenStore;

/// The JSON bodies of the API are a few hundred bytes.
const MAX_BODY_BYTES: usize = 16 * 1024;

pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let (routes, document) = api();
    let routes = routes
        .fallback(not_found)
        .layer(Extension(document))
        .with_state(state.clone());
    let edge = Edge {
        listener: "internal",
        state,
        request_timeout,
        max_body_bytes: MAX_BODY_BYTES,
        refuse,
        // Internal services may trace a call through with their own id.
        takes_caller_request_id: true,
        admit: auth::admit,
        headers: &ANSWER_HEADERS,
    };
    layers::stack(routes, edge)
}

/// Answers may carry a token: no cache anywhere may keep them.
static ANSWER_HEADERS: [(HeaderName, HeaderValue); 1] =
    [(CACHE_CONTROL, HeaderValue::from_static("no-store"))];

/// The routes this listener serves and, from the same registrations, their contract: a route
/// is served only if it is documented. (Register routes with `routes!` only: a plain `.route`
/// would serve a route the contract does not list, and a start-up test that compares the
/// router's own route table with the document fails.)
fn api() -> (Router<AppState>, Contract) {
    let mut v1 = OpenApiRouter::default()
        .routes(routes!(tokens::exchange))
        .routes(routes!(tokens::find_token))
        .routes(routes!(tokens::get_token, tokens::delete_token))
        .routes(routes!(callbacks::list))
        .routes(routes!(
            purchases::start_purchase,
            purchases::list_purchases
        ))
        .routes(routes!(purchases::get_purchase))
        .routes(routes!(subscriptions::list))
        .routes(routes!(subscriptions::cancel))
        .routes(routes!(events::list));
    contract::v1(v1.get_openapi_mut());
    // Merged, not nested: the `/v1` routes carry their whole path, so no request's URI is
    // rewritten to strip the prefix on its way in.
    let (routes, mut document) = OpenApiRouter::with_openapi(contract::ApiDoc::openapi())
        .merge(v1)
        .routes(routes!(layers::healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
        .split_for_parts();
    contract::complete(&mut document);
    let json = document.to_pretty_json().expect("a document serializes");
    (routes, Contract(Bytes::from(json)))
}

/// The contract as served, made once at start-up.
#[derive(Clone)]
struct Contract(Bytes);

/// Refusals on the internal listener are problems, like every other error there.
fn refuse(_: &AppState, status: StatusCode, _: &str) -> Response {
    ApiError::Refused(status).into_response()
}

/// The problem for a request hyper refused before routing (see `serve`).
pub fn bare_answer(status: StatusCode, _: &str) -> Response {
    ApiError::Refused(status).into_response()
}

/// Prometheus metrics (OpenMetrics 1.0 text)
///
/// Served from memory, whatever the store's state: the live token count is the one last taken in
/// the background (each scrape asks for a new one, and it is taken at least every 15 s), with
/// the time it was taken.
#[utoipa::path(
    get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses(
        (status = 200, body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8",
            description = "Build info; exchanges, callbacks, renewals and notifications by outcome (every outcome from 0); MondiaPay latency; HTTP requests by listener, route and status, and their durations by listener and route; rate-limited requests; live tokens as last counted, and when."),
    ),
)]
async fn metrics(State(metrics): State<Arc<Metrics>>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(CONTENT_TYPE, content_type)], metrics.render()).into_response()
}

/// What `/readyz` found.
#[derive(Serialize, ToSchema)]
struct Readiness {
    #[schema(inline)]
    store: StoreCheck,
    #[schema(inline)]
    mondiapay_credentials: CredentialsCheck,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum StoreCheck {
    Ok,
    Unavailable,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum CredentialsCheck {
    Ok,
    Refused,
}

/// Ready to exchange codes
///
/// Ready when the store takes a write (with at least 1 MiB free on its disk) and MondiaPay did not
/// refuse the merchant's credentials on its last verdict.
#[utoipa::path(
    get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, body = Readiness, description = "Ready."),
        (status = 503, body = Readiness, description = "Not ready; the body says which check failed."),
    ),
)]
async fn readyz(
    State(store): State<Arc<TokenStore>>,
    State(exchanger): State<Arc<Exchanger>>,
) -> (StatusCode, Json<Readiness>) {
    let store = store.ping().await.is_ok();
    let credentials = !exchanger.credentials_refused();
    let status = if store && credentials {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let readiness = Readiness {
        store: if store {
            StoreCheck::Ok
        } else {
            StoreCheck::Unavailable
        },
        mondiapay_credentials: if credentials {
            CredentialsCheck::Ok
        } else {
            CredentialsCheck::Refused
        },
    };
    (status, Json(readiness))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route")
}

/// This document
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations", operation_id = "openapi",
    responses(
        (status = 200, body = Object, description = "The OpenAPI 3.1 description of the internal API."),
    ),
)]
async fn openapi(Extension(Contract(document)): Extension<Contract>) -> Response {
    ([(CONTENT_TYPE, "application/json")], document).into_response()
}

//! The public listener: what browsers reach from the internet. Every answer carries headers
//! that keep it out of caches, frames and referrers.

mod callback;
pub mod limit;
pub mod notifications;
pub mod pages;
pub mod query;
pub mod secret;

pub use callback::CallbackRefusal;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::http::layers::{self, Edge, RequestId};
use crate::http::state::AppState;
use pages::{Page, PageFacts};

/// Browsers send no body to the public routes.
const MAX_BODY_BYTES: usize = 4 * 1024;

const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
];

pub fn router(state: AppState, request_timeout: Duration) -> Router {
    callback::count_from_zero(&state.metrics);
    let mut limited = Router::new()
        .route("/oauth/callback", get(callback::callback))
        .route("/oauth/result/{id}", get(callback::result));
    // Off (no `notifications.secret`): not served, so the path is as unknown as any other.
    if state.notification_secret.is_on() {
        limited = limited.route(notifications::ROUTE, notifications::route());
    }
    let limited = limited
        .fallback(not_found)
        .layer(from_fn_with_state(state.clone(), rate_limit));
    let routes = Router::new()
        .route("/healthz", get(layers::healthz))
        .merge(limited)
        .with_state(state.clone());
    let edge = Edge {
        listener: "public",
        state,
        request_timeout,
        max_body_bytes: MAX_BODY_BYTES,
        refuse,
        takes_caller_request_id: false,
    };
    let routes = layers::stack(routes, edge);
    SECURITY_HEADERS
        .into_iter()
        .fold(routes, |routes, (name, value)| {
            routes.layer(SetResponseHeaderLayer::overriding(
                name,
                HeaderValue::from_static(value),
            ))
        })
}

/// Refuses a client over its rate with the rate-limited page.
async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return next.run(request).await;
    };
    let client = state.limiter.client(peer.ip(), request.headers());
    if state.limiter.allows(client) {
        return next.run(request).await;
    }
    state.metrics.rate_limited();
    tracing::info!(%client, "rate limited");
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map_or("", |id| id.0.as_str());
    let mut response = refuse(&state, StatusCode::TOO_MANY_REQUESTS, request_id);
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
}

/// Refusals on the public listener are pages, like everything else there.
pub fn refuse(state: &AppState, status: StatusCode, request_id: &str) -> Response {
    let page = match status {
        StatusCode::TOO_MANY_REQUESTS => Page::RateLimited,
        StatusCode::NOT_FOUND => Page::NotFound,
        StatusCode::REQUEST_TIMEOUT => Page::TryAgain,
        status if status.is_client_error() => Page::BadRequest,
        _ => Page::TryAgain,
    };
    let facts = PageFacts {
        support_reference: request_id,
        ..PageFacts::default()
    };
    state.pages.render(page, status, &facts)
}

/// The page for a request hyper refused before routing (see `serve`): the security headers are
/// set here, as the router's layers never see it.
pub fn bare_answer(state: &AppState, status: StatusCode, request_id: &str) -> Response {
    let mut response = refuse(state, status, request_id);
    for (name, value) in SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn not_found(
    State(state): State<AppState>,
    Extension(RequestId(id)): Extension<RequestId>,
) -> Response {
    state.pages.not_found(&id)
}

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
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};

use crate::http::layers::{self, Edge, RequestId};
use crate::http::state::AppState;
use pages::{Page, PageFacts};

/// Browsers send no body to the public routes.
const MAX_BODY_BYTES: usize = 4 * 1024;

static SECURITY_HEADERS: [(HeaderName, HeaderValue); 5] = [
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
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
    let routes = limited
        .route(layers::HEALTHZ, get(layers::healthz))
        .fallback(not_found)
        .with_state(state.clone());
    let edge = Edge {
        listener: "public",
        state,
        request_timeout,
        max_body_bytes: MAX_BODY_BYTES,
        refuse,
        takes_caller_request_id: false,
        admit: rate_limit,
        headers: &SECURITY_HEADERS,
    };
    layers::stack(routes, edge)
}

/// Refuses a client over its rate with the rate-limited page; `/healthz` is not limited.
fn rate_limit(state: &AppState, route: &str, request: &Request) -> Option<Response> {
    if route == layers::HEALTHZ {
        return None;
    }
    // Without a peer address (a request not from a socket) there is no client to limit.
    let ConnectInfo(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()?;
    let client = state.limiter.client(peer.ip(), request.headers());
    if state.limiter.allows(client) {
        return None;
    }
    state.metrics.rate_limited();
    tracing::info!(%client, "rate limited");
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map_or("", |id| id.0.as_str());
    let mut response = refuse(state, StatusCode::TOO_MANY_REQUESTS, request_id);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    Some(response)
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
    for (name, value) in &SECURITY_HEADERS {
        response.headers_mut().insert(name, value.clone());
    }
    response
}

async fn not_found(
    State(state): State<AppState>,
    Extension(RequestId(id)): Extension<RequestId>,
) -> Response {
    state.pages.not_found(&id)
}

//! The public listener: what browsers reach from the internet. Every answer carries headers
//! that keep it out of caches, frames and referrers.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::routing::get;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::AppState;
use crate::middleware;

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
    let routes = Router::new()
        .route("/healthz", get(middleware::healthz))
        .fallback(not_found)
        .with_state(state);
    let routes = middleware::stack(routes, request_timeout, MAX_BODY_BYTES);
    SECURITY_HEADERS
        .into_iter()
        .fold(routes, |routes, (name, value)| {
            routes.layer(SetResponseHeaderLayer::overriding(
                name,
                HeaderValue::from_static(value),
            ))
        })
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "Not found")
}

//! What every request of both listeners goes through: a request id (made, or on the internal
//! listener taken from the caller; echoed), one span, one log line and one metric per request,
//! the listener's admission check (API key, rate limit), a time limit, a body size limit and the
//! listener's answer headers. Refusals (admission, time limit) and every error answer the
//! framework gives by itself (an empty `405`, a plain-text extractor rejection) are answered in
//! the listener's own form: a page or a problem.
//!
//! All of it is one layer of our own, applied once: each `Router::layer` boxes every route once
//! more, and each `from_fn` middleware boxes its inner service again per request; as layers of
//! their own, admission and headers cost a lookup about a third of its time.

use std::convert::Infallible;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::http::request_id::new_request_id;
use crate::http::state::AppState;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id, for handlers that show it (the support reference on pages). On the public
/// listener it is always one the service made, so a page never shows a caller's text.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Answers a refused request: status and request id in, a page or a problem out.
pub type Refusal = fn(&AppState, StatusCode, &str) -> Response;

/// Refuses a routed request (its route template, [`UNMATCHED`] for none) with an answer, or
/// (`None`) lets it through to its handler. A panic in it is answered as a handler's is.
pub type Admission = fn(&AppState, &str, &Request) -> Option<Response>;

/// The route of a request no route matched (the fallback's), in admissions, logs and metrics.
pub const UNMATCHED: &str = "unmatched";

/// One listener's edge.
pub struct Edge {
    pub listener: &'static str,
    pub state: AppState,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub refuse: Refusal,
    /// Whether a caller's plain `X-Request-Id` becomes the request id (internal services
    /// tracing a call); otherwise it is only logged, as `client_request_id`.
    pub takes_caller_request_id: bool,
    /// Runs in the request's span, with its id known, before the handler.
    pub admit: Admission,
    /// Set on every answer, over any a handler set.
    pub headers: &'static [(HeaderName, HeaderValue)],
}

pub fn stack(routes: Router, edge: Edge) -> Router {
    let max_body_bytes = edge.max_body_bytes;
    routes.layer(
        ServiceBuilder::new()
            .layer(EdgeLayer(Arc::new(edge)))
            // Inside `observe`: a handler's panic (logged by the panic hook, in the request's
            // span) becomes a bare 500 that `observe` answers in the listener's form, logs and
            // counts; the connection and the process go on.
            .layer(CatchPanicLayer::custom(panicked))
            .layer(DefaultBodyLimit::max(max_body_bytes)),
    )
}

/// Puts `observe` around a listener's routed service.
#[derive(Clone)]
struct EdgeLayer(Arc<Edge>);

impl<S> Layer<S> for EdgeLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Observed<S> {
        Observed {
            edge: Arc::clone(&self.0),
            inner,
        }
    }
}

/// A listener's routed service with `observe` around it.
#[derive(Clone)]
struct Observed<S> {
    edge: Arc<Edge>,
    inner: S,
}

impl<S> Service<Request> for Observed<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The service that was polled ready serves this request; a clone waits for the next.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        let edge = Arc::clone(&self.edge);
        Box::pin(async move { Ok(observe(&edge, request, inner).await) })
    }
}

fn panicked(_: Box<dyn std::any::Any + Send>) -> Response {
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// The path of the liveness probe, on both listeners.
pub const HEALTHZ: &str = "/healthz";

/// The process is up
///
/// Served on the public listener too.
#[utoipa::path(
    get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses(
        (status = 200, description = "Always `ok` while the process runs.",
            body = String, content_type = "text/plain", example = json!("ok")),
    ),
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Only the route template is logged and counted, never the URI: query strings carry codes.
async fn observe<S>(edge: &Edge, mut request: Request, mut inner: S) -> Response
where
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
{
    let caller_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_acceptable_id(id))
        .map(str::to_owned);
    let id = match &caller_id {
        Some(caller_id) if edge.takes_caller_request_id => caller_id.clone(),
        _ => new_request_id(),
    };
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    let method = request.method().clone();
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        client_request_id = tracing::field::Empty,
        %method,
        %route
    );
    if let Some(caller_id) = caller_id.filter(|caller_id| *caller_id != id) {
        span.record("client_request_id", caller_id);
    }
    let started = Instant::now();
    let admitted = async {
        // Inside the span, like the handler; a panic here is caught as the handler's would be.
        let admission = panic::catch_unwind(AssertUnwindSafe(|| {
            (edge.admit)(&edge.state, route, &request)
        }))
        .unwrap_or_else(|payload| Some(panicked(payload)));
        match admission {
            None => match inner.call(request).await {
                Ok(response) => response.into_response(),
                Err(never) => match never {},
            },
            Some(refusal) => refusal,
        }
    };
    let handled =
        tokio::time::timeout(edge.request_timeout, admitted.instrument(span.clone())).await;
    let mut response =
        handled.unwrap_or_else(|_| (edge.refuse)(&edge.state, StatusCode::REQUEST_TIMEOUT, &id));
    if !is_in_listener_form(&response) {
        response = reshaped(edge, &response, &id);
    }
    let status = response.status().as_u16();
    let took = started.elapsed();
    let latency_ms = took.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if matches!(route, HEALTHZ | "/readyz" | "/metrics") {
            tracing::debug!(status, latency_ms, "request finished");
        } else {
            tracing::info!(status, latency_ms, "request finished");
        }
    });
    edge.state
        .metrics
        .http_request_took(edge.listener, route, status, took);
    let headers = response.headers_mut();
    for (name, value) in edge.headers {
        headers.insert(name, value.clone());
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, value);
    }
    response
}

/// An error answer is in the listener's form when a handler or refusal shaped it: it has a
/// type other than plain text (axum's own `405`s have no body, its rejections are plain text).
fn is_in_listener_form(response: &Response) -> bool {
    let status = response.status();
    !(status.is_client_error() || status.is_server_error())
        || response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| !value.as_bytes().starts_with(b"text/plain"))
}

/// The listener's own answer for `response`'s status, keeping the headers that tell the client
/// what to do next.
fn reshaped(edge: &Edge, response: &Response, id: &str) -> Response {
    let mut shaped = (edge.refuse)(&edge.state, response.status(), id);
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = response.headers().get(&name) {
            shaped.headers_mut().insert(name, value.clone());
        }
    }
    shaped
}

/// A caller's id is kept only if it is short and plain, so it cannot forge log lines or pages.
fn is_acceptable_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

#[cfg(test)]
mod panic_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_request_ids_are_kept() {
        assert!(is_acceptable_id("3f2a-91:b_c.d"));
        assert!(!is_acceptable_id(""));
        assert!(!is_acceptable_id(&"a".repeat(65)));
        assert!(!is_acceptable_id("a b"));
        assert!(!is_acceptable_id("a\"}{"));
        assert_eq!(new_request_id().len(), 16);
    }
}

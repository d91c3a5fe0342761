//! `POST /mondiapay/notifications/{secret}`: MondiaPay's notifications of subscription events.
//!
//! MondiaPay signs nothing: the secret in the URL, given to MondiaPay with it, is what tells its
//! calls from anyone's. A wrong or missing secret gets exactly the page of an unknown route, so
//! nothing says the route exists; with `notifications.secret` unset the route is not served at
//! all. The secret is a path segment, and the request's log line and metric carry the route
//! pattern (`layers.rs`), never the path. A notification is answered `200` with a JSON content
//! type and an empty body only once it is on disk: that is the answer after which MondiaPay
//! stops retrying.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any};

use crate::domain::Notification;
use crate::events::NotificationOutcome;
use crate::http::layers::RequestId;
use crate::http::state::AppState;
use crate::store::Stored;
use crate::telemetry::cause_chain;

/// MondiaPay's notifications are a few hundred bytes; this leaves room for operators' extras.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The route, as registered and as logged.
pub const ROUTE: &str = "/mondiapay/notifications/{secret}";

/// The route: `POST` only; any other method gets the unknown route's page too (not a `405`
/// with `Allow`, which axum's method routing would add), so the route cannot be told apart
/// from one that does not exist. Bodies up to `MAX_BODY_BYTES`.
pub fn route() -> MethodRouter<AppState> {
    any(receive).layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn receive(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    method: Method,
    secret: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let refuse = |outcome, status| {
        state.events.refused(outcome);
        super::refuse(&state, status, &request_id)
    };
    let accepted = matches!(&secret, Ok(Path(secret)) if state.notification_secret.accepts(secret));
    if method != Method::POST || !accepted {
        state.events.refused(NotificationOutcome::WrongSecret);
        return state.pages.not_found(&request_id);
    }
    // Only now is the body read: a request without the secret is answered at once, so it can
    // neither tell the route by how its body is waited for nor hold the connection to send one.
    let body = match Bytes::from_request(request, &state).await {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(NotificationOutcome::TooLarge, StatusCode::PAYLOAD_TOO_LARGE);
        }
        Err(_) => return refuse(NotificationOutcome::BadRequest, StatusCode::BAD_REQUEST),
    };
    let notification = match Notification::parse(&body) {
        Ok(notification) => notification,
        Err(reason) => {
            tracing::info!(%reason, "notification refused");
            return refuse(NotificationOutcome::BadRequest, StatusCode::BAD_REQUEST);
        }
    };
    match state.events.receive(&notification).await {
        Ok(stored) => {
            tracing::info!(
                event_uuid = notification.event_uuid,
                event = notification.event,
                duplicate = stored == Stored::Duplicate,
                "notification received"
            );
            // MondiaPay counts a delivery as done only on exactly this answer.
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")]).into_response()
        }
        Err(error) => {
            let fault = error.is_fault();
            tracing::error!(error = %cause_chain(&error), bug = fault, "notification not stored");
            let status = if fault {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            super::refuse(&state, status, &request_id)
        }
    }
}

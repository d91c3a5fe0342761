//! Errors of the internal API as `application/problem+json` (RFC 9457), mapped to a status in
//! this one place. Clients get a short safe message; the log gets the cause chain, once.

use std::error::Error as _;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::{NoAnswer, wording};
use crate::exchange::ExchangeError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the body is larger than this API accepts")]
    PayloadTooLarge,
    #[error("{0}")]
    NotFound(&'static str),
    #[error("a valid API key is required")]
    Unauthorized,
    /// Refused at the edge: the request took too long, or the framework refused it (a wrong
    /// method, an unreadable path or head).
    #[error("the request was refused: {0}")]
    Refused(StatusCode),

    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType,
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            other => Self::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

struct Problem {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    mondiapay_error: Option<String>,
}

impl ApiError {
    fn problem(&self) -> Problem {
        let problem = |status, kind, title| Problem {
            status,
            kind,
            title,
            mondiapay_error: None,
        };
        match self {
            Self::BadRequest(_) => problem(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "The request is malformed",
            ),
            Self::UnsupportedMediaType => problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "The body must be JSON",
            ),
            Self::PayloadTooLarge => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "The body is too large",
            ),
            Self::NotFound(_) => problem(StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::Unauthorized => problem(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "A valid API key is required",
            ),
            // Refusals at the edge that name a problem this API already has take its shape.
            Self::Refused(StatusCode::NOT_FOUND) => Self::NotFound("no such route").problem(),
            Self::Refused(StatusCode::PAYLOAD_TOO_LARGE) => Self::PayloadTooLarge.problem(),
            Self::Refused(status) => refused(*status),
            Self::Exchange(error) => match error {
                // A 2xx without a usable token: MondiaPay's fault, but final for the code.
                ExchangeError::CodeRejected(upstream) if upstream.is_no_token() => problem(
                    StatusCode::BAD_GATEWAY,
                    "no-token-in-answer",
                    "MondiaPay took the code but sent no usable token",
                ),
                ExchangeError::CodeRejected(upstream) => Problem {
                    mondiapay_error: Some(upstream.error.clone()),
                    ..problem(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "code-rejected",
                        "MondiaPay rejected the code",
                    )
                },
                ExchangeError::CredentialsRejected(_) => problem(
                    StatusCode::BAD_GATEWAY,
                    "credentials-rejected",
                    "MondiaPay refused this service's client credentials",
                ),
                ExchangeError::NoAnswer(NoAnswer::TimedOut) => problem(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream-timeout",
                    "MondiaPay did not answer in time",
                ),
                ExchangeError::NoAnswer(_) => problem(
                    StatusCode::BAD_GATEWAY,
                    "upstream-unavailable",
                    "MondiaPay gave no usable answer",
                ),
                ExchangeError::TokenGone => problem(
                    StatusCode::GONE,
                    "token-gone",
                    "The code's token has expired or was deleted",
                ),
                ExchangeError::StillPending => problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "exchange-in-progress",
                    "Another exchange of this code is under way",
                ),
                ExchangeError::Busy => problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "exchange-capacity",
                    "Too many exchanges are under way",
                ),
                ExchangeError::Store(_) => store_unavailable(),
                ExchangeError::Aborted => problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "The exchange stopped unexpectedly",
                ),
            },
            Self::Store(_) => store_unavailable(),
        }
    }

    /// What the caller is told: never an upstream body, a token or a code.
    fn detail(&self) -> String {
        match self {
            // MondiaPay's error code and our fixed words for it, never MondiaPay's own text.
            Self::Exchange(ExchangeError::CodeRejected(upstream)) if upstream.is_no_token() => {
                format!(
                    "the code is used up and cannot be submitted again: {}",
                    wording::code_rejected(Some(&upstream.error))
                )
            }
            Self::Exchange(ExchangeError::CodeRejected(upstream)) => format!(
                "MondiaPay error {}: {}",
                upstream.error,
                wording::code_rejected(Some(&upstream.error))
            ),
            Self::Exchange(ExchangeError::CredentialsRejected(_)) => {
                "the operator must check mondiapay.client_id and mondiapay.client_secret; the code was not used up and may be submitted again".to_owned()
            }
            Self::Exchange(
                ExchangeError::NoAnswer(_) | ExchangeError::StillPending | ExchangeError::Busy,
            ) => {
                "the code was not used up; submit it again later".to_owned()
            }
            Self::Exchange(ExchangeError::Store(_)) | Self::Store(_) => {
                "the token store is unavailable; try again later".to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// A refusal at the edge (a time limit, a wrong method, a request hyper could not read).
fn refused(status: StatusCode) -> Problem {
    let (kind, title) = match status {
        StatusCode::REQUEST_TIMEOUT => (
            "request-timeout",
            "The request took longer than this service allows",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            "This method is not allowed on this route",
        ),
        StatusCode::URI_TOO_LONG | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "request-too-large",
            "The request's address or headers are too large",
        ),
        status if status.is_server_error() => ("internal", "The request could not be handled"),
        _ => ("bad-request", "The request is malformed"),
    };
    Problem {
        status,
        kind,
        title,
        mondiapay_error: None,
    }
}

fn store_unavailable() -> Problem {
    Problem {
        status: StatusCode::SERVICE_UNAVAILABLE,
        kind: "store-unavailable",
        title: "The token store is unavailable",
        mondiapay_error: None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        if problem.status.is_server_error() {
            tracing::error!(error = %cause_chain(&self), problem = problem.kind, "request failed");
        } else {
            tracing::debug!(problem = problem.kind, "request refused");
        }
        let mut body = json!({
            "type": format!("urn:mondiapay-token-proxy:problem:{}", problem.kind),
            "title": problem.title,
            "status": problem.status.as_u16(),
            "detail": self.detail(),
        });
        if let Some(error) = problem.mondiapay_error {
            body["mondiapay_error"] = error.into();
        }
        let mut response = (problem.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        // Also problems shaped outside the `/v1` router (wrong method, a request refused before
        // routing): no cache keeps an answer of this API.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Exchange(
                ExchangeError::StillPending | ExchangeError::Busy | ExchangeError::Store(_),
            )
            | Self::Store(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// `error: cause: cause`, for one log line.
fn cause_chain(error: &ApiError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

//! Errors of the internal API as `application/problem+json` (RFC 9457), mapped to a status in
//! this one place. Clients get a short safe message; the log gets the cause chain, once.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::views;
use crate::domain::{NoAnswer, UpstreamError, wording};
use crate::exchange::{ExchangeError, RenewalError};
use crate::mondiapay::{ClientTokenError, PrepareError};
use crate::purchases::PurchaseError;
use crate::store::StoreError;
use crate::subscriptions::SubscriptionError;
use crate::telemetry::cause_chain;

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
    #[error(transparent)]
    Purchase(#[from] PurchaseError),
    #[error(transparent)]
    Renewal(#[from] RenewalError),
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
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

/// What the caller is told: never an upstream body, a token or a code.
struct Problem {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    mondiapay_error: Option<String>,
    /// `Retry-After: 1`: this service was only briefly unable.
    retry_after: bool,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: String) -> Self {
        Self {
            status,
            kind,
            title,
            detail,
            mondiapay_error: None,
            retry_after: false,
        }
    }
}

impl ApiError {
    fn problem(&self) -> Problem {
        let problem = |status, kind, title| Problem::new(status, kind, title, self.to_string());
        match self {
            Self::BadRequest(_) => problem(StatusCode::BAD_REQUEST, "bad-request", BAD_REQUEST),
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
            Self::Refused(status) => {
                let shape = match *status {
                    StatusCode::NOT_FOUND => Self::NotFound("no such route").problem(),
                    StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge.problem(),
                    status => {
                        let (kind, title) = refused(status);
                        problem(status, kind, title)
                    }
                };
                Problem {
                    detail: self.to_string(),
                    ..shape
                }
            }
            Self::Exchange(error) => exchange_problem(error),
            Self::Store(error) => store_problem(error),
            Self::Purchase(error) => purchase_problem(error),
            Self::Renewal(error) => renewal_problem(error),
            Self::Subscription(error) => subscription_problem(error),
        }
    }
}

const BAD_REQUEST: &str = "The request is malformed";
const INTERNAL: &str = "The request could not be handled";

/// A refusal at the edge (a time limit, a wrong method, a request hyper could not read).
fn refused(status: StatusCode) -> (&'static str, &'static str) {
    match status {
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
        status if status.is_server_error() => ("internal", INTERNAL),
        _ => ("bad-request", BAD_REQUEST),
    }
}

/// An exchange's error as a problem: the one place its status, kind and words are chosen.
fn exchange_problem(error: &ExchangeError) -> Problem {
    /// What the caller of a code that was not used up may do.
    const SUBMIT_AGAIN_LATER: &str = "the code was not used up; submit it again later";
    let fixed =
        |status, kind, title, detail: &str| Problem::new(status, kind, title, detail.to_owned());
    let mut problem = match error {
        // A 2xx without a usable token: MondiaPay's fault, but final for the code.
        ExchangeError::CodeRejected(upstream) if upstream.is_no_token() => Problem::new(
            StatusCode::BAD_GATEWAY,
            "no-token-in-answer",
            "MondiaPay took the code but sent no usable token",
            // Our fixed words for MondiaPay's error code, never MondiaPay's own text.
            format!(
                "the code is used up and cannot be submitted again: {}",
                wording::code_rejected(Some(&upstream.error))
            ),
        ),
        ExchangeError::CodeRejected(upstream) => Problem {
            mondiapay_error: Some(upstream.error.clone()),
            ..Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "code-rejected",
                "MondiaPay rejected the code",
                format!(
                    "MondiaPay error {}: {}",
                    upstream.error,
                    wording::code_rejected(Some(&upstream.error))
                ),
            )
        },
        ExchangeError::CredentialsRejected(_) => {
            credentials_problem("; the code was not used up and may be submitted again")
        }
        ExchangeError::NoAnswer(reason) => no_answer_problem(reason, SUBMIT_AGAIN_LATER),
        ExchangeError::TokenGone => fixed(
            StatusCode::GONE,
            "token-gone",
            "The code's token has expired or was deleted",
            &error.to_string(),
        ),
        ExchangeError::StillPending => fixed(
            StatusCode::SERVICE_UNAVAILABLE,
            "exchange-in-progress",
            "Another exchange of this code is under way",
            SUBMIT_AGAIN_LATER,
        ),
        ExchangeError::Busy => fixed(
            StatusCode::SERVICE_UNAVAILABLE,
            "exchange-capacity",
            "Too many exchanges are under way",
            SUBMIT_AGAIN_LATER,
        ),
        ExchangeError::Store(error) => store_problem(error),
        ExchangeError::Aborted => fixed(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "The exchange stopped unexpectedly",
            &error.to_string(),
        ),
    };
    problem.retry_after = error.meaning().retry_soon;
    problem
}

/// A purchase's error as a problem: MondiaPay's failures as for an exchange (nothing was stored,
/// so the same request may be sent again), its refusal of the request with its error code.
fn purchase_problem(error: &PurchaseError) -> Problem {
    const NOTHING_STORED: &str = "no purchase was stored; send the request again later";
    let fixed =
        |status, kind, title, detail: &str| Problem::new(status, kind, title, detail.to_owned());
    let credentials = || credentials_problem("; no purchase was stored");
    let no_answer = |reason: &NoAnswer| no_answer_problem(reason, NOTHING_STORED);
    match error {
        PurchaseError::Prepare(PrepareError::ClientToken(ClientTokenError::Refused(_)))
        | PurchaseError::Prepare(PrepareError::TokenRefused(_)) => credentials(),
        PurchaseError::Prepare(PrepareError::ClientToken(ClientTokenError::Unusable(reason)))
        | PurchaseError::Prepare(PrepareError::Unusable(reason)) => no_answer(reason),
        PurchaseError::Prepare(PrepareError::Refused(upstream)) => Problem {
            mondiapay_error: Some(upstream.error.clone()),
            ..Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "purchase-refused",
                "MondiaPay refused the purchase",
                format!("MondiaPay error {}; no purchase was stored", upstream.error),
            )
        },
        PurchaseError::KeyReused => fixed(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "This Idempotency-Key was used with another request",
            "use a new key for a new purchase",
        ),
        PurchaseError::KeyInProgress => Problem {
            retry_after: true,
            ..fixed(
                StatusCode::CONFLICT,
                "idempotency-key-in-progress",
                "A request with this Idempotency-Key is still under way",
                "send it again shortly",
            )
        },
        PurchaseError::Aborted => fixed(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            INTERNAL,
            "the purchase stopped unexpectedly",
        ),
        PurchaseError::Store(error) => store_problem(error),
    }
}

/// MondiaPay's error on a call made with a user's token (a renewal or Subscription Management),
/// carrying its error code; `detail` is a fixed sentence, never MondiaPay's own text.
fn mondiapay_problem(
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    upstream: &UpstreamError,
) -> Problem {
    Problem {
        mondiapay_error: Some(upstream.error.clone()),
        ..Problem::new(
            status,
            kind,
            title,
            format!(
                "MondiaPay error {} (HTTP {})",
                upstream.error, upstream.http_status
            ),
        )
    }
}

/// No usable answer from MondiaPay to a call that spent nothing; `detail` says what the
/// caller may do (asking again later may help).
fn no_answer_problem(reason: &NoAnswer, detail: &str) -> Problem {
    let (status, kind, title) = match reason {
        NoAnswer::TimedOut => (
            StatusCode::GATEWAY_TIMEOUT,
            "upstream-timeout",
            "MondiaPay did not answer in time",
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "upstream-unavailable",
            "MondiaPay gave no usable answer",
        ),
    };
    Problem::new(status, kind, title, detail.to_owned())
}

/// What a call without a verdict changed: nothing.
const ASK_AGAIN_LATER: &str = "nothing was changed; ask again later";

/// MondiaPay refused the merchant's own credentials; `more` ends the detail for the caller.
fn credentials_problem(more: &str) -> Problem {
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "credentials-rejected",
        "MondiaPay refused this service's client credentials",
        format!("the operator must check mondiapay.client_id and mondiapay.client_secret{more}"),
    )
}

/// A renewal's error as a problem.
fn renewal_problem(error: &RenewalError) -> Problem {
    match error {
        RenewalError::Refused(upstream) => mondiapay_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "renewal-refused",
            "MondiaPay refused to renew the user's token",
            upstream,
        ),
        RenewalError::CredentialsRejected(_) => credentials_problem(""),
        RenewalError::NoAnswer(reason) => no_answer_problem(reason, ASK_AGAIN_LATER),
        RenewalError::StillPending => Problem {
            retry_after: true,
            ..Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "renewal-in-progress",
                "Another renewal of this user's token is under way",
                "ask again in a moment".to_owned(),
            )
        },
        RenewalError::Store(error) => store_problem(error),
        RenewalError::Aborted => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "The renewal stopped unexpectedly",
            error.to_string(),
        ),
    }
}

/// A Subscription Management error as a problem.
fn subscription_problem(error: &SubscriptionError) -> Problem {
    match error {
        SubscriptionError::NoToken => Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            error.to_string(),
        ),
        SubscriptionError::Renewal(error) => renewal_problem(error),
        SubscriptionError::TokenRefused(upstream) => mondiapay_problem(
            StatusCode::BAD_GATEWAY,
            "token-refused",
            "MondiaPay refused the user's token, also once renewed",
            upstream,
        ),
        SubscriptionError::Refused(upstream) => mondiapay_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "mondiapay-refused",
            "MondiaPay refused the call",
            upstream,
        ),
        SubscriptionError::NoAnswer(reason) => no_answer_problem(reason, ASK_AGAIN_LATER),
        SubscriptionError::Store(error) => store_problem(error),
    }
}

/// The store's error as a problem: out of reach, try again soon; or a fault of its own (a bug,
/// a row this version cannot read), which asking again will not mend.
fn store_problem(error: &StoreError) -> Problem {
    if error.is_fault() {
        return Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            INTERNAL,
            "a fault of this service; it is logged".to_owned(),
        );
    }
    Problem {
        retry_after: true,
        ..Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "The token store is unavailable",
            "the token store is unavailable; try again later".to_owned(),
        )
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
        let body = views::Problem {
            kind: format!("urn:mondiapay-token-proxy:problem:{}", problem.kind),
            title: problem.title,
            status: problem.status.as_u16(),
            detail: problem.detail,
            mondiapay_error: problem.mondiapay_error,
        };
        let mut response = (problem.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        // The listener's edge sets it on every answer; this covers the problems hyper's own
        // refusals become before routing (see `serve`): no cache keeps an answer of this API.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Self::Unauthorized = self {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if problem.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

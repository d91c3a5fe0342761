//! `GET /oauth/callback`, where MondiaPay sends the user's browser after a purchase, and
//! `GET /oauth/result/{id}`, the page it is sent on to. Post/redirect/get: every handled
//! callback answers `303`, so the code leaves the address bar, the history and any `Referer`.

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use url::Url;

use super::pages::{Page, PageFacts};
use super::query::{self, CallbackParams};
use crate::crypto::CodeHash;
use crate::domain::{CallbackOutcome, Code, NewCallback, OutcomeKind, wording};
use crate::exchange::{ExchangeError, ExchangeOutcome};
use crate::http::layers::RequestId;
use crate::http::state::AppState;
use crate::metrics::{Counted, Metrics, outcome_labels};
use crate::telemetry::cause_chain;

outcome_labels! {
    /// A callback refused before anything was exchanged or recorded.
    pub enum CallbackRefusal {
        BadRequest = "bad_request",
        /// A purchase id unknown, expired or ended by another code, or none when one is required.
        LinkExpired = "link_expired",
    }
}

/// Shows every `outcome` of `token_proxy_callbacks_total` at 0: an outcome recorded, a refusal,
/// or the error of a store that could not record one (every other error of an exchange is
/// recorded as an outcome: `CallbackEnd`).
pub fn count_from_zero(metrics: &Metrics) {
    let recorded = OutcomeKind::ALL.iter().map(|kind| kind.as_str());
    let refused = CallbackRefusal::ALL.iter().map(|refusal| refusal.as_str());
    let not_recorded = [
        ExchangeOutcome::StoreUnavailable,
        ExchangeOutcome::StoreFault,
    ]
    .map(ExchangeOutcome::as_str);
    metrics.start_at_zero(
        Counted::Callbacks,
        recorded.chain(refused).chain(not_recorded),
    );
}

pub async fn callback(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    RawQuery(raw): RawQuery,
) -> Response {
    let bad_request = |reason: &dyn std::fmt::Display| {
        state.metrics.callback(CallbackRefusal::BadRequest.as_str());
        tracing::info!(%reason, "callback refused");
        state.pages.render(
            Page::BadRequest,
            StatusCode::BAD_REQUEST,
            &PageFacts {
                support_reference: &request_id,
                ..PageFacts::default()
            },
        )
    };
    let mut params = match query::parse(
        raw.as_deref().unwrap_or_default(),
        &state.callback.correlation_param,
    ) {
        Ok(params) => params,
        Err(problem) => return bad_request(&problem),
    };
    let code = params
        .code
        .as_deref()
        .map(|code| Code::parse(code, &state.code_prefix));
    if let (Some(Err(problem)), Some(_)) = (&code, &params.purchase) {
        return bad_request(problem);
    }
    // The code's keyed hash, once: the purchase binds it, the exchange claims it.
    let hash = match &code {
        Some(Ok(code)) => Some(state.store.keys().hash_code(code)),
        _ => None,
    };
    // A purchase this service started: admitted (its code bound to it) before anything is sent
    // to MondiaPay or recorded; its `ref`, not the query's, is the owner.
    let purchase = match admit_purchase(&state, &params, hash.as_ref()).await {
        Ok(Some(purchase)) => {
            params.reference = purchase.reference.clone();
            Some(purchase)
        }
        Ok(None) if params.purchase.is_none() && !state.purchases.enforced() => None,
        Ok(None) => {
            state
                .metrics
                .callback(CallbackRefusal::LinkExpired.as_str());
            tracing::info!("callback refused: no live purchase of this service for it");
            let facts = PageFacts {
                support_reference: &request_id,
                ..PageFacts::default()
            };
            return state
                .pages
                .render(Page::LinkExpired, StatusCode::BAD_REQUEST, &facts);
        }
        Err(error) => {
            state.metrics.callback(error.meaning().label.as_str());
            return failure_page(&state, &error, &params, &request_id);
        }
    };
    let exchangeable = !params.purchase_failed()
        || params
            .error
            .as_ref()
            .is_some_and(|error| state.callback.exchange_on_errors.contains(error));
    let result = match (code, hash) {
        (Some(Ok(code)), Some(hash)) if exchangeable => {
            let new = outcome(&params, &request_id, OutcomeKind::Succeeded);
            state.exchanger.exchange_callback(code, hash, new).await
        }
        (Some(Err(problem)), _) if exchangeable => return bad_request(&problem),
        // The purchase failed: recorded, and its code (if any) is never sent to MondiaPay.
        // Failures are recorded once per (ref, outcome, error), whatever code they carry.
        _ => {
            tracing::info!(
                mondiapay_error = params.error.as_deref(),
                mondiapay_status = params.status.as_deref(),
                "purchase failed"
            );
            let failed = outcome(&params, &request_id, OutcomeKind::PurchaseFailed);
            state
                .store
                .record_callback(None, &failed)
                .await
                .map_err(ExchangeError::from)
        }
    };
    // The purchase follows its callback's outcome (again on a replay, so a crash in between
    // is mended by the user's reload).
    let result = match (result, &purchase) {
        (Ok(recorded), Some(purchase)) => state
            .purchases
            .settle(purchase, &recorded.outcome)
            .await
            .map(|()| recorded)
            .map_err(ExchangeError::from),
        (result, _) => result,
    };
    match result {
        Ok(recorded) => {
            state.metrics.callback(recorded.outcome.kind.as_str());
            see_other(&state, &recorded)
        }
        Err(error) => {
            state.metrics.callback(error.meaning().label.as_str());
            failure_page(&state, &error, &params, &request_id)
        }
    }
}

/// The purchase the callback names, if it may end it; `None` when it names none, or one it may
/// not end (unknown, expired, ended by another code).
async fn admit_purchase(
    state: &AppState,
    params: &CallbackParams,
    hash: Option<&CodeHash>,
) -> Result<Option<crate::domain::Purchase>, ExchangeError> {
    let Some(id) = params.purchase.as_deref() else {
        return Ok(None);
    };
    // (A malformed code was refused before: none is left here.)
    Ok(state.purchases.admit(id, hash).await?)
}

/// The page for a callback the service could not handle (its store out of reach, or a fault).
fn failure_page(
    state: &AppState,
    error: &ExchangeError,
    params: &CallbackParams,
    request_id: &str,
) -> Response {
    let fault = error.meaning().fault;
    log_failure(error, fault, "callback outcome could not be recorded");
    let (page, status) = Page::for_failure(fault);
    let facts = PageFacts {
        reference: params.reference.as_deref(),
        support_reference: request_id,
        ..PageFacts::default()
    };
    state.pages.render(page, status, &facts)
}

fn outcome(params: &CallbackParams, request_id: &str, kind: OutcomeKind) -> NewCallback {
    NewCallback {
        kind,
        cause: None,
        request_id: request_id.to_owned(),
        reference: params.reference.clone(),
        uuid: params.uuid.clone(),
        status: params.status.clone(),
        error: params.error.clone(),
        token_id: None,
    }
}

/// `303` to the merchant's own page when configured, else to the built-in result page.
fn see_other(state: &AppState, recorded: &CallbackOutcome) -> Response {
    let outcome = &recorded.outcome;
    let reference = outcome.reference.as_deref();
    let target = match (
        outcome.kind,
        &state.callback.success_url,
        &state.callback.failure_url,
    ) {
        (OutcomeKind::Succeeded, Some(url), _) => with_params(
            url,
            &[
                ("ref", reference),
                ("token_id", outcome.token_id.as_deref()),
            ],
        ),
        (kind, _, Some(url)) if kind != OutcomeKind::Succeeded => with_params(
            url,
            &[
                ("ref", reference),
                ("reason", Some(kind.as_str())),
                ("mondiapay_error", outcome.error.as_deref()),
            ],
        ),
        _ => format!("/oauth/result/{}", recorded.id),
    };
    (StatusCode::SEE_OTHER, [(header::LOCATION, target)]).into_response()
}

fn with_params(url: &Url, params: &[(&str, Option<&str>)]) -> String {
    let mut url = url.clone();
    {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in params {
            if let Some(value) = value {
                pairs.append_pair(name, value);
            }
        }
    }
    url.to_string()
}

pub async fn result(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Path(id): Path<String>,
) -> Response {
    let recorded = match state.store.callback(&id).await {
        Ok(Some(recorded)) => recorded,
        Ok(None) => return state.pages.not_found(&request_id),
        Err(error) => {
            log_failure(&error, error.is_fault(), "result page unavailable");
            let (page, status) = Page::for_failure(error.is_fault());
            let facts = PageFacts {
                support_reference: &request_id,
                ..PageFacts::default()
            };
            return state.pages.render(page, status, &facts);
        }
    };
    let outcome = &recorded.outcome;
    let (page, status) = Page::for_outcome(outcome);
    let facts = PageFacts {
        reference: outcome.reference.as_deref(),
        // The callback's request id: the one support finds in the logs.
        support_reference: &outcome.request_id,
        // A fixed sentence per MondiaPay error code; the query's `message` is never shown.
        reason: Some(
            wording::outcome(outcome.kind, outcome.error.as_deref())
                .unwrap_or_else(|| wording::purchase_failed(outcome.error.as_deref())),
        ),
    };
    state.pages.render(page, status, &facts)
}

/// A fault of the service's own (a bug, a row this version cannot read) is logged as one, with
/// its causes; a store out of reach as what it is.
fn log_failure(error: &dyn std::error::Error, fault: bool, what: &str) {
    let error = cause_chain(error);
    if fault {
        tracing::error!(%error, bug = true, "{what}: a fault of this service");
    } else {
        tracing::error!(%error, "{what}");
    }
}

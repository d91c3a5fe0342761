//! Prepare Purchase (with a client token) and the initiate page the browser is sent to: the
//! person confirms, pays with an empty balance, or cancels, and is sent back to the purchase's
//! `redirect` with MondiaPay's query appended to the redirect's own.

use std::time::Instant;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::subscriptions::Subscription;
use super::{
    INITIATE_PATH, IssuedCode, PURCHASE_LIFETIME, Sandbox, bearer, mondiapay_error, page,
    random_uuid, token_not_found, wrong_token_context,
};
use crate::crypto::random_id;

/// A prepared purchase, waiting for the person's decision.
pub(super) struct Prepared {
    redirect: Url,
    subscription_type_id: String,
    marketing_campaign: Option<Value>,
    expires: Instant,
    decided: bool,
}

pub(super) async fn prepare(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut books = sandbox.books();
    match bearer(&headers) {
        Some(token) if books.client_token_is_live(token) => {}
        Some(token) if books.user_of(token).is_some() => return wrong_token_context(),
        _ => return token_not_found(),
    }
    let Some(prepared) = read_prepare(&body) else {
        return mondiapay_error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETERS",
            "A purchase needs an absolute redirect URL and a subscriptionTypeId.",
        );
    };
    let purchase_token = random_uuid();
    books.purchases.insert(purchase_token.clone(), prepared);
    // The link points at the address the merchant reached the sandbox on.
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("127.0.0.1");
    let href = format!("http://{host}{INITIATE_PATH}/{purchase_token}");
    let answer = json!({
        "purchaseToken": purchase_token,
        "expiresIn": PURCHASE_LIFETIME.as_secs().to_string(),
        "_links": {"initiatePurchase": {"href": href}},
    });
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// `{"redirect", "subscriptionTypeId" (a number or a numeric string), "marketingCampaign"?}`.
fn read_prepare(body: &str) -> Option<Prepared> {
    let body: Value = serde_json::from_str(body).ok()?;
    let redirect = Url::parse(body.get("redirect")?.as_str()?).ok()?;
    if !matches!(redirect.scheme(), "http" | "https") {
        return None;
    }
    let subscription_type_id = match body.get("subscriptionTypeId")? {
        Value::Number(number) => number.as_u64()?.to_string(),
        Value::String(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            text.clone()
        }
        _ => return None,
    };
    let marketing_campaign = body.get("marketingCampaign").filter(|c| c.is_object());
    Some(Prepared {
        redirect,
        subscription_type_id,
        marketing_campaign: marketing_campaign.cloned(),
        expires: Instant::now() + PURCHASE_LIFETIME,
        decided: false,
    })
}

impl Prepared {
    fn is_open(&self) -> bool {
        !self.decided && self.expires > Instant::now()
    }
}

pub(super) async fn initiate_page(
    State(sandbox): State<Sandbox>,
    Path(purchase_token): Path<String>,
) -> Response {
    let books = sandbox.books();
    match books.purchases.get(&purchase_token).filter(|p| p.is_open()) {
        // The type id is digits only, the token one the sandbox made: both safe in the page.
        Some(prepared) => Html(
            page::INITIATE
                .replace("{type}", &prepared.subscription_type_id)
                .replace("{token}", &purchase_token),
        )
        .into_response(),
        None => no_longer_valid(),
    }
}

fn no_longer_valid() -> Response {
    (StatusCode::NOT_FOUND, Html(page::NO_LONGER_VALID)).into_response()
}

#[derive(Deserialize)]
pub(super) struct Decision {
    decision: String,
}

/// Sends the browser back to the merchant, the way MondiaPay does: a `303` to `redirect` with
/// `code`, `status`, `uuid`, `message` (or `error`) added to the redirect's own query.
pub(super) async fn decide(
    State(sandbox): State<Sandbox>,
    Path(purchase_token): Path<String>,
    Form(decision): Form<Decision>,
) -> Response {
    let mut books = sandbox.books();
    let Some(prepared) = books
        .purchases
        .get_mut(&purchase_token)
        .filter(|p| p.is_open())
    else {
        return no_longer_valid();
    };
    let decision = decision.decision;
    if !matches!(
        decision.as_str(),
        "confirm" | "insufficient_funds" | "cancel"
    ) {
        return (StatusCode::BAD_REQUEST, "unknown decision").into_response();
    }
    prepared.decided = true;
    let mut target = prepared.redirect.clone();
    let type_id = prepared.subscription_type_id.clone();
    let campaign = prepared.marketing_campaign.clone();
    if decision == "cancel" {
        target
            .query_pairs_mut()
            .append_pair("error", "USER_DECLINED_PURCHASE_DURING_CONFIRMATION")
            .append_pair("message", "The user declined the purchase.")
            .append_pair("status", "400");
        return redirect(&target);
    }
    // Confirmed or not, the person reached MondiaPay: a user it knows, and a code for them.
    let uuid = random_uuid();
    let code = random_id("A");
    books.users.push(uuid.clone());
    books.codes.insert(
        code.clone(),
        IssuedCode {
            uuid: uuid.clone(),
            used: false,
        },
    );
    let mut pairs = target.query_pairs_mut();
    pairs.append_pair("code", &code);
    if decision == "confirm" {
        let id = (1001 + books.subscriptions.len()).to_string();
        let subscription = Subscription::new(id, &uuid, type_id, purchase_token, campaign);
        let notification = subscription.notification("CREATE", "CREATE_ACTIVE");
        books.subscriptions.push(subscription);
        drop(books);
        sandbox.notify(notification);
        pairs
            .append_pair("message", "OK")
            .append_pair("uuid", &uuid);
        pairs.append_pair("status", "200");
    } else {
        pairs
            .append_pair("error", "INSUFFICIENT_FUNDS")
            .append_pair("message", "Insufficient funds.")
            .append_pair("uuid", &uuid)
            .append_pair("status", "402");
    }
    drop(pairs);
    redirect(&target)
}

fn redirect(target: &Url) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, target.to_string())],
    )
        .into_response()
}

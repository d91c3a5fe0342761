//! Subscription Management with a user's token: the user's subscriptions, and their cancel
//! (`immediately=false` tags it for cancel at the end of the paid period, `true` ends it now),
//! each change notified as MondiaPay notifies it.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Sandbox, bearer, mondiapay_error, now, random_uuid, token_not_found};

/// One subscription, as the sandbox keeps it.
pub(super) struct Subscription {
    id: String,
    uuid: String,
    type_id: String,
    state: &'static str,
    sub_state: &'static str,
    start_date: String,
    last_modified: String,
    purchase_token: String,
    marketing_campaign: Option<Value>,
}

impl Subscription {
    pub(super) fn new(
        id: String,
        uuid: &str,
        type_id: String,
        purchase_token: String,
        marketing_campaign: Option<Value>,
    ) -> Self {
        let created = now();
        Self {
            id,
            uuid: uuid.to_owned(),
            type_id,
            state: "ACTIVE",
            sub_state: "NONE",
            start_date: created.clone(),
            last_modified: created,
            purchase_token,
            marketing_campaign,
        }
    }

    /// MondiaPay's subscription object (values as strings, as in its examples).
    fn object(&self) -> Value {
        json!({
            "id": self.id,
            "typeId": self.type_id,
            "state": self.state,
            "subState": self.sub_state,
            "startDate": self.start_date,
            "created": self.start_date,
            "lastModified": self.last_modified,
            "attributes": [],
        })
    }

    /// MondiaPay's notification of `event` for this subscription, values as strings.
    pub(super) fn notification(&self, event: &str, reason: &str) -> Value {
        let mut body = json!({
            "uuid": self.uuid,
            "purchaseToken": self.purchase_token,
            "subscriptionId": self.id,
            "subscriptionTypeId": self.type_id,
            "channel": "WEB",
            "event": event,
            "reason": reason,
            "status": if self.state == "CANCELED" { "CANCELED" } else { "ACTIVE" },
            "subState": self.sub_state,
            "startDate": self.start_date,
            "price": {"amount": "1.99", "currency": "EUR"},
            "taggedForCancellation": (self.sub_state == "TAGGED_FOR_CANCEL").to_string(),
            "eventDateTime": now(),
            "eventUUID": random_uuid(),
        });
        // The campaign is relayed back, as operators that allow it do.
        if let Some(campaign) = &self.marketing_campaign {
            for (from, to) in [
                ("name", "campaignId"),
                ("agency", "agency"),
                ("conversionId", "conversionId"),
            ] {
                if let Some(value) = campaign.get(from).and_then(Value::as_str) {
                    body[to] = json!(value);
                }
            }
        }
        body
    }
}

/// Why a request's token was refused: MondiaPay's two `401`s.
enum Refused {
    Unknown,
    WrongKind,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Self::Unknown => token_not_found(),
            Self::WrongKind => super::wrong_token_context(),
        }
    }
}

/// The user a request's `Authorization: Bearer U…` belongs to.
fn user(sandbox: &Sandbox, headers: &HeaderMap) -> Result<String, Refused> {
    let token = bearer(headers).ok_or(Refused::Unknown)?;
    let books = sandbox.books();
    books
        .user_of(token)
        .ok_or(if books.client_token_is_live(token) {
            Refused::WrongKind
        } else {
            Refused::Unknown
        })
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    #[serde(rename = "subscriptionTypeId")]
    subscription_type_id: Option<String>,
}

/// `GET /v1/api/subscription?subscriptionTypeId=…`: a JSON array, empty when there are none.
pub(super) async fn list(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let uuid = match user(&sandbox, &headers) {
        Ok(uuid) => uuid,
        Err(refused) => return refused.into_response(),
    };
    let books = sandbox.books();
    let subscriptions: Vec<Value> = books
        .subscriptions
        .iter()
        .filter(|s| s.uuid == uuid)
        .filter(|s| {
            query
                .subscription_type_id
                .as_ref()
                .is_none_or(|type_id| *type_id == s.type_id)
        })
        .map(Subscription::object)
        .collect();
    (StatusCode::OK, axum::Json(Value::Array(subscriptions))).into_response()
}

#[derive(Deserialize)]
pub(super) struct CancelQuery {
    immediately: Option<String>,
}

/// `DELETE /v1/api/subscription/{id}?immediately=true|false`: `204`, then the notification.
pub(super) async fn cancel(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<CancelQuery>,
) -> Response {
    let uuid = match user(&sandbox, &headers) {
        Ok(uuid) => uuid,
        Err(refused) => return refused.into_response(),
    };
    let immediately = match query.immediately.as_deref() {
        Some("true") => true,
        Some("false") => false,
        _ => {
            return mondiapay_error(
                StatusCode::BAD_REQUEST,
                "INVALID_PARAMETERS",
                "immediately must be true or false.",
            );
        }
    };
    let mut books = sandbox.books();
    let Some(subscription) = books
        .subscriptions
        .iter_mut()
        .find(|s| s.id == id && s.uuid == uuid && s.state != "CANCELED")
    else {
        return mondiapay_error(
            StatusCode::NOT_FOUND,
            "SUBSCRIPTION_NOT_FOUND",
            "The user has no active subscription with this id.",
        );
    };
    let (event, reason) = if immediately {
        subscription.state = "CANCELED";
        subscription.sub_state = "NONE";
        ("CANCEL", "CANCEL_IMMEDIATELY")
    } else {
        subscription.sub_state = "TAGGED_FOR_CANCEL";
        ("TAGGED_FOR_CANCEL", "TAGGED_FOR_CANCEL")
    };
    subscription.last_modified = now();
    let notification = subscription.notification(event, reason);
    drop(books);
    sandbox.notify(notification);
    StatusCode::NO_CONTENT.into_response()
}

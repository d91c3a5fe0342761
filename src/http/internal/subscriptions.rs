//! `GET /v1/subscriptions` and `DELETE /v1/subscriptions/{subscription_id}`: MondiaPay's
//! Subscription Management for a user, made with the token this service holds for them.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::problem::ApiError;
use super::tokens::{ApiQuery, UserTokenErrors, label};
use crate::subscriptions::{Holder, Subscriptions};

/// The query of both routes: whose subscriptions (exactly one of `ref`, `uuid` or
/// `token_id`), and what each route alone takes, documented with that route.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// The merchant reference the user's token is recorded for.
    #[serde(rename = "ref")]
    #[param(value_type = String, required = false, max_length = 256)]
    reference: Option<String>,
    /// MondiaPay's user uuid.
    #[param(value_type = String, required = false, max_length = 256)]
    uuid: Option<String>,
    /// A token record's id.
    #[param(value_type = String, required = false, max_length = 256)]
    token_id: Option<String>,
    #[param(ignore)]
    subscription_type_id: Option<u64>,
    #[param(ignore)]
    immediately: Option<bool>,
}

impl UserQuery {
    /// The user named, with what only the other route takes refused.
    fn holder(&self, other_routes: Option<&str>) -> Result<Holder, ApiError> {
        if let Some(name) = other_routes {
            return Err(ApiError::BadRequest(format!(
                "{name} is not a parameter of this route"
            )));
        }
        match (
            label("ref", self.reference.clone())?,
            label("uuid", self.uuid.clone())?,
            label("token_id", self.token_id.clone())?,
        ) {
            (Some(reference), None, None) => Ok(Holder::Ref(reference)),
            (None, Some(uuid), None) => Ok(Holder::Uuid(uuid)),
            (None, None, Some(id)) => Ok(Holder::TokenId(id)),
            _ => Err(ApiError::BadRequest(
                "give exactly one of ref, uuid or token_id".to_owned(),
            )),
        }
    }
}

/// The path parameter of `/v1/subscriptions/{subscription_id}`.
#[derive(IntoParams)]
#[into_params(names("subscription_id"), parameter_in = Path)]
struct SubscriptionId(
    /// MondiaPay's subscription id (at most 256 printable characters).
    #[allow(
        dead_code,
        reason = "only described: the handler takes the id as `Path<String>`"
    )]
    String,
);

/// The user's subscriptions, as MondiaPay sent them.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionList {
    /// MondiaPay's subscription objects (`id`, `typeId`, `state`, `subState`, `startDate`, …),
    /// unchanged; an object answer is a list of one.
    subscriptions: Vec<Value>,
}

/// A user's subscriptions, from MondiaPay
///
/// Made with the user's live token. Where none is left and the user's uuid is known (the `uuid`
/// given, or that of the most recent token for the `ref` or `token_id`), the token is renewed
/// first. A token MondiaPay refuses (`401`) is retired (never served again), renewed once and the
/// call made once more.
#[utoipa::path(
    get, path = "/v1/subscriptions", tag = "subscriptions", operation_id = "listSubscriptions",
    params(
        UserQuery,
        ("subscription_type_id" = Option<u64>, Query, description = "Only subscriptions of this type (MondiaPay's `subscriptionTypeId`)."),
    ),
    responses(
        (status = 200, body = SubscriptionList, description = "MondiaPay's subscription objects as it sent them."),
        (status = 400, description = "Not exactly one of `ref`, `uuid` or `token_id`, an unknown parameter, a value over 256 printable characters, or a `subscription_type_id` that is not a number (`bad-request`)."),
        UserTokenErrors,
    ),
)]
pub async fn list(
    State(subscriptions): State<Arc<Subscriptions>>,
    ApiQuery(query): ApiQuery<UserQuery>,
) -> Result<Json<SubscriptionList>, ApiError> {
    let holder = query.holder(query.immediately.map(|_| "immediately"))?;
    let subscriptions = subscriptions
        .list(&holder, query.subscription_type_id)
        .await?;
    Ok(Json(SubscriptionList { subscriptions }))
}

/// Cancel a user's subscription at MondiaPay
///
/// With the user's token, as for the list (renewed where needed, one retry on a `401`).
#[utoipa::path(
    delete, path = "/v1/subscriptions/{subscription_id}", tag = "subscriptions",
    operation_id = "cancelSubscription",
    params(
        SubscriptionId,
        UserQuery,
        ("immediately" = bool, Query, description = "`true`: cancelled at once; `false`: tagged for cancel at the end of the paid period (the operator's rules apply)."),
    ),
    responses(
        (status = 204, description = "MondiaPay accepted the cancel."),
        (status = 400, description = "Not exactly one of `ref`, `uuid` or `token_id`, `immediately` missing or not `true`/`false`, an unknown parameter, or a subscription id that is over 256 printable characters or only dots (`bad-request`)."),
        UserTokenErrors,
    ),
)]
pub async fn cancel(
    State(subscriptions): State<Arc<Subscriptions>>,
    Path(subscription_id): Path<String>,
    ApiQuery(query): ApiQuery<UserQuery>,
) -> Result<StatusCode, ApiError> {
    let holder = query.holder(query.subscription_type_id.map(|_| "subscription_type_id"))?;
    let immediately = query
        .immediately
        .ok_or_else(|| ApiError::BadRequest("immediately=true or false is required".to_owned()))?;
    let id = label("subscription_id", Some(subscription_id))?
        .filter(|id| !id.chars().all(|c| c == '.'))
        .ok_or_else(|| ApiError::BadRequest("not a subscription id".to_owned()))?;
    subscriptions.cancel(&holder, &id, immediately).await?;
    Ok(StatusCode::NO_CONTENT)
}

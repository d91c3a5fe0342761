//! `GET /v1/events?after=<cursor>&limit=100&wait=0..30`: MondiaPay's notifications as a feed,
//! oldest first. A consumer that always passes the last `next` sees every event once: cursors
//! increase in the order events become visible, on PostgreSQL too (see `store/events.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::problem::ApiError;
use super::tokens::ApiQuery;
use super::views::rfc3339;
use crate::domain::StoredEvent;
use crate::events::Events;

/// At most this many events an answer.
const MAX_LIMIT: i64 = 100;

/// The longest `wait` asked for, in seconds.
const MAX_WAIT_SECS: u64 = 30;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// The `next` of the previous answer; absent or empty: from the oldest event kept.
    #[param(value_type = String, required = false, pattern = "^[0-9]{0,19}$")]
    after: Option<String>,
    /// At most this many events (1–100, default 100).
    #[param(value_type = u32, required = false, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// Seconds to hold the request while there is no event after `after` (0–30, default 0). It
    /// ends a second before `internal.request_timeout_secs`, whichever is shorter.
    #[param(value_type = u32, required = false, minimum = 0, maximum = 30)]
    wait: Option<String>,
}

/// One notification MondiaPay sent. Every field is always there; what is unknown is null.
#[derive(Serialize, ToSchema)]
#[schema(as = Event)]
struct EventView<'a> {
    /// This event's place in the feed: pass it as `after` to read what came after it.
    #[schema(example = "42")]
    cursor: String,
    #[schema(format = DateTime, example = "2026-11-26T06:00:02Z")]
    received_at: String,
    /// MondiaPay's `event`: `CREATE`, `TRIAL_START`, `ACTIVATE`, `DEACTIVATE`, `RENEWAL`,
    /// `TAGGED_FOR_CANCEL`, `CANCEL`, …
    #[schema(example = "CREATE")]
    event: &'a str,
    /// MondiaPay's `reason`, e.g. `CREATE_ACTIVE`.
    #[schema(required = true)]
    reason: Option<&'a str>,
    /// MondiaPay's `status`: `ACTIVE`, `INACTIVE`, `PAUSED`, `CANCELED`.
    #[schema(required = true)]
    status: Option<&'a str>,
    /// MondiaPay's `subState`.
    #[schema(required = true)]
    sub_state: Option<&'a str>,
    /// MondiaPay's user uuid.
    #[schema(required = true)]
    uuid: Option<&'a str>,
    /// MondiaPay's `subscriptionId`, as text.
    #[schema(required = true)]
    subscription_id: Option<&'a str>,
    /// MondiaPay's `subscriptionTypeId`, as text.
    #[schema(required = true)]
    subscription_type_id: Option<&'a str>,
    /// MondiaPay's `eventUUID`: unique per event.
    event_uuid: &'a str,
    /// MondiaPay's `eventDateTime`, as it wrote it.
    #[schema(required = true)]
    event_time: Option<&'a str>,
    /// The purchase this service started whose `purchaseToken` the notification named.
    #[schema(required = true)]
    purchase_id: Option<&'a str>,
    /// That purchase's merchant reference.
    #[serde(rename = "ref")]
    #[schema(required = true)]
    reference: Option<&'a str>,
    /// The body MondiaPay posted, as JSON.
    #[schema(value_type = Object, additional_properties = true)]
    raw: Value,
}

impl<'a> From<&'a StoredEvent> for EventView<'a> {
    fn from(stored: &'a StoredEvent) -> Self {
        let n = &stored.notification;
        Self {
            cursor: stored.cursor.to_string(),
            received_at: rfc3339(stored.received_at),
            event: &n.event,
            reason: n.reason.as_deref(),
            status: n.status.as_deref(),
            sub_state: n.sub_state.as_deref(),
            uuid: n.uuid.as_deref(),
            subscription_id: n.subscription_id.as_deref(),
            subscription_type_id: n.subscription_type_id.as_deref(),
            event_uuid: &n.event_uuid,
            event_time: n.event_time.as_deref(),
            purchase_id: stored.purchase_id.as_deref(),
            reference: stored.reference.as_deref(),
            // Checked to be a JSON object when it was received.
            raw: serde_json::from_str(&n.raw).unwrap_or(Value::Null),
        }
    }
}

/// A page of the feed.
#[derive(Serialize, ToSchema)]
pub struct Feed<'a> {
    /// Oldest first.
    #[schema(required = true)]
    events: Vec<EventView<'a>>,
    /// Pass as `after` next time: the last event's cursor, or `after` again when there was none.
    #[schema(example = "42")]
    next: String,
}

/// MondiaPay's notifications, after a cursor
///
/// Oldest first. A consumer that always passes the previous answer's `next` as `after` sees every
/// event exactly once, also while several replicas store notifications at once. With `wait`, a
/// request that finds no event is held until one arrives or the wait ends (then `events` is
/// empty and `next` is `after`). Events are kept for `store.retention_secs`.
#[utoipa::path(
    get, path = "/v1/events", tag = "events", operation_id = "listEvents", params(FeedQuery),
    responses(
        (status = 200, body = Feed, description = "The events after `after` (possibly none)."),
        (status = 400, description = "`after` not a cursor, `limit` not 1–100, `wait` not 0–30, or an unknown parameter (`bad-request`)."),
    ),
)]
pub async fn list(
    State(events): State<Arc<Events>>,
    ApiQuery(query): ApiQuery<FeedQuery>,
) -> Result<Response, ApiError> {
    let after = number("after", query.after, 0, i64::MAX)?.unwrap_or(0);
    let limit = number("limit", query.limit, 1, MAX_LIMIT)?.unwrap_or(MAX_LIMIT);
    let wait = number("wait", query.wait, 0, MAX_WAIT_SECS as i64)?.unwrap_or(0);
    let found = events
        .after(after, limit, Duration::from_secs(wait as u64))
        .await?;
    let next = found.last().map_or(after, |event| event.cursor).to_string();
    let feed = Feed {
        events: found.iter().map(EventView::from).collect(),
        next,
    };
    Ok(Json(feed).into_response())
}

/// A parameter as a whole number from `min` to `max`; absent or empty is `None`.
fn number(name: &str, value: Option<String>, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
    let Some(value) = value.filter(|value| !value.is_empty()) else {
        return Ok(None);
    };
    value
        .parse::<i64>()
        .ok()
        .filter(|n| (min..=max).contains(n) && value.bytes().all(|b| b.is_ascii_digit()))
        .map(Some)
        .ok_or_else(|| {
            ApiError::BadRequest(format!("{name} must be a whole number from {min} to {max}"))
        })
}

//! The purchase routes: start a purchase (client token, Prepare Purchase, the record stored),
//! read one by id, list those of a merchant reference.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::problem::ApiError;
use super::tokens::{ApiJson, ApiQuery, label};
use super::views::{every_field_required, rfc3339};
use crate::domain::{Purchase, PurchaseState};
use crate::purchases::{Order, Purchases, Started};
use crate::store::TokenStore;

/// `GET /v1/purchases?ref=…` lists at most this many, newest first.
pub const MAX_LISTED_PURCHASES: i64 = 100;
/// The longest `Idempotency-Key` taken (Stripe's limit).
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartPurchase {
    /// MondiaPay's subscription type to sell.
    #[schema(minimum = 1, example = 12345)]
    subscription_type_id: i64,
    /// The merchant reference (order id) the purchase, its token and its callback outcome
    /// belong to; at most 256 printable characters; empty or null means none.
    #[serde(rename = "ref")]
    #[schema(max_length = 256)]
    reference: Option<String>,
    /// Passed to MondiaPay as `marketingCampaign`; relayed back in notifications when the
    /// operator allows.
    marketing_campaign: Option<MarketingCampaign>,
}

/// MondiaPay's marketing campaign fields, each at most 256 printable characters.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MarketingCampaign {
    #[serde(skip_serializing_if = "Option::is_none")]
    conversion_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    medium: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
}

/// Start a purchase
///
/// Gets the merchant's client token (cached; one fetch at a time), calls MondiaPay's Prepare
/// Purchase with `redirect` = `mondiapay.redirect_uri` plus `purchase=<id>`, stores the purchase
/// and answers its record: send the user's browser to `redirect_url`. With an `Idempotency-Key`
/// (at most 255 visible ASCII characters), the same key again within 24 hours answers `200`
/// with the same purchase and no call to MondiaPay, also while the first request is still under
/// way (it waits for it) and across replicas; the same key with another body is `422`.
#[utoipa::path(
    post, path = "/v1/purchases", tag = "purchases", operation_id = "startPurchase",
    request_body = StartPurchase,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key (24 h) gives the same purchase, without a second call to MondiaPay.", max_length = 255)),
    responses(
        (status = 201, body = Purchase, description = "The purchase, prepared and stored; its `redirect_url` is where the browser goes."),
        (status = 200, body = Purchase, description = "The purchase this `Idempotency-Key` already started."),
        (status = 400, description = "Broken JSON, unknown fields, a `subscription_type_id` below 1, a `ref` or campaign field over 256 printable characters, or a malformed `Idempotency-Key` (`bad-request`)."),
        (status = 409, description = "A request with this `Idempotency-Key` is still under way past the claim lease (`idempotency-key-in-progress`); try again."),
        (status = 413, description = "The body is over 16 KiB (`payload-too-large`)."),
        (status = 415, description = "The body is not JSON (`unsupported-media-type`)."),
        (status = 422, description = "MondiaPay refused the purchase (`purchase-refused`, with `mondiapay_error`), or the `Idempotency-Key` was used with another body (`idempotency-key-reused`)."),
        (status = 502, description = "MondiaPay refused the client credentials or a fresh client token (`credentials-rejected`), or gave no usable answer (`upstream-unavailable`). Nothing was stored: try again."),
        (status = 504, description = "MondiaPay did not answer in time (`upstream-timeout`). Nothing was stored: try again."),
    ),
)]
pub async fn start_purchase(
    State(purchases): State<Arc<Purchases>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<StartPurchase>,
) -> Result<(StatusCode, Json<Purchase>), ApiError> {
    let key = idempotency_key(&headers)?;
    if body.subscription_type_id < 1 {
        return Err(ApiError::BadRequest(
            "subscription_type_id must be a positive integer".to_owned(),
        ));
    }
    let campaign = match body.marketing_campaign {
        Some(campaign) => Some(checked_campaign(campaign)?),
        None => None,
    };
    let order = Order {
        subscription_type_id: body.subscription_type_id,
        reference: label("ref", body.reference)?,
        marketing_campaign: campaign,
    };
    Ok(match purchases.start(order, key).await? {
        Started::Fresh(purchase) => (StatusCode::CREATED, Json(purchase)),
        Started::Again(purchase) => (StatusCode::OK, Json(purchase)),
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return if headers.contains_key("idempotency-key") {
            Err(ApiError::BadRequest("give one Idempotency-Key".to_owned()))
        } else {
            Ok(None)
        };
    };
    match value.to_str() {
        Ok(key)
            if (1..=MAX_IDEMPOTENCY_KEY_CHARS).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"
        ))),
    }
}

fn checked_campaign(campaign: MarketingCampaign) -> Result<serde_json::Value, ApiError> {
    let MarketingCampaign {
        conversion_id,
        agency,
        medium,
        name,
        source,
    } = campaign;
    let checked = MarketingCampaign {
        conversion_id: label("marketing_campaign.conversionId", conversion_id)?,
        agency: label("marketing_campaign.agency", agency)?,
        medium: label("marketing_campaign.medium", medium)?,
        name: label("marketing_campaign.name", name)?,
        source: label("marketing_campaign.source", source)?,
    };
    Ok(serde_json::to_value(checked).expect("strings serialize"))
}

/// A purchase by id
#[utoipa::path(
    get, path = "/v1/purchases/{id}", tag = "purchases", operation_id = "getPurchase",
    params(("id" = String, Path, description = "The purchase's id (`pur_` and 22 URL-safe characters).")),
    responses(
        (status = 200, body = Purchase, description = "The purchase record."),
        (status = 404, description = "No purchase with this id (`not-found`)."),
    ),
)]
pub async fn get_purchase(
    State(store): State<Arc<TokenStore>>,
    Path(id): Path<String>,
) -> Result<Json<Purchase>, ApiError> {
    store
        .purchase(&id)
        .await?
        .filter(|purchase| purchase.state != PurchaseState::Preparing)
        .map(Json)
        .ok_or(ApiError::NotFound("no purchase with this id"))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PurchasesFor {
    /// The merchant reference given when the purchase was started.
    #[serde(rename = "ref")]
    #[param(value_type = String, required = true, min_length = 1, max_length = 256)]
    reference: Option<String>,
}

/// The purchases of a list.
#[derive(Serialize, ToSchema)]
pub struct PurchaseList {
    purchases: Vec<Purchase>,
}

/// The purchases started for a merchant reference
///
/// Newest first, at most 100.
#[utoipa::path(
    get, path = "/v1/purchases", tag = "purchases", operation_id = "listPurchases", params(PurchasesFor),
    responses(
        (status = 200, body = PurchaseList, description = "The purchases for this ref (possibly none), newest first."),
        (status = 400, description = "`ref` missing or empty, an unknown parameter, or a value over 256 printable characters (`bad-request`)."),
    ),
)]
pub async fn list_purchases(
    State(store): State<Arc<TokenStore>>,
    ApiQuery(query): ApiQuery<PurchasesFor>,
) -> Result<Json<PurchaseList>, ApiError> {
    let Some(reference) = label("ref", query.reference)? else {
        return Err(ApiError::BadRequest("ref is required".to_owned()));
    };
    let purchases = store
        .purchases_for_ref(&reference, MAX_LISTED_PURCHASES)
        .await?;
    Ok(Json(PurchaseList { purchases }))
}

/// A purchase this service started. Every field is always there; what is unknown is null.
#[derive(Serialize, ToSchema)]
struct PurchaseView<'a> {
    /// `pur_` and 128 random bits, URL-safe base64.
    #[schema(example = "pur_3q2-7wAAAAAAAAAAAAAAAA")]
    id: &'a str,
    #[serde(rename = "ref")]
    reference: Option<&'a str>,
    /// `started` → `succeeded` | `purchase_failed` | `code_rejected` | `unavailable` (may still
    /// succeed on a later callback) | `expired` (no callback within `purchases.ttl_secs`).
    #[schema(example = "started")]
    state: &'static str,
    subscription_type_id: i64,
    /// MondiaPay's `initiatePurchase` href: where the internal service sends the browser.
    #[schema(format = "uri")]
    redirect_url: Option<&'a str>,
    #[schema(format = DateTime)]
    created_at: String,
    /// Until then the purchase accepts its callback.
    #[schema(format = DateTime)]
    expires_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// The stored token's id once the callback succeeded.
    token_id: Option<&'a str>,
    /// MondiaPay's user uuid: as the redirect's query said, until a notification confirms it.
    uuid: Option<&'a str>,
    uuid_confirmed: bool,
    subscription_id: Option<&'a str>,
    /// MondiaPay's error code from the callback, when the purchase failed or its code was
    /// rejected.
    mondiapay_error: Option<&'a str>,
}

impl Serialize for Purchase {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        PurchaseView {
            id: &self.id,
            reference: self.reference.as_deref(),
            state: self.state.as_str(),
            subscription_type_id: self.subscription_type_id,
            redirect_url: self.redirect_url.as_deref(),
            created_at: rfc3339(self.created_at),
            expires_at: rfc3339(self.expires_at),
            updated_at: rfc3339(self.updated_at),
            token_id: self.token_id.as_deref(),
            uuid: self.uuid.as_deref(),
            uuid_confirmed: self.uuid_confirmed,
            subscription_id: self.subscription_id.as_deref(),
            mondiapay_error: self.mondiapay_error.as_deref(),
        }
        .serialize(serializer)
    }
}

impl ToSchema for Purchase {}
impl PartialSchema for Purchase {
    fn schema() -> RefOr<Schema> {
        every_field_required(PurchaseView::schema())
    }
}

//! Prepare Purchase: `POST v1/api/purchase/subscription/prepare` with the client token, and the
//! reading of its answer. A `401` (the client token refused) gets one new client token and one
//! more try; then the call gives up.

use reqwest::Method;
use serde_json::{Value, json};
use url::Url;

use super::{ApiAnswer, ApiCall, CallName, ClientTokenError, MondiaPayClient};
use crate::domain::{NoAnswer, UpstreamError};

const PREPARE_PATH: &str = "v1/api/purchase/subscription/prepare";
/// MondiaPay's purchase tokens are UUIDs; anything much longer is not one.
const MAX_PURCHASE_TOKEN_CHARS: usize = 256;
/// The `initiatePurchase` href is handed to browsers; a longer one is not a plausible URL.
const MAX_HREF_CHARS: usize = 2048;

/// What the merchant asks to sell.
pub struct PurchaseOrder<'a> {
    /// Our purchase id: it goes into the redirect, so the callback names its purchase.
    pub purchase_id: &'a str,
    pub subscription_type_id: i64,
    /// MondiaPay's `marketingCampaign` object, passed on as given.
    pub marketing_campaign: Option<&'a Value>,
}

/// A prepared purchase.
#[derive(Debug)]
pub struct Prepared {
    pub purchase_token: String,
    /// Where the user's browser goes (absolute `http(s)`).
    pub initiate_url: Url,
}

/// Why no purchase was prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("no client token: {0}")]
    ClientToken(#[from] ClientTokenError),
    /// MondiaPay refused a fresh client token too.
    #[error("MondiaPay refused the client token twice")]
    TokenRefused(UpstreamError),
    /// MondiaPay's verdict on the request (an unknown subscription type, …).
    #[error("MondiaPay refused the purchase ({})", .0.error)]
    Refused(UpstreamError),
    #[error(transparent)]
    Unusable(NoAnswer),
}

impl MondiaPayClient {
    /// Prepares a purchase: `redirect` is `mondiapay.redirect_uri` with `purchase=<id>` appended
    /// to its own query.
    pub async fn prepare_purchase(
        &self,
        order: &PurchaseOrder<'_>,
    ) -> Result<Prepared, PrepareError> {
        let body = self.prepare_body(order);
        let mut retried = false;
        loop {
            let token = self.client_token().await?;
            let call = ApiCall {
                name: CallName::PreparePurchase.as_str(),
                method: Method::POST,
                path: PREPARE_PATH,
                query: &[],
                bearer: &token.token,
                body: Some(&body),
            };
            match self.api_call(&call).await {
                ApiAnswer::Done(answer) => {
                    return read_prepared(&answer).map_err(PrepareError::Unusable);
                }
                ApiAnswer::TokenRefused(error) if retried => {
                    return Err(PrepareError::TokenRefused(error));
                }
                ApiAnswer::TokenRefused(_) => {
                    tracing::info!("MondiaPay refused the client token; fetching a new one");
                    self.invalidate(&token).await;
                    retried = true;
                }
                ApiAnswer::Refused(error) => return Err(PrepareError::Refused(error)),
                ApiAnswer::Unusable(reason) => return Err(PrepareError::Unusable(reason)),
            }
        }
    }

    fn prepare_body(&self, order: &PurchaseOrder<'_>) -> Value {
        let mut body = json!({
            "redirect": redirect_for(&self.redirect_uri, order.purchase_id),
            "subscriptionTypeId": order.subscription_type_id,
        });
        if let Some(campaign) = order.marketing_campaign {
            body["marketingCampaign"] = campaign.clone();
        }
        body
    }
}

/// `redirect_uri` with `purchase=<id>` appended to its own query.
fn redirect_for(redirect_uri: &str, purchase_id: &str) -> String {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            url.query_pairs_mut().append_pair("purchase", purchase_id);
            url.to_string()
        }
        // Validated at start-up; an unparsable one cannot occur, and is passed on as it is.
        Err(_) => redirect_uri.to_owned(),
    }
}

/// Reads `purchaseToken` and `_links.initiatePurchase.href` (`expiresIn` is MondiaPay's own
/// limit on the href, not ours: `purchases.ttl_secs` bounds the callback).
fn read_prepared(answer: &Value) -> Result<Prepared, NoAnswer> {
    let invalid =
        |what: &str| NoAnswer::Invalid(format!("MondiaPay's Prepare Purchase answer has {what}"));
    let purchase_token = answer["purchaseToken"]
        .as_str()
        .filter(|token| {
            !token.is_empty()
                && token.chars().count() <= MAX_PURCHASE_TOKEN_CHARS
                && !token.chars().any(|c| c.is_control() || c.is_whitespace())
        })
        .ok_or_else(|| invalid("no usable purchaseToken"))?;
    let href = answer["_links"]["initiatePurchase"]["href"]
        .as_str()
        .filter(|href| href.len() <= MAX_HREF_CHARS)
        .ok_or_else(|| invalid("no initiatePurchase href"))?;
    let initiate_url = Url::parse(href)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .ok_or_else(|| invalid("an initiatePurchase href that is not an absolute http(s) URL"))?;
    Ok(Prepared {
        purchase_token: purchase_token.to_owned(),
        initiate_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purchase_id_is_appended_to_the_redirect_uris_own_query() {
        assert_eq!(
            redirect_for("https://shop.example/thanks?from=mondiapay", "pur_a-b"),
            "https://shop.example/thanks?from=mondiapay&purchase=pur_a-b"
        );
        assert_eq!(
            redirect_for("https://shop.example/thanks", "pur_x"),
            "https://shop.example/thanks?purchase=pur_x"
        );
    }

    #[test]
    fn reads_the_documented_answer_with_expires_in_as_string_or_number() {
        for expires in [json!("300"), json!(300)] {
            let answer = json!({"purchaseToken": "8adca8fb-1", "expiresIn": expires,
                "_links": {"initiatePurchase": {"href": "https://pay.example/v1/web/purchase/initiate/8adca8fb-1"}}});
            let prepared = read_prepared(&answer).unwrap();
            assert_eq!(prepared.purchase_token, "8adca8fb-1");
            assert_eq!(
                prepared.initiate_url.path(),
                "/v1/web/purchase/initiate/8adca8fb-1"
            );
        }
    }

    #[test]
    fn an_answer_without_a_usable_href_or_token_is_unusable() {
        for answer in [
            json!({"purchaseToken": "t", "_links": {}}),
            json!({"purchaseToken": "t", "_links": {"initiatePurchase": {"href": "/relative"}}}),
            json!({"purchaseToken": "t", "_links": {"initiatePurchase": {"href": "javascript:alert(1)"}}}),
            json!({"purchaseToken": "", "_links": {"initiatePurchase": {"href": "https://a.example/"}}}),
            json!({"_links": {"initiatePurchase": {"href": "https://a.example/"}}}),
            json!([1, 2]),
        ] {
            assert!(read_prepared(&answer).is_err(), "{answer}");
        }
    }
}

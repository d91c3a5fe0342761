//! Purchases the service starts: a client token and Prepare Purchase, with the purchase's id in
//! the redirect, stored before anyone is told; an `Idempotency-Key` claimed in the store before
//! MondiaPay is called, so the same key gives the same purchase once, also across replicas.
//! `callback.rs`: which callback may end a purchase, and what it leaves it in.

mod callback;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::crypto::random_id;
use crate::domain::{NoAnswer, PURCHASE_ID_PREFIX, Purchase, PurchaseState};
use crate::mondiapay::{MondiaPayClient, PrepareError, PurchaseOrder};
use crate::store::{KeyClaim, NewPurchase, StoreError, TokenStore};

/// How often a request waiting for another one with the same `Idempotency-Key` looks again.
const KEY_POLL: Duration = Duration::from_millis(100);

/// What an internal service asks to sell.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Order {
    pub subscription_type_id: i64,
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    /// MondiaPay's `marketingCampaign`, in its spelling.
    pub marketing_campaign: Option<Value>,
}

/// A purchase started now, or the one an `Idempotency-Key` already named.
#[derive(Debug)]
pub enum Started {
    Fresh(Purchase),
    Again(Purchase),
}

#[derive(Debug, thiserror::Error)]
pub enum PurchaseError {
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error("this Idempotency-Key was used with another request body")]
    KeyReused,
    #[error("a request with this Idempotency-Key is still under way")]
    KeyInProgress,
    #[error("the purchase stopped unexpectedly")]
    Aborted,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Purchases {
    store: Arc<TokenStore>,
    mondiapay: Arc<MondiaPayClient>,
    /// `purchases.ttl_secs`.
    ttl_secs: i64,
    /// `purchases.enforce`.
    enforce: bool,
    /// How long a claimed `Idempotency-Key` is held (`store.claim_lease_secs`).
    lease: Duration,
}

impl Purchases {
    pub fn new(
        store: Arc<TokenStore>,
        mondiapay: Arc<MondiaPayClient>,
        ttl_secs: u64,
        enforce: bool,
        lease: Duration,
    ) -> Self {
        Self {
            store,
            mondiapay,
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(i64::MAX),
            enforce,
            lease,
        }
    }

    /// Whether a callback must name a purchase this service started.
    pub fn enforced(&self) -> bool {
        self.enforce
    }

    /// Starts a purchase, or returns the one `key` already named. Runs as a task of its own: a
    /// caller that hangs up does not leave a prepared purchase unstored.
    pub async fn start(
        self: &Arc<Self>,
        order: Order,
        key: Option<String>,
    ) -> Result<Started, PurchaseError> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            match key {
                Some(key) => this.start_once(&order, &key).await,
                None => {
                    let new = this.new_purchase(&order);
                    this.prepare(&order, &new, false).await.map(Started::Fresh)
                }
            }
        })
        .await
        .unwrap_or(Err(PurchaseError::Aborted))
    }

    async fn start_once(&self, order: &Order, key: &str) -> Result<Started, PurchaseError> {
        let hash = request_hash(order);
        let lease_secs = i64::try_from(self.lease.as_secs()).unwrap_or(i64::MAX);
        let give_up = Instant::now() + self.lease + KEY_POLL;
        // One id for every turn: an id that lost the key was never stored.
        let new = self.new_purchase(order);
        loop {
            match self
                .store
                .claim_idempotency_key(key, &hash, &new, lease_secs)
                .await?
            {
                KeyClaim::Claimed => {
                    return self.prepare(order, &new, true).await.map(Started::Fresh);
                }
                KeyClaim::Released => continue,
                KeyClaim::Taken(_, other) if other.as_deref() != Some(hash.as_str()) => {
                    return Err(PurchaseError::KeyReused);
                }
                KeyClaim::Taken(purchase, _) if purchase.state != PurchaseState::Preparing => {
                    return Ok(Started::Again(*purchase));
                }
                // Another request holds the key: wait for its purchase, or for its lease to end.
                KeyClaim::Taken(purchase, _) => {
                    if self
                        .store
                        .take_over_purchase(&purchase.id, lease_secs)
                        .await?
                    {
                        let held = NewPurchase {
                            id: purchase.id.clone(),
                            ..new.clone()
                        };
                        return self.prepare(order, &held, true).await.map(Started::Fresh);
                    }
                    if Instant::now() >= give_up {
                        return Err(PurchaseError::KeyInProgress);
                    }
                    tokio::time::sleep(KEY_POLL).await;
                }
            }
        }
    }

    fn new_purchase(&self, order: &Order) -> NewPurchase {
        NewPurchase {
            id: new_purchase_id(),
            reference: order.reference.clone(),
            subscription_type_id: order.subscription_type_id,
        }
    }

    /// Prepare Purchase, then the record stored (durable) before anyone is told; a failed
    /// Prepare Purchase releases a claimed key, so the same key may be tried again.
    async fn prepare(
        &self,
        order: &Order,
        new: &NewPurchase,
        claimed: bool,
    ) -> Result<Purchase, PurchaseError> {
        let prepared = self
            .mondiapay
            .prepare_purchase(&PurchaseOrder {
                purchase_id: &new.id,
                subscription_type_id: order.subscription_type_id,
                marketing_campaign: order.marketing_campaign.as_ref(),
            })
            .await;
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                tracing::warn!(%error, "Prepare Purchase failed; no purchase stored");
                if claimed {
                    self.store.release_purchase_claim(&new.id).await?;
                }
                return Err(error.into());
            }
        };
        let stored = self
            .store
            .store_started_purchase(
                new,
                claimed,
                &prepared.purchase_token,
                prepared.initiate_url.as_str(),
                self.ttl_secs,
            )
            .await;
        let purchase = match stored {
            Ok(purchase) => purchase,
            // A token MondiaPay gave before is no usable answer: nothing is stored, and the key
            // may be tried again.
            Err(StoreError::PurchaseTokenTaken) => {
                tracing::warn!(
                    "MondiaPay's purchase token belongs to another purchase; no purchase stored"
                );
                if claimed {
                    self.store.release_purchase_claim(&new.id).await?;
                }
                return Err(PrepareError::Unusable(NoAnswer::Invalid(
                    "MondiaPay answered a purchase token it had given before".to_owned(),
                ))
                .into());
            }
            Err(error) => return Err(error.into()),
        };
        tracing::info!(purchase_id = %purchase.id, "purchase prepared and stored");
        Ok(purchase)
    }
}

/// `pur_` and 128 random bits, URL-safe: unguessable, so a purchase id cannot be forged into a
/// redirect.
pub fn new_purchase_id() -> String {
    random_id(PURCHASE_ID_PREFIX)
}

/// How long a claimed `Idempotency-Key` holds: longer than the longest chain of MondiaPay calls
/// one purchase can make — waiting on another request's client-token fetch, the client token,
/// Prepare Purchase, and each of the last two once more after a `401` — each bounded by
/// `longest_call`, and never shorter than `store.claim_lease_secs`. A key taken over while its
/// first holder is still calling would make a second purchase at MondiaPay.
pub fn key_lease(claim_lease: Duration, longest_call: Duration) -> Duration {
    const CALLS_IN_A_PURCHASE: u32 = 5;
    claim_lease.max(longest_call * CALLS_IN_A_PURCHASE)
}

/// What makes two requests under one `Idempotency-Key` the same request: their parsed bodies
/// (fields in a fixed order, so spacing and key order do not matter).
fn request_hash(order: &Order) -> String {
    let body = serde_json::to_vec(order).expect("an order serializes");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(body))
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn purchase_ids_carry_128_random_bits() {
        let (a, b) = (new_purchase_id(), new_purchase_id());
        assert_ne!(a, b);
        assert!(a.starts_with("pur_") && a.len() == 4 + 22);
    }

    #[test]
    fn the_same_order_hashes_the_same_and_another_differently() {
        let order = |reference: &str| Order {
            subscription_type_id: 7,
            reference: Some(reference.to_owned()),
            marketing_campaign: Some(serde_json::json!({"agency": "a", "name": "n"})),
        };
        assert_eq!(request_hash(&order("A")), request_hash(&order("A")));
        assert_ne!(request_hash(&order("A")), request_hash(&order("B")));
    }

    #[test]
    fn a_keys_lease_outlasts_a_purchases_every_call() {
        let (claim, call) = (Duration::from_secs(60), Duration::from_secs(23));
        assert_eq!(key_lease(claim, call), Duration::from_secs(115));
        assert_eq!(key_lease(claim, Duration::from_secs(1)), claim);
    }
}

//! Background housekeeping: purges expired tokens and old outcomes after the retention period,
//! expires purchases nobody came back from (and purges them with the rest), forgets idempotency
//! keys after 24 hours and idle rate-limit buckets; keeps the live token gauge counted
//! (`live_tokens`). Stops with the service.

mod live_tokens;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::http::public::limit::ClientLimiter;
use crate::metrics::Metrics;
use crate::store::{PurchasesTidied, TokenStore, now_unix};

pub struct Housekeeping {
    pub store: Arc<TokenStore>,
    pub limiter: Arc<ClientLimiter>,
    pub every: Duration,
    pub retention_secs: i64,
    pub metrics: Arc<Metrics>,
}

impl Housekeeping {
    pub async fn run(self, stop: CancellationToken) {
        let count = live_tokens::LiveTokenCount {
            store: Arc::clone(&self.store),
            metrics: Arc::clone(&self.metrics),
            every: live_tokens::EVERY,
        };
        tokio::join!(self.purge(stop.clone()), count.run(stop));
    }

    async fn purge(&self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.every);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => self.once().await,
            }
        }
    }

    async fn once(&self) {
        self.limiter.forget_idle();
        match self.store.purge(now_unix() - self.retention_secs).await {
            Ok(purged) if purged.any() => tracing::info!(
                tokens = purged.tokens,
                exchanges = purged.exchanges,
                callbacks = purged.callbacks,
                "purged records past their retention"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "purge failed; trying again at the next round"),
        }
        match self
            .store
            .tidy_purchases(now_unix() - self.retention_secs)
            .await
        {
            Ok(tidied) if tidied != PurchasesTidied::default() => tracing::info!(
                expired = tidied.expired,
                settled = tidied.settled,
                purged = tidied.purged,
                idempotency_keys_forgotten = tidied.keys_forgotten,
                "purchases expired and purged"
            ),
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "purchase housekeeping failed; trying again at the next round")
            }
        }
        match self
            .store
            .purge_events(now_unix() - self.retention_secs)
            .await
        {
            Ok(0) => {}
            Ok(events) => tracing::info!(events, "purged events past their retention"),
            Err(error) => {
                tracing::warn!(%error, "event purge failed; trying again at the next round")
            }
        }
    }
}

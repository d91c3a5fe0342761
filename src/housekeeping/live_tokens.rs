//! The live token gauge, counted in the background (at start, after each scrape, and at least
//! every `every`), so that `/metrics` answers from memory: while the store is out of reach a
//! scrape still answers, with the last count and when it was taken.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::TokenStore;

/// How often the count is taken when nobody scrapes.
pub const EVERY: Duration = Duration::from_secs(15);

/// A count that takes longer is abandoned: the gauge keeps its last value and age.
const COUNT_LIMIT: Duration = Duration::from_secs(10);

pub struct LiveTokenCount {
    pub store: Arc<TokenStore>,
    pub metrics: Arc<Metrics>,
    pub every: Duration,
}

impl LiveTokenCount {
    /// Counts until `stop`; one count at a time, so scrapes during an outage do not pile up
    /// queries behind a database that does not answer.
    pub async fn run(self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
                () = self.metrics.live_tokens_wanted() => {}
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.count() => {}
            }
        }
    }

    async fn count(&self) {
        match tokio::time::timeout(COUNT_LIMIT, self.store.count_live_tokens()).await {
            Ok(Ok(live)) => self.metrics.live_tokens_counted(live, unix_now()),
            Ok(Err(error)) => {
                tracing::debug!(%error, "live tokens not counted; the gauge keeps its last value")
            }
            Err(_) => tracing::debug!("live token count timed out; the gauge keeps its last value"),
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

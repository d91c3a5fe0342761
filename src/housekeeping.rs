//! Background housekeeping: purges expired tokens and old outcomes after the retention period,
//! and forgets idle rate-limit buckets. Stops with the service.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::http::state::AppState;
use crate::store::now_unix;

pub struct Housekeeping {
    pub state: AppState,
    pub every: Duration,
    pub retention_secs: i64,
}

impl Housekeeping {
    pub async fn run(self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.every);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => self.once().await,
            }
        }
    }

    async fn once(&self) {
        self.state.limiter.forget_idle();
        match self
            .state
            .store
            .purge(now_unix() - self.retention_secs)
            .await
        {
            Ok(purged) if purged.any() => tracing::info!(
                tokens = purged.tokens,
                exchanges = purged.exchanges,
                callbacks = purged.callbacks,
                "purged records past their retention"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "purge failed; trying again at the next round"),
        }
    }
}

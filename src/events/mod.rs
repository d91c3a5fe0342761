//! MondiaPay's notifications in, the event feed out: a notification is stored (once per
//! `eventUUID`, durably) and counted by outcome; the feed reads events after a cursor, holding a
//! reader that asked to wait until an event comes or its wait ends. Readers in this process are
//! woken at once by an insert in this process; an insert by another replica is found by a
//! re-check every `RECHECK_EVERY`. A shutdown answers waiting readers at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::domain::{Notification, StoredEvent};
use crate::metrics::{Counted, Metrics, outcome_labels};
use crate::store::{StoreError, Stored, TokenStore};

outcome_labels! {
    /// What became of a notification: the `outcome` label of `token_proxy_notifications_total`.
    pub enum NotificationOutcome {
        Stored = "stored",
        /// An `eventUUID` already stored.
        Duplicate = "duplicate",
        StoreUnavailable = "store_unavailable",
        /// Refused before the store saw it: unreadable.
        BadRequest = "bad_request",
        /// Refused before the store saw it: over the body limit.
        TooLarge = "too_large",
        /// Refused before the store saw it: the route's secret wrong, or a method but `POST`.
        WrongSecret = "wrong_secret",
    }
}

/// How often a waiting reader looks for events other replicas stored.
pub const RECHECK_EVERY: Duration = Duration::from_millis(250);

pub struct Events {
    store: Arc<TokenStore>,
    metrics: Arc<Metrics>,
    /// Bumped after every new event this process stores.
    stored: watch::Sender<u64>,
    /// The longest a reader is held: less than the listener's time limit, so a wait ends in an
    /// answer, not in a `408`.
    max_wait: Duration,
    /// How often a waiting reader looks again for other replicas' inserts; `None` when this
    /// process is the store's only writer, whose inserts wake readers themselves.
    recheck: Option<Duration>,
    /// Cancelled when the service begins to shut down: waiting readers are answered at once,
    /// so a long poll does not hold the shutdown for its whole wait.
    closing: CancellationToken,
}

impl Events {
    pub fn new(store: Arc<TokenStore>, metrics: Arc<Metrics>, request_timeout: Duration) -> Self {
        metrics.start_at_zero(
            Counted::Notifications,
            NotificationOutcome::ALL
                .iter()
                .map(|outcome| outcome.as_str()),
        );
        Self {
            metrics,
            stored: watch::Sender::new(0),
            max_wait: max_wait(request_timeout),
            recheck: store.is_shared().then_some(RECHECK_EVERY),
            closing: CancellationToken::new(),
            store,
        }
    }

    /// Ends every wait, now and from now on: the service is shutting down.
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Stores a notification; when this returns `Ok`, it is on disk.
    pub async fn receive(&self, notification: &Notification) -> Result<Stored, StoreError> {
        let stored = self.store.store_event(notification).await;
        let outcome = match &stored {
            Ok(Stored::New(_)) => {
                self.stored.send_modify(|count| *count += 1);
                NotificationOutcome::Stored
            }
            Ok(Stored::Duplicate) => NotificationOutcome::Duplicate,
            Err(_) => NotificationOutcome::StoreUnavailable,
        };
        self.metrics.notification(outcome.as_str());
        stored
    }

    /// Counts a notification refused before the store saw it.
    pub fn refused(&self, outcome: NotificationOutcome) {
        self.metrics.notification(outcome.as_str());
    }

    /// At most `limit` events after `cursor`, oldest first; when there are none, waits up to
    /// `wait` (at most `max_wait`) for one.
    pub async fn after(
        &self,
        cursor: i64,
        limit: i64,
        wait: Duration,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let deadline = Instant::now() + wait.min(self.max_wait);
        loop {
            // Subscribed before reading: an insert between the read and the wait still wakes.
            let mut woken = self.stored.subscribe();
            let events = self.store.events_after(cursor, limit).await?;
            let now = Instant::now();
            if !events.is_empty() || now >= deadline || self.closing.is_cancelled() {
                return Ok(events);
            }
            tokio::select! {
                _ = woken.changed() => {}
                () = tokio::time::sleep(self.recheck.map_or(deadline - now, |every| (deadline - now).min(every))) => {}
                () = self.closing.cancelled() => {}
            }
        }
    }
}

/// A second below the time limit (none below a 1 s limit): the answer leaves before the limit.
fn max_wait(request_timeout: Duration) -> Duration {
    request_timeout.saturating_sub(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_ends_a_second_before_the_time_limit() {
        assert_eq!(max_wait(Duration::from_secs(30)), Duration::from_secs(29));
        assert_eq!(max_wait(Duration::from_secs(1)), Duration::ZERO);
    }
}

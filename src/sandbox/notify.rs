//! Notifications sent the way MondiaPay sends them: a JSON `POST` to the merchant's URL that
//! counts as delivered only on a `200` with a JSON content type and an empty body; otherwise it
//! is delivered again, 3 more times (after a short backoff here), then given up and logged.
//! Deliveries run in the background, one at a time and in order, so a page never waits for them
//! and a cancel's notification never overtakes its subscription's `CREATE`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use tokio::sync::mpsc;
use url::Url;

/// Deliveries after the first when one is not accepted (MondiaPay's rule).
pub(super) const RETRIES: u32 = 3;
/// The first wait before delivering again; it doubles each time.
const BACKOFF: Duration = Duration::from_millis(100);
/// One delivery's bound: a receiver that hangs counts as one that did not accept.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub(super) struct Notifier {
    /// The merchant's URL. It holds the notification secret: never logged.
    url: Url,
    /// The queue of the one delivery task, started with the first notification (inside the
    /// runtime that serves the sandbox).
    queue: Arc<OnceLock<mpsc::UnboundedSender<Value>>>,
}

impl Notifier {
    pub(super) fn new(url: Url) -> Self {
        Self {
            url,
            queue: Arc::default(),
        }
    }

    /// Queues `notification` for delivery; returns at once.
    pub(super) fn deliver(&self, notification: Value) {
        let queue = self.queue.get_or_init(|| {
            let (send, receive) = mpsc::unbounded_channel();
            tokio::spawn(deliveries(self.url.clone(), receive));
            send
        });
        // The task only ends when every sender is gone, so the queue is always open.
        let _ = queue.send(notification);
    }
}

async fn deliveries(url: Url, mut queue: mpsc::UnboundedReceiver<Value>) {
    let http = reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client with a timeout builds");
    while let Some(notification) = queue.recv().await {
        let body = serde_json::to_vec(&notification).expect("JSON values always serialize");
        let mut attempt = 0;
        while !delivered(&http, &url, &body).await {
            if attempt == RETRIES {
                tracing::warn!(
                    event = %notification["event"],
                    event_uuid = %notification["eventUUID"],
                    deliveries = RETRIES + 1,
                    "the merchant did not accept a sandbox notification; given up"
                );
                break;
            }
            tokio::time::sleep(BACKOFF * 2u32.pow(attempt)).await;
            attempt += 1;
        }
    }
}

/// One delivery, and whether the answer counts: `200`, a JSON content type, an empty body.
async fn delivered(http: &reqwest::Client, url: &Url, body: &[u8]) -> bool {
    let sent = http
        .post(url.clone())
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .send()
        .await;
    let Ok(answer) = sent else {
        return false;
    };
    let json = answer
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| {
            let media = media.trim().to_ascii_lowercase();
            media == "application/json" || media.ends_with("+json")
        });
    let status = answer.status();
    let empty = answer.bytes().await.is_ok_and(|bytes| bytes.is_empty());
    status == StatusCode::OK && json && empty
}

//! The sandbox's notifications: MondiaPay's JSON for `CREATE`, `TAGGED_FOR_CANCEL` and
//! `CANCEL`, and MondiaPay's delivery rule, counted by a wiremock receiver: only a `200` with a
//! JSON content type and an empty body counts, anything else is delivered again 3 times.

use std::time::{Duration, Instant};

use mondiapay_token_proxy::sandbox::Sandbox;
use serde_json::Value;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::sandbox::{SandboxMondiaPay, param};

const NOTIFICATIONS: &str = "/mondiapay/notifications/a-secret-of-at-least-32-characters";

/// A receiver answering every notification `answer`, and a sandbox notifying it.
async fn notifying(answer: ResponseTemplate) -> (MockServer, SandboxMondiaPay) {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(NOTIFICATIONS))
        .respond_with(answer)
        .mount(&receiver)
        .await;
    let url = Url::parse(&format!("{}{NOTIFICATIONS}", receiver.uri())).unwrap();
    let sandbox = Sandbox::new(CLIENT_ID, CLIENT_SECRET).notifying(url);
    (receiver, SandboxMondiaPay::serve(sandbox).await)
}

/// How MondiaPay's rule wants a notification answered.
fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(200).insert_header("content-type", "application/json")
}

/// The notifications received so far, as JSON.
async fn received(receiver: &MockServer) -> Vec<Value> {
    let requests = receiver.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .map(|request| serde_json::from_slice(&request.body).unwrap())
        .collect()
}

/// Waits (bounded, generously) until `count` deliveries arrived; returns them.
async fn until_received(receiver: &MockServer, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let received = received(receiver).await;
        if received.len() >= count {
            return received;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} deliveries arrived",
            received.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deliveries of the notification `event_uuid` among `received`.
fn deliveries_of(received: &[Value], event_uuid: &Value) -> usize {
    received
        .iter()
        .filter(|body| body["eventUUID"] == *event_uuid)
        .count()
}

#[tokio::test]
async fn a_confirmed_purchase_notifies_create_in_mondiapays_shape_once_when_accepted() {
    let (receiver, mondiapay) = notifying(accepted()).await;
    let back = mondiapay.confirmed_purchase().await;
    // A second notification, queued behind the first: once it arrived, the first is settled.
    mondiapay.confirmed_purchase().await;
    let received = until_received(&receiver, 2).await;
    let create = &received[0];
    assert_eq!(deliveries_of(&received, &create["eventUUID"]), 1);
    assert_eq!(create["event"], "CREATE");
    assert_eq!(create["reason"], "CREATE_ACTIVE");
    assert_eq!(create["status"], "ACTIVE");
    assert_eq!(create["subState"], "NONE");
    assert_eq!(create["subscriptionId"], "1001");
    assert_eq!(create["subscriptionTypeId"], "12345");
    assert_eq!(create["uuid"], param(&back, "uuid").unwrap().as_str());
    assert!(!create["purchaseToken"].as_str().unwrap().is_empty());
    for field in [
        "uuid",
        "purchaseToken",
        "subscriptionId",
        "subscriptionTypeId",
        "event",
        "reason",
        "status",
        "subState",
        "eventDateTime",
        "eventUUID",
        "taggedForCancellation",
    ] {
        assert!(create[field].is_string(), "{field}: {create}");
    }
    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(
        requests[0].headers["content-type"].to_str().unwrap(),
        "application/json"
    );
}

#[tokio::test]
async fn the_purchase_token_of_prepare_purchase_comes_back_in_its_notification() {
    let (receiver, mondiapay) = notifying(accepted()).await;
    let href = mondiapay.purchase(crate::sandbox::THANKS).await;
    let purchase_token = href.rsplit('/').next().unwrap().to_owned();
    mondiapay.decide(&href, "confirm").await;
    let received = until_received(&receiver, 1).await;
    assert_eq!(received[0]["purchaseToken"], purchase_token.as_str());
}

#[tokio::test]
async fn a_cancel_notifies_tagged_for_cancel_or_cancel() {
    let (receiver, mondiapay) = notifying(accepted()).await;
    let back = mondiapay.confirmed_purchase().await;
    let token = mondiapay.user_token(&param(&back, "code").unwrap()).await;
    mondiapay.cancel(&token, "1001", "false").await;
    mondiapay.cancel(&token, "1001", "true").await;
    let received = until_received(&receiver, 3).await;
    let events: Vec<_> = received.iter().map(|body| body["event"].clone()).collect();
    assert_eq!(events, ["CREATE", "TAGGED_FOR_CANCEL", "CANCEL"]);
    assert_eq!(received[1]["taggedForCancellation"], "true");
    assert_eq!(received[1]["status"], "ACTIVE");
    assert_eq!(received[2]["reason"], "CANCEL_IMMEDIATELY");
    assert_eq!(received[2]["status"], "CANCELED");
    assert!(received.iter().all(|body| body["subscriptionId"] == "1001"));
}

/// A receiver answering `answer` gets the first notification 1 + 3 times, then no more: the
/// next notification's first delivery (queued behind it) arrives after the last of them.
async fn assert_delivered_four_times_then_given_up(answer: ResponseTemplate) {
    let (receiver, mondiapay) = notifying(answer).await;
    mondiapay.confirmed_purchase().await;
    let first = until_received(&receiver, 1).await[0]["eventUUID"].clone();
    until_received(&receiver, 4).await;
    mondiapay.confirmed_purchase().await;
    let received = until_received(&receiver, 5).await;
    assert_ne!(received[4]["eventUUID"], first);
    assert_eq!(deliveries_of(&received, &first), 4);
}

#[tokio::test]
async fn a_receiver_answering_500_gets_a_notification_1_plus_3_times() {
    assert_delivered_four_times_then_given_up(ResponseTemplate::new(500)).await;
}

#[tokio::test]
async fn a_receiver_answering_200_with_a_body_gets_a_notification_1_plus_3_times() {
    assert_delivered_four_times_then_given_up(accepted().set_body_string("{}")).await;
}

#[tokio::test]
async fn a_receiver_answering_200_text_plain_gets_a_notification_1_plus_3_times() {
    let text = ResponseTemplate::new(200).insert_header("content-type", "text/plain");
    assert_delivered_four_times_then_given_up(text).await;
}

#[tokio::test]
async fn a_slow_receiver_never_holds_up_the_purchase_page() {
    // The receiver takes 20 s; the redirect back must not wait for it (5 s: a generous bound).
    let (_receiver, mondiapay) = notifying(accepted().set_delay(Duration::from_secs(20))).await;
    let started = Instant::now();
    let back = mondiapay.confirmed_purchase().await;
    mondiapay.confirmed_purchase().await;
    assert!(param(&back, "code").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// What a test's tasks log, at every level, collected in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// One thread: the sandbox's tasks run on the test's thread, where the capturing subscriber is.
#[tokio::test(flavor = "current_thread")]
async fn a_notification_given_up_is_logged_by_its_event_never_with_the_secret_url() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let (receiver, mondiapay) = notifying(ResponseTemplate::new(500)).await;
    mondiapay.confirmed_purchase().await;
    let event_uuid = until_received(&receiver, 1).await[0]["eventUUID"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !captured.text().contains(&event_uuid) {
        assert!(
            Instant::now() < deadline,
            "not given up: {}",
            captured.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logs = captured.text();
    let secret = NOTIFICATIONS.rsplit('/').next().unwrap();
    assert!(!logs.contains(secret), "{logs}");
    assert!(!logs.contains(CLIENT_SECRET), "{logs}");
}

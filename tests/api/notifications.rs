//! `POST /mondiapay/notifications/{secret}`: MondiaPay's notifications stored durably and once,
//! answered as MondiaPay requires, matched to the purchases this service started; anyone without
//! the secret sees an unknown route.

use std::collections::BTreeMap;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::{Row, SqlitePool};

use crate::helpers::*;
use crate::process::Served;

/// The secret the tests give MondiaPay (at least 32 characters).
pub const NOTIFICATION_SECRET: &str = "n0tifY-7Qk2Lm9Xc4Vb8Nz1Hd6Js3Fa5Gt0";

/// The service with the notification route on.
pub async fn spawn_notified_app(more: &str) -> TestApp {
    spawn_app_with(&format!(
        "NOTIFICATIONS__SECRET={NOTIFICATION_SECRET} {more}"
    ))
    .await
}

/// A notification as MondiaPay's docs show one (values as strings), for `event_uuid`.
pub fn notification(event_uuid: &str) -> Value {
    json!({
        "uuid": "user-7f3a",
        "purchaseToken": "8adca8fb-0000-4000-8000-000000000001",
        "subscriptionId": "sub-991",
        "subscriptionTypeId": "12345",
        "channel": "WEB",
        "event": "CREATE",
        "reason": "CREATE_ACTIVE",
        "status": "ACTIVE",
        "subState": "NONE",
        "startDate": "2026-11-26T06:00:00Z",
        "price": {"amount": "1.99", "currency": "EUR"},
        "eventDateTime": "2026-11-26T06:00:01Z",
        "eventUUID": event_uuid,
    })
}

/// The service's SQLite file, opened beside it.
async fn database(app: &TestApp) -> SqlitePool {
    SqlitePool::connect(&format!("sqlite://{}/tokens.db", app.dir.path().display()))
        .await
        .unwrap()
}

async fn stored_events(app: &TestApp) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM events")
        .fetch_one(&database(app).await)
        .await
        .unwrap()
        .get("n")
}

/// An answer with what differs between any two requests (its request id, which the page shows
/// as the support reference, and the date) blanked out: what a caller can compare.
async fn comparable(response: Response) -> (StatusCode, BTreeMap<String, String>, String) {
    let status = response.status();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| !["x-request-id", "date"].contains(&name.as_str()))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    let body = response
        .text()
        .await
        .unwrap()
        .replace(&request_id, "REQUEST-ID");
    (status, headers, body)
}

/// What an unknown public route answers a `POST` of a notification.
async fn unknown_route_answer(app: &Client) -> (StatusCode, BTreeMap<String, String>, String) {
    let body = notification("evt-unknown-route").to_string();
    let answer = app
        .public_post(
            &format!("/mondiapay/no-such-route/{NOTIFICATION_SECRET}"),
            body,
        )
        .await;
    comparable(answer).await
}

#[tokio::test]
async fn a_notification_is_stored_then_answered_200_with_a_json_content_type_and_an_empty_body() {
    let app = spawn_notified_app("").await;
    let answer = app
        .notify(NOTIFICATION_SECRET, &notification("evt-stored-1"))
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(content_type(&answer), "application/json");
    assert_eq!(answer.text().await.unwrap(), "", "an empty body");

    let row = sqlx::query("SELECT event_uuid, event, status, uuid, raw FROM events")
        .fetch_one(&database(&app).await)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("event_uuid"), "evt-stored-1");
    assert_eq!(row.get::<String, _>("event"), "CREATE");
    assert_eq!(row.get::<String, _>("uuid"), "user-7f3a");
    let raw: Value = serde_json::from_str(&row.get::<String, _>("raw")).unwrap();
    assert_eq!(raw, notification("evt-stored-1"));
}

#[tokio::test]
async fn the_same_event_uuid_again_is_answered_200_and_stored_once() {
    let app = spawn_notified_app("").await;
    for _ in 0..3 {
        let answer = app
            .notify(NOTIFICATION_SECRET, &notification("evt-retried"))
            .await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.text().await.unwrap(), "");
    }
    let other = app
        .notify(NOTIFICATION_SECRET, &notification("evt-another"))
        .await;
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(stored_events(&app).await, 2);
}

#[tokio::test]
async fn a_wrong_or_missing_secret_gets_exactly_the_unknown_routes_404_and_stores_nothing() {
    let app = spawn_notified_app("").await;
    let unknown = unknown_route_answer(&app).await;
    assert_eq!(unknown.0, StatusCode::NOT_FOUND);
    let body = notification("evt-no-secret").to_string();
    let almost = &NOTIFICATION_SECRET[..NOTIFICATION_SECRET.len() - 1];
    let longer = format!("{NOTIFICATION_SECRET}x");
    for segment in [almost, longer.as_str(), "", "%00", "..", "x"] {
        let answer = app.notify_raw(segment, body.clone()).await;
        assert_eq!(comparable(answer).await, unknown, "secret {segment:?}");
    }
    let no_segment = app
        .public_post("/mondiapay/notifications", body.clone())
        .await;
    assert_eq!(comparable(no_segment).await, unknown);
    // Another method, even with the right secret, says nothing either (no `405`, no `Allow`).
    let get = app
        .browser_get(&format!("/mondiapay/notifications/{NOTIFICATION_SECRET}"))
        .await;
    let (status, headers, _) = comparable(get).await;
    assert_eq!((status, headers), (unknown.0, unknown.1.clone()));
    assert_eq!(stored_events(&app).await, 0);
}

#[tokio::test]
async fn with_the_route_off_a_notification_gets_exactly_the_unknown_routes_404() {
    let app = spawn_app().await;
    let unknown = unknown_route_answer(&app).await;
    for segment in [NOTIFICATION_SECRET, ""] {
        let answer = app
            .notify_raw(segment, notification("evt-off").to_string())
            .await;
        assert_eq!(comparable(answer).await, unknown, "secret {segment:?}");
    }
    assert_eq!(stored_events(&app).await, 0);
}

#[tokio::test]
async fn a_body_over_64_kib_is_refused_with_413_and_stored_nowhere() {
    let app = spawn_notified_app("").await;
    let padded = |event_uuid: &str, size: usize| {
        let mut body = notification(event_uuid);
        let unpadded = body.to_string().len() + r#","padding":"""#.len();
        body["padding"] = "p".repeat(size - unpadded).into();
        let text = body.to_string();
        assert_eq!(text.len(), size);
        text
    };
    let at_limit = app
        .notify_raw(NOTIFICATION_SECRET, padded("evt-at-limit", 64 * 1024))
        .await;
    assert_eq!(at_limit.status(), StatusCode::OK, "64 KiB is accepted");
    let over = app
        .notify_raw(NOTIFICATION_SECRET, padded("evt-over", 64 * 1024 + 1))
        .await;
    assert_eq!(over.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(stored_events(&app).await, 1);
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_or_lacks_event_uuid_or_event_is_refused_with_400() {
    let app = spawn_notified_app("").await;
    let mut without_uuid = notification("x");
    without_uuid.as_object_mut().unwrap().remove("eventUUID");
    let mut without_event = notification("evt-without-event");
    without_event.as_object_mut().unwrap().remove("event");
    let mut empty_event = notification("evt-empty-event");
    empty_event["event"] = "".into();
    let bodies = [
        "not json".to_owned(),
        "".to_owned(),
        "[]".to_owned(),
        "\"CREATE\"".to_owned(),
        without_uuid.to_string(),
        without_event.to_string(),
        empty_event.to_string(),
        notification(&"e".repeat(300)).to_string(),
    ];
    for body in bodies {
        let answer = app.notify_raw(NOTIFICATION_SECRET, body.clone()).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    assert_eq!(stored_events(&app).await, 0);
}

#[tokio::test]
async fn notifications_are_rate_limited_like_every_public_route() {
    let app =
        spawn_notified_app("PUBLIC__RATE_LIMIT_BURST=2 PUBLIC__RATE_LIMIT_PER_SECOND=1").await;
    let mut statuses = Vec::new();
    for n in 0..3 {
        let answer = app
            .notify(
                NOTIFICATION_SECRET,
                &notification(&format!("evt-limited-{n}")),
            )
            .await;
        statuses.push(answer.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(stored_events(&app).await, 2);
}

/// A purchase's uuid, whether it is confirmed, its subscription and its last update, by id.
pub const CONFIRMED_PURCHASE: &str =
    "SELECT uuid, uuid_confirmed, subscription_id, updated_at FROM purchases WHERE id = $1";

/// What `notification(…)` leaves on the purchase whose token it names (created at 1000): the
/// user MondiaPay named, confirmed, and the subscription's id.
pub fn assert_confirmed_by_the_notification(purchase: (String, bool, Option<String>, i64)) {
    let (uuid, confirmed, subscription_id, updated_at) = purchase;
    assert_eq!(uuid, "user-7f3a");
    assert!(confirmed, "uuid_confirmed");
    assert_eq!(subscription_id.as_deref(), Some("sub-991"));
    assert!(updated_at > 1000, "updated_at moved");
}

/// A purchase this service started, as `POST /v1/purchases` records it. Still `started` and
/// expiring far ahead, so housekeeping (which runs at start-up) neither expires nor purges it.
async fn insert_purchase(db: &SqlitePool, id: &str, reference: &str, purchase_token: &str) {
    sqlx::query(
        "INSERT INTO purchases (id, ref, state, subscription_type_id, purchase_token, \
             redirect_url, uuid, created_at, expires_at, updated_at) \
         VALUES ($1, $2, 'started', 12345, $3, 'https://gateway.example/initiate', \
             'uuid-from-the-query', 1000, 4000000000, 1000)",
    )
    .bind(id)
    .bind(reference)
    .bind(purchase_token)
    .execute(db)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_notification_naming_a_purchase_token_confirms_the_purchases_uuid_and_subscription() {
    let app = spawn_notified_app("").await;
    let db = database(&app).await;
    let token = "8adca8fb-0000-4000-8000-000000000001";
    insert_purchase(&db, "pur_matched", "ORDER-42", token).await;
    insert_purchase(&db, "pur_other", "ORDER-43", "another-purchase-token").await;

    let answer = app
        .notify(NOTIFICATION_SECRET, &notification("evt-match"))
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let mut unmatched = notification("evt-no-match");
    unmatched["purchaseToken"] = "unknown-purchase-token".into();
    app.notify(NOTIFICATION_SECRET, &unmatched).await;

    let purchase = sqlx::query_as(CONFIRMED_PURCHASE)
        .bind("pur_matched")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_confirmed_by_the_notification(purchase);
    let other = sqlx::query(
        "SELECT uuid, uuid_confirmed, subscription_id FROM purchases WHERE id = 'pur_other'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(other.get::<String, _>("uuid"), "uuid-from-the-query");
    assert!(!other.get::<bool, _>("uuid_confirmed"));
    assert_eq!(other.get::<Option<String>, _>("subscription_id"), None);

    let events = sqlx::query("SELECT event_uuid, purchase_id, ref FROM events ORDER BY seq")
        .fetch_all(&db)
        .await
        .unwrap();
    let matched: Vec<(String, Option<String>, Option<String>)> = events
        .iter()
        .map(|row| {
            (
                row.get("event_uuid"),
                row.get("purchase_id"),
                row.get("ref"),
            )
        })
        .collect();
    assert_eq!(
        matched,
        [
            (
                "evt-match".to_owned(),
                Some("pur_matched".to_owned()),
                Some("ORDER-42".to_owned())
            ),
            ("evt-no-match".to_owned(), None, None),
        ]
    );
}

#[tokio::test]
async fn notifications_are_counted_by_outcome() {
    let app = spawn_notified_app("").await;
    app.notify(NOTIFICATION_SECRET, &notification("evt-counted"))
        .await;
    app.notify(NOTIFICATION_SECRET, &notification("evt-counted"))
        .await;
    app.notify_raw(NOTIFICATION_SECRET, "not json").await;
    app.notify_raw("wrong-secret", "{}").await;
    app.notify_raw(NOTIFICATION_SECRET, "x".repeat(64 * 1024 + 1))
        .await;
    let metrics = app.metrics_text().await;
    for outcome in [
        "stored",
        "duplicate",
        "bad_request",
        "wrong_secret",
        "too_large",
    ] {
        let line = format!("token_proxy_notifications_total{{outcome=\"{outcome}\"}} 1");
        assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
    }
    assert!(!metrics.contains(NOTIFICATION_SECRET));
    assert!(metrics.contains("route=\"/mondiapay/notifications/{secret}\""));
}

#[tokio::test]
async fn logs_at_debug_level_never_hold_the_notification_secret() {
    let (_mondiapay, _dir, mut env) = MondiaPay::start().await;
    env.extend(settings(&format!(
        "NOTIFICATIONS__SECRET={NOTIFICATION_SECRET}"
    )));
    let served = Served::start(&env);
    let almost = &NOTIFICATION_SECRET[..NOTIFICATION_SECRET.len() - 1];
    let answers = [
        served
            .notify(NOTIFICATION_SECRET, &notification("evt-logged"))
            .await,
        served
            .notify(NOTIFICATION_SECRET, &notification("evt-logged"))
            .await,
        served.notify_raw(NOTIFICATION_SECRET, "not json").await,
        served
            .notify_raw(NOTIFICATION_SECRET, "x".repeat(70_000))
            .await,
        served.notify_raw(almost, "{}").await,
        served
            .browser_get(&format!("/mondiapay/notifications/{NOTIFICATION_SECRET}"))
            .await,
    ]
    .map(|answer| answer.status().as_u16());
    assert_eq!(answers, [200, 200, 400, 413, 404, 404]);
    let metrics = served.metrics_text().await;
    assert!(!metrics.contains(almost));

    let (exit, lines) = served.stop();
    assert_eq!(exit, Some(0));
    let notified: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("/mondiapay/notifications/{secret}"))
        .collect();
    assert!(
        notified.len() >= 4,
        "the requests' lines name the route: {notified:?}"
    );
    for line in &lines {
        assert!(!line.contains(almost), "the secret in the log: {line}");
    }
}

#[tokio::test]
async fn events_are_purged_after_the_retention_period() {
    let app = spawn_notified_app("STORE__RETENTION_SECS=1 STORE__PURGE_INTERVAL_SECS=1").await;
    let answer = app
        .notify(NOTIFICATION_SECRET, &notification("evt-old"))
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(stored_events(&app).await, 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while stored_events(&app).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the event was never purged"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A request without the secret is answered before its body is read: it cannot tell the route
/// by how the body is waited for, nor hold the connection open to trickle one in. Here the body
/// announced is never sent, and the unknown route's `404` comes at once all the same.
#[tokio::test]
async fn a_wrong_secret_is_answered_before_the_body_is_read() {
    let app = spawn_notified_app("").await;
    let address = app.public.trim_start_matches("http://").parse().unwrap();
    let request = b"POST /mondiapay/notifications/not-the-secret-0123456789abcdef HTTP/1.1\r\n\
        Host: shop.example\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\
        Connection: close\r\n\r\n";
    let answer = crate::raw_http::send_raw(address, request)
        .await
        .expect("an answer, without the body ever sent");
    assert_eq!(answer.status, 404);
    assert!(answer.is_page());
}

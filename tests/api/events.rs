//! `GET /v1/events`: the notifications as a feed read by cursor, oldest first, with a long-poll
//! `wait`; every event seen once by a consumer that follows `next`, also while two replicas on
//! one PostgreSQL store notifications at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{PgPool, Row};

use crate::helpers::*;
use crate::notifications::{
    CONFIRMED_PURCHASE, NOTIFICATION_SECRET, assert_confirmed_by_the_notification, notification,
    spawn_notified_app,
};
use crate::postgres::PgCluster;
use crate::process::Served;

/// The event uuids of a page of the feed, in order.
fn event_uuids(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["event_uuid"].as_str().unwrap().to_owned())
        .collect()
}

async fn notified(app: &Client, event_uuid: &str) {
    let answer = app
        .notify(NOTIFICATION_SECRET, &notification(event_uuid))
        .await;
    assert_eq!(answer.status(), StatusCode::OK, "{event_uuid}");
}

#[tokio::test]
async fn the_feed_lists_events_oldest_first_with_every_documented_field() {
    let app = spawn_notified_app("").await;
    for event_uuid in ["evt-a", "evt-b", "evt-c"] {
        notified(&app, event_uuid).await;
    }
    let page = app.events_json("").await;
    assert_eq!(event_uuids(&page), ["evt-a", "evt-b", "evt-c"]);
    let first = &page["events"][0];
    let mut fields: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "cursor",
            "event",
            "event_time",
            "event_uuid",
            "purchase_id",
            "raw",
            "reason",
            "received_at",
            "ref",
            "status",
            "sub_state",
            "subscription_id",
            "subscription_type_id",
            "uuid",
        ]
    );
    assert_eq!(first["event"], "CREATE");
    assert_eq!(first["reason"], "CREATE_ACTIVE");
    assert_eq!(first["status"], "ACTIVE");
    assert_eq!(first["sub_state"], "NONE");
    assert_eq!(first["uuid"], "user-7f3a");
    assert_eq!(first["subscription_id"], "sub-991");
    assert_eq!(first["subscription_type_id"], "12345");
    assert_eq!(first["event_time"], "2026-11-26T06:00:01Z");
    assert!(first["purchase_id"].is_null() && first["ref"].is_null());
    assert_eq!(first["raw"], notification("evt-a"), "the body as received");
    let received = first["received_at"].as_str().unwrap();
    assert!(
        received.ends_with('Z') && received.len() == 20,
        "{received}"
    );
    let cursors: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["cursor"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        cursors.windows(2).all(|pair| pair[0] < pair[1]),
        "{cursors:?}"
    );
    assert_eq!(page["next"], page["events"][2]["cursor"]);
}

#[tokio::test]
async fn a_consumer_that_passes_the_last_next_sees_every_event_once() {
    let app = spawn_notified_app("").await;
    let sent: Vec<String> = (0..7).map(|n| format!("evt-paged-{n}")).collect();
    for event_uuid in &sent {
        notified(&app, event_uuid).await;
    }
    notified(&app, "evt-paged-3").await;
    let (mut seen, mut next) = (Vec::new(), String::new());
    loop {
        let page = app.events_json(&format!("after={next}&limit=3")).await;
        let uuids = event_uuids(&page);
        assert!(uuids.len() <= 3);
        next = page["next"].as_str().unwrap().to_owned();
        if uuids.is_empty() {
            break;
        }
        seen.extend(uuids);
    }
    assert_eq!(seen, sent);
    // At the end, the same `next` again: nothing new, and `next` stays.
    let end = app.events_json(&format!("after={next}")).await;
    assert_eq!(end, json!({"events": [], "next": next}));
    notified(&app, "evt-paged-late").await;
    let late = app.events_json(&format!("after={next}")).await;
    assert_eq!(event_uuids(&late), ["evt-paged-late"]);
}

#[tokio::test]
async fn a_bad_after_limit_or_wait_is_refused_with_a_400_problem() {
    let app = spawn_notified_app("").await;
    for query in [
        "after=abc",
        "after=-1",
        "after=1.5",
        "after=+3",
        "after=99999999999999999999",
        "limit=0",
        "limit=101",
        "limit=ten",
        "wait=31",
        "wait=-1",
        "wait=1s",
        "since=3",
        "after=1&after=2",
    ] {
        let answer = app.events(query).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(content_type(&answer), "application/problem+json");
        assert_problem_kind(&json(answer).await, "bad-request");
    }
    for query in ["after=0&limit=100&wait=0", "after=&limit=1", "limit=100"] {
        assert_eq!(app.events(query).await.status(), StatusCode::OK, "{query}");
    }
}

#[tokio::test]
async fn a_waiting_request_returns_as_soon_as_a_notification_is_stored() {
    let app = spawn_notified_app("").await;
    notified(&app, "evt-before").await;
    let next = app.events_json("").await["next"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let waiting = tokio::spawn({
        let app = app.client.clone();
        async move { app.events_json(&format!("after={next}&wait=20")).await }
    });
    // Nothing to answer with: the request is held (for up to 20 s).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "answered with nothing to say");
    notified(&app, "evt-awaited").await;
    let page = waiting.await.unwrap();
    assert_eq!(event_uuids(&page), ["evt-awaited"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken by the notification, not by the end of the wait"
    );
}

#[tokio::test]
async fn a_wait_that_ends_without_an_event_answers_none_and_the_same_next() {
    let app = spawn_notified_app("").await;
    notified(&app, "evt-only").await;
    let next = app.events_json("").await["next"].clone();
    let started = Instant::now();
    let page = app
        .events_json(&format!("after={}&wait=1", next.as_str().unwrap()))
        .await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "held for the wait"
    );
    assert_eq!(page, json!({"events": [], "next": next}));
}

#[tokio::test]
async fn a_wait_is_cut_short_of_the_request_time_limit() {
    let app = spawn_notified_app("INTERNAL__REQUEST_TIMEOUT_SECS=4").await;
    let started = Instant::now();
    let answer = app.events("wait=30").await;
    assert_eq!(answer.status(), StatusCode::OK, "an answer, not a 408");
    assert_eq!(json(answer).await, json!({"events": [], "next": "0"}));
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "held until a second short of the 4 s limit"
    );
}

#[tokio::test]
async fn on_postgresql_a_notification_naming_a_purchase_token_confirms_the_purchase() {
    let cluster = PgCluster::start();
    let app = spawn_notified_app(&cluster.store_settings()).await;
    let db = PgPool::connect(&cluster.url()).await.unwrap();
    sqlx::query(
        "INSERT INTO purchases (id, ref, state, subscription_type_id, purchase_token, \
             redirect_url, created_at, expires_at, updated_at) \
         VALUES ('pur_pg', 'ORDER-PG', 'started', 12345, $1, 'https://gateway.example/i', \
             1000, 4000000000, 1000)",
    )
    .bind(notification("x")["purchaseToken"].as_str().unwrap())
    .execute(&db)
    .await
    .unwrap();
    notified(&app, "evt-pg-match").await;
    notified(&app, "evt-pg-match").await;

    let purchase = sqlx::query_as(CONFIRMED_PURCHASE)
        .bind("pur_pg")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_confirmed_by_the_notification(purchase);
    let page = app.events_json("").await;
    assert_eq!(event_uuids(&page), ["evt-pg-match"], "stored once");
    assert_eq!(page["events"][0]["purchase_id"], "pur_pg");
    assert_eq!(page["events"][0]["ref"], "ORDER-PG");
}

/// Notifications sent to the two replicas at once, this many in flight per replica.
const IN_FLIGHT: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_following_next_sees_every_event_once_while_two_replicas_insert_at_once() {
    let cluster = PgCluster::start();
    let (_mondiapay, _dir, mut env) = MondiaPay::start().await;
    env.extend(settings(&cluster.store_settings()));
    env.extend(settings(&format!(
        "NOTIFICATIONS__SECRET={NOTIFICATION_SECRET} PUBLIC__RATE_LIMIT_PER_SECOND=1000000 \
         PUBLIC__RATE_LIMIT_BURST=1000000"
    )));
    let a = Served::start(&env);
    let b = Served::start(&env);
    let total = 3000;
    let sent: Vec<String> = (0..total).map(|n| format!("evt-burst-{n}")).collect();

    // The reader follows the cursor from the start, alternating replicas, while both insert;
    // once everything is sent, it reads until the feed has nothing more.
    let all_sent = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn({
        let replicas = [a.client.clone(), b.client.clone()];
        let all_sent = Arc::clone(&all_sent);
        async move {
            let (mut seen, mut next, mut turn) = (Vec::new(), String::from("0"), 0);
            let deadline = Instant::now() + Duration::from_secs(180);
            loop {
                assert!(Instant::now() < deadline, "only {} events seen", seen.len());
                let finished = all_sent.load(Ordering::SeqCst);
                let page = replicas[turn % 2]
                    .events_json(&format!("after={next}&limit=100&wait=1"))
                    .await;
                turn += 1;
                next = page["next"].as_str().unwrap().to_owned();
                let uuids = event_uuids(&page);
                if uuids.is_empty() && finished {
                    return seen;
                }
                seen.extend(uuids);
            }
        }
    });

    let senders: Vec<_> = [a.client.clone(), b.client.clone()]
        .into_iter()
        .enumerate()
        .map(|(replica, client)| {
            // Each replica gets its half, and a redelivery of every tenth event of the other
            // half (MondiaPay retrying at the other replica).
            let mine: Vec<String> = sent
                .iter()
                .enumerate()
                .filter(|(n, _)| n % 2 == replica || n % 10 == 1 - replica)
                .map(|(_, uuid)| uuid.clone())
                .collect();
            tokio::spawn(async move {
                let next = Arc::new(std::sync::Mutex::new(mine.into_iter()));
                let workers: Vec<_> = (0..IN_FLIGHT)
                    .map(|_| {
                        let (client, next) = (client.clone(), next.clone());
                        tokio::spawn(async move {
                            loop {
                                let Some(uuid) = next.lock().unwrap().next() else {
                                    return;
                                };
                                notified(&client, &uuid).await;
                            }
                        })
                    })
                    .collect();
                for worker in workers {
                    worker.await.unwrap();
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    all_sent.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();

    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "no event seen twice");
    let skipped = sent.iter().filter(|uuid| !distinct.contains(uuid)).count();
    assert_eq!(skipped, 0, "events the reader skipped");
    assert_eq!(seen.len(), total);
    let db = PgPool::connect(&cluster.url()).await.unwrap();
    let stored: i64 = sqlx::query("SELECT COUNT(*) AS n FROM events")
        .fetch_one(&db)
        .await
        .unwrap()
        .get("n");
    assert_eq!(stored, total as i64, "redeliveries stored once");
    for replica in [a, b] {
        assert_eq!(replica.stop().0, Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_answers_waiting_readers_at_once() {
    let (_mondiapay, _dir, mut env) = MondiaPay::start().await;
    env.extend(settings(&format!(
        "NOTIFICATIONS__SECRET={NOTIFICATION_SECRET}"
    )));
    let mut served = Served::start(&env);
    let waiting = tokio::spawn({
        let client = served.client.clone();
        async move { client.events("wait=25").await }
    });
    // Nothing to answer with: the request is held (for up to 25 s).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "answered with nothing to say");
    let started = Instant::now();
    served.terminate();
    let answer = waiting.await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(json(answer).await, json!({"events": [], "next": "0"}));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered when the shutdown began, not at the end of the wait"
    );
    assert_eq!(served.wait().0, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_notification_and_stores_none_twice() {
    let (_mondiapay, _dir, mut env) = MondiaPay::start().await;
    env.extend(settings(&format!(
        "NOTIFICATIONS__SECRET={NOTIFICATION_SECRET} PUBLIC__RATE_LIMIT_PER_SECOND=1000000 \
         PUBLIC__RATE_LIMIT_BURST=1000000"
    )));
    let served = Served::start(&env);
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            let client = served.client.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0.. {
                    let event_uuid = format!("evt-crash-{sender}-{n}");
                    let body = notification(&event_uuid).to_string();
                    let path = format!("/mondiapay/notifications/{NOTIFICATION_SECRET}");
                    match client.public_post_request(&path, body).send().await {
                        Ok(answer) if answer.status() == StatusCode::OK => {
                            acknowledged.push(event_uuid);
                        }
                        Ok(_) => {}
                        // The service died under us: this one may or may not be stored.
                        Err(_) => return acknowledged,
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    served.kill();
    assert_eq!(served.wait().0, None);
    let mut acknowledged = Vec::new();
    for sender in senders {
        acknowledged.extend(sender.await.unwrap());
    }
    assert!(
        acknowledged.len() > 10,
        "the load got going: {}",
        acknowledged.len()
    );

    let restarted = Served::start(&env);
    let (mut seen, mut next) = (Vec::new(), String::from("0"));
    loop {
        let page = restarted.events_json(&format!("after={next}")).await;
        next = page["next"].as_str().unwrap().to_owned();
        let uuids = event_uuids(&page);
        if uuids.is_empty() {
            break;
        }
        seen.extend(uuids);
    }
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "no event stored twice");
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|uuid| !distinct.contains(uuid))
        .collect();
    assert!(lost.is_empty(), "acknowledged, then lost: {lost:?}");
    assert_eq!(restarted.stop().0, Some(0));
}

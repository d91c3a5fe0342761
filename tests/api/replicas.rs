//! Several replicas on one PostgreSQL database behave as one service: one exchange per code,
//! every token visible from each, a dead replica's claim taken over after its lease, and a
//! database outage answered with 503 until it is back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use wiremock::ResponseTemplate;

use crate::helpers::*;
use crate::postgres::PgCluster;
use crate::process::Served;

/// `POST /v1/exchange` of `code` through `replica`; an error when the replica dies under it.
async fn exchange(replica: &Client, code: &str) -> reqwest::Result<reqwest::Response> {
    replica
        .api(Method::POST, "/v1/exchange")
        .json(&json!({"code": code, "ref": "ORDER-REPLICAS"}))
        .send()
        .await
}

/// A MondiaPay mock and the environment for replicas sharing `cluster`: a 10 s claim lease, and
/// a MondiaPay call given up after 5 s with no connect retry.
async fn leased_replicas(cluster: &PgCluster) -> (MondiaPay, TempDir, HashMap<String, String>) {
    let (mondiapay, dir, mut env) = MondiaPay::start().await;
    env.extend(settings(&cluster.store_settings()));
    env.extend(settings(
        "STORE__CLAIM_LEASE_SECS=10 MONDIAPAY__TIMEOUT_SECS=5 \
         MONDIAPAY__CONNECT_TIMEOUT_SECS=1 MONDIAPAY__CONNECT_RETRIES=0",
    ));
    (mondiapay, dir, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_exchange_a_code_once_and_both_see_the_token() {
    let cluster = PgCluster::start();
    let (mondiapay, _dir, mut env) = MondiaPay::start().await;
    env.extend(settings(&cluster.store_settings()));
    mondiapay
        .answers(issues_after("Ushared", Duration::from_millis(300)), 1)
        .await;
    let a = Served::start(&env);
    let b = Served::start(&env);

    let code = new_code();
    let requests: Vec<_> = (0..20)
        .map(|n| {
            let replica = (if n % 2 == 0 { &a } else { &b }).client.clone();
            let code = code.clone();
            tokio::spawn(async move {
                exchange(&replica, &code)
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for request in requests {
        let record = request.await.unwrap();
        assert_eq!(record["access_token"], "Ushared", "{record}");
        ids.push(record["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one record for the code: {ids:?}");
    for replica in [&a, &b] {
        let found = json(replica.tokens_by_ref("ORDER-REPLICAS").await).await;
        assert_eq!(found["id"], ids[0].as_str());
    }
    for replica in [a, b] {
        assert_eq!(replica.stop().0, Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_exchange_is_taken_over_after_its_lease() {
    let cluster = PgCluster::start();
    let (mondiapay, _dir, env) = leased_replicas(&cluster).await;
    let hanging = issues_after("Ulost", Duration::from_secs(30));
    mondiapay.answers_first_call(hanging).await;
    mondiapay
        .answers(
            ResponseTemplate::new(200).set_body_json(success_body("Utakeover")),
            1,
        )
        .await;
    let a = Served::start(&env);
    let b = Served::start(&env);
    let code = new_code();
    let doomed = tokio::spawn({
        let (a, code) = (a.client.clone(), code.clone());
        async move { exchange(&a, &code).await }
    });
    mondiapay.until_called().await;
    let claimed_at = Instant::now();
    a.kill();
    assert_eq!(a.wait().0, None);
    assert!(
        doomed.await.unwrap().is_err(),
        "the killed replica never answered"
    );

    let response = exchange(&b, &code).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        claimed_at.elapsed() >= Duration::from_secs(5),
        "taken over only after the lease"
    );
    assert_eq!(
        response.json::<Value>().await.unwrap()["access_token"],
        "Utakeover"
    );
    assert_eq!(b.stop().0, Some(0));
}

#[tokio::test]
async fn a_stopped_database_answers_503_until_it_is_back() {
    let cluster = PgCluster::start();
    let app = spawn_app_with(&cluster.store_settings()).await;
    let blocked_code = code_for_after_the_fault(&app).await;
    app.mondiapay.issues_tokens(1).await;
    let before = json(app.exchange(&new_code(), "ORDER-PG").await).await;

    cluster.stop();
    assert_store_refuses(&app, &blocked_code).await;

    cluster.start_again();
    assert_store_recovers(&app, &blocked_code).await;
    let stored = app.stored_token(&before).await;
    assert_eq!(stored["access_token"], before["access_token"]);
}

/// libfaketime from Debian's `faketime` package: shifts the wall clock of the process it is
/// preloaded into (the monotonic clock stays true).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_clock_runs_ahead_cannot_take_over_a_live_claim() {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "this test needs Debian's faketime package: apt-get install -y faketime (.ci/run does)"
    );
    let cluster = PgCluster::start();
    let (mondiapay, _dir, env) = leased_replicas(&cluster).await;
    mondiapay
        .answers(issues_after("Uonce", Duration::from_secs(3)), 1)
        .await;
    let a = Served::start(&env);
    // Replica B's clock is two minutes ahead: far past any lease replica A takes.
    let mut skewed = env.clone();
    for (key, value) in [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME", "+120s"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ] {
        skewed.insert(key.to_owned(), value.to_owned());
    }
    let b = Served::start(&skewed);

    let code = new_code();
    let first = tokio::spawn({
        let (a, code) = (a.client.clone(), code.clone());
        async move { exchange(&a, &code).await.unwrap() }
    });
    mondiapay.until_called().await;
    let second = exchange(&b, &code).await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.unwrap();
    let first: Value = first.await.unwrap().json().await.unwrap();
    assert_eq!(first["access_token"], "Uonce");
    assert_eq!(second["id"], first["id"], "B waited for A's exchange");

    assert_eq!(a.stop().0, Some(0));
    let (code, lines) = b.stop();
    assert_eq!(code, Some(0));
    // The skew took: B's log lines are stamped about two minutes ahead.
    let stamp = lines
        .iter()
        .find_map(|line| {
            serde_json::from_str::<Value>(line).ok()?["timestamp"]
                .as_str()
                .map(str::to_owned)
        })
        .expect("B logs with timestamps");
    // RFC 3339 UTC stamps of one shape compare as strings, to the second.
    let a_minute_ahead = (time::OffsetDateTime::now_utc() + Duration::from_secs(60))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert!(
        stamp[..19] > a_minute_ahead[..19],
        "B's clock is not ahead: {stamp} vs {a_minute_ahead}"
    );
}

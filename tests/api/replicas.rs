//! Several replicas on one PostgreSQL database behave as one service: one exchange per code,
//! every token visible from each, a dead replica's claim taken over after its lease, and a
//! database outage answered with 503 until it is back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;
use wiremock::{MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::postgres::PgCluster;
use crate::process::{Served, exchange_at, mondiapay, mount_first_answer};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

async fn exchange(internal: &str, code: &str) -> reqwest::Result<reqwest::Response> {
    exchange_at(&reqwest::Client::new(), internal, code, "ORDER-REPLICAS")
        .send()
        .await
}

/// A MondiaPay mock and the environment for replicas sharing `cluster`: a 10 s claim lease, and
/// a MondiaPay call given up after 5 s with no connect retry.
async fn leased_replicas(cluster: &PgCluster) -> (MockServer, TempDir, HashMap<String, String>) {
    let (server, dir, mut env) = mondiapay().await;
    for (key, value) in [
        ("STORE__URL", cluster.url()),
        ("STORE__ENCRYPTION_KEY", KEY.to_owned()),
        ("STORE__CLAIM_LEASE_SECS", "10".to_owned()),
        ("MONDIAPAY__TIMEOUT_SECS", "5".to_owned()),
        ("MONDIAPAY__CONNECT_TIMEOUT_SECS", "1".to_owned()),
        ("MONDIAPAY__CONNECT_RETRIES", "0".to_owned()),
    ] {
        env.insert(format!("TOKEN_PROXY__{key}"), value);
    }
    (server, dir, env)
}

/// Mounts a MondiaPay that issues `access_token` after `delay`, expecting exactly one call.
async fn issues_once_after(server: &MockServer, access_token: &str, delay: Duration) {
    let slow = issues_after(access_token, delay);
    wiremock::Mock::given(wiremock::matchers::path(TOKEN_PATH))
        .respond_with(slow)
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_exchange_a_code_once_and_both_see_the_token() {
    let cluster = PgCluster::start();
    let (server, _dir, mut env) = mondiapay().await;
    env.insert("TOKEN_PROXY__STORE__URL".into(), cluster.url());
    env.insert("TOKEN_PROXY__STORE__ENCRYPTION_KEY".into(), KEY.into());
    issues_once_after(&server, "Ushared", Duration::from_millis(300)).await;
    let (a, a_internal) = Served::start(&env);
    let (b, b_internal) = Served::start(&env);

    let code = new_code();
    let requests: Vec<_> = (0..20)
        .map(|n| {
            let internal = if n % 2 == 0 {
                a_internal.clone()
            } else {
                b_internal.clone()
            };
            let code = code.clone();
            tokio::spawn(async move {
                exchange(&internal, &code)
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
    for internal in [&a_internal, &b_internal] {
        let found = send_for_json(
            reqwest::Client::new()
                .get(format!("{internal}/v1/tokens?ref=ORDER-REPLICAS"))
                .bearer_auth(API_KEY),
        )
        .await;
        assert_eq!(found["id"], ids[0].as_str());
    }
    for replica in [a, b] {
        replica.terminate();
        assert_eq!(replica.wait().0, Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_exchange_is_taken_over_after_its_lease() {
    let cluster = PgCluster::start();
    let (server, _dir, env) = leased_replicas(&cluster).await;
    let hanging = issues_after("Ulost", Duration::from_secs(30));
    mount_first_answer(&server, hanging).await;
    wiremock::Mock::given(wiremock::matchers::path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(success_body("Utakeover")))
        .expect(1)
        .mount(&server)
        .await;
    let (a, a_internal) = Served::start(&env);
    let (b, b_internal) = Served::start(&env);
    let code = new_code();
    let doomed = tokio::spawn({
        let code = code.clone();
        async move { exchange(&a_internal, &code).await }
    });
    until_mondiapay_is_called(&server).await;
    let claimed_at = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &a.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(a.wait().0, None);
    assert!(
        doomed.await.unwrap().is_err(),
        "the killed replica never answered"
    );

    let response = exchange(&b_internal, &code).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        claimed_at.elapsed() >= Duration::from_secs(5),
        "taken over only after the lease"
    );
    assert_eq!(
        response.json::<Value>().await.unwrap()["access_token"],
        "Utakeover"
    );
    b.terminate();
    assert_eq!(b.wait().0, Some(0));
}

#[tokio::test]
async fn a_stopped_database_answers_503_until_it_is_back() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    let app = spawn_app_with(&[("STORE__URL", &url), ("STORE__ENCRYPTION_KEY", KEY)]).await;
    let blocked_code = code_for_after_the_fault(&app).await;
    app.mondiapay_issues_tokens(1).await;
    let before = json(app.exchange_code(&new_code(), "ORDER-PG").await).await;

    cluster.stop();
    assert_store_refuses(&app, &blocked_code).await;

    cluster.start_again();
    assert_store_recovers(&app, &blocked_code).await;
    let stored = app.token_stored_for(&before).await;
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
    let (server, _dir, env) = leased_replicas(&cluster).await;
    issues_once_after(&server, "Uonce", Duration::from_secs(3)).await;
    let (a, a_internal) = Served::start(&env);
    // Replica B's clock is two minutes ahead: far past any lease replica A takes.
    let mut skewed = env.clone();
    for (key, value) in [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME", "+120s"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ] {
        skewed.insert(key.to_owned(), value.to_owned());
    }
    let (b, b_internal) = Served::start(&skewed);

    let code = new_code();
    let first = tokio::spawn({
        let code = code.clone();
        async move { exchange(&a_internal, &code).await.unwrap() }
    });
    until_mondiapay_is_called(&server).await;
    let second = exchange(&b_internal, &code).await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.unwrap();
    let first: Value = first.await.unwrap().json().await.unwrap();
    assert_eq!(first["access_token"], "Uonce");
    assert_eq!(second["id"], first["id"], "B waited for A's exchange");

    a.terminate();
    assert_eq!(a.wait().0, Some(0));
    b.terminate();
    let (code, lines) = b.wait();
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

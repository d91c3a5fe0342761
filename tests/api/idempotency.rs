//! `Idempotency-Key` on `POST /v1/purchases`: the same key again (24 h) gives the same purchase
//! without a second call to MondiaPay, sequentially, concurrently and across replicas.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::helpers::*;
use crate::postgres::PgCluster;
use crate::process::Served;
use crate::purchases::{issues_client_tokens, prepare_answers_first, prepares_purchases};

fn order(reference: &str) -> Value {
    json!({"subscription_type_id": 12345, "ref": reference})
}

#[tokio::test]
async fn the_same_idempotency_key_gives_the_same_purchase_without_a_second_call() {
    let app = spawn_app().await;
    issues_client_tokens(&app.mondiapay, 1).await;
    prepares_purchases(&app.mondiapay, 1).await;
    let first = app
        .start_purchase(&order("ORDER-IDEM"), Some("key-1"))
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first = json(first).await;
    let again = app
        .start_purchase(&order("ORDER-IDEM"), Some("key-1"))
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(json(again).await, first);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let app = spawn_app().await;
    issues_client_tokens(&app.mondiapay, 1).await;
    prepares_purchases(&app.mondiapay, 1).await;
    let first = app.start_purchase(&order("ORDER-A"), Some("key-2")).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let other = app.start_purchase(&order("ORDER-B"), Some("key-2")).await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_problem_kind(&json(other).await, "idempotency-key-reused");
}

#[tokio::test]
async fn concurrent_requests_with_one_key_make_one_purchase() {
    let app = spawn_app().await;
    issues_client_tokens(&app.mondiapay, 1).await;
    prepare_answers_first(&app.mondiapay, slow_prepare(Duration::from_millis(500)), 1).await;
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let client = app.client.clone();
            tokio::spawn(async move {
                let response = client
                    .start_purchase(&order("ORDER-CONC"), Some("key-3"))
                    .await;
                (response.status(), json(response).await["id"].clone())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    let mut ids = Vec::new();
    for request in requests {
        let (status, id) = request.await.unwrap();
        statuses.push(status);
        ids.push(id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1
    );
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 9);
}

fn slow_prepare(delay: Duration) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"purchaseToken": format!("slow-{}", new_code()), "expiresIn": 300,
            "_links": {"initiatePurchase": {"href": "https://gateway.example/v1/web/purchase/initiate/slow"}}}))
        .set_delay(delay)
}

#[tokio::test]
async fn a_key_whose_prepare_failed_may_be_sent_again() {
    let app = spawn_app().await;
    issues_client_tokens(&app.mondiapay, 1).await;
    prepare_answers_first(&app.mondiapay, ResponseTemplate::new(503), 1).await;
    prepares_purchases(&app.mondiapay, 1).await;
    let failed = app
        .start_purchase(&order("ORDER-RETRY"), Some("key-4"))
        .await;
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    let retried = app
        .start_purchase(&order("ORDER-RETRY"), Some("key-4"))
        .await;
    assert_eq!(retried.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_key_is_forgotten_after_24_hours() {
    let app = spawn_app().await;
    issues_client_tokens(&app.mondiapay, 1).await;
    prepares_purchases(&app.mondiapay, 2).await;
    let first = json(
        app.start_purchase(&order("ORDER-OLD-KEY"), Some("key-5"))
            .await,
    )
    .await;
    // A day passes for this purchase.
    let database = format!("sqlite://{}/tokens.db", app.dir.path().display());
    let pool = sqlx::SqlitePool::connect(&database).await.unwrap();
    sqlx::query("UPDATE purchases SET created_at = created_at - 86401")
        .execute(&pool)
        .await
        .unwrap();
    let later = app
        .start_purchase(&order("ORDER-OLD-KEY"), Some("key-5"))
        .await;
    assert_eq!(later.status(), StatusCode::CREATED);
    assert_ne!(json(later).await["id"], first["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgresql_make_one_purchase_per_key_and_few_client_tokens() {
    let cluster = PgCluster::start();
    let (mondiapay, _dir, mut env) = MondiaPay::start().await;
    env.extend(settings(&cluster.store_settings()));
    // Each replica holds its own client token in memory: one fetch each at most.
    crate::purchases::client_tokens_between(&mondiapay, 1, 2).await;
    prepare_answers_first(&mondiapay, slow_prepare(Duration::from_millis(300)), 1).await;
    let a = Served::start(&env);
    let b = Served::start(&env);
    let requests: Vec<_> = (0..20)
        .map(|n| {
            let replica = (if n % 2 == 0 { &a } else { &b }).client.clone();
            tokio::spawn(async move {
                let response = replica
                    .start_purchase(&order("ORDER-REPLICAS"), Some("key-6"))
                    .await;
                (response.status(), json(response).await)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for request in requests {
        let (status, purchase) = request.await.unwrap();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status} {purchase}"
        );
        ids.push(purchase["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    for replica in [&a, &b] {
        let listed = replica.purchases_by_ref("ORDER-REPLICAS").await;
        assert_eq!(listed["purchases"].as_array().unwrap().len(), 1);
    }
    for replica in [a, b] {
        assert_eq!(replica.stop().0, Some(0));
    }
}

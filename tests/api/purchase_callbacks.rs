//! The callback with a purchase (`purchase=<id>`): its token and outcome belong to the
//! purchase's `ref`, the purchase follows the outcome, and an unknown, expired or reused purchase
//! id is refused without a call to MondiaPay or a recorded outcome; `purchases.enforce`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockBuilder, ResponseTemplate};

use crate::helpers::*;
use crate::purchases::{issues_client_tokens, prepares_purchases, started};

/// The token endpoint's authorization code grant (the exchange of a callback's code).
fn code_grant() -> MockBuilder {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(query_param("grant_type", "authorization_code"))
}

/// The code grant issues a fresh user token per call, expecting `calls` calls.
async fn issues_user_tokens(app: &TestApp, calls: u64) {
    code_grant()
        .respond_with(IssueTokens)
        .expect(calls)
        .mount(&app.mondiapay)
        .await;
}

/// An app with one started purchase for `reference`; returns the purchase's id.
async fn with_purchase(assignments: &str, reference: &str) -> (TestApp, String) {
    let app = spawn_app_with(assignments).await;
    issues_client_tokens(&app.mondiapay, 1).await;
    prepares_purchases(&app.mondiapay, 1).await;
    let purchase = started(&app, reference, StatusCode::CREATED).await;
    let id = purchase["id"].as_str().unwrap().to_owned();
    (app, id)
}

async fn purchase(app: &TestApp, id: &str) -> Value {
    json(app.purchase(id).await).await
}

/// Waits (15 s at most, a generous bound for housekeeping rounds of 1 s) until `done`.
async fn eventually<Check, Done>(what: &str, mut done: Check)
where
    Check: FnMut() -> Done,
    Done: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done().await {
        assert!(Instant::now() < deadline, "never {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The refusal page: `400`, "this link is no longer valid".
async fn assert_link_refused(app: &TestApp, query: &str) {
    let page = app.callback(query).await;
    assert_eq!(page.status(), StatusCode::BAD_REQUEST, "{query}");
    let html = page.text().await.unwrap();
    assert!(html.contains("This link is no longer valid"), "{html}");
}

#[tokio::test]
async fn the_token_and_outcome_belong_to_the_purchases_ref_not_the_querys() {
    let (app, id) = with_purchase("", "ORDER-PUR").await;
    issues_user_tokens(&app, 1).await;
    let code = new_code();
    let query = format!("ref=FORGED&code={code}&status=200&uuid=8142&purchase={id}");
    let (_, status, _) = app.callback_page(&query).await;
    assert_eq!(status, StatusCode::OK);

    let token = json(app.tokens_by_ref("ORDER-PUR").await).await;
    assert_eq!(token["uuid"], "8142");
    assert_eq!(
        app.tokens_by_ref("FORGED").await.status(),
        StatusCode::NOT_FOUND
    );
    let outcomes = app.callbacks("ORDER-PUR").await;
    assert_eq!(outcomes[0]["outcome"], "succeeded");
    assert_eq!(app.callbacks("FORGED").await, json!([]));

    let purchase = purchase(&app, &id).await;
    assert_eq!(purchase["state"], "succeeded");
    assert_eq!(purchase["token_id"], token["id"]);
    assert_eq!(purchase["uuid"], "8142");
    assert_eq!(purchase["uuid_confirmed"], false);
}

#[tokio::test]
async fn the_same_code_again_on_the_same_purchase_is_an_ordinary_replay() {
    let (app, id) = with_purchase("", "ORDER-REPLAY").await;
    issues_user_tokens(&app, 1).await;
    let query = format!("code={}&status=200&purchase={id}", new_code());
    let first = app.callback(&query).await;
    let again = app.callback(&query).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(first.headers()["location"], again.headers()["location"]);
    assert_eq!(purchase(&app, &id).await["state"], "succeeded");
}

#[tokio::test]
async fn an_unknown_purchase_id_is_refused_without_an_upstream_call_or_an_outcome() {
    let app = spawn_app().await;
    issues_user_tokens(&app, 0).await;
    let query = format!(
        "ref=ORDER-UNKNOWN&code={}&purchase=pur_AAAAAAAAAAAAAAAAAAAAAA",
        new_code()
    );
    assert_link_refused(&app, &query).await;
    assert_link_refused(
        &app,
        "ref=ORDER-UNKNOWN&error=INSUFFICIENT_FUNDS&purchase=pur_x",
    )
    .await;
    assert_eq!(app.callbacks("ORDER-UNKNOWN").await, json!([]));
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(r#"token_proxy_callbacks_total{outcome="link_expired"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_expired_purchase_is_refused_without_an_upstream_call_or_an_outcome() {
    let (app, id) = with_purchase("PURCHASES__TTL_SECS=1", "ORDER-LATE").await;
    issues_user_tokens(&app, 0).await;
    // The purchase's time runs out (whole seconds: past its expires_at for certain).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_link_refused(&app, &format!("code={}&purchase={id}", new_code())).await;
    assert_eq!(app.callbacks("ORDER-LATE").await, json!([]));
    assert_eq!(purchase(&app, &id).await["state"], "started");
}

#[tokio::test]
async fn a_purchase_completed_with_another_code_is_refused() {
    let (app, id) = with_purchase("", "ORDER-TWICE").await;
    issues_user_tokens(&app, 1).await;
    app.callback_page(&format!("code={}&purchase={id}", new_code()))
        .await;
    let before = app.callbacks("ORDER-TWICE").await;
    assert_link_refused(&app, &format!("code={}&purchase={id}", new_code())).await;
    assert_link_refused(&app, &format!("error=INSUFFICIENT_FUNDS&purchase={id}")).await;
    assert_eq!(app.callbacks("ORDER-TWICE").await, before);
    assert_eq!(purchase(&app, &id).await["state"], "succeeded");
}

#[tokio::test]
async fn a_failed_purchase_is_recorded_on_the_purchase_and_its_code_never_sent() {
    let (app, id) = with_purchase("", "ORDER-POOR").await;
    issues_user_tokens(&app, 0).await;
    let query = format!(
        "code={}&error=INSUFFICIENT_FUNDS&status=402&purchase={id}",
        new_code()
    );
    let (_, status, _) = app.callback_page(&query).await;
    assert_eq!(status, StatusCode::OK);
    let purchase = purchase(&app, &id).await;
    assert_eq!(purchase["state"], "purchase_failed");
    assert_eq!(purchase["mondiapay_error"], "INSUFFICIENT_FUNDS");
    assert_eq!(
        app.callbacks("ORDER-POOR").await[0]["outcome"],
        "purchase_failed"
    );
}

#[tokio::test]
async fn a_rejected_code_leaves_the_purchase_code_rejected() {
    let (app, id) = with_purchase("", "ORDER-REJECTED").await;
    code_grant()
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .expect(1)
        .mount(&app.mondiapay)
        .await;
    app.callback(&format!("code={}&purchase={id}", new_code()))
        .await;
    let purchase = purchase(&app, &id).await;
    assert_eq!(purchase["state"], "code_rejected");
    assert_eq!(purchase["mondiapay_error"], "invalid_grant");
}

#[tokio::test]
async fn an_unavailable_purchase_may_still_succeed_on_a_later_callback() {
    let (app, id) = with_purchase("MONDIAPAY__CONNECT_RETRIES=0", "ORDER-FLAKY").await;
    code_grant()
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&app.mondiapay)
        .await;
    issues_user_tokens(&app, 1).await;
    let query = format!("code={}&status=200&uuid=77&purchase={id}", new_code());
    let (_, status, _) = app.callback_page(&query).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(purchase(&app, &id).await["state"], "unavailable");
    let (_, status, _) = app.callback_page(&query).await;
    assert_eq!(status, StatusCode::OK);
    let purchase = purchase(&app, &id).await;
    assert_eq!(purchase["state"], "succeeded");
    assert_eq!(purchase["uuid"], "77");
}

#[tokio::test]
async fn with_enforce_a_callback_without_a_purchase_is_refused() {
    let app = spawn_app_with("PURCHASES__ENFORCE=true").await;
    issues_user_tokens(&app, 0).await;
    assert_link_refused(&app, &format!("ref=ORDER-ENF&code={}", new_code())).await;
    assert_link_refused(&app, "ref=ORDER-ENF&error=INSUFFICIENT_FUNDS").await;
    assert_eq!(app.callbacks("ORDER-ENF").await, json!([]));
}

#[tokio::test]
async fn with_enforce_a_callback_with_a_live_purchase_is_exchanged() {
    let (app, id) = with_purchase("PURCHASES__ENFORCE=true", "ORDER-ENF-OK").await;
    issues_user_tokens(&app, 1).await;
    let (_, status, _) = app
        .callback_page(&format!("code={}&purchase={id}", new_code()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(purchase(&app, &id).await["state"], "succeeded");
}

#[tokio::test]
async fn without_enforce_a_callback_without_a_purchase_keeps_the_old_rules() {
    let app = spawn_app().await;
    issues_user_tokens(&app, 1).await;
    let (_, status, _) = app
        .callback_page(&format!("ref=ORDER-OLD-RULES&code={}", new_code()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.tokens_by_ref("ORDER-OLD-RULES").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn started_purchases_past_their_ttl_become_expired() {
    let (app, id) = with_purchase(
        "PURCHASES__TTL_SECS=1 STORE__PURGE_INTERVAL_SECS=1",
        "ORDER-EXPIRE",
    )
    .await;
    eventually("expired", || async {
        purchase(&app, &id).await["state"] == "expired"
    })
    .await;
    assert_link_refused(&app, &format!("code={}&purchase={id}", new_code())).await;
}

#[tokio::test]
async fn ended_purchases_are_purged_after_the_retention_period() {
    let (app, id) = with_purchase(
        "PURCHASES__TTL_SECS=1 STORE__PURGE_INTERVAL_SECS=1 STORE__RETENTION_SECS=1",
        "ORDER-PURGE",
    )
    .await;
    eventually("purged", || async {
        app.purchase(&id).await.status() == StatusCode::NOT_FOUND
    })
    .await;
}

/// A succeeded purchase outlives the retention period: its subscription's notifications,
/// months later, still find their order by it.
#[tokio::test]
async fn a_succeeded_purchase_is_kept_past_the_retention_period() {
    // Long enough a life for the kept purchase's callback to come before it ends, on a machine
    // loaded by the whole suite (1 s was not).
    let app = spawn_app_with(
        "PURCHASES__TTL_SECS=4 STORE__PURGE_INTERVAL_SECS=1 STORE__RETENTION_SECS=1",
    )
    .await;
    issues_client_tokens(&app.mondiapay, 1).await;
    prepares_purchases(&app.mondiapay, 2).await;
    let kept = started(&app, "ORDER-KEPT", StatusCode::CREATED).await;
    let kept = kept["id"].as_str().unwrap().to_owned();
    issues_user_tokens(&app, 1).await;
    let (_, status, _) = app
        .callback_page(&format!(
            "code={}&status=200&uuid=8142&purchase={kept}",
            new_code()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let expired = started(&app, "ORDER-GONE", StatusCode::CREATED).await;
    let expired = expired["id"].as_str().unwrap().to_owned();
    // The statement that purged the expired one would have purged the succeeded one with it.
    eventually("purged", || async {
        app.purchase(&expired).await.status() == StatusCode::NOT_FOUND
    })
    .await;
    assert_eq!(purchase(&app, &kept).await["state"], "succeeded");
}

/// A `401` whose body repeats the bearer token it was sent, and the client secret.
struct EchoingRefusal;

impl wiremock::Respond for EchoingRefusal {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let bearer = request.headers["authorization"]
            .to_str()
            .unwrap()
            .to_owned();
        ResponseTemplate::new(401).set_body_json(json!({
            "status": "UNAUTHORIZED", "error": "TOKEN_NOT_FOUND",
            "message": format!("{bearer} unknown for {CLIENT_SECRET}"),
        }))
    }
}

#[tokio::test]
async fn logs_of_a_purchase_hold_no_client_token_secret_or_code() {
    use crate::process::Served;
    let (mondiapay, _dir, env) = MondiaPay::start().await;
    issues_client_tokens(&mondiapay, 2).await;
    crate::purchases::prepare_call()
        .respond_with(EchoingRefusal)
        .up_to_n_times(1)
        .expect(1)
        .mount(&mondiapay)
        .await;
    prepares_purchases(&mondiapay, 1).await;
    code_grant()
        .respond_with(IssueTokens)
        .expect(1)
        .mount(&mondiapay)
        .await;
    let served = Served::start(&env);
    let purchase = started(&served, "ORDER-LOGS", StatusCode::CREATED).await;
    let code = new_code();
    let query = format!("code={code}&purchase={}", purchase["id"].as_str().unwrap());
    served.callback_page(&query).await;
    let token = json(served.tokens_by_ref("ORDER-LOGS").await).await;

    let client_tokens: Vec<String> = mondiapay
        .calls()
        .await
        .iter()
        .filter_map(|call| call.headers.get("authorization"))
        .map(|bearer| {
            bearer
                .to_str()
                .unwrap()
                .trim_start_matches("Bearer ")
                .to_owned()
        })
        .collect();
    assert_eq!(client_tokens.len(), 2, "{client_tokens:?}");
    let (exit, lines) = served.stop();
    assert_eq!(exit, Some(0));
    let mut secrets = vec![
        CLIENT_SECRET.to_owned(),
        code,
        token["access_token"].as_str().unwrap().to_owned(),
    ];
    secrets.extend(client_tokens);
    assert!(
        lines.len() > 20,
        "debug logging is on: {} lines",
        lines.len()
    );
    for line in &lines {
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "a secret in the log: {line}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_purchases_are_bound_settled_and_expired() {
    use crate::postgres::PgCluster;
    use crate::process::Served;
    let cluster = PgCluster::start();
    let (mondiapay, _dir, mut env) = MondiaPay::start().await;
    env.extend(settings(&cluster.store_settings()));
    env.extend(settings(
        "PURCHASES__TTL_SECS=2 STORE__PURGE_INTERVAL_SECS=1",
    ));
    issues_client_tokens(&mondiapay, 1).await;
    prepares_purchases(&mondiapay, 3).await;
    code_grant()
        .respond_with(IssueTokens)
        .expect(1)
        .mount(&mondiapay)
        .await;
    let served = Served::start(&env);
    let id = |purchase: &Value| purchase["id"].as_str().unwrap().to_owned();
    let paid = id(&started(&served, "ORDER-PG", StatusCode::CREATED).await);
    let poor = id(&started(&served, "ORDER-PG", StatusCode::CREATED).await);
    let gone = id(&started(&served, "ORDER-PG", StatusCode::CREATED).await);
    served
        .callback_page(&format!("code={}&uuid=9&purchase={paid}", new_code()))
        .await;
    served
        .callback_page(&format!("error=INSUFFICIENT_FUNDS&purchase={poor}"))
        .await;
    let state = |id: String| {
        let served = served.client.clone();
        async move { json(served.purchase(&id).await).await["state"].clone() }
    };
    assert_eq!(state(paid.clone()).await, "succeeded");
    assert_eq!(state(poor.clone()).await, "purchase_failed");
    eventually("expired", || async {
        state(gone.clone()).await == "expired"
    })
    .await;
    assert_eq!(
        state(paid).await,
        "succeeded",
        "an ended purchase does not expire"
    );
    assert_eq!(served.stop().0, Some(0));
}

/// A callback binds its code before the exchange and records the outcome after; a purchase left
/// `started` with its code bound (the process died in between) is moved on by housekeeping from
/// its code's exchange: succeeded with the token, or `unavailable` when no exchange says more.
#[tokio::test]
async fn a_purchase_whose_callback_lost_its_outcome_is_settled_from_its_codes_exchange() {
    let app = spawn_app_with("STORE__PURGE_INTERVAL_SECS=1").await;
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}/tokens.db", app.dir.path().display()))
        .await
        .unwrap();
    // One transaction: housekeeping running between two autocommits would settle `pur_lost_ok`
    // before its exchange is there.
    sqlx::raw_sql(
        "BEGIN; INSERT INTO purchases (id, ref, state, subscription_type_id, redirect_url, code_hash, \
             created_at, expires_at, updated_at) VALUES \
         ('pur_lost_ok', 'ORDER-LOST-1', 'started', 12345, 'https://gateway.example/i', 'hash-ok', \
             unixepoch() - 7200, unixepoch() + 3600, unixepoch() - 7200), \
         ('pur_lost_none', 'ORDER-LOST-2', 'started', 12345, 'https://gateway.example/i', \
             'hash-none', unixepoch() - 7200, unixepoch() + 3600, unixepoch() - 7200), \
         ('pur_bound_now', 'ORDER-LOST-3', 'started', 12345, 'https://gateway.example/i', \
             'hash-now', unixepoch(), unixepoch() + 3600, unixepoch()); \
         INSERT INTO exchanges (code_hash, state, attempt, token_id, created_at, updated_at) \
         VALUES ('hash-ok', 'succeeded', 1, 'tok_lost', unixepoch() - 7200, unixepoch() - 7200); COMMIT",
    )
    .execute(&db)
    .await
    .unwrap();
    // Gone, like the process that left these rows: it holds no lock the service's writer waits on.
    db.close().await;
    eventually("settled", || async {
        purchase(&app, "pur_lost_ok").await["state"] == "succeeded"
    })
    .await;
    assert_eq!(purchase(&app, "pur_lost_ok").await["token_id"], "tok_lost");
    assert_eq!(
        purchase(&app, "pur_lost_none").await["state"],
        "unavailable"
    );
    // A code bound just now may still be under way: left alone.
    assert_eq!(purchase(&app, "pur_bound_now").await["state"], "started");
}

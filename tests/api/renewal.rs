//! `GET /v1/tokens?…&renew=true`: a user without a live token gets a renewed one
//! (`grant_type=user_credentials`), stored under the same `ref` and `uuid`; never while a live
//! token exists; one renewal per user at a time, also across replicas.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockBuilder, ResponseTemplate};

use crate::helpers::*;
use crate::postgres::PgCluster;
use crate::process::Served;

/// MondiaPay's token endpoint asked for a user token for `uuid`, with the merchant's credentials.
pub fn user_credentials(uuid: &str) -> MockBuilder {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(query_param("grant_type", "user_credentials"))
        .and(query_param("uuid", uuid))
        .and(query_param("client_id", CLIENT_ID))
        .and(query_param("client_secret", CLIENT_SECRET))
}

/// MondiaPay answers `mock`'s calls with `answer`, expecting exactly `calls` of them.
pub async fn answers(
    mondiapay: &MondiaPay,
    mock: MockBuilder,
    answer: ResponseTemplate,
    calls: u64,
) {
    mock.respond_with(answer)
        .expect(calls)
        .mount(mondiapay)
        .await;
}

/// MondiaPay answers the first of `mock`'s calls with `answer`, expecting exactly that one;
/// later calls fall through to what is mounted next.
pub async fn answers_once(mondiapay: &MondiaPay, mock: MockBuilder, answer: ResponseTemplate) {
    mock.respond_with(answer)
        .up_to_n_times(1)
        .expect(1)
        .mount(mondiapay)
        .await;
}

/// MondiaPay renews `uuid`'s token as `access_token`, expecting exactly `calls` renewals.
pub async fn renews(mondiapay: &MondiaPay, uuid: &str, access_token: &str, calls: u64) {
    let answer = ResponseTemplate::new(200).set_body_json(success_body(access_token));
    answers(mondiapay, user_credentials(uuid), answer, calls).await;
}

/// MondiaPay is never asked to renew `uuid`'s token.
pub async fn never_renews(mondiapay: &MondiaPay, uuid: &str) {
    renews(mondiapay, uuid, "Unever", 0).await;
}

/// A user token record obtained from a code for `reference` and `uuid` (either may be empty),
/// `access_token` valid for `expires_in` seconds: the exchange's answer.
pub async fn user_with_token(
    mondiapay: &MondiaPay,
    client: &Client,
    owner: (&str, &str),
    access_token: &str,
    expires_in: &str,
) -> (StatusCode, Value) {
    let code = new_code();
    let mut body = success_body(access_token);
    body["expires_in"] = json!(expires_in);
    mondiapay
        .answers_code(&code, ResponseTemplate::new(200).set_body_json(body))
        .await;
    let response = client
        .exchange_with(json!({"code": code, "ref": owner.0, "uuid": owner.1}))
        .await;
    (response.status(), json(response).await)
}

/// A user whose only token is live for 12 hours: its record.
pub async fn user_with_live_token(
    mondiapay: &MondiaPay,
    client: &Client,
    owner: (&str, &str),
    access_token: &str,
) -> Value {
    let (status, record) = user_with_token(mondiapay, client, owner, access_token, "43200").await;
    assert_eq!(status, StatusCode::OK, "{record}");
    record
}

/// A user whose only token expires within the expiry margin (60 s): stored, never served.
pub async fn user_with_expired_token(mondiapay: &MondiaPay, client: &Client, owner: (&str, &str)) {
    let (status, answer) = user_with_token(mondiapay, client, owner, "Uexpired", "30").await;
    assert_eq!(status, StatusCode::GONE, "{answer}");
}

#[tokio::test]
async fn renew_true_without_a_live_token_stores_a_user_credentials_token_under_the_same_ref_and_uuid()
 {
    let app = spawn_app().await;
    user_with_expired_token(&app.mondiapay, &app, ("ORDER-R1", "uuid-r1")).await;
    renews(&app.mondiapay, "uuid-r1", "Urenewed1", 1).await;

    let response = app.renewed_token("uuid=uuid-r1").await;
    assert_eq!(response.status(), StatusCode::OK);
    let renewed = json(response).await;
    assert_eq!(renewed["access_token"], "Urenewed1");
    assert_eq!(renewed["ref"], "ORDER-R1");
    assert_eq!(renewed["uuid"], "uuid-r1");
    for found in [
        app.tokens_by_ref("ORDER-R1").await,
        app.tokens_by_uuid("uuid-r1").await,
        app.token(renewed["id"].as_str().unwrap()).await,
    ] {
        assert_eq!(json(found).await["id"], renewed["id"], "stored and served");
    }
}

#[tokio::test]
async fn renew_true_with_a_ref_renews_for_the_uuid_of_the_refs_most_recent_token() {
    let app = spawn_app().await;
    user_with_expired_token(&app.mondiapay, &app, ("ORDER-R2", "uuid-old")).await;
    user_with_expired_token(&app.mondiapay, &app, ("ORDER-R2", "uuid-r2")).await;
    never_renews(&app.mondiapay, "uuid-old").await;
    renews(&app.mondiapay, "uuid-r2", "Urenewed2", 1).await;

    let renewed = json(app.renewed_token("ref=ORDER-R2").await).await;
    assert_eq!(renewed["access_token"], "Urenewed2");
    assert_eq!(renewed["ref"], "ORDER-R2");
    assert_eq!(renewed["uuid"], "uuid-r2");
}

#[tokio::test]
async fn renew_true_with_a_live_token_returns_it_and_never_asks_mondiapay() {
    let app = spawn_app().await;
    let live = user_with_live_token(&app.mondiapay, &app, ("ORDER-R3", "uuid-r3"), "Ulive3").await;
    never_renews(&app.mondiapay, "uuid-r3").await;

    for who in ["uuid=uuid-r3", "ref=ORDER-R3"] {
        let found = json(app.renewed_token(who).await).await;
        assert_eq!(found["id"], live["id"], "{who}");
    }
}

#[tokio::test]
async fn without_renew_a_user_without_a_live_token_is_404_and_mondiapay_is_not_asked() {
    let app = spawn_app().await;
    user_with_expired_token(&app.mondiapay, &app, ("ORDER-R4", "uuid-r4")).await;
    never_renews(&app.mondiapay, "uuid-r4").await;

    assert_eq!(
        app.tokens_by_uuid("uuid-r4").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/tokens?ref=ORDER-R4&renew=false")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn renew_true_for_a_ref_whose_tokens_name_no_uuid_is_404_without_a_call() {
    let app = spawn_app().await;
    user_with_expired_token(&app.mondiapay, &app, ("ORDER-R5", "")).await;
    // No renewal of any uuid: nothing at all may reach the token endpoint.
    app.mondiapay.issues_tokens(0).await;

    let response = app.renewed_token("ref=ORDER-R5").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_problem_kind(&json(response).await, "not-found");
    let unknown = app.renewed_token("ref=ORDER-NEVER-SEEN").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn renew_true_for_a_uuid_never_seen_asks_mondiapay_for_it() {
    let app = spawn_app().await;
    renews(&app.mondiapay, "uuid-new", "Unew", 1).await;

    let renewed = json(app.renewed_token("uuid=uuid-new").await).await;
    assert_eq!(renewed["access_token"], "Unew");
    assert_eq!(renewed["uuid"], "uuid-new");
    assert_eq!(renewed["ref"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_renewals_of_one_user_make_one_call_and_share_its_token() {
    let app = spawn_app().await;
    user_with_expired_token(&app.mondiapay, &app, ("ORDER-R6", "uuid-r6")).await;
    answers(
        &app.mondiapay,
        user_credentials("uuid-r6"),
        issues_after("Uonce", Duration::from_millis(300)),
        1,
    )
    .await;

    let requests: Vec<_> = (0..20)
        .map(|n| {
            let client = app.client.clone();
            let who = if n % 2 == 0 {
                "uuid=uuid-r6"
            } else {
                "ref=ORDER-R6"
            };
            tokio::spawn(async move { json(client.renewed_token(who).await).await })
        })
        .collect();
    for request in requests {
        let record = request.await.unwrap();
        assert_eq!(record["access_token"], "Uonce", "{record}");
    }
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("token_proxy_renewals_total{outcome=\"renewed\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn mondiapay_refusing_the_renewal_is_422_with_its_error_code() {
    let app = spawn_app().await;
    user_with_expired_token(&app.mondiapay, &app, ("ORDER-R7", "uuid-r7")).await;
    let refusal =
        json!({"status": "BAD_REQUEST", "error": "INVALID_PARAMETERS", "message": "unknown uuid"});
    answers(
        &app.mondiapay,
        user_credentials("uuid-r7"),
        ResponseTemplate::new(400).set_body_json(refusal),
        1,
    )
    .await;

    let response = app.renewed_token("uuid=uuid-r7").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(content_type(&response), "application/problem+json");
    let problem = json(response).await;
    assert_problem_kind(&problem, "renewal-refused");
    assert_eq!(problem["mondiapay_error"], "INVALID_PARAMETERS");
    assert!(!problem.to_string().contains("unknown uuid"), "{problem}");
}

#[tokio::test]
async fn mondiapay_refusing_the_merchants_credentials_on_a_renewal_is_502() {
    let app = spawn_app().await;
    answers(
        &app.mondiapay,
        user_credentials("uuid-r8"),
        ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})),
        1,
    )
    .await;

    let response = app.renewed_token("uuid=uuid-r8").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_problem_kind(&json(response).await, "credentials-rejected");
}

#[tokio::test]
async fn no_usable_answer_to_a_renewal_is_502_and_a_later_request_renews() {
    let app = spawn_app().await;
    for answer in [
        ResponseTemplate::new(503),
        ResponseTemplate::new(200).set_body_string("<html>not json</html>"),
    ] {
        answers_once(&app.mondiapay, user_credentials("uuid-r9"), answer).await;
        let response = app.renewed_token("uuid=uuid-r9").await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_problem_kind(&json(response).await, "upstream-unavailable");
    }
    renews(&app.mondiapay, "uuid-r9", "Uafter", 1).await;
    assert_eq!(
        json(app.renewed_token("uuid=uuid-r9").await).await["access_token"],
        "Uafter"
    );
}

#[tokio::test]
async fn a_renewal_mondiapay_does_not_answer_in_time_is_504() {
    let app = spawn_app_with("MONDIAPAY__TIMEOUT_SECS=1 MONDIAPAY__CONNECT_RETRIES=0").await;
    answers(
        &app.mondiapay,
        user_credentials("uuid-r10"),
        issues_after("Utoolate", Duration::from_secs(5)),
        1,
    )
    .await;

    let response = app.renewed_token("uuid=uuid-r10").await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_problem_kind(&json(response).await, "upstream-timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_renew_a_users_token_once_under_twenty_concurrent_requests() {
    let cluster = PgCluster::start();
    let (mondiapay, _dir, mut env) = MondiaPay::start().await;
    env.extend(settings(&cluster.store_settings()));
    let a = Served::start(&env);
    let b = Served::start(&env);
    user_with_expired_token(&mondiapay, &a, ("ORDER-PG-R", "uuid-pg")).await;
    answers(
        &mondiapay,
        user_credentials("uuid-pg"),
        issues_after("Ureplicas", Duration::from_millis(300)),
        1,
    )
    .await;

    let requests: Vec<_> = (0..20)
        .map(|n| {
            let replica = (if n % 2 == 0 { &a } else { &b }).client.clone();
            tokio::spawn(async move { json(replica.renewed_token("uuid=uuid-pg").await).await })
        })
        .collect();
    let mut ids = Vec::new();
    for request in requests {
        let record = request.await.unwrap();
        assert_eq!(record["access_token"], "Ureplicas", "{record}");
        ids.push(record["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one stored token: {ids:?}");
    for replica in [a, b] {
        assert_eq!(replica.stop().0, Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_renewal_is_taken_over_after_its_lease() {
    let cluster = PgCluster::start();
    let (mondiapay, _dir, mut env) = MondiaPay::start().await;
    env.extend(settings(&cluster.store_settings()));
    env.extend(settings(
        "STORE__CLAIM_LEASE_SECS=10 MONDIAPAY__TIMEOUT_SECS=5 \
         MONDIAPAY__CONNECT_TIMEOUT_SECS=1 MONDIAPAY__CONNECT_RETRIES=0",
    ));
    let a = Served::start(&env);
    let b = Served::start(&env);
    answers_once(
        &mondiapay,
        user_credentials("uuid-dies"),
        issues_after("Ulost", Duration::from_secs(30)),
    )
    .await;
    renews(&mondiapay, "uuid-dies", "Utakeover", 1).await;
    let doomed = tokio::spawn({
        let a = a.client.clone();
        async move {
            a.api(reqwest::Method::GET, "/v1/tokens?uuid=uuid-dies&renew=true")
                .send()
                .await
        }
    });
    mondiapay.until_called().await;
    let claimed_at = std::time::Instant::now();
    a.kill();
    assert_eq!(a.wait().0, None);
    assert!(
        doomed.await.unwrap().is_err(),
        "the killed replica never answered"
    );

    let response = b.renewed_token("uuid=uuid-dies").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        claimed_at.elapsed() >= Duration::from_secs(5),
        "taken over only after the lease"
    );
    assert_eq!(json(response).await["access_token"], "Utakeover");
    assert_eq!(b.stop().0, Some(0));
}

#[tokio::test]
async fn renew_true_for_a_ref_reuses_the_users_live_token_recorded_under_another_ref() {
    let app = spawn_app().await;
    user_with_expired_token(&app.mondiapay, &app, ("ORDER-R11", "uuid-r11")).await;
    let live =
        user_with_live_token(&app.mondiapay, &app, ("ORDER-R11-B", "uuid-r11"), "Ulive11").await;
    never_renews(&app.mondiapay, "uuid-r11").await;

    let found = json(app.renewed_token("ref=ORDER-R11").await).await;
    assert_eq!(found["id"], live["id"], "one token per user, reused");
}

/// With `purchases.enforce`, a `ref` is renewed only for the uuid MondiaPay confirmed in a
/// notification about its purchase: the uuid a redirect's query gave is anyone's to forge (a
/// buyer naming someone else's uuid would otherwise get that user's token minted for their order).
#[tokio::test]
async fn with_enforced_purchases_a_ref_is_renewed_only_for_the_uuid_mondiapay_confirmed() {
    let app = spawn_app_with("PURCHASES__ENFORCE=true").await;
    user_with_expired_token(&app.mondiapay, &app, ("ORDER-F", "uuid-forged")).await;
    never_renews(&app.mondiapay, "uuid-forged").await;
    assert_eq!(
        app.renewed_token("ref=ORDER-F").await.status(),
        StatusCode::NOT_FOUND
    );

    // A notification about the order's purchase named its user.
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}/tokens.db", app.dir.path().display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO purchases (id, ref, state, subscription_type_id, purchase_token, \
             redirect_url, uuid, uuid_confirmed, created_at, expires_at, updated_at) \
         VALUES ('pur_f', 'ORDER-F', 'succeeded', 12345, 'pt-f', 'https://gateway.example/i', \
             'uuid-confirmed', TRUE, unixepoch(), unixepoch() + 3600, unixepoch())",
    )
    .execute(&db)
    .await
    .unwrap();
    renews(&app.mondiapay, "uuid-confirmed", "Urenewed-f", 1).await;
    let renewed = json(app.renewed_token("ref=ORDER-F").await).await;
    assert_eq!(renewed["uuid"], "uuid-confirmed", "{renewed}");
    assert_eq!(renewed["ref"], "ORDER-F");
}

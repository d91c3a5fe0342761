//! `POST /v1/purchases`, `GET /v1/purchases/{id}` and `GET /v1/purchases?ref=…`: the client
//! token fetched once and reused, Prepare Purchase with the purchase id in the redirect, failures
//! that store nothing, and the `Idempotency-Key`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockBuilder, Request, Respond, ResponseTemplate};

use crate::helpers::*;

pub const PREPARE_PATH: &str = "/v1/api/purchase/subscription/prepare";

/// The token endpoint's client credentials grant.
fn client_token_call() -> MockBuilder {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(query_param("grant_type", "client_credentials"))
}

pub fn prepare_call() -> MockBuilder {
    Mock::given(method("POST")).and(path(PREPARE_PATH))
}

static ISSUED: AtomicU64 = AtomicU64::new(0);

/// A fresh client token per call (`C…`, 12 hours), after a delay.
struct IssueClientTokens(Duration);

impl Respond for IssueClientTokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = ISSUED.fetch_add(1, Ordering::Relaxed);
        ResponseTemplate::new(200)
            .set_body_json(json!({
                "access_token": format!("Cclient{n}x{}", std::process::id()),
                "token_type": "bearer",
                "expires_in": "43200",
            }))
            .set_delay(self.0)
    }
}

/// MondiaPay's documented Prepare Purchase answer, with a purchase token unique to each call.
struct PreparePurchases;

impl Respond for PreparePurchases {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = ISSUED.fetch_add(1, Ordering::Relaxed);
        let token = format!("8adca8fb-{n}-{}", std::process::id());
        ResponseTemplate::new(200).set_body_json(json!({
            "purchaseToken": token,
            "expiresIn": "300",
            "_links": {"initiatePurchase": {"href": format!("https://gateway.example/v1/web/purchase/initiate/{token}")}},
        }))
    }
}

/// The client credentials grant issues a fresh client token per call, expecting `calls` calls.
pub async fn issues_client_tokens(mondiapay: &MondiaPay, calls: u64) {
    client_token_call()
        .respond_with(IssueClientTokens(Duration::ZERO))
        .expect(calls)
        .mount(mondiapay)
        .await;
}

/// The client credentials grant issues fresh client tokens, expecting `min..=max` calls.
pub async fn client_tokens_between(mondiapay: &MondiaPay, min: u64, max: u64) {
    client_token_call()
        .respond_with(IssueClientTokens(Duration::ZERO))
        .expect(min..=max)
        .mount(mondiapay)
        .await;
}

/// Prepare Purchase answers as documented, expecting `calls` calls.
pub async fn prepares_purchases(mondiapay: &MondiaPay, calls: u64) {
    prepare_call()
        .respond_with(PreparePurchases)
        .expect(calls)
        .mount(mondiapay)
        .await;
}

/// Prepare Purchase answers `template` to its first `calls` calls, expecting exactly those.
pub async fn prepare_answers_first(mondiapay: &MondiaPay, template: ResponseTemplate, calls: u64) {
    prepare_call()
        .respond_with(template)
        .up_to_n_times(calls)
        .expect(calls)
        .mount(mondiapay)
        .await;
}

/// `POST /v1/purchases` for `reference`, read as JSON after checking its status.
pub async fn started(app: &Client, reference: &str, expected: StatusCode) -> Value {
    let response = app
        .start_purchase(
            &json!({"subscription_type_id": 12345, "ref": reference}),
            None,
        )
        .await;
    assert_eq!(response.status(), expected);
    json(response).await
}

/// The Prepare Purchase requests MondiaPay received, as JSON bodies with their bearer token.
async fn prepare_requests(mondiapay: &MondiaPay) -> Vec<(String, Value)> {
    mondiapay
        .calls()
        .await
        .into_iter()
        .filter(|call| call.url.path() == PREPARE_PATH)
        .map(|call| {
            let bearer = call.headers["authorization"].to_str().unwrap().to_owned();
            (bearer, serde_json::from_slice(&call.body).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_purchase_is_prepared_with_the_client_token_and_its_id_in_the_redirect() {
    let app = spawn_app_with("PURCHASES__TTL_SECS=900").await;
    issues_client_tokens(&app.mondiapay, 1).await;
    prepares_purchases(&app.mondiapay, 1).await;
    let campaign =
        json!({"conversionId": "c1", "agency": "a", "medium": "m", "name": "n", "source": "s"});
    let response = app
        .start_purchase(
            &json!({"subscription_type_id": 12345, "ref": "ORDER-P1", "marketing_campaign": campaign}),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let purchase = json(response).await;
    let id = purchase["id"].as_str().unwrap();
    assert!(id.starts_with("pur_") && id.len() == 26, "{id}");
    assert_eq!(purchase["state"], "started");
    assert_eq!(purchase["ref"], "ORDER-P1");
    assert_eq!(purchase["subscription_type_id"], 12345);
    assert!(
        purchase["redirect_url"]
            .as_str()
            .unwrap()
            .starts_with("https://gateway.example/v1/web/purchase/initiate/8adca8fb-")
    );
    for null in ["token_id", "uuid", "subscription_id", "mondiapay_error"] {
        assert!(purchase[null].is_null(), "{null}: {purchase}");
    }
    assert_eq!(purchase["uuid_confirmed"], false);
    let time = |field: &str| unix_time(purchase[field].as_str().unwrap());
    assert_eq!(time("expires_at") - time("created_at"), 900);

    let requests = prepare_requests(&app.mondiapay).await;
    let (bearer, body) = &requests[0];
    assert!(bearer.starts_with("Bearer Cclient"), "{bearer}");
    assert_eq!(body["redirect"], format!("{REDIRECT_URI}&purchase={id}"));
    assert_eq!(body["subscriptionTypeId"], 12345);
    assert_eq!(body["marketingCampaign"], campaign);
    let grant = app.mondiapay.calls().await[0].url.clone();
    assert!(
        grant
            .query()
            .unwrap()
            .contains(&format!("client_id={CLIENT_ID}"))
    );

    assert_eq!(json(app.purchase(id).await).await, purchase);
}

#[tokio::test]
async fn twenty_concurrent_purchases_fetch_one_client_token() {
    let app = spawn_app().await;
    client_token_call()
        .respond_with(IssueClientTokens(Duration::from_millis(300)))
        .expect(1)
        .mount(&app.mondiapay)
        .await;
    prepares_purchases(&app.mondiapay, 20).await;
    let requests: Vec<_> = (0..20)
        .map(|n| {
            let client = app.client.clone();
            tokio::spawn(async move {
                started(&client, &format!("ORDER-BURST-{n}"), StatusCode::CREATED).await
            })
        })
        .collect();
    for request in requests {
        request.await.unwrap();
    }
    let bearers: std::collections::HashSet<_> = prepare_requests(&app.mondiapay)
        .await
        .into_iter()
        .map(|(bearer, _)| bearer)
        .collect();
    assert_eq!(bearers.len(), 1, "one client token for all: {bearers:?}");
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(
            r#"token_proxy_mondiapay_calls_total{call="client_token",outcome="issued"} 1"#
        ),
        "{metrics}"
    );
}

/// `2026-11-25T06:00:00Z` as Unix seconds.
pub fn unix_time(rfc3339: &str) -> i64 {
    let number = |range: std::ops::Range<usize>| rfc3339[range].parse::<u8>().unwrap();
    let date = time::Date::from_calendar_date(
        rfc3339[0..4].parse().unwrap(),
        time::Month::try_from(number(5..7)).unwrap(),
        number(8..10),
    )
    .unwrap();
    let clock = time::Time::from_hms(number(11..13), number(14..16), number(17..19)).unwrap();
    assert_eq!(&rfc3339[19..], "Z", "{rfc3339}");
    time::PrimitiveDateTime::new(date, clock)
        .assume_utc()
        .unix_timestamp()
}

#[tokio::test]
async fn a_refused_client_token_is_fetched_again_once_and_the_call_retried_once() {
    let app = spawn_app().await;
    issues_client_tokens(&app.mondiapay, 2).await;
    let refused = ResponseTemplate::new(401)
        .set_body_json(json!({"status": "UNAUTHORIZED", "error": "TOKEN_NOT_FOUND"}));
    prepare_answers_first(&app.mondiapay, refused, 1).await;
    prepares_purchases(&app.mondiapay, 2).await;
    let purchase = started(&app, "ORDER-401", StatusCode::CREATED).await;
    assert_eq!(purchase["state"], "started");
    let bearers: Vec<_> = prepare_requests(&app.mondiapay)
        .await
        .into_iter()
        .map(|(bearer, _)| bearer)
        .collect();
    assert_eq!(bearers.len(), 2);
    assert_ne!(bearers[0], bearers[1], "retried with a new client token");
    // The new token is cached: the next purchase fetches none.
    started(&app, "ORDER-401-NEXT", StatusCode::CREATED).await;
    let bearers: Vec<_> = prepare_requests(&app.mondiapay)
        .await
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    assert_eq!(bearers[2], bearers[1]);
}

#[tokio::test]
async fn a_second_401_gives_up_with_502_and_no_third_call() {
    let app = spawn_app().await;
    issues_client_tokens(&app.mondiapay, 2).await;
    prepare_answers_first(&app.mondiapay, ResponseTemplate::new(401), 2).await;
    let problem = started(&app, "ORDER-401-TWICE", StatusCode::BAD_GATEWAY).await;
    assert_problem_kind(&problem, "credentials-rejected");
    assert_eq!(
        app.purchases_by_ref("ORDER-401-TWICE").await["purchases"],
        json!([])
    );
}

#[tokio::test]
async fn upstream_failures_answer_502_or_504_and_store_no_purchase() {
    let app = spawn_app_with("MONDIAPAY__TIMEOUT_SECS=1 MONDIAPAY__CONNECT_RETRIES=0").await;
    issues_client_tokens(&app.mondiapay, 1).await;
    let no_href = json!({"purchaseToken": "t1", "expiresIn": 300, "_links": {}});
    let relative_href =
        json!({"purchaseToken": "t2", "_links": {"initiatePurchase": {"href": "/initiate/t2"}}});
    let cases = [
        (
            ResponseTemplate::new(503),
            StatusCode::BAD_GATEWAY,
            "upstream-unavailable",
        ),
        (
            ResponseTemplate::new(200).set_body_string("<html>oops</html>"),
            StatusCode::BAD_GATEWAY,
            "upstream-unavailable",
        ),
        (
            ResponseTemplate::new(200).set_body_json(no_href),
            StatusCode::BAD_GATEWAY,
            "upstream-unavailable",
        ),
        (
            ResponseTemplate::new(200).set_body_json(relative_href),
            StatusCode::BAD_GATEWAY,
            "upstream-unavailable",
        ),
        (
            PreparePurchases.respond_late(Duration::from_secs(3)),
            StatusCode::GATEWAY_TIMEOUT,
            "upstream-timeout",
        ),
    ];
    for (n, (answer, status, kind)) in cases.into_iter().enumerate() {
        prepare_answers_first(&app.mondiapay, answer, 1).await;
        let reference = format!("ORDER-FAIL-{n}");
        let problem = started(&app, &reference, status).await;
        assert_problem_kind(&problem, kind);
        assert_eq!(
            app.purchases_by_ref(&reference).await["purchases"],
            json!([]),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn a_purchase_token_mondiapay_gave_before_is_no_usable_answer_and_stores_nothing() {
    let app = spawn_app().await;
    issues_client_tokens(&app.mondiapay, 1).await;
    let same = json!({"purchaseToken": "the-same-token",
        "_links": {"initiatePurchase": {"href": "https://gateway.example/initiate/the-same-token"}}});
    prepare_answers_first(
        &app.mondiapay,
        ResponseTemplate::new(200).set_body_json(same),
        2,
    )
    .await;
    let first = started(&app, "ORDER-FIRST", StatusCode::CREATED).await;
    let problem = started(&app, "ORDER-SECOND", StatusCode::BAD_GATEWAY).await;
    assert_problem_kind(&problem, "upstream-unavailable");
    assert_eq!(
        app.purchases_by_ref("ORDER-SECOND").await["purchases"],
        json!([])
    );
    let listed = app.purchases_by_ref("ORDER-FIRST").await;
    assert_eq!(listed["purchases"][0]["id"], first["id"], "{listed}");
}

impl PreparePurchases {
    /// The documented answer, sent only after `delay`.
    fn respond_late(&self, delay: Duration) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .set_body_json(json!({"purchaseToken": "late", "_links": {"initiatePurchase": {"href": "https://gateway.example/late"}}}))
            .set_delay(delay)
    }
}

#[tokio::test]
async fn mondiapay_refusing_the_purchase_is_422_with_its_error_code() {
    let app = spawn_app().await;
    issues_client_tokens(&app.mondiapay, 1).await;
    let refusal = ResponseTemplate::new(400).set_body_json(
        json!({"status": "BAD_REQUEST", "error": "INVALID_PARAMETERS", "message": "no such type"}),
    );
    prepare_answers_first(&app.mondiapay, refusal, 1).await;
    let problem = started(&app, "ORDER-REFUSED", StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_problem_kind(&problem, "purchase-refused");
    assert_eq!(problem["mondiapay_error"], "INVALID_PARAMETERS");
    assert!(
        !problem.to_string().contains("no such type"),
        "never MondiaPay's own text"
    );
}

#[tokio::test]
async fn a_refused_client_credentials_grant_is_credentials_rejected_and_prepare_is_not_called() {
    let app = spawn_app().await;
    client_token_call()
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
        .expect(1)
        .mount(&app.mondiapay)
        .await;
    prepares_purchases(&app.mondiapay, 0).await;
    let problem = started(&app, "ORDER-NO-CREDS", StatusCode::BAD_GATEWAY).await;
    assert_problem_kind(&problem, "credentials-rejected");
}

#[tokio::test]
async fn malformed_requests_are_refused_with_400_before_mondiapay_is_called() {
    let app = spawn_app().await;
    issues_client_tokens(&app.mondiapay, 0).await;
    prepares_purchases(&app.mondiapay, 0).await;
    let long = "x".repeat(257);
    for body in [
        json!({}),
        json!({"subscription_type_id": "12345"}),
        json!({"subscription_type_id": 0}),
        json!({"subscription_type_id": 1, "amount": 5}),
        json!({"subscription_type_id": 1, "ref": long}),
        json!({"subscription_type_id": 1, "ref": "a\nb"}),
        json!({"subscription_type_id": 1, "marketing_campaign": {"budget": 1}}),
        json!({"subscription_type_id": 1, "marketing_campaign": {"name": long}}),
    ] {
        let response = app.start_purchase(&body, None).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_problem_kind(&json(response).await, "bad-request");
    }
    let body = json!({"subscription_type_id": 1});
    for key in ["", &"k".repeat(256), "two words"] {
        let response = app.start_purchase(&body, Some(key)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{key:?}");
    }
}

#[tokio::test]
async fn an_unknown_purchase_is_404() {
    let app = spawn_app().await;
    let response = app.purchase("pur_nothing").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_problem_kind(&json(response).await, "not-found");
}

#[tokio::test]
async fn purchases_of_a_ref_are_listed_newest_first() {
    let app = spawn_app().await;
    issues_client_tokens(&app.mondiapay, 1).await;
    prepares_purchases(&app.mondiapay, 4).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(started(&app, "ORDER-LIST", StatusCode::CREATED).await["id"].clone());
    }
    started(&app, "ORDER-OTHER", StatusCode::CREATED).await;
    let listed = app.purchases_by_ref("ORDER-LIST").await;
    let listed: Vec<_> = listed["purchases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    ids.reverse();
    assert_eq!(listed, ids);
    let missing = app.get("/v1/purchases").await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
}

//! `GET /v1/subscriptions` and `DELETE /v1/subscriptions/{id}`: MondiaPay's Subscription
//! Management with the user's token, renewed where none is live; on MondiaPay's `401` the token
//! is retired, renewed once and the call made once more.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockBuilder, ResponseTemplate};

use crate::helpers::*;
use crate::process::Served;
use crate::renewal::{
    answers, answers_once, never_renews, renews, user_with_expired_token, user_with_live_token,
};

/// MondiaPay's Get subscription, made with `bearer`.
fn get_subscriptions(bearer: &str) -> MockBuilder {
    Mock::given(method("GET"))
        .and(path("/v1/api/subscription"))
        .and(header("authorization", format!("Bearer {bearer}")))
}

/// MondiaPay's Cancel subscription of `id` (as it appears in the path), made with `bearer`.
fn cancel(id: &str, bearer: &str) -> MockBuilder {
    Mock::given(method("DELETE"))
        .and(path(format!("/v1/api/subscription/{id}")))
        .and(header("authorization", format!("Bearer {bearer}")))
}

fn subscription(id: &str) -> Value {
    json!({"typeId": "12345", "startDate": "2021-01-16T19:45:01Z", "id": id, "created": "2021-01-16T19:45:01Z",
           "lastModified": "2021-01-16T19:45:01Z", "attributes": [], "state": "ACTIVE", "subState": "NONE"})
}

/// MondiaPay refusing a user's token as documented.
fn token_refused(error: &str, token: &str) -> ResponseTemplate {
    ResponseTemplate::new(401).set_body_json(json!({"status": "UNAUTHORIZED", "error": error,
        "message": format!("token {token} is not valid")}))
}

#[tokio::test]
async fn lists_mondiapay_subscriptions_as_sent_with_the_users_live_token() {
    let app = spawn_app().await;
    user_with_live_token(&app.mondiapay, &app, ("ORDER-S1", "uuid-s1"), "Usubs1").await;
    let sent = json!([subscription("111"), {"id": "222", "state": "CANCELED", "unknownField": {"kept": true}}]);
    answers(
        &app.mondiapay,
        get_subscriptions("Usubs1").and(query_param("subscriptionTypeId", "12345")),
        ResponseTemplate::new(200).set_body_json(sent.clone()),
        1,
    )
    .await;

    let response = app
        .subscriptions("ref=ORDER-S1&subscription_type_id=12345")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await, json!({"subscriptions": sent}));
}

#[tokio::test]
async fn an_object_answer_becomes_a_one_element_list() {
    let app = spawn_app().await;
    user_with_live_token(&app.mondiapay, &app, ("ORDER-S2", "uuid-s2"), "Usubs2").await;
    answers(
        &app.mondiapay,
        get_subscriptions("Usubs2").and(query_param_is_missing("subscriptionTypeId")),
        ResponseTemplate::new(200).set_body_json(subscription("333")),
        1,
    )
    .await;

    let listed = json(app.subscriptions("uuid=uuid-s2").await).await;
    assert_eq!(listed, json!({"subscriptions": [subscription("333")]}));
}

#[tokio::test]
async fn a_token_id_names_the_token_to_use() {
    let app = spawn_app().await;
    let record =
        user_with_live_token(&app.mondiapay, &app, ("ORDER-S3", "uuid-s3"), "Usubs3").await;
    answers(
        &app.mondiapay,
        get_subscriptions("Usubs3"),
        ResponseTemplate::new(200).set_body_json(json!([])),
        1,
    )
    .await;

    let id = record["id"].as_str().unwrap();
    let listed = json(app.subscriptions(&format!("token_id={id}")).await).await;
    assert_eq!(listed, json!({"subscriptions": []}));
}

#[tokio::test]
async fn a_401_retires_the_token_renews_once_and_retries_once_with_the_renewed_token() {
    let app = spawn_app().await;
    let refused =
        user_with_live_token(&app.mondiapay, &app, ("ORDER-S4", "uuid-s4"), "Urefused4").await;
    answers(
        &app.mondiapay,
        get_subscriptions("Urefused4"),
        token_refused("TOKEN_NOT_FOUND", "Urefused4"),
        1,
    )
    .await;
    renews(&app.mondiapay, "uuid-s4", "Urenewed4", 1).await;
    answers(
        &app.mondiapay,
        get_subscriptions("Urenewed4"),
        ResponseTemplate::new(200).set_body_json(json!([subscription("444")])),
        1,
    )
    .await;

    let response = app.subscriptions("ref=ORDER-S4").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await["subscriptions"][0]["id"], "444");
    assert_eq!(
        app.token(refused["id"].as_str().unwrap()).await.status(),
        StatusCode::NOT_FOUND,
        "the refused token is never served again"
    );
    for found in [
        app.tokens_by_ref("ORDER-S4").await,
        app.tokens_by_uuid("uuid-s4").await,
    ] {
        assert_eq!(
            json(found).await["access_token"],
            "Urenewed4",
            "the renewed token takes its place"
        );
    }
}

#[tokio::test]
async fn a_second_401_is_a_problem_without_a_third_call() {
    let app = spawn_app().await;
    user_with_live_token(&app.mondiapay, &app, ("ORDER-S5", "uuid-s5"), "Urefused5").await;
    answers(
        &app.mondiapay,
        get_subscriptions("Urefused5"),
        token_refused("TOKEN_NOT_FOUND", "Urefused5"),
        1,
    )
    .await;
    renews(&app.mondiapay, "uuid-s5", "Urenewed5", 1).await;
    answers(
        &app.mondiapay,
        get_subscriptions("Urenewed5"),
        token_refused("TOKEN_CONTEXT_IS_NOT_VALID", "Urenewed5"),
        1,
    )
    .await;

    let response = app.subscriptions("uuid=uuid-s5").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(content_type(&response), "application/problem+json");
    let problem = json(response).await;
    assert_problem_kind(&problem, "token-refused");
    assert_eq!(problem["mondiapay_error"], "TOKEN_CONTEXT_IS_NOT_VALID");
    assert!(!problem.to_string().contains("Urenewed5"), "{problem}");
}

#[tokio::test]
async fn a_retired_token_is_never_served_by_any_lookup() {
    let mut app = spawn_app().await;
    let refused = user_with_live_token(&app.mondiapay, &app, ("ORDER-S6", ""), "Urefused6").await;
    // No uuid: nothing to renew, so the refusal stands and the token stays retired.
    app.mondiapay.issues_tokens(0).await;
    answers(
        &app.mondiapay,
        get_subscriptions("Urefused6"),
        token_refused("TOKEN_NOT_FOUND", "Urefused6"),
        1,
    )
    .await;

    let response = app.subscriptions("ref=ORDER-S6").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(json(response).await["mondiapay_error"], "TOKEN_NOT_FOUND");
    let id = refused["id"].as_str().unwrap();
    for lookup in [
        app.token(id).await,
        app.tokens_by_ref("ORDER-S6").await,
        app.renewed_token("ref=ORDER-S6").await,
        app.subscriptions(&format!("token_id={id}")).await,
    ] {
        assert_eq!(lookup.status(), StatusCode::NOT_FOUND);
    }
    app.restart().await;
    assert_eq!(
        app.token(id).await.status(),
        StatusCode::NOT_FOUND,
        "also after a restart"
    );
}

#[tokio::test]
async fn without_a_live_token_the_users_token_is_renewed_before_the_call() {
    let app = spawn_app().await;
    user_with_expired_token(&app.mondiapay, &app, ("ORDER-S7", "uuid-s7")).await;
    renews(&app.mondiapay, "uuid-s7", "Urenewed7", 1).await;
    answers(
        &app.mondiapay,
        get_subscriptions("Urenewed7"),
        ResponseTemplate::new(200).set_body_json(json!([subscription("777")])),
        2,
    )
    .await;

    for who in ["ref=ORDER-S7", "uuid=uuid-s7"] {
        let listed = json(app.subscriptions(who).await).await;
        assert_eq!(listed["subscriptions"][0]["id"], "777", "{who}");
    }
}

#[tokio::test]
async fn no_token_and_no_uuid_is_404_without_a_call() {
    let app = spawn_app().await;
    user_with_expired_token(&app.mondiapay, &app, ("ORDER-S8", "")).await;
    app.mondiapay.issues_tokens(0).await;
    answers(
        &app.mondiapay,
        get_subscriptions("Uexpired"),
        ResponseTemplate::new(200),
        0,
    )
    .await;

    for query in ["ref=ORDER-S8", "ref=ORDER-UNKNOWN", "token_id=tok_unknown"] {
        let response = app.subscriptions(query).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{query}");
        assert_problem_kind(&json(response).await, "not-found");
    }
    let cancel = app
        .cancel_subscription("1", "ref=ORDER-S8&immediately=true")
        .await;
    assert_eq!(cancel.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn mondiapay_refusing_the_call_is_422_with_its_error_code() {
    let app = spawn_app().await;
    user_with_live_token(&app.mondiapay, &app, ("ORDER-S9", "uuid-s9"), "Usubs9").await;
    never_renews(&app.mondiapay, "uuid-s9").await;
    answers(
        &app.mondiapay,
        get_subscriptions("Usubs9"),
        ResponseTemplate::new(400).set_body_json(
            json!({"status": "BAD_REQUEST", "error": "INVALID_PARAMETERS", "message": "bad type"}),
        ),
        1,
    )
    .await;

    let response = app
        .subscriptions("ref=ORDER-S9&subscription_type_id=1")
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = json(response).await;
    assert_problem_kind(&problem, "mondiapay-refused");
    assert_eq!(problem["mondiapay_error"], "INVALID_PARAMETERS");
}

#[tokio::test]
async fn a_5xx_or_an_answer_that_is_not_json_is_502_and_a_timeout_504() {
    let app = spawn_app_with("MONDIAPAY__TIMEOUT_SECS=1 MONDIAPAY__CONNECT_RETRIES=0").await;
    user_with_live_token(&app.mondiapay, &app, ("ORDER-S10", "uuid-s10"), "Usubs10").await;
    never_renews(&app.mondiapay, "uuid-s10").await;
    let misbehaving = [
        (
            ResponseTemplate::new(500),
            StatusCode::BAD_GATEWAY,
            "upstream-unavailable",
        ),
        (
            ResponseTemplate::new(200).set_body_string("<html>gateway</html>"),
            StatusCode::BAD_GATEWAY,
            "upstream-unavailable",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!("a string")),
            StatusCode::BAD_GATEWAY,
            "upstream-unavailable",
        ),
        (
            ResponseTemplate::new(200).set_delay(Duration::from_secs(5)),
            StatusCode::GATEWAY_TIMEOUT,
            "upstream-timeout",
        ),
    ];
    for (answer, status, kind) in misbehaving {
        answers_once(&app.mondiapay, get_subscriptions("Usubs10"), answer).await;
        let response = app.subscriptions("ref=ORDER-S10").await;
        assert_eq!(response.status(), status, "{kind}");
        assert_problem_kind(&json(response).await, kind);
    }
}

#[tokio::test]
async fn cancel_passes_immediately_true_or_false_and_answers_204() {
    let app = spawn_app().await;
    user_with_live_token(&app.mondiapay, &app, ("ORDER-S11", "uuid-s11"), "Usubs11").await;
    for immediately in ["true", "false"] {
        answers(
            &app.mondiapay,
            cancel("555", "Usubs11").and(query_param("immediately", immediately)),
            ResponseTemplate::new(200),
            1,
        )
        .await;
        let response = app
            .cancel_subscription("555", &format!("ref=ORDER-S11&immediately={immediately}"))
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{immediately}");
    }
}

#[tokio::test]
async fn cancel_sends_the_subscription_id_as_one_encoded_path_segment() {
    let app = spawn_app().await;
    user_with_live_token(&app.mondiapay, &app, ("ORDER-S12", "uuid-s12"), "Usubs12").await;
    answers(
        &app.mondiapay,
        cancel("a%2Fb%3Fc", "Usubs12").and(query_param("immediately", "true")),
        ResponseTemplate::new(204),
        1,
    )
    .await;

    let response = app
        .cancel_subscription("a%2Fb%3Fc", "uuid=uuid-s12&immediately=true")
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for dots in ["..", "%2E%2E"] {
        let refused = app
            .cancel_subscription(dots, "uuid=uuid-s12&immediately=true")
            .await;
        assert!(
            refused.status().is_client_error(),
            "{dots}: {}",
            refused.status()
        );
    }
}

#[tokio::test]
async fn cancel_retires_a_refused_token_and_retries_once_with_the_renewed_one() {
    let app = spawn_app().await;
    user_with_live_token(
        &app.mondiapay,
        &app,
        ("ORDER-S13", "uuid-s13"),
        "Urefused13",
    )
    .await;
    answers(
        &app.mondiapay,
        cancel("666", "Urefused13"),
        token_refused("TOKEN_CONTEXT_IS_NOT_VALID", "Urefused13"),
        1,
    )
    .await;
    renews(&app.mondiapay, "uuid-s13", "Urenewed13", 1).await;
    answers(
        &app.mondiapay,
        cancel("666", "Urenewed13"),
        ResponseTemplate::new(200),
        1,
    )
    .await;

    let response = app
        .cancel_subscription("666", "ref=ORDER-S13&immediately=false")
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn cancel_refused_by_mondiapay_is_a_problem_with_its_error_code() {
    let app = spawn_app().await;
    user_with_live_token(&app.mondiapay, &app, ("ORDER-S14", "uuid-s14"), "Usubs14").await;
    answers(
        &app.mondiapay,
        cancel("777", "Usubs14"),
        ResponseTemplate::new(403)
            .set_body_json(json!({"status": "FORBIDDEN", "error": "AUTHORIZATION_FAILED"})),
        1,
    )
    .await;

    let response = app
        .cancel_subscription("777", "ref=ORDER-S14&immediately=true")
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        json(response).await["mondiapay_error"],
        "AUTHORIZATION_FAILED"
    );
}

#[tokio::test]
async fn malformed_subscription_requests_are_400_without_a_call() {
    let app = spawn_app().await;
    app.mondiapay.issues_tokens(0).await;
    for query in [
        "",
        "ref=A&uuid=B",
        "ref=A&token_id=tok_x",
        "ref=A&subscription_type_id=abc",
        "ref=A&unknown=1",
    ] {
        let response = app.subscriptions(query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_problem_kind(&json(response).await, "bad-request");
    }
    for query in ["ref=A", "ref=A&immediately=maybe", "immediately=true"] {
        let response = app.cancel_subscription("1", query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
    }
}

#[tokio::test]
async fn logs_of_renewals_and_subscription_calls_hold_no_token_or_secret() {
    let (mondiapay, _dir, env) = MondiaPay::start().await;
    let served = Served::start(&env);
    user_with_live_token(
        &mondiapay,
        &served,
        ("ORDER-LOG-S", "uuid-log"),
        "Urefusedlog",
    )
    .await;
    answers(
        &mondiapay,
        get_subscriptions("Urefusedlog"),
        token_refused("TOKEN_NOT_FOUND", "Urefusedlog"),
        1,
    )
    .await;
    renews(&mondiapay, "uuid-log", "Urenewedlog", 1).await;
    answers(
        &mondiapay,
        get_subscriptions("Urenewedlog"),
        ResponseTemplate::new(400).set_body_json(json!({"error": "INVALID_PARAMETERS",
            "message": format!("Urenewedlog with {CLIENT_SECRET}")})),
        1,
    )
    .await;
    let response = served.subscriptions("ref=ORDER-LOG-S").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let renewed = json(served.tokens_by_ref("ORDER-LOG-S").await).await;
    assert_eq!(renewed["access_token"], "Urenewedlog");
    let refresh = renewed["refresh_token"].as_str().unwrap().to_owned();
    let by_api = served
        .api(Method::GET, "/v1/tokens?uuid=uuid-log&renew=true")
        .send()
        .await
        .unwrap();
    assert_eq!(by_api.status(), StatusCode::OK);

    let (exit, lines) = served.stop();
    assert_eq!(exit, Some(0));
    assert!(
        lines.len() > 10,
        "debug logging is on: {} lines",
        lines.len()
    );
    for line in &lines {
        for secret in [
            CLIENT_SECRET,
            API_KEY,
            "Urefusedlog",
            "Urenewedlog",
            refresh.as_str(),
        ] {
            assert!(!line.contains(secret), "{secret} logged: {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_refused_with_one_token_share_one_renewal() {
    let app = spawn_app().await;
    user_with_live_token(
        &app.mondiapay,
        &app,
        ("ORDER-S15", "uuid-s15"),
        "Urefused15",
    )
    .await;
    get_subscriptions("Urefused15")
        .respond_with(token_refused("TOKEN_NOT_FOUND", "Urefused15"))
        .expect(1..=10)
        .mount(&app.mondiapay)
        .await;
    user_credentials_after("uuid-s15", "Urenewed15", &app.mondiapay).await;
    let listed = ResponseTemplate::new(200).set_body_json(json!([subscription("1515")]));
    answers(&app.mondiapay, get_subscriptions("Urenewed15"), listed, 10).await;

    let requests: Vec<_> = (0..10)
        .map(|_| {
            let client = app.client.clone();
            tokio::spawn(async move { client.subscriptions("ref=ORDER-S15").await.status() })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
}

/// MondiaPay renews `uuid`'s token as `access_token` after a moment, exactly once.
async fn user_credentials_after(uuid: &str, access_token: &str, mondiapay: &MondiaPay) {
    let slow = issues_after(access_token, Duration::from_millis(200));
    answers(mondiapay, crate::renewal::user_credentials(uuid), slow, 1).await;
}

/// Only a `401` that names the token as no good retires it: a gateway's bare `401` (or one
/// about the request) is reported and the token kept, with no renewal.
#[tokio::test]
async fn a_401_that_does_not_name_the_token_keeps_it_and_renews_nothing() {
    let app = spawn_app().await;
    let live = user_with_live_token(&app.mondiapay, &app, ("ORDER-S9", "uuid-s9"), "Ukept9").await;
    answers(
        &app.mondiapay,
        get_subscriptions("Ukept9"),
        ResponseTemplate::new(401),
        1,
    )
    .await;
    never_renews(&app.mondiapay, "uuid-s9").await;

    let response = app.subscriptions("ref=ORDER-S9").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_problem_kind(&json(response).await, "token-refused");
    let still = json(app.tokens_by_ref("ORDER-S9").await).await;
    assert_eq!(still["id"], live["id"], "the token is still served");
}

//! How each kind of MondiaPay answer ends an exchange: final, or open to another attempt.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use wiremock::ResponseTemplate;

use crate::helpers::*;

#[tokio::test]
async fn a_rejected_code_is_final_and_never_sent_again() {
    let app = spawn_app().await;
    let rejection = json!({"error": "invalid_grant", "error_description": "Code already used"});
    app.mondiapay_answers(ResponseTemplate::new(400).set_body_json(rejection), 1)
        .await;
    let code = new_code();
    for _ in 0..3 {
        let response = app.exchange_code(&code, "ORDER-1").await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem = json(response).await;
        assert_eq!(problem["mondiapay_error"], "invalid_grant");
        assert_eq!(problem["status"], 422);
        // MondiaPay's error code; its free text is not stored, so a replay cannot repeat it.
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("invalid_grant")
        );
    }
}

#[tokio::test]
async fn both_error_shapes_are_understood() {
    let cases = [
        (
            401,
            json!({"status": "UNAUTHORIZED", "error": "TOKEN_NOT_FOUND", "message": "No such code"}),
            "TOKEN_NOT_FOUND",
        ),
        (
            400,
            json!({"status": "BAD_REQUEST", "error": "INVALID_PARAMETERS"}),
            "INVALID_PARAMETERS",
        ),
        (200, json!({"error": "invalid_grant"}), "invalid_grant"),
    ];
    for (status, body, error) in cases {
        let app = spawn_app().await;
        app.mondiapay_answers(ResponseTemplate::new(status).set_body_json(body), 1)
            .await;
        let response = app.exchange_code(&new_code(), "ORDER-E").await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json(response).await["mondiapay_error"], error);
    }
}

#[tokio::test]
async fn refused_credentials_are_a_configuration_fault_not_the_codes() {
    let app = spawn_app().await;
    let refused = ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"}));
    wiremock::Mock::given(wiremock::matchers::path(TOKEN_PATH))
        .respond_with(refused)
        .up_to_n_times(2)
        .expect(2)
        .mount(&app.mondiapay)
        .await;
    app.mondiapay_issues_tokens(1).await;
    let code = new_code();

    let response = app.exchange_code(&code, "ORDER-1").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let problem = json(response).await;
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("credentials-rejected")
    );
    assert!(problem.get("mondiapay_error").is_none());
    let ready = app.http_get(&format!("{}/readyz", app.internal)).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(ready).await["mondiapay_credentials"], "refused");

    assert_eq!(
        app.exchange_code(&code, "ORDER-1").await.status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        app.exchange_code(&code, "ORDER-1").await.status(),
        StatusCode::OK,
        "the code was not used up"
    );
    assert_eq!(
        app.http_get(&format!("{}/readyz", app.internal))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn answers_without_a_verdict_leave_the_code_usable() {
    let app = spawn_app().await;
    let big = "x".repeat(200 * 1024);
    let cases = [
        ResponseTemplate::new(500).set_body_json(json!({"error": "invalid_grant"})),
        ResponseTemplate::new(503),
        ResponseTemplate::new(502)
            .set_body_raw("<html><body>Bad gateway</body></html>", "text/html"),
        ResponseTemplate::new(404).set_body_raw("<html>Not found</html>", "text/html"),
        ResponseTemplate::new(302).insert_header("location", "https://elsewhere.example/token"),
        ResponseTemplate::new(429).set_body_json(json!({"error": "slow_down"})),
        ResponseTemplate::new(200).set_body_raw("<html>maintenance</html>", "text/html"),
        ResponseTemplate::new(200).set_body_raw("{\"access_token\": \"U1\"", "application/json"),
        ResponseTemplate::new(200).set_body_json(json!({"token_type": "bearer"})),
        ResponseTemplate::new(200).set_body_raw(big, "application/json"),
    ];
    for (i, unusable) in cases.into_iter().enumerate() {
        app.mondiapay.reset().await;
        app.mondiapay_answers(unusable, 1).await;
        let code = new_code();
        let response = app.exchange_code(&code, "ORDER-U").await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "case {i}");
        let problem = json(response).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            !detail.contains("html") && !detail.contains("Bad gateway"),
            "case {i}: upstream body leaked"
        );
        app.mondiapay.verify().await;

        app.mondiapay.reset().await;
        app.mondiapay_issues_tokens(1).await;
        assert_eq!(
            app.exchange_code(&code, "ORDER-U").await.status(),
            StatusCode::OK,
            "case {i}: retry"
        );
        app.mondiapay.verify().await;
    }
}

#[tokio::test]
async fn a_hanging_mondiapay_times_out_and_leaves_the_code_usable() {
    let app = spawn_app_with(&[("MONDIAPAY__TIMEOUT_SECS", "1")]).await;
    let hanging = ResponseTemplate::new(200)
        .set_body_json(success_body("Ulate"))
        .set_delay(Duration::from_secs(5));
    wiremock::Mock::given(wiremock::matchers::path(TOKEN_PATH))
        .respond_with(hanging)
        .up_to_n_times(1)
        .expect(1)
        .mount(&app.mondiapay)
        .await;
    app.mondiapay_issues_tokens(1).await;
    let code = new_code();
    let started = Instant::now();
    let response = app.exchange_code(&code, "ORDER-T").await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.exchange_code(&code, "ORDER-T").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_unreachable_mondiapay_is_a_bad_gateway() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}{TOKEN_PATH}");
    let app = spawn_app_with(&[
        ("MONDIAPAY__TOKEN_URL", &url),
        ("MONDIAPAY__CONNECT_RETRIES", "1"),
    ])
    .await;
    let response = app.exchange_code(&new_code(), "ORDER-DOWN").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(
        json(response).await["type"]
            .as_str()
            .unwrap()
            .ends_with("upstream-unavailable")
    );
}

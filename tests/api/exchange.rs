//! POST /v1/exchange: exactly once, durable, and strict about what it accepts.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use wiremock::ResponseTemplate;

use crate::helpers::*;

#[tokio::test]
async fn a_code_is_exchanged_for_a_stored_record() {
    let app = spawn_app().await;
    app.mondiapay
        .answers(
            ResponseTemplate::new(200).set_body_json(success_body("U12345")),
            1,
        )
        .await;

    let code = new_code();
    let response = app
        .exchange_with(json!({"code": code, "ref": "ORDER-42", "uuid": "8142-user"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let record = json(response).await;
    assert!(record["id"].as_str().unwrap().starts_with("tok_"));
    assert_eq!(record["access_token"], "U12345");
    assert_eq!(record["refresh_token"], "R12345");
    assert_eq!(record["token_type"], "bearer");
    assert_eq!(record["ref"], "ORDER-42");
    assert_eq!(record["uuid"], "8142-user");
    let expires_in = record["expires_in"].as_i64().unwrap();
    assert!((43_190..=43_200).contains(&expires_in), "{expires_in}");
    assert!(record["expires_at"].as_str().unwrap().ends_with('Z'));

    let stored = app.stored_token(&record).await;
    assert_eq!(stored["access_token"], "U12345");
}

#[tokio::test]
async fn the_same_code_again_returns_the_same_record_without_a_second_call() {
    let app = spawn_app().await;
    app.mondiapay.issues_tokens(1).await;
    let code = new_code();
    let first = json(app.exchange(&code, "ORDER-1").await).await;
    for reference in ["ORDER-1", "ANOTHER-REF"] {
        let again = app.exchange(&code, reference).await;
        assert_eq!(again.status(), StatusCode::OK);
        let again = json(again).await;
        assert_eq!(again["id"], first["id"]);
        assert_eq!(again["access_token"], first["access_token"]);
        assert_eq!(again["ref"], "ORDER-1", "the first exchange's ref stays");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_one_code_share_one_upstream_call() {
    let app = spawn_app().await;
    let slow = issues_after("Uconcurrent", Duration::from_millis(300));
    app.mondiapay.answers(slow, 1).await;
    let code = new_code();
    let body = json!({"code": code, "ref": "ORDER-C"});
    let requests = (0..16).map(|_| {
        app.api(reqwest::Method::POST, "/v1/exchange")
            .json(&body)
            .send()
    });
    let responses = futures_join_all(requests).await;
    let mut ids = Vec::new();
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        ids.push(json(response).await["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every request got the same record");
    assert_eq!(app.mondiapay.calls().await.len(), 1);
}

/// Runs the futures concurrently on the test's runtime.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

#[tokio::test]
async fn a_restart_keeps_tokens_and_remembers_used_codes() {
    let mut app = spawn_app().await;
    app.mondiapay.issues_tokens(1).await;
    let code = new_code();
    let record = json(app.exchange(&code, "ORDER-R").await).await;
    let id = record["id"].as_str().unwrap();

    app.restart().await;

    let by_id = json(app.token(id).await).await;
    assert_eq!(by_id["access_token"], record["access_token"]);
    let by_ref = json(app.tokens_by_ref("ORDER-R").await).await;
    assert_eq!(by_ref["id"], record["id"]);
    let again = json(app.exchange(&code, "ORDER-R").await).await;
    assert_eq!(
        again["id"], record["id"],
        "no second exchange after a restart"
    );
}

#[tokio::test]
async fn malformed_codes_are_refused_and_never_reach_mondiapay() {
    let app = spawn_app().await;
    app.mondiapay.issues_tokens(0).await;
    let too_long = format!("A{}", "b".repeat(512));
    for code in [
        "",
        "B123",
        "A12 3",
        "A<script>",
        "Aé",
        "A123/../x",
        too_long.as_str(),
    ] {
        let response = app.exchange_with(json!({"code": code})).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "code {code:?}");
        assert_eq!(content_type(&response), "application/problem+json");
        let problem = json(response).await;
        assert_eq!(problem["status"], 400);
        assert!(problem["detail"].as_str().unwrap().contains("code"));
    }
}

#[tokio::test]
async fn bad_bodies_get_a_problem_not_a_call() {
    let app = spawn_app().await;
    app.mondiapay.issues_tokens(0).await;
    let post = |body: &'static str, content_type: &'static str| {
        app.api(reqwest::Method::POST, "/v1/exchange")
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let long_ref = json!({"code": "A1", "ref": "r".repeat(257)})
        .to_string()
        .leak();
    let cases = [
        (
            r#"{"code": "A1""#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        ("not json", "application/json", StatusCode::BAD_REQUEST),
        (
            r#"{"ref": "X"}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"code": 42}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"code": "A1", "surprise": 1}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"code": "A1", "ref": "a\u0000b"}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (long_ref, "application/json", StatusCode::BAD_REQUEST),
        (
            "code=A1",
            "application/x-www-form-urlencoded",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    for (body, sent_as, status) in cases {
        let response = post(body, sent_as).await.unwrap();
        assert_eq!(response.status(), status, "body {body}");
        assert_eq!(content_type(&response), "application/problem+json");
        let problem = json(response).await;
        for field in ["type", "title", "status", "detail"] {
            assert!(problem.get(field).is_some(), "{field} missing for {body}");
        }
    }
    let huge = format!(r#"{{"code": "A1", "ref": "{}"}}"#, "x".repeat(100_000));
    let response = app
        .api(reqwest::Method::POST, "/v1/exchange")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn unknown_answer_fields_are_kept() {
    let app = spawn_app().await;
    let body = json!({"access_token": "Ux", "token_type": "Bearer", "expires_in": 3600, "scope": "subscriptions"});
    app.mondiapay
        .answers(ResponseTemplate::new(200).set_body_json(body), 1)
        .await;
    let record = json(app.exchange(&new_code(), "ORDER-X").await).await;
    assert_eq!(record["token_type"], "bearer");
    assert_eq!(record["extra"]["scope"], "subscriptions");
    assert!(record["expires_in"].as_i64().unwrap() <= 3600);
    assert!(record.get("refresh_token").is_none());
}

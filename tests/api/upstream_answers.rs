//! How each kind of MondiaPay answer ends an exchange: final, or open to another attempt.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::helpers::*;
use crate::process::Served;

#[tokio::test]
async fn a_rejected_code_is_final_and_never_sent_again() {
    let app = spawn_app().await;
    let rejection = json!({"error": "invalid_grant", "error_description": "Code already used"});
    app.mondiapay
        .answers(ResponseTemplate::new(400).set_body_json(rejection), 1)
        .await;
    let code = new_code();
    for _ in 0..3 {
        let response = app.exchange(&code, "ORDER-1").await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(content_type(&response), "application/problem+json");
        let problem = json(response).await;
        assert_eq!(problem["mondiapay_error"], "invalid_grant");
        assert_eq!(problem["status"], 422);
        assert_eq!(
            problem["detail"],
            "MondiaPay error invalid_grant: The confirmation of this purchase had expired or had already been used."
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
        app.mondiapay
            .answers(ResponseTemplate::new(status).set_body_json(body), 1)
            .await;
        let response = app.exchange(&new_code(), "ORDER-E").await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json(response).await["mondiapay_error"], error);
    }
}

#[tokio::test]
async fn refused_credentials_are_a_configuration_fault_not_the_codes() {
    let app = spawn_app().await;
    let refused = ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"}));
    app.mondiapay.fails_then_issues(refused, 2).await;
    let code = new_code();

    let response = app.exchange(&code, "ORDER-1").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let problem = json(response).await;
    assert_problem_kind(&problem, "credentials-rejected");
    assert!(problem.get("mondiapay_error").is_none());
    let ready = app.ready().await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(ready).await["mondiapay_credentials"], "refused");

    assert_eq!(
        app.exchange(&code, "ORDER-1").await.status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        app.exchange(&code, "ORDER-1").await.status(),
        StatusCode::OK,
        "the code was not used up"
    );
    assert_eq!(app.ready().await.status(), StatusCode::OK);
}

/// A body past what the service reads of an answer.
fn oversized_body() -> String {
    "x".repeat(200 * 1024)
}

#[tokio::test]
async fn answers_without_a_verdict_leave_the_code_usable() {
    let app = spawn_app().await;
    let cases = [
        ResponseTemplate::new(500).set_body_json(json!({"error": "invalid_grant"})),
        ResponseTemplate::new(503),
        ResponseTemplate::new(502)
            .set_body_raw("<html><body>Bad gateway</body></html>", "text/html"),
        ResponseTemplate::new(404).set_body_raw("<html>Not found</html>", "text/html"),
        // A wrong token URL behind a framework that answers errors in JSON.
        ResponseTemplate::new(404).set_body_json(
            json!({"status": 404, "error": "Not Found", "path": "/v1/api/oauth/tokn"}),
        ),
        ResponseTemplate::new(405).set_body_json(json!({"error": "METHOD_NOT_ALLOWED"})),
        ResponseTemplate::new(302).insert_header("location", "https://elsewhere.example/token"),
        ResponseTemplate::new(429).set_body_json(json!({"error": "slow_down"})),
        ResponseTemplate::new(400).set_body_raw("<html>Bad request</html>", "text/html"),
        ResponseTemplate::new(400).set_body_raw(oversized_body(), "application/json"),
    ];
    for (i, unusable) in cases.into_iter().enumerate() {
        app.mondiapay.reset().await;
        app.mondiapay.answers(unusable, 1).await;
        let code = new_code();
        let response = app.exchange(&code, "ORDER-U").await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "case {i}");
        let problem = json(response).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            !detail.contains("html") && !detail.contains("Bad gateway"),
            "case {i}: upstream body leaked"
        );
        app.mondiapay.verify().await;

        app.mondiapay.reset().await;
        app.mondiapay.issues_tokens(1).await;
        assert_eq!(
            app.exchange(&code, "ORDER-U").await.status(),
            StatusCode::OK,
            "case {i}: retry"
        );
        app.mondiapay.verify().await;
    }
}

#[tokio::test]
async fn a_hanging_mondiapay_times_out_and_leaves_the_code_usable() {
    let app = spawn_app_with("MONDIAPAY__TIMEOUT_SECS=1").await;
    let hanging = issues_after("Ulate", Duration::from_secs(5));
    app.mondiapay.fails_then_issues(hanging, 1).await;
    let code = new_code();
    let started = Instant::now();
    let response = app.exchange(&code, "ORDER-T").await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.exchange(&code, "ORDER-T").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_unreachable_mondiapay_is_a_bad_gateway() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}{TOKEN_PATH}");
    let app = spawn_app_with(&format!(
        "MONDIAPAY__TOKEN_URL={url} MONDIAPAY__CONNECT_RETRIES=1"
    ))
    .await;
    let response = app.exchange(&new_code(), "ORDER-DOWN").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_problem_kind(&json(response).await, "upstream-unavailable");
}

/// Mounts an answer for `code` alone, expected exactly once.
async fn answer_for(app: &TestApp, code: &str, template: ResponseTemplate) {
    wiremock::Mock::given(wiremock::matchers::query_param("code", code))
        .respond_with(template)
        .expect(1)
        .mount(&app.mondiapay)
        .await;
}

#[tokio::test]
async fn a_token_with_an_odd_expires_in_or_an_error_beside_it_is_kept_and_its_code_never_sent_again()
 {
    let app = spawn_app().await;
    let odd = [
        json!("43200.0"),
        json!(""),
        json!(-5),
        json!("-5"),
        json!({"seconds": 43200}),
        json!([43200]),
    ];
    let mut cases: Vec<(String, serde_json::Value)> = odd
        .into_iter()
        .enumerate()
        .map(|(i, expires_in)| {
            let token = format!("Uodd{i}");
            let body = json!({"access_token": token, "token_type": "bearer",
                "expires_in": expires_in, "refresh_token": format!("Rodd{i}")});
            (token, body)
        })
        .collect();
    cases.push((
        "Ubeside".to_owned(),
        json!({"access_token": "Ubeside", "expires_in": "43200", "error": "invalid_grant",
            "status": "UNAUTHORIZED", "message": "odd"}),
    ));
    for (token, body) in cases {
        let code = new_code();
        answer_for(&app, &code, ResponseTemplate::new(200).set_body_json(&body)).await;
        let response = app.exchange(&code, "ORDER-ODD").await;
        assert_eq!(response.status(), StatusCode::OK, "{body}");
        let record = json(response).await;
        assert_eq!(record["access_token"], token.as_str(), "{body}");
        let expires_in = record["expires_in"].as_u64().unwrap();
        assert!(
            (43_000..=43_200).contains(&expires_in),
            "{body}: counted as 12 hours, got {expires_in}"
        );
        // The user's reload: the same record, and MondiaPay is not asked again (`expect(1)`).
        let again = json(app.exchange(&code, "ORDER-ODD").await).await;
        assert_eq!(again["id"], record["id"], "{body}");
        let id = record["id"].as_str().unwrap();
        let served = json(app.token(id).await).await;
        assert_eq!(served["access_token"], token.as_str());
    }
    app.mondiapay.verify().await;
}

#[tokio::test]
async fn a_success_answer_without_a_usable_token_spends_the_code_for_good() {
    let app = spawn_app().await;
    let cases = [
        ResponseTemplate::new(200).set_body_json(json!({"token_type": "bearer"})),
        ResponseTemplate::new(200).set_body_json(json!({"access_token": 12345})),
        ResponseTemplate::new(200).set_body_json(json!({"access_token": ""})),
        ResponseTemplate::new(200).set_body_raw("<html>maintenance</html>", "text/html"),
        ResponseTemplate::new(200).set_body_raw("{\"access_token\": \"U1\"", "application/json"),
        ResponseTemplate::new(201).set_body_raw("", "application/json"),
        ResponseTemplate::new(200).set_body_raw(oversized_body(), "application/json"),
    ];
    for (i, answer) in cases.into_iter().enumerate() {
        let code = new_code();
        answer_for(&app, &code, answer).await;
        for attempt in 0..2 {
            let response = app.exchange(&code, "ORDER-NT").await;
            assert_eq!(
                response.status(),
                StatusCode::BAD_GATEWAY,
                "case {i}, attempt {attempt}"
            );
            let problem = json(response).await;
            assert!(
                problem["type"]
                    .as_str()
                    .unwrap()
                    .ends_with("no-token-in-answer"),
                "case {i}: {problem}"
            );
            let detail = problem["detail"].as_str().unwrap();
            assert!(detail.contains("cannot be submitted again"), "{detail}");
            assert!(!detail.contains("html") && !detail.contains("xxx"));
        }
    }
    // A browser coming back with such a code gets the "not confirmed" page, and no new call.
    let code = new_code();
    answer_for(
        &app,
        &code,
        ResponseTemplate::new(200).set_body_json(json!({"status": "OK"})),
    )
    .await;
    for _ in 0..2 {
        let (_, status, page) = app
            .callback_page(&format!("ref=ORDER-NT&code={code}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            page.contains("the confirmation cannot be used again"),
            "{page}"
        );
    }
    app.mondiapay.verify().await;
}

#[tokio::test]
async fn mondiapay_refusing_credentials_in_its_own_shape_keeps_the_code_and_readiness_fails_until_a_token_is_issued()
 {
    let (mondiapay, _dir, env) = MondiaPay::start().await;
    let refused = ResponseTemplate::new(403)
        .set_body_json(json!({"status": "FORBIDDEN", "error": "AUTHORIZATION_FAILED"}));
    mondiapay.answers_first_call(refused).await;
    let other_code = new_code();
    let rejected = ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"}));
    mondiapay.answers_code(&other_code, rejected).await;
    let served = Served::start(&env);
    let code = new_code();

    let refused = served.exchange(&code, "ORDER-CRED").await;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    let problem = json(refused).await;
    assert_problem_kind(&problem, "credentials-rejected");
    assert_eq!(
        served.ready().await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // A verdict on another code says nothing about the credentials: still not ready.
    assert_eq!(
        served.exchange(&other_code, "ORDER-CRED").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let still = served.ready().await;
    assert_eq!(still.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(still).await["mondiapay_credentials"], "refused");

    // The operator fixes the credentials: the same code was not used up.
    mondiapay.issues_tokens(1).await;
    let record = served.exchange(&code, "ORDER-CRED").await;
    assert_eq!(record.status(), StatusCode::OK);
    assert_eq!(served.ready().await.status(), StatusCode::OK);
    let for_code = mondiapay
        .calls()
        .await
        .iter()
        .filter(|call| call.url.as_str().contains(code.as_str()))
        .count();
    assert_eq!(for_code, 2, "refused once, exchanged once");

    let (exit, lines) = served.stop();
    assert_eq!(exit, Some(0));
    let refusal: Vec<Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["mondiapay_error"] == "AUTHORIZATION_FAILED")
        .collect();
    assert!(
        refusal.iter().any(|line| line["level"] == "ERROR"),
        "the refusal is logged as an error: {refusal:?}"
    );
}

#[tokio::test]
async fn no_success_answer_is_ever_logged_and_odd_tokens_stay_out_of_the_log() {
    let (mondiapay, _dir, env) = MondiaPay::start().await;
    let odd = (
        new_code(),
        "Uodd-token-for-the-log",
        "Rodd-refresh-for-the-log",
    );
    let tokenless = (new_code(), "Uhidden-in-html", "Rhidden-in-a-number");
    let odd_answer = ResponseTemplate::new(200).set_body_json(json!({
        "access_token": odd.1, "refresh_token": odd.2, "expires_in": "43200.0"}));
    mondiapay.answers_code(&odd.0, odd_answer).await;
    let tokenless_answer = ResponseTemplate::new(200).set_body_raw(
        format!(
            r#"{{"access_token": 7, "token": "{}", "refresh_token": "{}"}}"#,
            tokenless.1, tokenless.2
        ),
        "application/json",
    );
    mondiapay.answers_code(&tokenless.0, tokenless_answer).await;
    let served = Served::start(&env);
    for _ in 0..2 {
        let record = json(served.exchange(&odd.0, "ORDER-QUIET").await).await;
        assert_eq!(record["access_token"], odd.1);
        assert_eq!(
            served.exchange(&tokenless.0, "ORDER-QUIET").await.status(),
            StatusCode::BAD_GATEWAY
        );
    }
    let (exit, lines) = served.stop();
    assert_eq!(exit, Some(0));
    for line in &lines {
        for secret in [odd.1, odd.2, tokenless.1, tokenless.2, &odd.0, &tokenless.0] {
            assert!(!line.contains(secret), "in the log: {line}");
        }
    }
}

/// `text` with every character written as a JSON `\u` escape.
fn json_escaped(text: &str) -> String {
    text.chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect()
}

#[tokio::test]
async fn mondiapay_error_text_reaches_neither_the_api_nor_the_log_and_echoed_secrets_are_scrubbed_in_every_spelling()
 {
    let (mondiapay, _dir, mut env) = MondiaPay::start().await;
    let secret = "s3cr/t+key with space";
    env.insert(
        "TOKEN_PROXY__MONDIAPAY__CLIENT_SECRET".into(),
        secret.into(),
    );
    let code = new_code();
    // Padding puts the literal secret across the 512-byte cut of the logged excerpt.
    let padding = "p".repeat(420);
    let description = format!(
        "{padding} call +1-555-0100 about code {} ({}), secret s3cr%2ft%2Bkey+with+space or \
         s3cr\\/t+key%20with%20space or {secret} tail",
        json_escaped(&code),
        code
    );
    let rejection = format!(r#"{{"error":"invalid_grant","error_description":"{description}"}}"#);
    let rejection = ResponseTemplate::new(400).set_body_raw(rejection, "application/json");
    mondiapay.answers_code(&code, rejection).await;
    let served = Served::start(&env);
    let response = served.exchange(&code, "ORDER-TEXT").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = json(response).await;
    assert_eq!(problem["mondiapay_error"], "invalid_grant");
    assert_eq!(
        problem["detail"],
        "MondiaPay error invalid_grant: The confirmation of this purchase had expired or had already been used."
    );
    assert!(!problem.to_string().contains("555"));

    let (exit, lines) = served.stop();
    assert_eq!(exit, Some(0));
    let excerpts: Vec<String> = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| line["body"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(excerpts.len(), 1, "the scrubbed excerpt is logged once");
    // The cut falls inside the escaped code: scrubbed first, nothing of it is left.
    assert!(excerpts[0].contains("about code [code]"), "{}", excerpts[0]);
    assert!(!excerpts[0].contains("\\u00"), "{}", excerpts[0]);
    for line in &lines {
        for leak in ["s3cr", "%2Bkey", "%2ft", &code, &code[..10]] {
            assert!(!line.contains(leak), "{leak} in the log: {line}");
        }
    }
}

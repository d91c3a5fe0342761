//! Looking tokens up, deleting them, and who may ask.

use reqwest::StatusCode;
use serde_json::json;
use wiremock::ResponseTemplate;

use crate::helpers::*;

#[tokio::test]
async fn tokens_are_found_by_id_and_by_ref_and_uuid_the_first_live_one() {
    let app = spawn_app().await;
    app.mondiapay.issues_tokens(3).await;
    let older = json(
        app.exchange_with(json!({"code": new_code(), "ref": "ORDER-7", "uuid": "user-1"}))
            .await,
    )
    .await;
    let newer = json(
        app.exchange_with(json!({"code": new_code(), "ref": "ORDER-7", "uuid": "user-1"}))
            .await,
    )
    .await;
    let other = json(
        app.exchange_with(json!({"code": new_code(), "ref": "ORDER-8"}))
            .await,
    )
    .await;

    let by_id = app.stored_token(&older).await;
    assert_eq!(by_id["access_token"], older["access_token"]);
    let by_ref = app.tokens_by_ref("ORDER-7").await;
    assert_eq!(by_ref.headers()["cache-control"], "no-store");
    assert_eq!(json(by_ref).await["id"], older["id"]);
    assert_eq!(
        json(app.tokens_by_uuid("user-1").await).await["id"],
        older["id"]
    );
    // Once the first is gone, the next one recorded answers.
    app.delete_token(older["id"].as_str().unwrap()).await;
    assert_eq!(
        json(app.tokens_by_ref("ORDER-7").await).await["id"],
        newer["id"]
    );
    assert_eq!(
        json(app.tokens_by_ref("ORDER-8").await).await["id"],
        other["id"]
    );
}

#[tokio::test]
async fn lookups_that_find_nothing_or_ask_wrongly_get_problems() {
    let app = spawn_app().await;
    for (path, status) in [
        ("/v1/tokens/tok_doesnotexist", StatusCode::NOT_FOUND),
        ("/v1/tokens?ref=NOBODY", StatusCode::NOT_FOUND),
        ("/v1/tokens?uuid=nobody", StatusCode::NOT_FOUND),
        ("/v1/tokens", StatusCode::BAD_REQUEST),
        ("/v1/tokens?ref=A&uuid=B", StatusCode::BAD_REQUEST),
        ("/v1/tokens?colour=blue", StatusCode::BAD_REQUEST),
        ("/v1/nothing-here", StatusCode::NOT_FOUND),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(
            content_type(&response),
            "application/problem+json",
            "{path}"
        );
        assert_eq!(json(response).await["status"], status.as_u16(), "{path}");
    }
}

/// A code whose token is gone is not exchanged again: `410 Gone` (the mock counts the calls).
async fn assert_spent_for_good(app: &TestApp, code: &str, reference: &str) {
    let again = app.exchange(code, reference).await;
    assert_eq!(again.status(), StatusCode::GONE, "{code} again");
}

#[tokio::test]
async fn deleted_tokens_are_gone_and_their_code_is_not_exchanged_again() {
    let app = spawn_app().await;
    app.mondiapay.issues_tokens(1).await;
    let code = new_code();
    let record = app.exchange(&code, "ORDER-D").await;
    let id = json(record).await["id"].as_str().unwrap().to_owned();
    let id = id.as_str();
    assert_eq!(app.delete_token(id).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.token(id).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.tokens_by_ref("ORDER-D").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete_token(id).await.status(),
        StatusCode::NO_CONTENT,
        "deleting again is fine"
    );
    assert_spent_for_good(&app, &code, "ORDER-D").await;
}

#[tokio::test]
async fn expired_tokens_are_never_returned() {
    let app = spawn_app().await;
    let short = json!({"access_token": "Ushort", "token_type": "bearer", "expires_in": "30"});
    app.mondiapay
        .answers(ResponseTemplate::new(200).set_body_json(short), 1)
        .await;
    let code = new_code();
    let response = app.exchange(&code, "ORDER-SHORT").await;
    assert_eq!(
        response.status(),
        StatusCode::GONE,
        "30 s is inside the 60 s safety margin"
    );
    assert_eq!(
        app.tokens_by_ref("ORDER-SHORT").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_spent_for_good(&app, &code, "ORDER-SHORT").await;
}

#[tokio::test]
async fn the_api_needs_a_configured_key() {
    let app = spawn_app().await;
    app.mondiapay.issues_tokens(1).await;
    let url = format!("{}/v1/tokens?ref=X", app.internal);
    let client = reqwest::Client::new();
    let attempts = [
        client.get(&url),
        client.get(&url).bearer_auth("wrong-key-0123456789abcdef"),
        client.get(&url).bearer_auth(&API_KEY[..API_KEY.len() - 1]),
        client.get(&url).basic_auth(API_KEY, Some("")),
        client.get(&url).header("authorization", API_KEY),
        client
            .post(format!("{}/v1/exchange", app.internal))
            .json(&json!({"code": new_code()})),
    ];
    for attempt in attempts {
        let response = attempt.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(content_type(&response), "application/problem+json");
    }
    assert_eq!(
        app.with_api_key(ROTATED_API_KEY)
            .tokens_by_ref("X")
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "the second configured key is accepted"
    );
    let lower_scheme = client
        .get(&url)
        .header("authorization", format!("bearer {API_KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower_scheme.status(), StatusCode::NOT_FOUND);
    let exchange = app.exchange_with(json!({"code": new_code()})).await;
    assert_eq!(exchange.status(), StatusCode::OK);
}

#[tokio::test]
async fn each_route_lives_on_its_own_listener() {
    let app = spawn_app().await;
    for listener in [&app.public, &app.internal] {
        let health = app.http_get(&format!("{listener}/healthz")).await;
        assert_eq!(health.status(), StatusCode::OK);
        assert_eq!(health.text().await.unwrap(), "ok");
    }
    assert_eq!(app.ready().await.status(), StatusCode::OK);
    for path in ["/v1/tokens?ref=X", "/v1/tokens/tok_x", "/readyz"] {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", app.public))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "{path} on the public listener"
        );
    }
    let public = app.http_get(&format!("{}/healthz", app.public)).await;
    for (name, value) in [
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(public.headers()[name], value);
    }
    assert!(
        public.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = spawn_app().await;
    let url = format!("{}/healthz", app.internal);
    let client = reqwest::Client::new();
    let asked_as = async |request_id: &str| {
        let answer = client.get(&url).header("x-request-id", request_id);
        answer.send().await.unwrap()
    };
    let echoed = asked_as("support-123").await;
    assert_eq!(echoed.headers()["x-request-id"], "support-123");
    let forged = asked_as("a\"b c").await;
    let made = forged.headers()["x-request-id"].to_str().unwrap();
    assert!(!made.is_empty() && made != "a\"b c");
}

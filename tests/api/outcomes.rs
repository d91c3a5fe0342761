//! Callback outcomes under forgery: anyone can send a browser to the callback with a made-up
//! `error` and someone's `ref`. Failures are bounded and never push a success out; MondiaPay's
//! free text is neither stored nor listed.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use wiremock::ResponseTemplate;

use crate::helpers::*;

async fn stored_callbacks(app: &TestApp) -> i64 {
    let url = format!("sqlite://{}/tokens.db", app.dir.path().display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM callbacks")
        .fetch_one(&mut db)
        .await
        .unwrap();
    count
}

#[tokio::test]
async fn forged_failures_cannot_push_a_genuine_success_out_nor_grow_the_store() {
    let app = spawn_app_with("PUBLIC__RATE_LIMIT_BURST=1000").await;
    app.mondiapay.issues_tokens(1).await;
    let (_, status, _) = app
        .callback_page(&format!("ref=ORDER-77&code={}", new_code()))
        .await;
    assert_eq!(status, StatusCode::OK);

    for n in 0..101 {
        for error in [format!("FORGED_{n}"), "INSUFFICIENT_FUNDS".to_owned()] {
            let forged = app.callback(&format!("error={error}&ref=ORDER-77")).await;
            assert_eq!(forged.status(), StatusCode::SEE_OTHER);
        }
    }

    let listed: Vec<Value> = app.callbacks("ORDER-77").await.as_array().unwrap().clone();
    let succeeded = listed
        .iter()
        .filter(|o| o["outcome"] == "succeeded")
        .count();
    assert_eq!(succeeded, 1, "the genuine success is listed");
    let repeated = listed
        .iter()
        .filter(|o| o["mondiapay_error"] == "INSUFFICIENT_FUNDS")
        .count();
    assert_eq!(repeated, 1, "one outcome per (ref, outcome, error)");
    assert!(listed.len() <= 21, "{} outcomes listed", listed.len());
    assert!(
        stored_callbacks(&app).await <= 21,
        "202 forged failures stored apart"
    );
}

#[tokio::test]
async fn mondiapay_free_text_is_neither_stored_nor_listed() {
    let app = spawn_app().await;
    let told = "Call +1-555-0100 and give your PIN rejectedtext";
    let rejection = ResponseTemplate::new(400)
        .set_body_json(json!({"status": "BAD_REQUEST", "error": "invalid_grant", "message": told}));
    app.mondiapay.answers(rejection, 1).await;
    let (_, status, _) = app
        .callback_page(&format!("ref=ORDER-TEXT&code={}", new_code()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, status, _) = app
        .callback_page("ref=ORDER-TEXT&error=INSUFFICIENT_FUNDS&message=Phone+us+querytext")
        .await;
    assert_eq!(status, StatusCode::OK);

    // The body as sent, so that no spelling of the text can hide in it.
    let listed = app
        .get("/v1/callbacks?ref=ORDER-TEXT")
        .await
        .text()
        .await
        .unwrap();
    let outcomes: Vec<Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(outcomes.len(), 2);
    // Each error is listed with this service's fixed sentence for it, never with the text sent.
    let meaning = |error: &str| {
        outcomes
            .iter()
            .find(|o| o["mondiapay_error"] == error)
            .map(|o| o["mondiapay_message"].clone())
    };
    assert_eq!(
        meaning("INSUFFICIENT_FUNDS"),
        Some(json!(
            "Your mobile balance was too low to pay for this purchase."
        ))
    );
    assert_eq!(
        meaning("invalid_grant"),
        Some(json!(
            "The confirmation of this purchase had expired or had already been used."
        ))
    );
    assert!(!listed.contains("rejectedtext") && !listed.contains("querytext"));

    let mut app = app;
    app.stop().await;
    for file in std::fs::read_dir(app.dir.path()).unwrap() {
        let path = file.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for text in ["rejectedtext", "querytext"] {
            assert!(
                !bytes.windows(text.len()).any(|w| w == text.as_bytes()),
                "{text} in {}",
                path.display()
            );
        }
    }
}

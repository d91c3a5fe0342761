//! Whom a token belongs to: the request that first claimed its code, and, for a `ref` or a
//! `uuid`, the first live token recorded for it. A replay or a later callback that names someone
//! else's `ref`/`uuid` re-points nothing.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn a_replay_after_a_failed_attempt_leaves_the_token_with_the_first_claimer() {
    let app = spawn_app().await;
    app.mondiapay.unavailable_once_then_issues().await;
    let code = new_code();

    let (_, status, _) = app
        .callback_page(&format!("ref=ORDER-FIRST&uuid=user-first&code={code}"))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "no usable answer the first time"
    );
    let (_, status, _) = app
        .callback_page(&format!("ref=ORDER-SECOND&uuid=user-second&code={code}"))
        .await;
    assert_eq!(status, StatusCode::OK, "the replay exchanges the code");

    let token = json(app.tokens_by_ref("ORDER-FIRST").await).await;
    assert_eq!(
        (token["ref"].as_str(), token["uuid"].as_str()),
        (Some("ORDER-FIRST"), Some("user-first")),
        "{token}"
    );
    for lookup in ["ref=ORDER-SECOND", "uuid=user-second"] {
        assert_eq!(
            app.get(&format!("/v1/tokens?{lookup}")).await.status(),
            StatusCode::NOT_FOUND,
            "{lookup}"
        );
    }
    // The same through the API: the record returned to a replay keeps the first owner.
    let again = json(app.exchange(&code, "ORDER-THIRD").await).await;
    assert_eq!(again["id"], token["id"]);
    assert_eq!(again["ref"], "ORDER-FIRST");
}

#[tokio::test]
async fn a_later_token_cannot_take_over_a_ref_or_uuid_while_the_first_is_live() {
    let app = spawn_app().await;
    app.mondiapay.issues_tokens(2).await;
    let (_, status, _) = app
        .callback_page(&format!("ref=ORDER-V&uuid=user-v&code={}", new_code()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let victims = json(app.tokens_by_ref("ORDER-V").await).await;

    // The attacker's own code (a USER_ALREADY_SUBSCRIBED redirect still carries an exchangeable
    // one) with the victim's order and user.
    let forged = format!(
        "ref=ORDER-V&uuid=user-v&code={}&error=USER_ALREADY_SUBSCRIBED&status=409",
        new_code()
    );
    let (_, status, _) = app.callback_page(&forged).await;
    assert_eq!(status, StatusCode::OK, "the attacker's code is exchanged");

    for lookup in ["ref=ORDER-V", "uuid=user-v"] {
        let found = json(app.get(&format!("/v1/tokens?{lookup}")).await).await;
        assert_eq!(found["id"], victims["id"], "{lookup}");
        assert_eq!(found["access_token"], victims["access_token"], "{lookup}");
    }
}

#[tokio::test]
async fn a_callback_for_a_code_exchanged_first_through_the_api_names_the_first_owner() {
    let app = spawn_app_with("PUBLIC__SUCCESS_URL=https://shop.example/done").await;
    app.mondiapay.issues_tokens(1).await;
    let code = new_code();
    let token = json(app.exchange(&code, "ORDER-API").await).await;

    let callback = app.callback(&format!("ref=ORDER-OTHER&code={code}")).await;
    assert_eq!(callback.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        callback.headers()["location"],
        format!(
            "https://shop.example/done?ref=ORDER-API&token_id={}",
            token["id"].as_str().unwrap()
        )
        .as_str(),
        "the redirect names the token's owner, not the callback's claim"
    );
    let listed = app.callbacks("ORDER-OTHER").await;
    assert_eq!(
        listed,
        serde_json::json!([]),
        "nothing recorded under the claim"
    );
    let listed = app.callbacks("ORDER-API").await;
    assert_eq!(listed[0]["token_id"], token["id"]);
}

//! GET /oauth/callback and the result pages, rule by rule (SPEC.md "The callback").

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use wiremock::ResponseTemplate;

use crate::helpers::*;

fn assert_public_headers(response: &reqwest::Response) {
    let headers = response.headers();
    for (name, value) in [
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(headers[name], value, "{name}");
    }
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
}

#[tokio::test]
async fn malformed_callbacks_get_a_400_page_and_no_upstream_call() {
    let app = spawn_app().await;
    app.mondiapay.issues_tokens(0).await;
    let long_code = format!("code=A{}", "b".repeat(512));
    let long_query = format!("code=A1&padding={}", "p".repeat(4100));
    let cases = [
        "",
        "ref=ORDER-1",
        "ref=ORDER-1&status=200",
        "code=A1&code=A2",
        "code=",
        "code=B123",
        "code=A12%203",
        "code=A%3Cscript%3E",
        "code=A%C3%A9",
        long_code.as_str(),
        long_query.as_str(),
        "code=A1&ref=a&ref=b",
        "code=A1&ref=a%0Ab",
        "code=A1&uuid=u&uuid=v",
    ];
    for query in cases {
        let response = app.callback(query).await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "query {query:.60}"
        );
        assert_public_headers(&response);
        assert!(content_type(&response).starts_with("text/html"));
        let page = response.text().await.unwrap();
        assert!(page.contains("This link is not valid"), "query {query:.60}");
    }
}

#[tokio::test]
async fn failed_purchases_are_recorded_and_their_code_is_never_exchanged() {
    let app = spawn_app().await;
    app.mondiapay.issues_tokens(0).await;
    let cases = [
        (
            format!(
                "code={}&error=INSUFFICIENT_FUNDS&status=402&uuid=u-1&ref=F1",
                new_code()
            ),
            "F1",
            "mobile balance was too low",
        ),
        (
            "error=USER_DECLINED_PURCHASE_DURING_CONFIRMATION&status=400&ref=F2".to_owned(),
            "F2",
            "cancelled during confirmation",
        ),
        (
            format!("code={}&status=402&ref=F3", new_code()),
            "F3",
            "The payment could not be completed.",
        ),
        (
            "error=SOMETHING_NEW&message=Operator+says+no&ref=F4".to_owned(),
            "F4",
            "The payment could not be completed.",
        ),
    ];
    for (query, reference, words) in cases {
        let (location, status, page) = app.callback_page(&query).await;
        assert!(location.starts_with("/oauth/result/res_"), "{location}");
        assert_eq!(status, StatusCode::OK, "{query}");
        assert!(
            page.contains("The purchase did not go through") && page.contains(words),
            "{query}: {page}"
        );
        assert!(page.contains(reference));
        let outcomes = app.callbacks(reference).await;
        assert_eq!(outcomes.as_array().unwrap().len(), 1);
        assert_eq!(outcomes[0]["outcome"], "purchase_failed");
        assert!(outcomes[0]["token_id"].is_null());
    }
    let outcome = &app.callbacks("F1").await[0];
    assert_eq!(outcome["mondiapay_error"], "INSUFFICIENT_FUNDS");
    assert_eq!(outcome["mondiapay_status"], "402");
    assert_eq!(outcome["uuid"], "u-1");
    assert!(outcome["time"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn a_purchase_lands_on_the_thank_you_page_and_its_token_is_stored() {
    let app = spawn_app().await;
    app.mondiapay.issues_tokens(1).await;
    let code = new_code();
    let query = format!("ref=ORDER-42&code={code}&message=OK&uuid=8142-user&status=200");
    let response = app.callback(&query).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_public_headers(&response);
    let support = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/oauth/result/res_")
            && location.len() >= "/oauth/result/res_".len() + 22
    );
    assert!(!location.contains(&code));

    let page = app.browser_get(&location).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_public_headers(&page);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("Thank you for your purchase")
            && page.contains("ORDER-42")
            && page.contains(&support)
    );
    let token = json(app.tokens_by_ref("ORDER-42").await).await;
    assert_eq!(token["uuid"], "8142-user");
    for secret in [
        code.as_str(),
        token["access_token"].as_str().unwrap(),
        CLIENT_SECRET,
    ] {
        assert!(!page.contains(secret));
    }
    let outcome = &app.callbacks("ORDER-42").await[0];
    assert_eq!(outcome["outcome"], "succeeded");
    assert_eq!(outcome["token_id"], token["id"]);
    assert_eq!(outcome["request_id"], support.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_callback_gets_the_same_303_and_causes_no_second_call() {
    let app = spawn_app().await;
    let slow = issues_after("Ureplay", Duration::from_millis(200));
    app.mondiapay.answers(slow, 1).await;
    let query = format!("ref=ORDER-R&code={}&status=200", new_code());
    let concurrent: Vec<_> = (0..8)
        .map(|_| {
            let (browser, query) = (app.client.clone(), query.clone());
            tokio::spawn(async move { browser.callback(&query).await })
        })
        .collect();
    let mut locations = Vec::new();
    for request in concurrent {
        let response = request.await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        locations.push(response.headers()["location"].to_str().unwrap().to_owned());
    }
    let later = app.callback(&query).await;
    locations.push(later.headers()["location"].to_str().unwrap().to_owned());
    locations.dedup();
    assert_eq!(locations.len(), 1, "{locations:?}");
    assert_eq!(app.callbacks("ORDER-R").await.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn errors_listed_in_exchange_on_errors_still_exchange_their_code() {
    let app = spawn_app().await;
    app.mondiapay.issues_tokens(1).await;
    let query = format!(
        "ref=ORDER-AS&code={}&error=USER_ALREADY_SUBSCRIBED&message=User+already+subscribed+to+service.&status=409",
        new_code()
    );
    let (_, status, page) = app.callback_page(&query).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Thank you"));
    assert_eq!(app.tokens_by_ref("ORDER-AS").await.status(), StatusCode::OK);

    let strict = spawn_app_with("MONDIAPAY__EXCHANGE_ON_ERRORS=").await;
    strict.mondiapay.issues_tokens(0).await;
    let (_, status, page) = strict.callback_page(&query).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("You already have this subscription"));
}

#[tokio::test]
async fn a_rejected_code_shows_the_rejection_page_every_time_with_one_call() {
    let app = spawn_app().await;
    let rejection = ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"}));
    app.mondiapay.answers(rejection, 1).await;
    let query = format!("ref=ORDER-X&code={}", new_code());
    let (first, status, page) = app.callback_page(&query).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("We could not confirm your purchase"));
    let (again, _, _) = app.callback_page(&query).await;
    assert_eq!(first, again);
    let outcome = &app.callbacks("ORDER-X").await[0];
    assert_eq!(
        (
            outcome["outcome"].as_str(),
            outcome["mondiapay_error"].as_str()
        ),
        (Some("code_rejected"), Some("invalid_grant"))
    );
}

#[tokio::test]
async fn when_mondiapay_gives_no_answer_the_user_is_asked_to_try_again_and_a_reload_may_retry() {
    let app = spawn_app().await;
    app.mondiapay.unavailable_once_then_issues().await;
    let query = format!("ref=ORDER-W&code={}", new_code());
    let (first, status, page) = app.callback_page(&query).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(page.contains("Please try again in a few minutes"));
    let (again, status, page) = app.callback_page(&query).await;
    assert_eq!(
        again, first,
        "the same result page, now with the new outcome"
    );
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Thank you"));
}

#[tokio::test]
async fn a_hanging_mondiapay_gives_a_504_page() {
    let app = spawn_app_with("MONDIAPAY__TIMEOUT_SECS=1").await;
    let hanging = issues_after("Uhang", Duration::from_secs(5));
    app.mondiapay.answers(hanging, 1).await;
    let (_, status, page) = app
        .callback_page(&format!("ref=ORDER-H&code={}", new_code()))
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(page.contains("Please try again"));
}

#[tokio::test]
async fn merchant_pages_get_the_303_with_ref_and_token_id_or_reason() {
    let app = spawn_app_with(
        "PUBLIC__SUCCESS_URL=https://shop.example/done?step=3 \
         PUBLIC__FAILURE_URL=https://shop.example/failed PUBLIC__CORRELATION_PARAM=order",
    )
    .await;
    app.mondiapay.issues_tokens(1).await;
    let code = new_code();
    let success = app
        .callback(&format!("order=77&code={code}&status=200"))
        .await;
    assert_eq!(success.status(), StatusCode::SEE_OTHER);
    let token = json(app.tokens_by_ref("77").await).await;
    assert_eq!(
        success.headers()["location"],
        format!(
            "https://shop.example/done?step=3&ref=77&token_id={}",
            token["id"].as_str().unwrap()
        )
        .as_str()
    );
    let failure = app
        .callback("order=78&error=INSUFFICIENT_FUNDS&status=402")
        .await;
    assert_eq!(
        failure.headers()["location"],
        "https://shop.example/failed?ref=78&reason=purchase_failed&mondiapay_error=INSUFFICIENT_FUNDS"
    );
}

#[tokio::test]
async fn markup_or_sentences_in_the_query_never_reach_the_page() {
    let app = spawn_app().await;
    let script = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    let (_, _, page) = app
        .callback_page(&format!("error={script}&message={script}&ref={script}"))
        .await;
    assert!(
        !page.contains("script") && !page.contains("alert"),
        "{page}"
    );
    let said = "Call+%2B1-555-0100+and+give+your+PIN";
    let (_, _, page) = app
        .callback_page(&format!("error={said}&status={said}&ref={said}"))
        .await;
    assert!(!page.contains("555") && !page.contains("PIN"), "{page}");
    assert!(
        page.contains("The payment could not be completed."),
        "{page}"
    );
    // A plain order reference is shown.
    let (_, _, page) = app
        .callback_page("error=INSUFFICIENT_FUNDS&ref=ORDER-42")
        .await;
    assert!(page.contains("ORDER-42"), "{page}");
    // Nor does such text reach the API as MondiaPay's error or status.
    let listed = app.callbacks(said).await;
    assert_eq!(
        listed[0]["mondiapay_error"], "UNRECOGNISED_ERROR",
        "{listed}"
    );
    assert_eq!(
        listed[0]["mondiapay_status"], "UNRECOGNISED_STATUS",
        "{listed}"
    );
}

#[tokio::test]
async fn unknown_result_pages_and_routes_are_404_pages() {
    let app = spawn_app().await;
    for path in [
        "/oauth/result/res_nothing",
        "/nowhere",
        "/v1/tokens?ref=X",
        "/v1/exchange",
        "/metrics",
        "/openapi.json",
    ] {
        let response = app.browser_get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_public_headers(&response);
        assert!(
            response.text().await.unwrap().contains("Page not found"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_forged_failure_with_someones_code_does_not_block_their_real_callback() {
    let app = spawn_app().await;
    app.mondiapay.issues_tokens(1).await;
    let code = new_code();
    let (forged, _, page) = app
        .callback_page(&format!("ref=ORDER-F&code={code}&error=INSUFFICIENT_FUNDS"))
        .await;
    assert!(page.contains("did not go through"));
    let (forged_again, _, _) = app
        .callback_page(&format!("ref=ORDER-F&code={code}&error=INSUFFICIENT_FUNDS"))
        .await;
    assert_eq!(
        forged, forged_again,
        "the same failure replayed lands on the same page"
    );
    let (real, status, page) = app
        .callback_page(&format!("ref=ORDER-F&code={code}&status=200"))
        .await;
    assert_ne!(real, forged);
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Thank you"));
}

#[tokio::test]
async fn result_pages_show_a_fixed_sentence_per_mondiapay_error_and_never_the_querys_text() {
    let app = spawn_app().await;
    let rejected = new_code();
    wiremock::Mock::given(wiremock::matchers::query_param("code", rejected.as_str()))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": "Call +1-555-0100 and give your PIN"
        })))
        .expect(1)
        .mount(&app.mondiapay)
        .await;
    let lure = "call+%2B1-555-0100+and+give+your+PIN";
    let cases = [
        (
            format!("error=INSUFFICIENT_FUNDS&message={lure}&ref=W1"),
            StatusCode::OK,
            "Your mobile balance was too low to pay for this purchase.",
        ),
        (
            format!("error=NOT_A_KNOWN_ERROR&message={lure}&ref=W2"),
            StatusCode::OK,
            "The payment could not be completed.",
        ),
        (
            format!("code={rejected}&message={lure}&ref=W3"),
            StatusCode::BAD_REQUEST,
            "The confirmation of this purchase had expired or had already been used.",
        ),
    ];
    for (query, status, sentence) in cases {
        let (_, shown, page) = app.callback_page(&query).await;
        assert_eq!(shown, status, "{query}");
        assert!(page.contains(sentence), "{query}: {page}");
        for text in ["555", "PIN", "give your", "MondiaPay said"] {
            assert!(!page.contains(text), "{query}: {text} shown");
        }
    }
}

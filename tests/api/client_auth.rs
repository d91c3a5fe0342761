//! The token call on the wire, in each client authentication style.

use base64::Engine;
use reqwest::StatusCode;
use wiremock::Request;

use crate::helpers::*;

async fn one_call(client_auth: &str, extra: &[(&str, &str)]) -> (Request, String) {
    let mut overrides = vec![("MONDIAPAY__CLIENT_AUTH", client_auth)];
    overrides.extend_from_slice(extra);
    let app = spawn_app_with(&overrides).await;
    app.mondiapay.issues_tokens(1).await;
    let code = new_code();
    assert_eq!(
        app.exchange(&code, "ORDER-W").await.status(),
        StatusCode::OK
    );
    let calls = app.mondiapay.calls().await;
    assert_eq!(calls.len(), 1);
    let request = calls.into_iter().next().unwrap();
    assert_eq!(request.headers["accept"], "application/json");
    assert_eq!(
        request.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(request.url.path(), TOKEN_PATH);
    (request, code)
}

const REDIRECT_URI_ENCODED: &str = "https%3A%2F%2Fshop.example%2Fthanks%3Ffrom%3Dmondiapay";

#[tokio::test]
async fn query_style_sends_everything_in_the_query_string_with_an_empty_body() {
    let (request, code) = one_call("query", &[]).await;
    assert_eq!(
        request.url.query().unwrap(),
        format!(
            "grant_type=authorization_code&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}&code={code}&redirect_uri={REDIRECT_URI_ENCODED}"
        )
    );
    assert!(request.body.is_empty());
    assert!(!request.headers.contains_key("authorization"));
}

#[tokio::test]
async fn form_style_sends_everything_in_the_body() {
    let (request, code) = one_call("form", &[]).await;
    assert_eq!(request.url.query(), None);
    assert_eq!(
        String::from_utf8(request.body).unwrap(),
        format!(
            "grant_type=authorization_code&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}&code={code}&redirect_uri={REDIRECT_URI_ENCODED}"
        )
    );
    assert!(!request.headers.contains_key("authorization"));
}

#[tokio::test]
async fn basic_style_encodes_the_credentials_as_rfc_6749_says() {
    let id = "1PpG/Q 1";
    let secret = "z/tZ9VwFZqApmIQ+ZH1I5pLk/uB4ud:X2/8bL+wfFTt1rFw=";
    let (request, code) = one_call(
        "basic",
        &[
            ("MONDIAPAY__CLIENT_ID", id),
            ("MONDIAPAY__CLIENT_SECRET", secret),
        ],
    )
    .await;
    assert_eq!(
        request.headers["authorization"],
        "Basic MVBwRyUyRlErMTp6JTJGdFo5VndGWnFBcG1JUSUyQlpIMUk1cExrJTJGdUI0dWQlM0FYMiUyRjhiTCUyQndmRlR0MXJGdyUzRA=="
    );
    let encoded = request.headers["authorization"]
        .to_str()
        .unwrap()
        .trim_start_matches("Basic ");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(
        decoded,
        b"1PpG%2FQ+1:z%2FtZ9VwFZqApmIQ%2BZH1I5pLk%2FuB4ud%3AX2%2F8bL%2BwfFTt1rFw%3D"
    );
    assert_eq!(request.url.query(), None);
    assert_eq!(
        String::from_utf8(request.body).unwrap(),
        format!("grant_type=authorization_code&code={code}&redirect_uri={REDIRECT_URI_ENCODED}")
    );
}

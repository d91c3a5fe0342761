//! The token call on the wire, in each client authentication style.

use base64::Engine;
use reqwest::StatusCode;
use wiremock::Request;

use crate::helpers::*;

/// One token call in `client_auth` style, with `credentials` (id and secret) when given.
async fn one_call(client_auth: &str, credentials: Option<(&str, &str)>) -> (Request, String) {
    let (mondiapay, dir, mut env) = MondiaPay::start().await;
    env.extend(settings(&format!("MONDIAPAY__CLIENT_AUTH={client_auth}")));
    // Set as they are: the id has a space, which the `KEY=value` form cannot carry.
    if let Some((id, secret)) = credentials {
        env.insert("TOKEN_PROXY__MONDIAPAY__CLIENT_ID".into(), id.into());
        env.insert(
            "TOKEN_PROXY__MONDIAPAY__CLIENT_SECRET".into(),
            secret.into(),
        );
    }
    let app = TestApp::spawn(mondiapay, dir, env).await;
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
    let (request, code) = one_call("query", None).await;
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
    let (request, code) = one_call("form", None).await;
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
    let (request, code) = one_call("basic", Some((id, secret))).await;
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

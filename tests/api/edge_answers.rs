//! Answers the service did not plan for (a wrong method, a path that is not UTF-8, a request
//! the HTTP parser refuses) come in the listener's own form, and pages show a support reference
//! the service made.

use std::net::SocketAddr;

use reqwest::{Method, Response, StatusCode};

use crate::helpers::*;
use crate::raw_http::{SECURITY_HEADERS, send_raw};

fn socket(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().unwrap()
}

fn assert_page(response: &reqwest::Response) {
    let headers = response.headers();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{headers:?}"
    );
    for name in SECURITY_HEADERS {
        assert!(headers.contains_key(name), "{name} missing: {headers:?}");
    }
}

#[tokio::test]
async fn wrong_methods_and_unreadable_paths_get_a_page_or_a_problem() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();

    let wrong_method = http
        .post(format!("{}/oauth/callback?code=A1", app.public))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        wrong_method.headers()["allow"]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    assert_page(&wrong_method);
    assert!(wrong_method.text().await.unwrap().contains("<h1>"));

    let bad_id = app.browser_get("/oauth/result/%FF").await;
    assert_eq!(bad_id.status(), StatusCode::BAD_REQUEST);
    assert_page(&bad_id);

    for (method, path, allowed) in [
        (Method::GET, "/v1/exchange", "POST"),
        (Method::DELETE, "/v1/tokens", "GET"),
        (Method::POST, "/readyz", "GET"),
    ] {
        let answer = app.api(method.clone(), path).send().await.unwrap();
        assert_eq!(
            answer.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(
            answer.headers()["allow"]
                .to_str()
                .unwrap()
                .contains(allowed)
        );
        assert_eq!(content_type(&answer), "application/problem+json");
        assert_eq!(
            answer.headers()["cache-control"],
            "no-store",
            "{method} {path}"
        );
        let problem = json(answer).await;
        assert_eq!(problem["status"], 405);
        assert_problem_kind(&problem, "method-not-allowed");
    }

    // Without the key, a wrong method on a `/v1` path is asked for the key first.
    let anonymous = http
        .get(format!("{}/v1/exchange", app.internal))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["cache-control"], "no-store");
    assert_problem_kind(&json(anonymous).await, "unauthorized");

    let not_utf8 = app.get("/v1/tokens/%FF").await;
    assert_eq!(not_utf8.status(), StatusCode::BAD_REQUEST);
    assert_eq!(content_type(&not_utf8), "application/problem+json");
    assert_eq!(json(not_utf8).await["status"], 400);
}

#[tokio::test]
async fn requests_the_http_parser_refuses_get_the_listeners_own_answer() {
    let app = spawn_app().await;
    let many_headers: String = (0..101).map(|n| format!("X-H{n}: v\r\n")).collect();
    let refused: [(&str, Vec<u8>, u16); 4] = [
        (
            "a 70 KB query",
            format!(
                "GET /oauth/callback?ref={} HTTP/1.1\r\nHost: p\r\n\r\n",
                "a".repeat(70 * 1024)
            )
            .into_bytes(),
            414,
        ),
        (
            "101 headers",
            format!("GET /healthz HTTP/1.1\r\nHost: p\r\n{many_headers}\r\n").into_bytes(),
            431,
        ),
        (
            "a header line without a colon",
            b"GET /healthz HTTP/1.1\r\nHost: p\r\nno colon here\r\n\r\n".to_vec(),
            400,
        ),
        (
            "two Content-Lengths",
            b"GET /healthz HTTP/1.1\r\nHost: p\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
                .to_vec(),
            400,
        ),
    ];
    for (what, request, status) in &refused {
        let page = send_raw(socket(&app.public), request)
            .await
            .unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(page.status, *status, "{what}");
        assert!(page.is_page(), "{what}: {page:?}");
        let reference = page.header("x-request-id").unwrap().to_owned();
        assert!(
            page.text().contains(&reference),
            "{what}: support reference"
        );
        assert_eq!(
            page.header("content-length").unwrap(),
            page.body.len().to_string()
        );

        let problem = send_raw(socket(&app.internal), request)
            .await
            .unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(problem.status, *status, "{what}");
        assert!(problem.is_problem(), "{what}: {problem:?}");
        assert_eq!(problem.header("cache-control"), Some("no-store"), "{what}");
        let body: serde_json::Value = serde_json::from_slice(&problem.body).unwrap();
        assert_eq!(body["status"], *status);
    }
}

/// A browser's `GET` of `path` with a forged request id: the answer carries an id of the
/// service's own instead, returned beside it.
async fn with_forged_request_id(app: &Client, path: &str, forged: &str) -> (Response, String) {
    let answer = app
        .browser(path)
        .header("x-request-id", forged)
        .send()
        .await
        .unwrap();
    let own = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(own, forged);
    (answer, own)
}

#[tokio::test]
async fn pages_show_a_support_reference_the_service_generated_not_the_callers_request_id() {
    let app = spawn_app().await;
    app.mondiapay.issues_tokens(1).await;
    let forged = "CALL-555-0100";
    let callback = format!("/oauth/callback?ref=ORDER-RID&code={}", new_code());
    let (callback, generated) = with_forged_request_id(&app, &callback, forged).await;
    assert_eq!(callback.status(), StatusCode::SEE_OTHER);
    let location = callback.headers()["location"].to_str().unwrap().to_owned();

    let (result, _) = with_forged_request_id(&app, &location, forged).await;
    assert_eq!(result.status(), StatusCode::OK);
    let page = result.text().await.unwrap();
    assert!(!page.contains(forged), "{page}");
    assert!(
        page.contains(&generated),
        "the support reference is the callback's own id"
    );

    let (missing, own) = with_forged_request_id(&app, "/oauth/result/res_missing", forged).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let page = missing.text().await.unwrap();
    assert!(!page.contains(forged) && page.contains(&own), "{page}");

    // The internal listener still takes an internal caller's id, to trace a call through.
    let traced = app
        .api(Method::GET, "/v1/tokens?ref=ORDER-RID")
        .header("x-request-id", forged)
        .send()
        .await
        .unwrap();
    assert_eq!(traced.headers()["x-request-id"], forged);
}

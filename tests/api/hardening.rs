//! Faults and abuse: a MondiaPay that misbehaves below HTTP, callers that overstay or flood,
//! and exchanges beyond the configured capacity.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;

/// A MondiaPay that speaks raw TCP, to misbehave where wiremock cannot.
struct RawMondiaPay {
    url: String,
    connections: Arc<AtomicUsize>,
    bytes_sent: Arc<AtomicUsize>,
}

#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Reads the request, then resets the connection.
    Reset,
    /// Answers 200 with a chunked body that never ends.
    EndlessBody,
    /// Sends the status line, then one header byte every 300 ms.
    SlowHeaders,
}

impl RawMondiaPay {
    async fn start(misbehaviour: Misbehaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{TOKEN_PATH}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let bytes_sent = Arc::new(AtomicUsize::new(0));
        let (count, sent) = (connections.clone(), bytes_sent.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(misbehave(stream, misbehaviour, sent.clone()));
            }
        });
        Self {
            url,
            connections,
            bytes_sent,
        }
    }
}

async fn misbehave(mut stream: TcpStream, misbehaviour: Misbehaviour, sent: Arc<AtomicUsize>) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    match misbehaviour {
        Misbehaviour::Reset => {
            // A zero linger makes the close a reset; it cannot block with a zero timeout.
            #[allow(deprecated)]
            stream.set_linger(Some(Duration::ZERO)).unwrap();
            drop(stream);
        }
        Misbehaviour::EndlessBody => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = format!("4000\r\n{}\r\n", "a".repeat(0x4000));
            // Bounded: 256 MiB, far more than any buffer between us and the service.
            for _ in 0..16_384 {
                if stream.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
                sent.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        }
        Misbehaviour::SlowHeaders => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n").await;
            for byte in b"content-type: application/json\r\n" {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[tokio::test]
async fn a_reset_connection_is_a_bad_gateway_and_leaves_the_code_usable() {
    let upstream = RawMondiaPay::start(Misbehaviour::Reset).await;
    let app = spawn_app_with(&format!("MONDIAPAY__TOKEN_URL={}", upstream.url)).await;
    let response = app.exchange(&new_code(), "ORDER-RST").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        1,
        "a reset after sending is not retried"
    );
    let exchanges = app.metrics_text().await;
    assert!(
        exchanges.contains("token_proxy_exchanges_total{outcome=\"unreachable\"} 1"),
        "{exchanges}"
    );
}

#[tokio::test]
async fn an_endless_answer_is_cut_off_not_buffered() {
    let upstream = RawMondiaPay::start(Misbehaviour::EndlessBody).await;
    let app = spawn_app_with(&format!("MONDIAPAY__TOKEN_URL={}", upstream.url)).await;
    let started = Instant::now();
    let response = app.exchange(&new_code(), "ORDER-BIG").await;
    assert_eq!(
        response.status(),
        StatusCode::BAD_GATEWAY,
        "cut off, not timed out"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(upstream.bytes_sent.load(Ordering::SeqCst) < 64 * 1024 * 1024);
    let problem = json(response).await;
    assert!(!problem["detail"].as_str().unwrap().contains("aaaa"));
}

#[tokio::test]
async fn headers_sent_slowly_end_in_a_timeout() {
    let upstream = RawMondiaPay::start(Misbehaviour::SlowHeaders).await;
    let app = spawn_app_with(&format!(
        "MONDIAPAY__TOKEN_URL={} MONDIAPAY__TIMEOUT_SECS=1",
        upstream.url
    ))
    .await;
    let started = Instant::now();
    let response = app.exchange(&new_code(), "ORDER-SLOW").await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn refused_connections_are_retried_a_bounded_number_of_times() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{TOKEN_PATH}", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn_app_with(&format!(
        "MONDIAPAY__TOKEN_URL={url} MONDIAPAY__CONNECT_RETRIES=3"
    ))
    .await;
    let started = Instant::now();
    let response = app.exchange(&new_code(), "ORDER-REFUSED").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    // Backoff of at least 100, 200 and 400 ms between the four attempts.
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("token_proxy_mondiapay_connect_retries_total 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_beyond_the_cap_are_refused_without_using_their_code() {
    let app = spawn_app_with("MONDIAPAY__MAX_CONCURRENT_EXCHANGES=1").await;
    let slow = issues_after("Ucap", Duration::from_millis(500));
    app.mondiapay.answers(slow, 2).await;
    let (first, second) = (new_code(), new_code());
    let running = tokio::spawn(
        app.api(reqwest::Method::POST, "/v1/exchange")
            .json(&json!({"code": first}))
            .send(),
    );
    app.mondiapay.until_called().await;
    let refused = app.exchange(&second, "ORDER-CAP").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_problem_kind(&json(refused).await, "exchange-capacity");
    assert_eq!(running.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(
        app.exchange(&second, "ORDER-CAP").await.status(),
        StatusCode::OK,
        "the refused code was not used"
    );
}

#[tokio::test]
async fn a_caller_that_runs_out_of_time_gets_a_408_and_the_token_is_still_stored() {
    let app = spawn_app_with(
        "INTERNAL__REQUEST_TIMEOUT_SECS=1 PUBLIC__REQUEST_TIMEOUT_SECS=1 MONDIAPAY__TIMEOUT_SECS=5",
    )
    .await;
    let slow = issues_after("Uslowly", Duration::from_secs(2));
    app.mondiapay.answers(slow, 2).await;

    let code = new_code();
    let response = app.exchange(&code, "ORDER-408").await;
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(content_type(&response), "application/problem+json");
    wait_for_token(&app, "ORDER-408").await;
    let record = json(app.exchange(&code, "ORDER-408").await).await;
    assert_eq!(
        record["access_token"], "Uslowly",
        "the exchange finished after its caller left"
    );

    let query = format!("ref=ORDER-408B&code={}", new_code());
    let page = app.callback(&query).await;
    assert_eq!(page.status(), StatusCode::REQUEST_TIMEOUT);
    assert!(page.text().await.unwrap().contains("Please try again"));
    wait_for_token(&app, "ORDER-408B").await;
    let (_, status, page) = app.callback_page(&query).await;
    assert_eq!(status, StatusCode::OK, "the reload finds the stored token");
    assert!(page.contains("Thank you"));
}

#[tokio::test]
async fn each_client_is_rate_limited_on_the_public_listener_only() {
    let app = spawn_app_with("PUBLIC__RATE_LIMIT_PER_SECOND=1 PUBLIC__RATE_LIMIT_BURST=2").await;
    let statuses = [
        app.browser_get("/oauth/result/res_none").await.status(),
        app.browser_get("/oauth/result/res_none").await.status(),
    ];
    assert_eq!(statuses, [StatusCode::NOT_FOUND; 2]);
    let limited = app.callback("code=A1").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(limited.headers()["x-frame-options"], "DENY");
    assert!(limited.text().await.unwrap().contains("Too many requests"));
    // A path no route serves counts against the same client.
    assert_eq!(
        app.browser_get("/no-such-page").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    for _ in 0..5 {
        assert_eq!(app.browser_get("/healthz").await.status(), StatusCode::OK);
        assert_eq!(
            app.tokens_by_ref("NONE").await.status(),
            StatusCode::NOT_FOUND
        );
    }
    assert!(
        app.metrics_text()
            .await
            .contains("token_proxy_rate_limited_total 2")
    );
}

/// The status of a public result page asked for with `X-Forwarded-For: client`.
async fn forwarded_for(app: &TestApp, client: &str) -> StatusCode {
    app.browser("/oauth/result/res_none")
        .header("x-forwarded-for", client)
        .send()
        .await
        .unwrap()
        .status()
}

/// Asks for a result page as each client in turn and checks each status, in order.
async fn assert_forwarded_for(app: &TestApp, asks: &[(&str, StatusCode)]) {
    for (n, (client, expected)) in asks.iter().enumerate() {
        let status = forwarded_for(app, client).await;
        assert_eq!(status, *expected, "ask {n}, as {client}");
    }
}

#[tokio::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let one_at_a_time = "PUBLIC__RATE_LIMIT_PER_SECOND=1 PUBLIC__RATE_LIMIT_BURST=1";
    let app = spawn_app_with(&format!(
        "{one_at_a_time} PUBLIC__TRUSTED_PROXIES=127.0.0.1"
    ))
    .await;
    assert_forwarded_for(
        &app,
        &[
            ("198.51.100.1", StatusCode::NOT_FOUND),
            ("198.51.100.2", StatusCode::NOT_FOUND),
            ("198.51.100.1", StatusCode::TOO_MANY_REQUESTS),
        ],
    )
    .await;

    // A client cannot pick a fresh bucket by sending the header itself.
    let untrusting = spawn_app_with(one_at_a_time).await;
    assert_forwarded_for(
        &untrusting,
        &[
            ("198.51.100.1", StatusCode::NOT_FOUND),
            ("198.51.100.2", StatusCode::TOO_MANY_REQUESTS),
        ],
    )
    .await;
}

/// Polls (bounded) until a token for `reference` is stored.
async fn wait_for_token(app: &TestApp, reference: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.tokens_by_ref(reference).await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "no token for {reference}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

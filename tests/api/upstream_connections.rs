//! The connections the service keeps open to MondiaPay.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::helpers::*;

/// A token endpoint that issues a new token for every request over kept-alive connections,
/// counts the connections it accepts, and reports each one the client closes.
struct CountingTokenEndpoint {
    url: String,
    accepted: Arc<AtomicUsize>,
    closed: mpsc::UnboundedReceiver<()>,
}

impl CountingTokenEndpoint {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{TOKEN_PATH}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let (report_closed, closed) = mpsc::unbounded_channel();
        let counted = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let number = counted.fetch_add(1, Ordering::SeqCst) + 1;
                let report_closed = report_closed.clone();
                tokio::spawn(async move {
                    serve(stream, number).await;
                    let _ = report_closed.send(());
                });
            }
        });
        Self {
            url,
            accepted,
            closed,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Answers each request on `stream` until the client closes it. The requests have no body: the
/// credentials and the code travel in the query string (`mondiapay.client_auth = "query"`).
async fn serve(mut stream: TcpStream, connection: usize) {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut answered = 0;
    loop {
        let read = stream.read(&mut chunk).await.unwrap_or(0);
        if read == 0 {
            return;
        }
        received.extend_from_slice(&chunk[..read]);
        while let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            received.drain(..end + 4);
            answered += 1;
            let body = success_body(&format!("Uconnection{connection}x{answered}")).to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_connection_to_mondiapay_is_kept_for_the_next_call_then_closed_once_idle_that_long() {
    let mut endpoint = CountingTokenEndpoint::start().await;
    let app = spawn_app_with(&format!(
        "MONDIAPAY__TOKEN_URL={} MONDIAPAY__IDLE_CONNECTION_SECS=1",
        endpoint.url
    ))
    .await;
    let response = app.exchange(&new_code(), "ORDER-1").await;
    assert_eq!(response.status(), StatusCode::OK);
    let answered = Instant::now();
    assert_eq!(endpoint.accepted(), 1);

    tokio::time::timeout(Duration::from_secs(10), endpoint.closed.recv())
        .await
        .expect("the idle connection was closed")
        .unwrap();
    // Kept open for the next call until it had been idle for the setting's second: closed no
    // sooner (however slow the machine, the pool closes only connections idle that long).
    assert!(answered.elapsed() >= Duration::from_millis(900));

    let response = app.exchange(&new_code(), "ORDER-2").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(endpoint.accepted(), 2, "a new connection for the next call");
}

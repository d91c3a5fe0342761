//! Slow, idle and too many connections: each listener bounds them, with real sockets, and the
//! real binary under a low open-file limit.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use rustix::process::{Resource, Rlimit, setrlimit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;
use crate::process::{Served, command, serve_stops_with_one_line};

/// The open-file limit the service runs under in these tests: far below what 300 clients need,
/// with the same room for the listeners on any machine (the connection threads, two a core, hold
/// two descriptors each).
fn file_limit() -> u64 {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get() as u64);
    256 + 4 * cores
}
const SLOW_CLIENTS: usize = 300;

/// `serve` under an open-file limit of `limit` (soft and hard, so it cannot be raised).
fn limited(env: &HashMap<String, String>, limit: u64) -> Command {
    let mut command = command(env);
    let nofile = Rlimit {
        current: Some(limit),
        maximum: Some(limit),
    };
    // SAFETY: setrlimit is a single system call, safe between fork and exec.
    unsafe {
        command.pre_exec(move || setrlimit(Resource::Nofile, nofile).map_err(Into::into));
    }
    command
}

/// A slowloris client: the start of a request line, then one byte every 500 ms. Returns whether
/// the service closed the connection within `bound`.
async fn trickle(public: std::net::SocketAddr, bound: Duration) -> bool {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(public).await else {
        return true;
    };
    if stream
        .write_all(b"GET /oauth/callback?code=")
        .await
        .is_err()
    {
        return true;
    }
    let mut buffer = [0u8; 1024];
    while started.elapsed() < bound {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            },
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                if stream.write_all(b"A").await.is_err() {
                    return true;
                }
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_flooding_the_public_listener_are_cut_off_and_leave_the_internal_one_answerable()
 {
    let (mondiapay, _dir, mut env) = MondiaPay::start().await;
    mondiapay.issues_tokens(1).await;
    for (key, value) in [
        ("PUBLIC__HEADER_READ_TIMEOUT_SECS", "2"),
        ("PUBLIC__RATE_LIMIT_PER_SECOND", "0"),
        ("INTERNAL__MAX_CONNECTIONS", "32"),
        ("MONDIAPAY__MAX_CONCURRENT_EXCHANGES", "8"),
    ] {
        env.insert(format!("TOKEN_PROXY__{key}"), value.to_owned());
    }
    let served = Served::spawn(limited(&env, file_limit()));
    let public: std::net::SocketAddr = served.public.trim_start_matches("http://").parse().unwrap();

    let bound = Duration::from_secs(90);
    let clients: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| tokio::spawn(trickle(public, bound)))
        .collect();
    // While the flood holds the public listener, the internal one answers (within a bound: a
    // request that hangs fails the test instead of holding it).
    let patience = Duration::from_secs(15);
    let http = reqwest::Client::builder()
        .timeout(patience)
        .build()
        .unwrap();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for route in ["/readyz", "/healthz"] {
            let answer = http.get(format!("{}{route}", served.internal)).send().await;
            let status = answer.map(|answer| answer.status());
            assert_eq!(
                status.ok(),
                Some(StatusCode::OK),
                "{route} during the flood"
            );
        }
    }
    let mut still_open = 0;
    for client in clients {
        if !client.await.unwrap() {
            still_open += 1;
        }
    }
    assert_eq!(
        still_open, 0,
        "slow clients are disconnected after the header-read timeout"
    );

    // After the flood, a real purchase goes through.
    let page = served
        .browser(&format!(
            "/oauth/callback?ref=ORDER-FLOOD&code={}",
            new_code()
        ))
        .timeout(patience)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    let token = served
        .api(Method::GET, "/v1/tokens?ref=ORDER-FLOOD")
        .timeout(patience)
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::OK);

    let (exit, lines) = served.stop();
    assert_eq!(exit, Some(0));
    assert!(
        !lines
            .iter()
            .any(|line| line.contains("Too many open files")),
        "the caps keep the process under its open-file limit"
    );
}

#[tokio::test]
async fn an_internal_cap_the_open_file_limit_cannot_hold_stops_start_up_with_one_line() {
    let (_mondiapay, _dir, mut env) = MondiaPay::start().await;
    env.insert(
        "TOKEN_PROXY__INTERNAL__MAX_CONNECTIONS".into(),
        "1000".into(),
    );
    let limit = file_limit();
    let stderr = serve_stops_with_one_line(limited(&env, limit));
    assert!(
        stderr.contains(&format!("open-file limit ({limit})"))
            && stderr.contains("internal.max_connections"),
        "{stderr}"
    );
}

/// Reads one answer to a `GET /healthz` (its body is `ok`).
async fn read_health_answer(stream: &mut TcpStream) {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while !(answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"ok")) {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buffer[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(
        "PUBLIC__REQUEST_TIMEOUT_SECS=1 PUBLIC__IDLE_TIMEOUT_SECS=2 \
         PUBLIC__HEADER_READ_TIMEOUT_SECS=60",
    )
    .await;
    let address = app.public.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: proxy\r\n\r\n";
    stream.write_all(request).await.unwrap();
    read_health_answer(&mut stream).await;
    // Kept alive: a second request on it is answered.
    stream.write_all(request).await.unwrap();
    read_health_answer(&mut stream).await;
    let answered = Instant::now();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer))
        .await
        .expect("the service closes an idle connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        answered.elapsed() >= Duration::from_secs(1),
        "closed for idleness, not at once: {:?}",
        answered.elapsed()
    );
}

#[tokio::test]
async fn a_client_slower_than_the_header_read_timeout_is_disconnected_on_both_listeners() {
    let app =
        spawn_app_with("PUBLIC__HEADER_READ_TIMEOUT_SECS=1 INTERNAL__HEADER_READ_TIMEOUT_SECS=1")
            .await;
    for base in [&app.public, &app.internal] {
        let address = base.trim_start_matches("http://").parse().unwrap();
        assert!(
            trickle(address, Duration::from_secs(30)).await,
            "{base} keeps a slow client"
        );
    }
}

#[tokio::test]
async fn a_kept_alive_connection_that_sends_no_next_request_is_closed_after_the_header_read_timeout()
 {
    let app = spawn_app_with("INTERNAL__HEADER_READ_TIMEOUT_SECS=1").await;
    let address = app.internal.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: proxy\r\n\r\n")
        .await
        .unwrap();
    read_health_answer(&mut stream).await;
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer))
        .await
        .expect("the service closes a connection whose next request does not come");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_in_the_backlog_until_one_closes() {
    let app = spawn_app_with("PUBLIC__MAX_CONNECTIONS=2").await;
    let address = app.public.trim_start_matches("http://").to_owned();
    let request = b"GET /healthz HTTP/1.1\r\nHost: proxy\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(request).await.unwrap();
        read_health_answer(&mut stream).await;
        held.push(stream);
    }
    let mut third = TcpStream::connect(&address).await.unwrap();
    third.write_all(request).await.unwrap();
    let mut buffer = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.read(&mut buffer))
            .await
            .is_err(),
        "a third connection is not served while two are open"
    );
    drop(held.pop());
    read_health_answer(&mut third).await;
}

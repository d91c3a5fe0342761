//! Crash safety and shutdown of the real binary: SIGKILL at random moments under load loses no
//! acknowledged token and exchanges no code twice; SIGTERM drains within the grace period.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::process::{Served, mondiapay, mount};

/// A pause between 100 and 400 ms that differs from run to run.
fn random_pause() -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    Duration::from_millis(100 + u64::from(nanos % 300))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_token_and_spends_no_code_twice() {
    let (server, _dir, env) = mondiapay().await;
    let issue = issues_after("Ucrash", Duration::from_millis(15));
    wiremock::Mock::given(wiremock::matchers::path(TOKEN_PATH))
        .respond_with(issue)
        .mount(&server)
        .await;
    // Each acknowledged exchange: code → record.
    let mut acknowledged: HashMap<String, Value> = HashMap::new();
    let mut submitted = Vec::new();
    for round in 0..3 {
        let (served, internal) = Served::start(&env);
        let clients: Vec<_> = (0..4)
            .map(|client| {
                let internal = internal.clone();
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let mut answered = Vec::new();
                    for n in 0..200 {
                        let code = format!("A{round}k{client}n{n}x{}", std::process::id());
                        let sent = http
                            .post(format!("{internal}/v1/exchange"))
                            .bearer_auth(API_KEY)
                            .json(&json!({"code": code, "ref": format!("ORDER-{round}-{client}-{n}")}))
                            .send()
                            .await;
                        match sent {
                            Ok(response) if response.status() == StatusCode::OK => {
                                answered.push((code, Some(response.json::<Value>().await.unwrap())));
                            }
                            Ok(_) => answered.push((code, None)),
                            Err(_) => {
                                // The service died under us: this code may or may not have gone out.
                                answered.push((code, None));
                                break;
                            }
                        }
                    }
                    answered
                })
            })
            .collect();
        tokio::time::sleep(random_pause()).await;
        let status = Command::new("kill")
            .args(["-KILL", &served.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let (exit, _) = served.wait();
        assert_eq!(exit, None, "killed by a signal");
        for client in clients {
            for (code, record) in client.await.unwrap() {
                if let Some(record) = record {
                    acknowledged.insert(code.clone(), record);
                }
                submitted.push(code);
            }
        }
    }
    eprintln!(
        "{} codes submitted over 3 kills, {} acknowledged",
        submitted.len(),
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= 3,
        "the load reached the service ({} acknowledged)",
        acknowledged.len()
    );

    let (served, internal) = Served::start(&env);
    let http = reqwest::Client::new();
    for (code, record) in &acknowledged {
        let id = record["id"].as_str().unwrap();
        let stored = send_for_json(
            http.get(format!("{internal}/v1/tokens/{id}"))
                .bearer_auth(API_KEY),
        )
        .await;
        assert_eq!(
            stored["access_token"], record["access_token"],
            "acknowledged token {id} lost"
        );
        let again = send_for_json(
            http.post(format!("{internal}/v1/exchange"))
                .bearer_auth(API_KEY)
                .json(&json!({"code": code})),
        )
        .await;
        assert_eq!(
            again["id"], record["id"],
            "an acknowledged code was exchanged again"
        );
    }
    served.terminate();
    assert_eq!(served.wait().0, Some(0));

    let mut calls: HashMap<String, usize> = HashMap::new();
    for request in server.received_requests().await.unwrap() {
        let code = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        *calls.entry(code).or_default() += 1;
    }
    for (code, count) in &calls {
        assert_eq!(*count, 1, "{code} was sent to MondiaPay {count} times");
    }
    assert!(acknowledged.keys().all(|code| calls.contains_key(code)));
    assert!(submitted.len() >= acknowledged.len());
}

#[tokio::test]
async fn sigterm_refuses_new_connections_and_exits_within_the_grace_period() {
    let (server, _dir, mut env) = mondiapay().await;
    env.insert(
        "TOKEN_PROXY__SERVER__SHUTDOWN_GRACE_SECS".into(),
        "1".into(),
    );
    env.insert("TOKEN_PROXY__MONDIAPAY__TIMEOUT_SECS".into(), "20".into());
    let hanging = issues_after("Unever", Duration::from_secs(15));
    mount(&server, hanging, 1).await;
    let (mut served, internal) = Served::start(&env);
    let stuck = exchange_in_flight(&server, &internal).await;
    let terminated = Instant::now();
    served.terminate();
    served.wait_for("shutting down: no new connections, finishing requests under way");
    let address = internal.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(1);
    while std::net::TcpStream::connect(&address).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting connections after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (exit, _) = served.wait();
    assert_eq!(exit, Some(0));
    assert!(
        terminated.elapsed() < Duration::from_secs(5),
        "exited after {:?}",
        terminated.elapsed()
    );
    assert!(stuck.await.unwrap().is_err() || terminated.elapsed() < Duration::from_secs(15));
}

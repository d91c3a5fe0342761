//! Crash safety and shutdown of the real binary: SIGKILL at random moments under load loses no
//! acknowledged token and exchanges no code twice; SIGTERM drains within the grace period.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::process::Served;

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
    let (mondiapay, _dir, env) = MondiaPay::start().await;
    let issue = issues_after("Ucrash", Duration::from_millis(15));
    // As many calls as the load gets through: the count is checked per code below.
    wiremock::Mock::given(wiremock::matchers::path(TOKEN_PATH))
        .respond_with(issue)
        .mount(&mondiapay)
        .await;
    // Each acknowledged exchange: code → record.
    let mut acknowledged: HashMap<String, Value> = HashMap::new();
    let mut submitted = Vec::new();
    for round in 0..3 {
        let served = Served::start(&env);
        let clients: Vec<_> = (0..4)
            .map(|client| {
                let api = served.client.clone();
                tokio::spawn(async move {
                    let mut answered = Vec::new();
                    for n in 0..200 {
                        let code = format!("A{round}k{client}n{n}x{}", std::process::id());
                        let sent = api
                            .api(Method::POST, "/v1/exchange")
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
        served.kill();
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

    let served = Served::start(&env);
    for (code, record) in &acknowledged {
        let id = record["id"].as_str().unwrap();
        let stored = served.stored_token(record).await;
        assert_eq!(
            stored["access_token"], record["access_token"],
            "acknowledged token {id} lost"
        );
        let again = json(served.exchange_with(json!({"code": code})).await).await;
        assert_eq!(
            again["id"], record["id"],
            "an acknowledged code was exchanged again"
        );
    }
    assert_eq!(served.stop().0, Some(0));

    let mut calls: HashMap<String, usize> = HashMap::new();
    for request in mondiapay.calls().await {
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
    let (mondiapay, _dir, mut env) = MondiaPay::start().await;
    env.insert(
        "TOKEN_PROXY__SERVER__SHUTDOWN_GRACE_SECS".into(),
        "1".into(),
    );
    env.insert("TOKEN_PROXY__MONDIAPAY__TIMEOUT_SECS".into(), "20".into());
    let hanging = issues_after("Unever", Duration::from_secs(15));
    mondiapay.answers(hanging, 1).await;
    let mut served = Served::start(&env);
    let stuck = exchange_in_flight(&served, &mondiapay).await;
    let terminated = Instant::now();
    served.terminate();
    let address = served.internal.trim_start_matches("http://").to_owned();
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

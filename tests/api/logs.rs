//! The real binary's log lines: the request id at the top level, `log.level` and `RUST_LOG`,
//! start-up failures in the log's form.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::process::{Served, command, exits_with_one_line, serve_stops_with_one_line};

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}"))
}

#[tokio::test]
async fn every_line_of_a_request_names_it_at_the_top_level() {
    let (mondiapay, _dir, env) = MondiaPay::start().await;
    mondiapay.issues_tokens(1).await;
    let served = Served::start(&env);
    let answer = served
        .api(Method::POST, "/v1/exchange")
        .header("x-request-id", "top-level-id-7")
        .json(&json!({"code": new_code(), "ref": "ORDER-TOP"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let (exit, lines) = served.stop();
    assert_eq!(exit, Some(0));
    let of_the_request: Vec<Value> = lines
        .iter()
        .map(|line| json(line))
        .filter(|line| line["spans"].to_string().contains("top-level-id-7"))
        .collect();
    assert!(
        of_the_request.len() >= 3
            && of_the_request
                .iter()
                .any(|line| line["message"] == "request finished"),
        "{lines:?}"
    );
    for line in &of_the_request {
        assert_eq!(line["request_id"], "top-level-id-7", "{line}");
        assert_eq!(line["spans"][0]["route"], "/v1/exchange", "{line}");
    }
    let outside: Vec<Value> = lines
        .iter()
        .map(|line| json(line))
        .filter(|line| line["event"] == "listening")
        .collect();
    assert!(outside[0].get("request_id").is_none(), "{outside:?}");
}

/// Whether a `GET /healthz` (logged at DEBUG) shows up in the log of the service run with
/// `log_level` and `rust_log`.
async fn health_check_is_logged(log_level: &str, rust_log: Option<&str>) -> bool {
    let (_mondiapay, _dir, mut env) = MondiaPay::start().await;
    env.insert("TOKEN_PROXY__LOG__LEVEL".into(), log_level.into());
    let mut command = command(&env);
    command.env_remove("RUST_LOG");
    if let Some(rust_log) = rust_log {
        command.env("RUST_LOG", rust_log);
    }
    let served = Served::spawn(command);
    let answer = served
        .api(Method::GET, "/healthz")
        .header("x-request-id", "health-7")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let (exit, lines) = served.stop();
    assert_eq!(exit, Some(0));
    lines.iter().any(|line| line.contains("health-7"))
}

#[tokio::test]
async fn log_level_filters_unless_rust_log_is_set() {
    assert!(!health_check_is_logged("info", None).await);
    assert!(health_check_is_logged("debug", None).await);
    assert!(health_check_is_logged("info,mondiapay_token_proxy::http=debug", None).await);
    assert!(!health_check_is_logged("debug", Some("info")).await);
    assert!(health_check_is_logged("info", Some("debug")).await);
}

#[tokio::test]
async fn start_up_failures_are_one_json_line_by_default_and_plain_text_for_pretty() {
    let (_mondiapay, dir, mut env) = MondiaPay::start().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    env.insert(
        "TOKEN_PROXY__INTERNAL__LISTEN".into(),
        taken.local_addr().unwrap().to_string(),
    );
    // Logs off: the reason is shown all the same.
    let line = json(&serve_stops_with_one_line(command(&env)));
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["event"], "failed");
    let message = line["message"].as_str().unwrap();
    assert!(
        message.starts_with("internal.listen: cannot listen on"),
        "{message}"
    );

    let mut pretty = env.clone();
    pretty.insert("TOKEN_PROXY__LOG__FORMAT".into(), "pretty".into());
    let text = serve_stops_with_one_line(command(&pretty));
    assert!(
        text.starts_with("error: internal.listen: cannot listen on"),
        "{text}"
    );

    // Settings that cannot be read: one line naming the key, in the format asked for.
    let mut bad_level = env.clone();
    bad_level.insert("TOKEN_PROXY__LOG__LEVEL".into(), "loud".into());
    let line = json(&exits_with_one_line(command(&bad_level).arg("serve"), 2));
    assert_eq!(line["level"], "ERROR");
    assert!(
        line["message"].as_str().unwrap().contains("log.level"),
        "{line}"
    );
    let config = dir.path().join("pretty.toml");
    std::fs::write(&config, "[log]\nformat = \"pretty\"\n").unwrap();
    let text = exits_with_one_line(
        command(&bad_level)
            .arg("--config")
            .arg(&config)
            .arg("serve"),
        2,
    );
    assert!(
        text.starts_with("error: ") && text.contains("log.level"),
        "{text}"
    );
    // `check-config` is read by people: plain text whatever the format.
    let text = exits_with_one_line(command(&bad_level).arg("check-config"), 2);
    assert!(text.starts_with("error: "), "{text}");
}

/// A SIGTERM or SIGINT sent the moment the service says it listens is heard, and the service
/// stops cleanly: its signal handlers are installed before it says so, not when its shutdown
/// task first runs (until then such a signal ended the process by its default action, with no
/// `shutdown_started` and no exit code).
#[tokio::test]
async fn a_signal_as_soon_as_the_service_listens_stops_it_cleanly() {
    let (_mondiapay, _dir, env) = MondiaPay::start().await;
    for round in 0..6 {
        let mut served = Served::spawn(command(&env));
        if round % 2 == 0 {
            served.terminate();
        } else {
            served.interrupt();
        }
        let (exit, lines) = served.wait();
        assert_eq!(exit, Some(0), "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|line| line.contains("\"message\":\"stopped\"")),
            "{lines:?}"
        );
    }
}

//! The real binary: commands, exit codes, SIGTERM, and what it writes to its logs.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::helpers::*;

const BINARY: &str = env!("CARGO_BIN_EXE_mondiapay-token-proxy");

pub fn command(env: &HashMap<String, String>) -> Command {
    let mut command = Command::new(BINARY);
    command.env_clear().envs(env).env("RUST_LOG", "debug");
    command
}

/// Runs `command` and returns what it wrote to stdout, after checking that it exited with 0
/// (its stderr says why when not).
pub fn succeeds(command: &mut Command) -> Vec<u8> {
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    output.stdout
}

/// Runs `command` and returns what it wrote to stderr, after checking that it exited with
/// `code` and said why in one line.
pub fn exits_with_one_line(command: &mut Command, code: i32) -> String {
    let output = command.output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

/// Runs `serve` with `command` (logs off): start-up stops with exit code 1 and one line, which
/// is returned.
pub fn serve_stops_with_one_line(mut command: Command) -> String {
    exits_with_one_line(command.env("RUST_LOG", "off").arg("serve"), 1)
}

/// The binary running `serve`, its log lines collected as they come; derefs to its `Client`.
pub struct Served {
    pub client: Client,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Served {
    pub fn start(env: &HashMap<String, String>) -> Self {
        Self::spawn(command(env))
    }

    /// Runs `serve` with a command prepared by the caller (limits, extra variables), and waits
    /// for the event that announces both listeners' addresses.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command.arg("serve").stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut served = Self {
            client: Client::new(String::new(), String::new()),
            child,
            lines,
            seen: Vec::new(),
        };
        let listening = served.wait_for_event("listening");
        let address = |listener: &str| format!("http://{}", listening[listener].as_str().unwrap());
        served.client = Client::new(address("public"), address("internal"));
        served
    }

    /// Reads log lines until one carries `"event": event`, and returns it.
    pub fn wait_for_event(&mut self, event: &str) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|error| {
                    panic!(
                        "no {event} event ({error}); the log so far: {:?}",
                        self.seen
                    )
                });
            self.seen.push(line.clone());
            if let Ok(value) = serde_json::from_str::<Value>(&line)
                && value["event"] == event
            {
                return value;
            }
        }
    }

    /// Sends SIGTERM and waits until the service says it has begun to shut down.
    pub fn terminate(&mut self) {
        self.signal("-TERM");
        self.wait_for_event("shutdown_started");
    }

    /// Sends SIGINT (Ctrl-C) and waits until the service says it has begun to shut down.
    pub fn interrupt(&mut self) {
        self.signal("-INT");
        self.wait_for_event("shutdown_started");
    }

    /// Sends SIGKILL: no shutdown, no flush.
    pub fn kill(&self) {
        self.signal("-KILL");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit and returns its code with every log line.
    pub fn wait(mut self) -> (Option<i32>, Vec<String>) {
        let status = self.child.wait().unwrap();
        let mut seen = std::mem::take(&mut self.seen);
        seen.extend(self.lines.iter());
        (status.code(), seen)
    }

    /// SIGTERM, then the exit code once the service has stopped.
    pub fn stop(mut self) -> (Option<i32>, Vec<String>) {
        self.terminate();
        self.wait()
    }
}

crate::client::spoken_to_through_its_client!(Served);

/// A test that fails half-way must not leave the service running (holding the test's output).
impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test]
async fn logs_at_debug_level_hold_no_secret_code_token_or_key() {
    let (mondiapay, _dir, env) = MondiaPay::start().await;
    let rejected_code = new_code();
    let rejection = ResponseTemplate::new(400)
        .set_body_json(json!({"error": "invalid_grant", "error_description": format!("code {rejected_code} with secret {CLIENT_SECRET} unknown")}));
    mondiapay.answers_code(&rejected_code, rejection).await;
    mondiapay.issues_tokens(1).await;
    let served = Served::start(&env);
    let code = new_code();
    let exchange = |code: &str| {
        served
            .api(Method::POST, "/v1/exchange")
            .header("x-request-id", "trace-me-42")
            .json(&json!({"code": code, "ref": "ORDER-LOG"}))
            .send()
    };
    let record: Value = exchange(&code).await.unwrap().json().await.unwrap();
    assert_eq!(exchange(&code).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        exchange(&rejected_code).await.unwrap().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let wrong_key = served.with_api_key("not-the-key-0123456789");
    assert_eq!(
        wrong_key.tokens_by_ref("ORDER-LOG").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let rotated = served.with_api_key(ROTATED_API_KEY);
    assert_eq!(
        rotated.tokens_by_ref("ORDER-LOG").await.status(),
        StatusCode::OK
    );

    let (exit, lines) = served.stop();
    assert_eq!(exit, Some(0));
    let secrets = [
        CLIENT_SECRET,
        API_KEY,
        ROTATED_API_KEY,
        "not-the-key-0123456789",
        code.as_str(),
        rejected_code.as_str(),
        record["access_token"].as_str().unwrap(),
        record["refresh_token"].as_str().unwrap(),
    ];
    assert!(
        lines.len() > 20,
        "debug logging is on: {} lines",
        lines.len()
    );
    for line in &lines {
        for secret in secrets {
            assert!(!line.contains(secret), "a secret in the log: {line}");
        }
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}"));
        assert!(value["level"].is_string() && value["timestamp"].is_string());
    }
    let traced = lines
        .iter()
        .filter(|line| line.contains("trace-me-42"))
        .count();
    assert!(
        traced >= 3,
        "the request id is on the request's lines ({traced})"
    );
    assert!(
        lines
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .any(|line| line["mondiapay_error"] == "invalid_grant"),
        "the rejection's error code is a field of its log line"
    );
}

#[tokio::test]
async fn sigterm_lets_exchanges_under_way_finish_and_exits_zero() {
    let (mondiapay, _dir, env) = MondiaPay::start().await;
    mondiapay
        .answers(issues_after("Uslow", Duration::from_millis(1500)), 1)
        .await;
    let mut served = Served::start(&env);
    let request = exchange_in_flight(&served, &mondiapay).await;
    served.terminate();
    let response = request.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap()["access_token"],
        "Uslow"
    );
    let (exit, _) = served.wait();
    assert_eq!(exit, Some(0));
}

#[tokio::test]
async fn the_exchange_command_prints_the_record_and_keeps_exactly_once() {
    let (mondiapay, _dir, env) = MondiaPay::start().await;
    mondiapay.issues_tokens(1).await;
    let code = new_code();
    let printed = succeeds(command(&env).args(["exchange", "--code", &code, "--ref", "ORDER-CLI"]));
    let record: Value = serde_json::from_slice(&printed).unwrap();
    assert_eq!(record["ref"], "ORDER-CLI");
    assert!(
        record["access_token"]
            .as_str()
            .unwrap()
            .starts_with("Utoken")
    );

    let mut child = command(&env)
        .args(["exchange", "--code", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{code}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let again: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        again["id"], record["id"],
        "same code, same record, one upstream call"
    );

    let bad = command(&env)
        .args(["exchange", "--code", "B-wrong-prefix"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--code"));
}

#[tokio::test]
async fn check_config_prints_redacted_settings_or_names_what_is_wrong() {
    let (_mondiapay, _dir, env) = MondiaPay::start().await;
    let printed = String::from_utf8(succeeds(command(&env).arg("check-config"))).unwrap();
    assert!(printed.contains("client_secret = \"[redacted]\""));
    for secret in [CLIENT_SECRET, API_KEY, ROTATED_API_KEY] {
        assert!(!printed.contains(secret));
    }

    let mut broken = env.clone();
    broken.remove("TOKEN_PROXY__MONDIAPAY__CLIENT_ID");
    let stderr = exits_with_one_line(command(&broken).arg("check-config"), 2);
    assert!(
        stderr.contains("mondiapay.client_id")
            && stderr.contains("TOKEN_PROXY__MONDIAPAY__CLIENT_ID")
    );

    let mut typo = env.clone();
    typo.insert("TOKEN_PROXY__MONDIAPAY__TIMEOUT_SECS".into(), "ten".into());
    let output = command(&typo).arg("serve").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("mondiapay.timeout_secs") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_port_in_use_stops_start_up_with_one_line() {
    let (_mondiapay, _dir, mut env) = MondiaPay::start().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    env.insert(
        "TOKEN_PROXY__INTERNAL__LISTEN".into(),
        taken.local_addr().unwrap().to_string(),
    );
    let stderr = serve_stops_with_one_line(command(&env));
    let line: Value = serde_json::from_str(&stderr).unwrap();
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .starts_with("internal.listen: cannot listen on"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_zero_only_when_the_service_is_ready() {
    let app = spawn_app().await;
    let url = format!("{}/readyz", app.internal);
    succeeds(Command::new(BINARY).args(["healthcheck", "--url", &url]));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/readyz", closed.local_addr().unwrap());
    drop(closed);
    let down = Command::new(BINARY)
        .args(["healthcheck", "--url", &url])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).starts_with("unhealthy:"));
}

/// The variables `.env.example` sets, as they are in the file.
fn env_example() -> HashMap<String, String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example"))
        .expect(".env.example is readable");
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

#[tokio::test]
async fn the_env_example_as_it_is_is_refused_for_its_placeholder_api_keys_and_serve_does_not_start()
{
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_example();
    let keys = env["TOKEN_PROXY__INTERNAL__API_KEYS"].clone();
    let mut check = command(&env);
    let stderr = exits_with_one_line(check.current_dir(dir.path()).arg("check-config"), 2);
    assert!(stderr.contains("internal.api_keys"), "{stderr}");
    for key in keys.split(',') {
        assert!(!stderr.contains(key), "the key is echoed: {stderr}");
    }

    // `serve` refuses too, so no example key can ever authenticate.
    env.insert("TOKEN_PROXY__PUBLIC__LISTEN".into(), "127.0.0.1:0".into());
    env.insert("TOKEN_PROXY__INTERNAL__LISTEN".into(), "127.0.0.1:0".into());
    let mut child = command(&env)
        .current_dir(dir.path())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started with the example's API keys");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(2));
}

#[tokio::test]
async fn check_config_refuses_a_remote_database_without_a_checked_certificate_in_one_line() {
    let (_mondiapay, _dir, env) = MondiaPay::start().await;
    let password = "Pa55-w0rd-for-the-db";
    let cases = [
        (
            format!("postgres://app:{password}@db.example.net:5432/tokens"),
            false,
        ),
        (
            format!("postgres://app:{password}@db.example.net/tokens?sslmode=require"),
            false,
        ),
        (
            format!("postgres://app:{password}@10.0.0.7/tokens?sslmode=prefer"),
            false,
        ),
        (
            format!("postgres://app:{password}@db.example.net/tokens?sslmode=verify-full"),
            true,
        ),
        (
            format!("postgres://app:{password}@db.example.net/tokens?sslmode=verify-ca"),
            true,
        ),
        (
            format!("postgres://app:{password}@127.0.0.1:5432/tokens"),
            true,
        ),
        (format!("postgres://app:{password}@localhost/tokens"), true),
        (format!("postgres://app:{password}@[::1]/tokens"), true),
    ];
    for (url, accepted) in cases {
        let mut env = env.clone();
        env.insert("TOKEN_PROXY__STORE__URL".into(), url.clone());
        env.insert(
            "TOKEN_PROXY__STORE__ENCRYPTION_KEY".into(),
            ENCRYPTION_KEY.into(),
        );
        let output = command(&env).arg("check-config").output().unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            !stderr.contains(password) && !stdout.contains(password),
            "{url}: the password is shown"
        );
        if accepted {
            assert_eq!(output.status.code(), Some(0), "{url}: {stderr}");
        } else {
            assert_eq!(output.status.code(), Some(2), "{url}");
            assert_eq!(stderr.lines().count(), 1, "{url}: {stderr}");
            assert!(
                stderr.contains("store.url") && stderr.contains("sslmode=verify-full"),
                "{url}: {stderr}"
            );
        }
    }
}

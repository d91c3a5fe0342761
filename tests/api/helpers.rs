//! `spawn_app()`: the service in-process on free ports, with its own SQLite file and its own
//! stand-in MondiaPay; the constants and answers every test shares.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mondiapay_token_proxy::settings::{Purpose, Settings};
use mondiapay_token_proxy::startup::Application;
use reqwest::{Method, RequestBuilder, Response, StatusCode};

pub use crate::client::{Client, content_type};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const TOKEN_PATH: &str = "/v1/api/oauth/token";
pub const CLIENT_ID: &str = "merchant-client-id";
pub const CLIENT_SECRET: &str = "Sup3r-S3cret-client-value";
pub const API_KEY: &str = "tK7vQ2xWm9LrZ4pN8cYb3HfJ6sDg1AeU";
pub const ROTATED_API_KEY: &str = "Rq5Xn8Vw2Kj7Mb4Tz9Lc6Gh3Pd1Fs0Ya";
/// A store encryption key (32 bytes, base64), for the stores that must have one.
pub const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const REDIRECT_URI: &str = "https://shop.example/thanks?from=mondiapay";

pub struct TestApp {
    /// Both listeners, in the SPEC's words; `TestApp` derefs to it.
    pub client: Client,
    pub mondiapay: MondiaPay,
    pub dir: TempDir,
    pub env: HashMap<String, String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// The environment a test service runs with: every setting through the real loader.
pub fn test_env(mondiapay: &MockServer, dir: &TempDir) -> HashMap<String, String> {
    [
        (
            "MONDIAPAY__TOKEN_URL",
            format!("{}{TOKEN_PATH}", mondiapay.uri()),
        ),
        ("MONDIAPAY__CLIENT_ID", CLIENT_ID.to_owned()),
        ("MONDIAPAY__CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("MONDIAPAY__REDIRECT_URI", REDIRECT_URI.to_owned()),
        ("PUBLIC__LISTEN", "127.0.0.1:0".to_owned()),
        ("INTERNAL__LISTEN", "127.0.0.1:0".to_owned()),
        ("INTERNAL__API_KEYS", format!("{API_KEY},{ROTATED_API_KEY}")),
        (
            "STORE__URL",
            format!("sqlite://{}/tokens.db", dir.path().display()),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (format!("TOKEN_PROXY__{key}"), value))
    .collect()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with("").await
}

/// Settings written as a shell sets them, `KEY=value` pairs apart by white space (values have
/// none), as the service's environment variables: `STORE__RETENTION_SECS=1` sets
/// `TOKEN_PROXY__STORE__RETENTION_SECS`.
pub fn settings(assignments: &str) -> impl Iterator<Item = (String, String)> + '_ {
    assignments.split_whitespace().map(|assignment| {
        let (key, value) = assignment
            .split_once('=')
            .unwrap_or_else(|| panic!("not KEY=value: {assignment}"));
        (format!("TOKEN_PROXY__{key}"), value.to_owned())
    })
}

/// Spawns the service with `assignments` on top of `test_env`, written as a shell sets them:
/// `spawn_app_with("PUBLIC__RATE_LIMIT_BURST=2 MONDIAPAY__TIMEOUT_SECS=1")`.
pub async fn spawn_app_with(assignments: &str) -> TestApp {
    let (mondiapay, dir, mut env) = MondiaPay::start().await;
    env.extend(settings(assignments));
    TestApp::spawn(mondiapay, dir, env).await
}

impl TestApp {
    /// Spawns the service in-process with `env`, as `Served::start` runs the binary with it.
    pub async fn spawn(mondiapay: MondiaPay, dir: TempDir, env: HashMap<String, String>) -> Self {
        let mut app = Self {
            client: Client::new(String::new(), String::new()),
            mondiapay,
            dir,
            env,
            stop: None,
            task: None,
        };
        app.start().await;
        app
    }

    async fn start(&mut self) {
        let settings = Settings::load(None, Some(self.env.clone()), Purpose::Serve)
            .expect("test settings are valid");
        // The test binds the listeners (port 0: free ports) and hands them to the service.
        let public = TcpListener::bind(settings.public.listen).await.unwrap();
        let internal = TcpListener::bind(settings.internal.listen).await.unwrap();
        let app = Application::with_listeners(&settings, public, internal)
            .await
            .expect("the service starts");
        self.client = Client::new(
            format!("http://{}", app.public_addr()),
            format!("http://{}", app.internal_addr()),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        })));
    }

    /// Graceful stop: waits until both listeners are closed and the store is flushed.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Stops the service and starts it again on the same store and the same MondiaPay.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }
}

crate::client::spoken_to_through_its_client!(TestApp);

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The stand-in MondiaPay (a wiremock server; derefs to it) and the token endpoint's answers,
/// each mounted expecting an exact number of calls.
pub struct MondiaPay(MockServer);

impl MondiaPay {
    /// A fresh MondiaPay, a fresh directory for the store, and the environment that joins them.
    pub async fn start() -> (Self, TempDir, HashMap<String, String>) {
        let server = MockServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let env = test_env(&server, &dir);
        (Self(server), dir, env)
    }

    fn token_call() -> wiremock::MockBuilder {
        Mock::given(method("POST")).and(path(TOKEN_PATH))
    }

    /// The token endpoint answers `template`, expecting exactly `calls` calls.
    pub async fn answers(&self, template: impl Respond + 'static, calls: u64) {
        Self::token_call()
            .respond_with(template)
            .expect(calls)
            .mount(&self.0)
            .await;
    }

    /// The token call for `code` (and no other) is answered `template`, exactly once. Mounted
    /// before a general answer, it takes precedence for that code.
    pub async fn answers_code(&self, code: &str, template: ResponseTemplate) {
        Self::token_call()
            .and(wiremock::matchers::query_param("code", code))
            .respond_with(template)
            .expect(1)
            .mount(&self.0)
            .await;
    }

    /// The token endpoint answers `template` to the first call only, expecting exactly one.
    pub async fn answers_first_call(&self, template: ResponseTemplate) {
        self.fails_first(template, 1).await;
    }

    /// Answers `failure` to the first `failures` calls, expecting exactly that many; later calls
    /// fall through to what is mounted next.
    async fn fails_first(&self, failure: ResponseTemplate, failures: u64) {
        Self::token_call()
            .respond_with(failure)
            .up_to_n_times(failures)
            .expect(failures)
            .mount(&self.0)
            .await;
    }

    /// Answers `failure` to the first `failures` calls, then issues one token; expects exactly
    /// `failures` + 1 calls.
    pub async fn fails_then_issues(&self, failure: ResponseTemplate, failures: u64) {
        self.fails_first(failure, failures).await;
        self.issues_tokens(1).await;
    }

    /// MondiaPay is unavailable (`503`) for the first call, then issues one token; expects
    /// exactly those two calls.
    pub async fn unavailable_once_then_issues(&self) {
        self.fails_then_issues(ResponseTemplate::new(503), 1).await;
    }

    /// Issues a fresh token per call, expecting exactly `calls` calls.
    pub async fn issues_tokens(&self, calls: u64) {
        self.answers(IssueTokens, calls).await;
    }

    /// The calls the token endpoint received so far.
    pub async fn calls(&self) -> Vec<Request> {
        self.0.received_requests().await.unwrap_or_default()
    }

    /// Waits (bounded) until MondiaPay has received a call: the exchange is under way.
    pub async fn until_called(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.calls().await.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "MondiaPay was never called"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl std::ops::Deref for MondiaPay {
    type Target = MockServer;

    fn deref(&self) -> &MockServer {
        &self.0
    }
}

/// The names `tests/api/openapi.rs` speaks in, kept until it speaks the client's.
impl TestApp {
    pub async fn exchange_code(&self, code: &str, reference: &str) -> Response {
        self.client.exchange(code, reference).await
    }

    pub async fn mondiapay_issues_tokens(&self, calls: u64) {
        self.mondiapay.issues_tokens(calls).await;
    }
}

/// MondiaPay's documented success body, with a token unique to each call.
pub struct IssueTokens;

static ISSUED: AtomicU64 = AtomicU64::new(0);

impl Respond for IssueTokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = ISSUED.fetch_add(1, Ordering::Relaxed);
        ResponseTemplate::new(200)
            .set_body_json(success_body(&format!("Utoken{n}x{}", std::process::id())))
    }
}

pub fn success_body(access_token: &str) -> Value {
    json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": "43200",
        "refresh_token": format!("R{}", &access_token[1..]),
    })
}

/// A fresh MondiaPay-shaped code.
/// MondiaPay issuing `access_token`, but only after `delay`.
pub fn issues_after(access_token: &str, delay: Duration) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(success_body(access_token))
        .set_delay(delay)
}

/// Asserts that `problem`, an `application/problem+json` body, is of the kind named `kind` (the
/// end of its `type`).
pub fn assert_problem_kind(problem: &Value, kind: &str) {
    let type_ = problem["type"].as_str().unwrap();
    assert!(type_.ends_with(kind), "{problem}");
}

pub fn new_code() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "A{}c0de{}-abcd-1234",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn json(response: Response) -> Value {
    response.json().await.expect("a JSON body")
}

/// Starts `POST /v1/exchange` of a fresh code through `client` and returns once `mondiapay` has
/// it, with the request still waiting for its answer.
pub async fn exchange_in_flight(
    client: &Client,
    mondiapay: &MondiaPay,
) -> JoinHandle<reqwest::Result<Response>> {
    let request = tokio::spawn(
        client
            .api(Method::POST, "/v1/exchange")
            .json(&json!({"code": new_code()}))
            .send(),
    );
    mondiapay.until_called().await;
    request
}

/// A fresh code held back for after a store fault: MondiaPay issues `Ulater` for it, exactly once.
pub async fn code_for_after_the_fault(app: &TestApp) -> String {
    let code = new_code();
    let later = ResponseTemplate::new(200).set_body_json(success_body("Ulater"));
    app.mondiapay.answers_code(&code, later).await;
    code
}

/// While the store cannot be written: the API and the callback answer 503, `/readyz` is 503,
/// and MondiaPay never sees `code`.
pub async fn assert_store_refuses(app: &TestApp, code: &str) {
    let refused = app.exchange(code, "ORDER-FAULT").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_problem_kind(&json(refused).await, "store-unavailable");
    let ready = app.ready().await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(ready).await["store"], "unavailable");
    let page = app.callback(&format!("ref=ORDER-FAULT&code={code}")).await;
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Failed writes must not leave the store half-working: the next attempts are refused too.
    for _ in 0..2 {
        let again = app.exchange(code, "ORDER-FAULT").await;
        assert_eq!(again.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(app.ready().await.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!(
        app.mondiapay
            .calls()
            .await
            .iter()
            .all(|call| !call.url.as_str().contains(code))
    );
}

/// Once the store is back: ready again (waited for, bounded), and `code` was not used up.
pub async fn assert_store_recovers(app: &TestApp, code: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while app.ready().await.status() != StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "not ready after the store came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let after = json(app.exchange(code, "ORDER-FAULT").await).await;
    assert_eq!(
        after["access_token"], "Ulater",
        "the refused code was not used up"
    );
}

/// Sends `request` and reads its answer as JSON; panics if either fails.
pub async fn send_for_json(request: RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

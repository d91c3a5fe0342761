//! `spawn_app()`: the service in-process on free ports, with its own SQLite file and its own
//! wiremock MondiaPay.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mondiapay_token_proxy::settings::{Purpose, Settings};
use mondiapay_token_proxy::startup::Application;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
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
pub const REDIRECT_URI: &str = "https://shop.example/thanks?from=mondiapay";

pub struct TestApp {
    pub public: String,
    pub internal: String,
    pub mondiapay: MockServer,
    pub dir: TempDir,
    pub env: HashMap<String, String>,
    http: reqwest::Client,
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
    spawn_app_with(&[]).await
}

/// Spawns the service with `overrides` (`("MONDIAPAY__TIMEOUT_SECS", "1")`) on top of `test_env`.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let mondiapay = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = test_env(&mondiapay, &dir);
    for (key, value) in overrides {
        env.insert(format!("TOKEN_PROXY__{key}"), (*value).to_owned());
    }
    let mut app = TestApp {
        public: String::new(),
        internal: String::new(),
        mondiapay,
        dir,
        env,
        http: reqwest::Client::new(),
        stop: None,
        task: None,
    };
    app.start().await;
    app
}

impl TestApp {
    async fn start(&mut self) {
        let settings = Settings::load(None, Some(self.env.clone()), Purpose::Serve)
            .expect("test settings are valid");
        // The test binds the listeners (port 0: free ports) and hands them to the service.
        let public = TcpListener::bind(settings.public.listen).await.unwrap();
        let internal = TcpListener::bind(settings.internal.listen).await.unwrap();
        let app = Application::with_listeners(&settings, public, internal)
            .await
            .expect("the service starts");
        self.public = format!("http://{}", app.public_addr());
        self.internal = format!("http://{}", app.internal_addr());
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

    pub fn api(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.internal))
            .bearer_auth(API_KEY)
    }

    pub async fn exchange(&self, body: Value) -> Response {
        self.api(Method::POST, "/v1/exchange")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn exchange_code(&self, code: &str, reference: &str) -> Response {
        self.exchange(json!({"code": code, "ref": reference})).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.api(Method::GET, path).send().await.unwrap()
    }

    /// The stored token looked up by the id of `record` (an exchange's answer), read as JSON.
    pub async fn token_stored_for(&self, record: &Value) -> Value {
        let id = record["id"].as_str().unwrap();
        json(self.get(&format!("/v1/tokens/{id}")).await).await
    }

    /// What a browser does on the public listener, without following redirects.
    pub async fn browser_get(&self, path_and_query: &str) -> Response {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{}{path_and_query}", self.public))
            .send()
            .await
            .unwrap()
    }

    /// Follows a callback's `303` to the built-in result page; returns the location and the page.
    pub async fn callback_page(&self, query: &str) -> (String, StatusCode, String) {
        let response = self.browser_get(&format!("/oauth/callback?{query}")).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "callback {query}");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let page = self.browser_get(&location).await;
        let status = page.status();
        (location, status, page.text().await.unwrap())
    }

    /// A plain GET of a full URL, without an API key.
    pub async fn http_get(&self, url: &str) -> Response {
        self.http.get(url).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.api(Method::DELETE, path).send().await.unwrap()
    }

    pub async fn upstream_calls(&self) -> Vec<Request> {
        self.mondiapay.received_requests().await.unwrap_or_default()
    }

    /// Mounts MondiaPay's token endpoint answering `template`, expecting exactly `calls` calls.
    pub async fn mondiapay_answers(&self, template: ResponseTemplate, calls: u64) {
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(template)
            .expect(calls)
            .mount(&self.mondiapay)
            .await;
    }

    /// Mounts a token endpoint answering `failure` to the first `failures` calls, then issuing
    /// one token; expects exactly `failures` + 1 calls.
    pub async fn mondiapay_fails_then_issues(&self, failure: ResponseTemplate, failures: u64) {
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(failure)
            .up_to_n_times(failures)
            .expect(failures)
            .mount(&self.mondiapay)
            .await;
        self.mondiapay_issues_tokens(1).await;
    }

    /// Mounts a token endpoint issuing a fresh token per call, expecting exactly `calls` calls.
    pub async fn mondiapay_issues_tokens(&self, calls: u64) {
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(IssueTokens)
            .expect(calls)
            .mount(&self.mondiapay)
            .await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
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

/// Waits (bounded) until the MondiaPay mock has received a call: the exchange is under way.
pub async fn until_mondiapay_is_called(server: &wiremock::MockServer) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "MondiaPay was never called"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Starts `POST /v1/exchange` of a fresh code against `internal` and returns once MondiaPay has
/// it, with the request still waiting for its answer.
pub async fn exchange_in_flight(
    server: &wiremock::MockServer,
    internal: &str,
) -> tokio::task::JoinHandle<reqwest::Result<Response>> {
    let request = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{internal}/v1/exchange"))
            .bearer_auth(API_KEY)
            .json(&json!({"code": new_code()}))
            .send(),
    );
    until_mondiapay_is_called(server).await;
    request
}

/// A fresh code held back for after a store fault: MondiaPay issues `Ulater` for it, exactly once.
pub async fn code_for_after_the_fault(app: &TestApp) -> String {
    let code = new_code();
    Mock::given(wiremock::matchers::query_param("code", code.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(success_body("Ulater")))
        .expect(1)
        .mount(&app.mondiapay)
        .await;
    code
}

/// While the store cannot be written: the API and the callback answer 503, `/readyz` is 503,
/// and MondiaPay never sees `code`.
pub async fn assert_store_refuses(app: &TestApp, code: &str) {
    let refused = app.exchange_code(code, "ORDER-FAULT").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_problem_kind(&json(refused).await, "store-unavailable");
    let ready = app.http_get(&format!("{}/readyz", app.internal)).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(ready).await["store"], "unavailable");
    let page = app
        .browser_get(&format!("/oauth/callback?ref=ORDER-FAULT&code={code}"))
        .await;
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Failed writes must not leave the store half-working: the next attempts are refused too.
    for _ in 0..2 {
        let again = app.exchange_code(code, "ORDER-FAULT").await;
        assert_eq!(again.status(), StatusCode::SERVICE_UNAVAILABLE);
        let ready = app.http_get(&format!("{}/readyz", app.internal)).await;
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!(
        app.upstream_calls()
            .await
            .iter()
            .all(|call| !call.url.as_str().contains(code))
    );
}

/// Once the store is back: ready again (waited for, bounded), and `code` was not used up.
pub async fn assert_store_recovers(app: &TestApp, code: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while app
        .http_get(&format!("{}/readyz", app.internal))
        .await
        .status()
        != StatusCode::OK
    {
        assert!(
            std::time::Instant::now() < deadline,
            "not ready after the store came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let after = json(app.exchange_code(code, "ORDER-FAULT").await).await;
    assert_eq!(
        after["access_token"], "Ulater",
        "the refused code was not used up"
    );
}

/// Sends `request` and reads its answer as JSON; panics if either fails.
pub async fn send_for_json(request: RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

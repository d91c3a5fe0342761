//! A handler that panics, on a router built by `stack` with the service's real state: no real
//! route panics, so the panicking one exists only in this test build (`cfg(test)`).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::routing::get;
use serde_json::Value;
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

use super::{Edge, Refusal, healthz, stack};
use crate::http::internal::auth::ApiKeys;
use crate::http::public::limit::ClientLimiter;
use crate::http::public::pages::Pages;
use crate::http::public::secret::NotificationSecret;
use crate::http::state::{AppState, CallbackSettings, Shared};
use crate::settings::{LogFormat, Purpose, Settings};
use crate::startup::Engine;
use crate::telemetry::{RequestIdLayer, json_layer};

const SECRET: &str = "A-code-that-must-never-be-logged-4711";

/// The listener's answer headers reach a panic's answer too.
static ANSWER_HEADERS: [(HeaderName, HeaderValue); 1] = [(
    HeaderName::from_static("x-answer"),
    HeaderValue::from_static("edge"),
)];

async fn panics_with_a_literal() -> &'static str {
    panic!("a literal panic message");
}

async fn panics_with_data() -> &'static str {
    let code = SECRET;
    panic!("exchange of {code} failed");
}

/// The state `serve` builds, on a SQLite store in `dir`.
async fn state(dir: &std::path::Path) -> AppState {
    let env = HashMap::from(
        [
            ("MONDIAPAY__CLIENT_ID", "merchant".to_owned()),
            ("MONDIAPAY__CLIENT_SECRET", "secret".to_owned()),
            (
                "MONDIAPAY__REDIRECT_URI",
                "https://shop.example/thanks".to_owned(),
            ),
            (
                "STORE__URL",
                format!("sqlite://{}/tokens.db", dir.display()),
            ),
        ]
        .map(|(key, value)| (format!("TOKEN_PROXY__{key}"), value)),
    );
    let settings = Settings::load(None, Some(env), Purpose::Exchange).unwrap();
    let engine = Engine::build(&settings).await.unwrap();
    AppState(Arc::new(Shared {
        events: Arc::new(crate::events::Events::new(
            Arc::clone(&engine.store),
            Arc::clone(&engine.metrics),
            Duration::from_secs(5),
        )),
        store: engine.store,
        exchanger: engine.exchanger,
        metrics: engine.metrics,
        purchases: engine.purchases,
        renewer: engine.renewer,
        subscriptions: engine.subscriptions,
        api_keys: Arc::new(ApiKeys::new(&[])),
        code_prefix: "A".to_owned(),
        pages: Pages::new(None).unwrap(),
        callback: CallbackSettings::new(&settings.public, &[]),
        notification_secret: NotificationSecret::new(None),
        limiter: Arc::new(ClientLimiter::new(0, 0, Vec::new())),
    }))
}

/// Log lines written to memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

fn internal_refusal(_: &AppState, status: StatusCode, id: &str) -> axum::response::Response {
    crate::http::internal::bare_answer(status, id)
}

#[tokio::test]
async fn a_handler_panic_is_answered_in_the_listeners_form_logged_once_and_the_service_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path()).await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry()
        .with(RequestIdLayer)
        .with(json_layer(move || writer.clone()));
    let _logging = tracing::subscriber::set_default(subscriber);
    // The hook `serve` installs; this test's thread logs to `captured`.
    let previous_hook = std::panic::take_hook();
    crate::telemetry::install_panic_hook(LogFormat::Json);

    let listeners: [(&str, Refusal, &str); 2] = [
        ("public", crate::http::public::refuse, "text/html"),
        ("internal", internal_refusal, "application/problem+json"),
    ];
    let mut answers = Vec::new();
    for (listener, refuse, media_type) in listeners {
        let routes = Router::new()
            .route("/literal", get(panics_with_a_literal))
            .route("/data", get(panics_with_data))
            .route("/healthz", get(healthz));
        let router = stack(
            routes,
            Edge {
                listener,
                state: state.clone(),
                request_timeout: Duration::from_secs(30),
                max_body_bytes: 1024,
                refuse,
                takes_caller_request_id: true,
                admit: admit_all,
                headers: &ANSWER_HEADERS,
            },
        );
        for path in ["/literal", "/data", "/healthz"] {
            let request = Request::get(path)
                .header("x-request-id", format!("{listener}-{}", &path[1..]))
                .body(Body::empty())
                .unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            answers.push((listener, path, response.status()));
            assert_eq!(response.headers()["x-answer"], "edge", "{listener} {path}");
            if path != "/healthz" {
                let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
                assert!(
                    content_type.starts_with(media_type),
                    "{listener}: {content_type}"
                );
                assert_eq!(
                    response.headers()["x-request-id"],
                    format!("{listener}-{}", &path[1..]).as_str()
                );
            }
        }
    }
    std::panic::set_hook(previous_hook);

    for (listener, path, status) in answers {
        let expected = if path == "/healthz" {
            StatusCode::OK
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        assert_eq!(status, expected, "{listener} {path}");
    }
    let lines = captured.lines();
    for line in &lines {
        assert!(!line.to_string().contains(SECRET), "{line}");
    }
    let panics: Vec<_> = lines
        .iter()
        .filter(|line| line["event"] == "panic")
        .collect();
    assert_eq!(panics.len(), 4, "one line a panic: {lines:?}");
    for panic in &panics {
        assert_eq!(panic["level"], "ERROR");
        assert!(
            panic["location"]
                .as_str()
                .unwrap()
                .contains("panic_tests.rs"),
            "{panic}"
        );
    }
    let message_of = |request_id: &str| {
        panics
            .iter()
            .find(|panic| panic["request_id"] == request_id)
            .unwrap_or_else(|| panic!("no panic line of {request_id}: {panics:?}"))["message"]
            .clone()
    };
    assert_eq!(
        message_of("public-literal"),
        "panicked: a literal panic message"
    );
    assert_eq!(
        message_of("internal-data"),
        format!("panicked: {}", crate::telemetry::PANIC_MESSAGE_WITHHELD).as_str()
    );
    // Every line logged within a request names it at the top level, the panic's 500 included.
    let finished: Vec<_> = lines
        .iter()
        .filter(|line| line["message"] == "request finished")
        .map(|line| {
            (
                line["request_id"].as_str().unwrap(),
                line["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        finished,
        [
            ("public-literal", 500),
            ("public-data", 500),
            ("public-healthz", 200),
            ("internal-literal", 500),
            ("internal-data", 500),
            ("internal-healthz", 200),
        ]
    );
}

fn admit_all(_: &AppState, _: &str, _: &Request<Body>) -> Option<axum::response::Response> {
    None
}

fn panics_on_admission(
    _: &AppState,
    _: &str,
    _: &Request<Body>,
) -> Option<axum::response::Response> {
    panic!("an admission that fails")
}

#[tokio::test]
async fn a_panic_in_admission_is_answered_in_the_listeners_form_with_its_headers() {
    let dir = tempfile::tempdir().unwrap();
    let router = stack(
        Router::new().route("/healthz", get(healthz)),
        Edge {
            listener: "internal",
            state: state(dir.path()).await,
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1024,
            refuse: internal_refusal,
            takes_caller_request_id: true,
            admit: panics_on_admission,
            headers: &ANSWER_HEADERS,
        },
    );
    let request = Request::get("/healthz").body(Body::empty()).unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(response.headers()["x-answer"], "edge");
}

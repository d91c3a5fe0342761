//! A sandbox MondiaPay on loopback, for `demo`, the tests and trying the service by hand. It
//! speaks MondiaPay's documented shapes for the whole round trip: the token endpoint (three
//! grants, three client auth styles), Prepare Purchase, the initiate page (confirm / empty
//! balance / cancel) that redirects the browser the way MondiaPay does, Subscription Management,
//! and notifications sent with MondiaPay's retry rule. Everything lives in memory.

mod notify;
mod page;
mod purchase;
mod subscriptions;
mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;
use url::Url;

use crate::crypto::random_bytes;
use notify::Notifier;

pub const TOKEN_PATH: &str = "/v1/api/oauth/token";
pub const PREPARE_PATH: &str = "/v1/api/purchase/subscription/prepare";
pub const INITIATE_PATH: &str = "/v1/web/purchase/initiate";
pub const SUBSCRIPTION_PATH: &str = "/v1/api/subscription";

/// MondiaPay's token lifetime: 12 hours, for client and user tokens alike.
const TOKEN_LIFETIME: Duration = Duration::from_secs(43_200);
/// How long a prepared purchase's initiate link stays usable (MondiaPay's `expiresIn`).
const PURCHASE_LIFETIME: Duration = Duration::from_secs(300);

/// A sandbox MondiaPay: the merchant credentials it accepts and where it sends notifications.
/// `Sandbox::new(id, secret).notifying(url).router()`, or `.serve(listener)`.
#[derive(Clone)]
pub struct Sandbox {
    client_id: String,
    client_secret: String,
    token_lifetime: Duration,
    notifier: Option<Notifier>,
    books: Arc<Mutex<Books>>,
}

/// What the sandbox remembers: the tokens it issued, codes, purchases, users' subscriptions.
#[derive(Default)]
struct Books {
    /// Authorization codes, by code: the user each belongs to and whether it was exchanged.
    codes: HashMap<String, IssuedCode>,
    /// Client tokens and their expiry.
    client_tokens: HashMap<String, Instant>,
    /// User tokens: whose, and their expiry.
    user_tokens: HashMap<String, (String, Instant)>,
    /// Prepared purchases, by purchase token.
    purchases: HashMap<String, purchase::Prepared>,
    /// Every subscription ever created, oldest first.
    subscriptions: Vec<subscriptions::Subscription>,
    /// Users MondiaPay knows (a `uuid` `user_credentials` may name).
    users: Vec<String>,
}

struct IssuedCode {
    uuid: String,
    used: bool,
}

impl Sandbox {
    /// A sandbox accepting only `client_id` with `client_secret`, notifying nobody.
    pub fn new(client_id: &str, client_secret: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            token_lifetime: TOKEN_LIFETIME,
            notifier: None,
            books: Arc::default(),
        }
    }

    /// Sends MondiaPay's notifications to `url` (the service's notification URL, secret and all).
    pub fn notifying(self, url: Url) -> Self {
        Self {
            notifier: Some(Notifier::new(url)),
            ..self
        }
    }

    /// Issues tokens that expire after `lifetime` instead of 12 hours (a test's expiry).
    pub fn token_lifetime(self, lifetime: Duration) -> Self {
        Self {
            token_lifetime: lifetime,
            ..self
        }
    }

    /// The sandbox's routes, at MondiaPay's paths.
    pub fn router(self) -> Router {
        Router::new()
            .route(TOKEN_PATH, post(token::token))
            .route(PREPARE_PATH, post(purchase::prepare))
            .route(
                &format!("{INITIATE_PATH}/{{purchase_token}}"),
                get(purchase::initiate_page).post(purchase::decide),
            )
            .route(SUBSCRIPTION_PATH, get(subscriptions::list))
            .route(
                &format!("{SUBSCRIPTION_PATH}/{{id}}"),
                delete(subscriptions::cancel),
            )
            .with_state(self)
    }

    /// Serves the sandbox on `listener` until the process ends.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    fn books(&self) -> MutexGuard<'_, Books> {
        // A panic elsewhere cannot leave the books half-written: every change is one statement.
        self.books
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends `notification` in the background, if the sandbox was told where to.
    fn notify(&self, notification: serde_json::Value) {
        if let Some(notifier) = &self.notifier {
            notifier.deliver(notification);
        }
    }
}

impl Books {
    /// The user a live user token belongs to.
    fn user_of(&self, token: &str) -> Option<String> {
        self.user_tokens
            .get(token)
            .filter(|(_, expiry)| *expiry > Instant::now())
            .map(|(uuid, _)| uuid.clone())
    }

    fn client_token_is_live(&self, token: &str) -> bool {
        self.client_tokens
            .get(token)
            .is_some_and(|expiry| *expiry > Instant::now())
    }
}

/// A UUID-shaped random id, as MondiaPay's purchase tokens, users and event ids are.
fn random_uuid() -> String {
    let hex: String = random_bytes::<16>()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Now, as MondiaPay writes times: RFC 3339 in UTC, whole seconds.
fn now() -> String {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// MondiaPay's general error body: `{"status", "error", "message"}`.
fn mondiapay_error(status: StatusCode, error: &str, message: &str) -> Response {
    let name = status
        .canonical_reason()
        .unwrap_or("ERROR")
        .to_ascii_uppercase()
        .replace(' ', "_");
    let body = json!({"status": name, "error": error, "message": message});
    (status, axum::Json(body)).into_response()
}

/// The bearer token of `Authorization: Bearer …`, if there is one.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// The `401` MondiaPay gives a token it does not know (or no longer knows).
fn token_not_found() -> Response {
    mondiapay_error(
        StatusCode::UNAUTHORIZED,
        "TOKEN_NOT_FOUND",
        "The access token is unknown or expired.",
    )
}

/// The `401` MondiaPay gives a token of the wrong kind (a client token where a user's belongs).
fn wrong_token_context() -> Response {
    mondiapay_error(
        StatusCode::UNAUTHORIZED,
        "TOKEN_CONTEXT_IS_NOT_VALID",
        "The access token is not valid for this call.",
    )
}

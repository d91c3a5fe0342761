//! A sandbox MondiaPay on loopback, for the demo and for trying the service by hand: a token
//! endpoint (any credentials; every code that starts with `A` is good exactly once) and a small
//! "confirm purchase" page that redirects to the callback the way MondiaPay does.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use url::Url;

use crate::crypto::random_bytes;

pub const TOKEN_PATH: &str = "/v1/api/oauth/token";

#[derive(Clone)]
struct Sandbox {
    used_codes: Arc<Mutex<HashSet<String>>>,
    /// Where the purchase page sends the browser: the merchant's thank-you URL.
    callback: Option<Url>,
}

/// The sandbox's routes; without a `callback` the purchase page is not offered.
pub fn router(callback: Option<Url>) -> Router {
    let sandbox = Sandbox {
        used_codes: Arc::default(),
        callback,
    };
    Router::new()
        .route(TOKEN_PATH, post(token))
        .route("/purchase", get(purchase_page))
        .route("/purchase/decide", get(decide))
        .with_state(sandbox)
}

/// Serves the token endpoint alone on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(None)).await
}

fn random() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<18>())
}

/// The token call's parameters this sandbox looks at; any others are ignored. A repeated `code`
/// does not deserialize, so it counts as no code.
#[derive(Deserialize)]
struct TokenCall {
    code: Option<String>,
}

/// The code arrives in the query string (MondiaPay's documented style) or the form body.
async fn token(
    State(sandbox): State<Sandbox>,
    RawQuery(query): RawQuery,
    body: String,
) -> (StatusCode, Json<Value>) {
    let code_in = |text: &str| {
        serde_urlencoded::from_str::<TokenCall>(text)
            .ok()
            .and_then(|call| call.code)
    };
    let code = code_in(query.as_deref().unwrap_or_default()).or_else(|| code_in(&body));
    let Some(code) = code.filter(|code| code.starts_with('A')) else {
        let error = json!({"error": "invalid_request", "error_description": "No valid code."});
        return (StatusCode::BAD_REQUEST, Json(error));
    };
    let fresh = sandbox
        .used_codes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(code);
    if !fresh {
        let error =
            json!({"error": "invalid_grant", "error_description": "The code was already used."});
        return (StatusCode::BAD_REQUEST, Json(error));
    }
    let answer = json!({
        "access_token": format!("U{}", random()),
        "token_type": "bearer",
        "expires_in": "43200",
        "refresh_token": format!("R{}", random()),
    });
    (StatusCode::OK, Json(answer))
}

#[derive(Deserialize)]
struct Purchase {
    #[serde(rename = "ref")]
    reference: Option<String>,
    decision: Option<String>,
}

async fn purchase_page(Query(purchase): Query<Purchase>) -> Html<String> {
    // Only plain characters reach the page: it is built without a template engine.
    let reference: String = purchase
        .reference
        .unwrap_or_else(|| "ORDER-1".to_owned())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    Html(PURCHASE_PAGE.replace("{ref}", &reference))
}

/// Sends the browser to the callback with the parameters MondiaPay appends.
async fn decide(State(sandbox): State<Sandbox>, Query(purchase): Query<Purchase>) -> Response {
    let Some(mut target) = sandbox.callback.clone() else {
        return (StatusCode::NOT_FOUND, "no callback configured").into_response();
    };
    let uuid = format!("sandbox-user-{}", &random()[..8]);
    let code = format!("A{}", random());
    let params: Vec<(&str, &str)> = match purchase.decision.as_deref() {
        Some("confirm") => vec![
            ("code", &code),
            ("message", "OK"),
            ("uuid", &uuid),
            ("status", "200"),
        ],
        Some("insufficient_funds") => vec![
            ("code", &code),
            ("error", "INSUFFICIENT_FUNDS"),
            ("message", "Insufficient funds."),
            ("uuid", &uuid),
            ("status", "402"),
        ],
        _ => vec![
            ("error", "USER_DECLINED_PURCHASE_DURING_CONFIRMATION"),
            ("message", "The user declined the purchase."),
            ("status", "400"),
        ],
    };
    {
        let mut pairs = target.query_pairs_mut();
        if let Some(reference) = &purchase.reference {
            pairs.append_pair("ref", reference);
        }
        pairs.extend_pairs(params);
    }
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

const PURCHASE_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>MondiaPay sandbox: confirm your purchase</title>
<style>
 body { margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center; padding: 1.5rem;
        background: #eef1f6; font: 1.0625rem/1.5 system-ui, sans-serif; color: #1f1f1f; }
 main { max-width: 26rem; width: 100%; background: #fff; border-radius: 1rem; padding: 2rem 1.75rem; box-shadow: 0 2px 8px rgb(0 0 0 / .1); }
 .badge { display: inline-block; font-size: .8rem; background: #ffe8a3; border-radius: .5rem; padding: .1rem .5rem; }
 h1 { font-size: 1.4rem; margin: .75rem 0; } .price { font-size: 1.25rem; font-weight: 600; }
 button { display: block; width: 100%; margin-top: .75rem; padding: .8rem; font-size: 1rem; border-radius: .6rem; border: 1px solid #c4c7c5; background: #fff; cursor: pointer; }
 button.primary { background: #1a56db; color: #fff; border-color: #1a56db; }
</style></head>
<body><main>
 <span class="badge">Sandbox: no real money</span>
 <h1>Confirm your purchase</h1>
 <p>Demo subscription for order <strong>{ref}</strong></p>
 <p class="price">1.99 per week, charged to your mobile bill</p>
 <form action="/purchase/decide" method="get">
  <input type="hidden" name="ref" value="{ref}">
  <button class="primary" id="confirm" name="decision" value="confirm">Confirm purchase</button>
  <button id="insufficient" name="decision" value="insufficient_funds">Pay with an empty balance</button>
  <button id="decline" name="decision" value="decline">Cancel</button>
 </form>
</main></body></html>
"#;

//! A sandbox MondiaPay token endpoint on loopback, for trying the service without credentials:
//! any credentials are accepted, every code that starts with `A` is good exactly once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::crypto::random_bytes;

pub const TOKEN_PATH: &str = "/v1/api/oauth/token";

#[derive(Clone, Default)]
struct Sandbox {
    used_codes: Arc<Mutex<HashSet<String>>>,
}

pub fn router() -> Router {
    Router::new()
        .route(TOKEN_PATH, post(token))
        .with_state(Sandbox::default())
}

/// Serves the sandbox on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}

/// The code arrives in the query string (MondiaPay's documented style) or the form body.
async fn token(
    State(sandbox): State<Sandbox>,
    RawQuery(query): RawQuery,
    body: String,
) -> (StatusCode, Json<Value>) {
    let code = [query.unwrap_or_default(), body]
        .iter()
        .flat_map(|text| {
            form_urlencoded::parse(text.as_bytes())
                .into_owned()
                .collect::<Vec<_>>()
        })
        .find(|(name, _)| name == "code")
        .map(|(_, value)| value);
    let Some(code) = code.filter(|code| code.starts_with('A')) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": "No valid code."})),
        );
    };
    let fresh = sandbox
        .used_codes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(code);
    if !fresh {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": "invalid_grant", "error_description": "The code was already used."}),
            ),
        );
    }
    let random = || base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<18>());
    (
        StatusCode::OK,
        Json(json!({
            "access_token": format!("U{}", random()),
            "token_type": "bearer",
            "expires_in": "43200",
            "refresh_token": format!("R{}", random()),
        })),
    )
}

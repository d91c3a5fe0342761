//! The sandbox's token endpoint: `authorization_code` (a code is good exactly once),
//! `client_credentials` (a `C…` client token) and `user_credentials` (a fresh `U…` token for a
//! user MondiaPay knows), each only with the merchant's credentials, sent in any of the three
//! client auth styles: the query string (MondiaPay's examples), the form body, or HTTP Basic.

use std::time::Instant;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

use super::{Books, IssuedCode, Sandbox, mondiapay_error, random_uuid};
use crate::crypto::random_id;

/// The token call's parameters: the query string's and the form body's together. A parameter
/// given twice counts as not given.
struct Params(Vec<(String, String)>);

impl Params {
    fn read(query: Option<&str>, body: &str) -> Self {
        let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .chain(form_urlencoded::parse(body.as_bytes()))
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        Self(pairs)
    }

    fn get(&self, name: &str) -> Option<&str> {
        let mut values = self.0.iter().filter(|(key, _)| key == name);
        match (values.next(), values.next()) {
            (Some((_, value)), None) => Some(value),
            _ => None,
        }
    }
}

pub(super) async fn token(
    State(sandbox): State<Sandbox>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: String,
) -> Response {
    let params = Params::read(query.as_deref(), &body);
    let (id, secret) = match basic_credentials(&headers) {
        Some(pair) => pair,
        None => (
            params.get("client_id").unwrap_or_default().to_owned(),
            params.get("client_secret").unwrap_or_default().to_owned(),
        ),
    };
    if id != sandbox.client_id || secret != sandbox.client_secret {
        return mondiapay_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Bad client credentials.",
        );
    }
    let lifetime = sandbox.token_lifetime;
    let mut books = sandbox.books();
    match params.get("grant_type") {
        Some("authorization_code") => exchange(&mut books, params.get("code"), lifetime),
        Some("client_credentials") => {
            let token = random_id("C");
            books
                .client_tokens
                .insert(token.clone(), Instant::now() + lifetime);
            issued(&token, lifetime, false)
        }
        Some("user_credentials") => match params.get("uuid") {
            Some(uuid) if books.users.iter().any(|user| user == uuid) => {
                user_token(&mut books, uuid, lifetime)
            }
            _ => mondiapay_error(
                StatusCode::BAD_REQUEST,
                "INVALID_PARAMETERS",
                "No user with this uuid.",
            ),
        },
        _ => oauth_error("unsupported_grant_type", "Unknown grant type."),
    }
}

/// A code is good once; one the sandbox did not issue (typed by hand) belongs to a new user.
fn exchange(books: &mut Books, code: Option<&str>, lifetime: std::time::Duration) -> Response {
    let Some(code) = code.filter(|code| code.starts_with('A')) else {
        return oauth_error("invalid_request", "No valid code.");
    };
    let issued = books
        .codes
        .entry(code.to_owned())
        .or_insert_with(|| IssuedCode {
            uuid: random_uuid(),
            used: false,
        });
    if std::mem::replace(&mut issued.used, true) {
        return oauth_error("invalid_grant", "The code was already used.");
    }
    let uuid = issued.uuid.clone();
    if !books.users.contains(&uuid) {
        books.users.push(uuid.clone());
    }
    user_token(books, &uuid, lifetime)
}

fn user_token(books: &mut Books, uuid: &str, lifetime: std::time::Duration) -> Response {
    let token = random_id("U");
    books
        .user_tokens
        .insert(token.clone(), (uuid.to_owned(), Instant::now() + lifetime));
    issued(&token, lifetime, true)
}

/// MondiaPay's token answer; `expires_in` a string, as in its examples.
fn issued(token: &str, lifetime: std::time::Duration, refresh: bool) -> Response {
    let mut answer = json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": lifetime.as_secs().to_string(),
    });
    if refresh {
        answer["refresh_token"] = json!(random_id("R"));
    }
    (StatusCode::OK, axum::Json(answer)).into_response()
}

fn oauth_error(error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// HTTP Basic's id and secret, each form-urldecoded (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let pair = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let pair = String::from_utf8(pair).ok()?;
    let (id, secret) = pair.split_once(':')?;
    let decode = |part: &str| {
        form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

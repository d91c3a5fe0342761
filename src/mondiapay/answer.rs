//! Reading MondiaPay's answer to a token call: lenient about the success shape, strict about what
//! counts as a final verdict on the code.
//!
//! A `2xx` means MondiaPay took the code, whatever its body says: the code is spent, so such an
//! answer is never "no verdict". A `401`/`403` that does not name the grant or the code blames
//! the merchant's credentials, not the code, so it is never final for the code.

use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::domain::{NoAnswer, UpstreamError, UserToken, error_code};

/// MondiaPay documents 12-hour user tokens; an answer without a usable `expires_in` gets that.
pub const DEFAULT_EXPIRES_IN_SECS: u64 = 43_200;
/// An absurd lifetime from upstream is clamped rather than trusted (30 days).
const MAX_EXPIRES_IN_SECS: u64 = 30 * 24 * 3600;

/// Error codes that blame the merchant's credentials whatever the status (compared ignoring case).
const CREDENTIAL_ERRORS: &[&str] = &[
    "invalid_client",
    "unauthorized_client",
    "unauthorized",
    "forbidden",
    "authorization_failed",
];

/// Error codes that name the grant or the code. A `401`/`403` with one of these is a verdict on
/// the code; a `401`/`403` with any other (or none) is a credentials fault (compared ignoring
/// case).
const CODE_ERRORS: &[&str] = &[
    "invalid_grant",
    "invalid_request",
    "token_not_found",
    "token_expired",
    "token_context_is_not_valid",
    "invalid_parameters",
];

/// What one answer means for the code.
#[derive(Debug)]
pub enum Answer {
    Issued(UserToken),
    /// A definitive verdict on the code: final, the code is never sent again. Also every `2xx`
    /// that carried no usable token (its error, or [`crate::domain::NO_TOKEN_IN_ANSWER`]).
    CodeRejected(UpstreamError),
    /// The merchant's credentials were refused: a configuration fault, not final for the code.
    CredentialsRejected(UpstreamError),
    /// No usable verdict (5xx, 3xx, 408/429, a 4xx other than 400/401/403, one without an error
    /// code, no answer at all): the code may be tried again.
    Unusable(NoAnswer),
}

/// Classifies an answer by its status and body.
pub fn read_answer(status: u16, body: &[u8]) -> Answer {
    if status >= 500 || status == 408 || status == 429 {
        return Answer::Unusable(NoAnswer::Invalid(format!(
            "MondiaPay answered HTTP {status}"
        )));
    }
    if (300..400).contains(&status) {
        return Answer::Unusable(NoAnswer::Invalid(format!(
            "MondiaPay answered a redirect (HTTP {status}), which is not followed"
        )));
    }
    let fields = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Some(fields),
        _ => None,
    };
    if (200..300).contains(&status) {
        return spent(status, fields);
    }
    match fields.as_ref().and_then(|f| upstream_error(status, f)) {
        Some(error) if blames_credentials(&error) => Answer::CredentialsRejected(error),
        Some(error) if matches!(status, 400 | 401 | 403) => Answer::CodeRejected(error),
        // A 404, 405, 415, … speaks of the endpoint, not of the code (a wrong
        // `mondiapay.token_url` answering `{"error":"Not Found"}`): it must not burn codes.
        Some(_) => Answer::Unusable(NoAnswer::Invalid(format!(
            "MondiaPay answered HTTP {status}, which is no verdict on the code: check mondiapay.token_url"
        ))),
        // A gateway's bare 401/403 names no code either: the credentials are at fault.
        None if matches!(status, 401 | 403) => Answer::CredentialsRejected(UpstreamError {
            http_status: status,
            error: if status == 401 {
                "UNAUTHORIZED"
            } else {
                "FORBIDDEN"
            }
            .to_owned(),
            message: None,
        }),
        None if fields.is_some() => Answer::Unusable(NoAnswer::Invalid(format!(
            "MondiaPay answered HTTP {status} without an error code"
        ))),
        None => Answer::Unusable(NoAnswer::Invalid(format!(
            "MondiaPay answered HTTP {status} with a body that is not a JSON object"
        ))),
    }
}

/// A `2xx`: MondiaPay took the code. A non-empty string `access_token` is a token whatever else
/// the answer holds (an `error` beside it, an odd `expires_in`); without one the code is spent
/// anyway, and the verdict is final so it is never sent again.
fn spent(status: u16, fields: Option<Map<String, Value>>) -> Answer {
    let Some(fields) = fields else {
        return Answer::CodeRejected(UpstreamError::no_token(status));
    };
    match fields.get("access_token") {
        Some(Value::String(token)) if !token.is_empty() => Answer::Issued(user_token(fields)),
        _ => Answer::CodeRejected(
            upstream_error(status, &fields).unwrap_or_else(|| UpstreamError::no_token(status)),
        ),
    }
}

fn blames_credentials(error: &UpstreamError) -> bool {
    let listed = |list: &[&str]| list.iter().any(|c| error.error.eq_ignore_ascii_case(c));
    listed(CREDENTIAL_ERRORS) || (matches!(error.http_status, 401 | 403) && !listed(CODE_ERRORS))
}

pub(super) fn upstream_error(status: u16, fields: &Map<String, Value>) -> Option<UpstreamError> {
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    // MondiaPay's own shape puts the class in `status` ("UNAUTHORIZED") and the detail in
    // `error` ("TOKEN_NOT_FOUND"); a body with only `status` still names the fault.
    let error = text("error").or_else(|| text("status").filter(|_| status >= 400))?;
    let message = text("error_description").or_else(|| text("message"));
    Some(UpstreamError {
        http_status: status,
        error: error_code(error),
        message: message.map(|m| truncate(m, 300)),
    })
}

/// Only called with a non-empty string `access_token` in `fields`.
fn user_token(mut fields: Map<String, Value>) -> UserToken {
    let access_token = match fields.remove("access_token") {
        Some(Value::String(token)) => SecretString::from(token),
        _ => SecretString::default(),
    };
    let refresh_token = match fields.remove("refresh_token") {
        Some(Value::String(token)) if !token.is_empty() => Some(SecretString::from(token)),
        _ => None,
    };
    let token_type = match fields.remove("token_type") {
        Some(Value::String(kind)) if !kind.is_empty() => kind.to_ascii_lowercase(),
        _ => "bearer".to_owned(),
    };
    let expires_in = match fields.remove("expires_in") {
        None | Some(Value::Null) => DEFAULT_EXPIRES_IN_SECS,
        Some(value) => seconds(&value).unwrap_or_else(|| {
            // The token is real and the code is spent: keep it with MondiaPay's documented
            // lifetime. The value is not logged (the answer's fields are not either).
            tracing::warn!(
                "MondiaPay's expires_in is not a usable number of seconds; counting 12 hours"
            );
            DEFAULT_EXPIRES_IN_SECS
        }),
    };
    UserToken {
        access_token,
        refresh_token,
        token_type,
        expires_in: expires_in.min(MAX_EXPIRES_IN_SECS),
        extra: fields,
    }
}

/// `expires_in` as a number or a numeric string (MondiaPay's examples send `"43200"`); a
/// fraction is cut to whole seconds. Negative, non-finite or non-numeric values are unusable.
fn seconds(value: &Value) -> Option<u64> {
    let from_float = |f: f64| (f.is_finite() && f >= 0.0).then_some(f as u64);
    match value {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().and_then(from_float)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(from_float))
        }
        _ => None,
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests;

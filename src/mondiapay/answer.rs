//! Reading MondiaPay's answer to a token call: lenient about the success shape, strict about what
//! counts as a final verdict on the code.

use secrecy::SecretString;
use serde_json::{Map, Value};

/// MondiaPay documents 12-hour user tokens; an answer without `expires_in` gets that.
pub const DEFAULT_EXPIRES_IN_SECS: u64 = 43_200;
/// An absurd lifetime from upstream is clamped rather than trusted (30 days).
const MAX_EXPIRES_IN_SECS: u64 = 30 * 24 * 3600;

/// Error codes that blame the merchant's credentials, not the code (compared ignoring case).
const CREDENTIAL_ERRORS: &[&str] = &["invalid_client", "unauthorized_client", "unauthorized"];

/// A User Access Token as MondiaPay issued it.
#[derive(Debug)]
pub struct UserToken {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// Lower case; MondiaPay sends `bearer`, other spellings are accepted.
    pub token_type: String,
    pub expires_in: u64,
    /// Fields of the answer this service does not know, kept as they came.
    pub extra: Map<String, Value>,
}

/// MondiaPay's error, in its own shape (`status`, `error`, `message`) or RFC 6749's
/// (`error`, `error_description`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    pub http_status: u16,
    pub error: String,
    pub message: Option<String>,
}

/// What one answer means for the code.
#[derive(Debug)]
pub enum Answer {
    Issued(UserToken),
    /// A definitive verdict on the code: final, the code is never sent again.
    CodeRejected(UpstreamError),
    /// The merchant's credentials were refused: a configuration fault, not final for the code.
    CredentialsRejected(UpstreamError),
    /// No usable verdict (5xx, 3xx, 408/429, unreadable body, no answer at all): the code may be
    /// tried again.
    Unusable(NoAnswer),
}

/// Why there is no verdict on the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoAnswer {
    #[error("MondiaPay did not answer in time")]
    TimedOut,
    #[error("MondiaPay could not be reached")]
    Unreachable,
    #[error("{0}")]
    Invalid(String),
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
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Answer::Unusable(NoAnswer::Invalid(format!(
            "MondiaPay answered HTTP {status} with a body that is not a JSON object"
        )));
    };
    if let Some(error) = upstream_error(status, &fields) {
        let blames_credentials = CREDENTIAL_ERRORS
            .iter()
            .any(|c| error.error.eq_ignore_ascii_case(c));
        return if blames_credentials {
            Answer::CredentialsRejected(error)
        } else {
            Answer::CodeRejected(error)
        };
    }
    if (200..300).contains(&status) {
        return match user_token(fields) {
            Some(token) => Answer::Issued(token),
            None => Answer::Unusable(NoAnswer::Invalid(
                "MondiaPay's success answer has no usable access_token".to_owned(),
            )),
        };
    }
    Answer::Unusable(NoAnswer::Invalid(format!(
        "MondiaPay answered HTTP {status} without an error code"
    )))
}

fn upstream_error(status: u16, fields: &Map<String, Value>) -> Option<UpstreamError> {
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    // MondiaPay's own shape puts the class in `status` ("UNAUTHORIZED") and the detail in
    // `error` ("TOKEN_NOT_FOUND"); a body with only `status` still names the fault.
    let error = text("error").or_else(|| text("status").filter(|_| status >= 400))?;
    let message = text("error_description").or_else(|| text("message"));
    Some(UpstreamError {
        http_status: status,
        error: truncate(error, 100),
        message: message.map(|m| truncate(m, 300)),
    })
}

fn user_token(mut fields: Map<String, Value>) -> Option<UserToken> {
    let access_token = match fields.remove("access_token") {
        Some(Value::String(token)) if !token.is_empty() => SecretString::from(token),
        _ => return None,
    };
    let refresh_token = match fields.remove("refresh_token") {
        Some(Value::String(token)) if !token.is_empty() => Some(SecretString::from(token)),
        _ => None,
    };
    let token_type = match fields.remove("token_type") {
        Some(Value::String(kind)) if !kind.is_empty() => kind.to_ascii_lowercase(),
        _ => "bearer".to_owned(),
    };
    let expires_in = fields
        .remove("expires_in")
        .map_or(Some(DEFAULT_EXPIRES_IN_SECS), |v| expires_in(&v))?;
    Some(UserToken {
        access_token,
        refresh_token,
        token_type,
        expires_in,
        extra: fields,
    })
}

/// `expires_in` as a number or a numeric string (MondiaPay's examples send `"43200"`).
fn expires_in(value: &Value) -> Option<u64> {
    let seconds = match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        Value::Null => Some(DEFAULT_EXPIRES_IN_SECS),
        _ => None,
    }?;
    Some(seconds.min(MAX_EXPIRES_IN_SECS))
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn issued(status: u16, body: &str) -> UserToken {
        match read_answer(status, body.as_bytes()) {
            Answer::Issued(token) => token,
            other => panic!("expected a token, got {other:?}"),
        }
    }

    #[test]
    fn accepts_the_documented_success_body_as_is() {
        let token = issued(
            200,
            r#"{"access_token":"U12345","token_type":"bearer","expires_in":"43200","refresh_token":"R12345"}"#,
        );
        assert_eq!(token.access_token.expose_secret(), "U12345");
        assert_eq!(token.refresh_token.unwrap().expose_secret(), "R12345");
        assert_eq!(token.token_type, "bearer");
        assert_eq!(token.expires_in, 43_200);
        assert!(token.extra.is_empty());
    }

    #[test]
    fn expires_in_may_be_a_number_a_string_or_missing() {
        assert_eq!(
            issued(200, r#"{"access_token":"U1","expires_in":3600}"#).expires_in,
            3600
        );
        assert_eq!(
            issued(200, r#"{"access_token":"U1","expires_in":" 60 "}"#).expires_in,
            60
        );
        assert_eq!(issued(200, r#"{"access_token":"U1"}"#).expires_in, 43_200);
        assert_eq!(
            issued(200, r#"{"access_token":"U1","expires_in":null}"#).expires_in,
            43_200
        );
        assert!(matches!(
            read_answer(200, br#"{"access_token":"U1","expires_in":"soon"}"#),
            Answer::Unusable(_)
        ));
    }

    #[test]
    fn token_type_is_case_insensitive_and_unknown_fields_are_kept() {
        let token = issued(
            200,
            r#"{"access_token":"U1","token_type":"Bearer","scope":"subs","n":1}"#,
        );
        assert_eq!(token.token_type, "bearer");
        assert_eq!(token.extra["scope"], "subs");
        assert_eq!(token.extra["n"], 1);
        assert!(token.refresh_token.is_none());
    }

    fn verdict(status: u16, body: &str) -> (&'static str, Option<String>) {
        match read_answer(status, body.as_bytes()) {
            Answer::Issued(_) => ("issued", None),
            Answer::CodeRejected(e) => ("code", Some(e.error)),
            Answer::CredentialsRejected(e) => ("credentials", Some(e.error)),
            Answer::Unusable(_) => ("unusable", None),
        }
    }

    #[test]
    fn error_shapes_and_classes() {
        let code = |e: &str| ("code", Some(e.to_owned()));
        let credentials = |e: &str| ("credentials", Some(e.to_owned()));
        assert_eq!(
            verdict(
                400,
                r#"{"error":"invalid_grant","error_description":"used"}"#
            ),
            code("invalid_grant")
        );
        assert_eq!(
            verdict(
                400,
                r#"{"status":"BAD_REQUEST","error":"INVALID_PARAMETERS","message":"bad"}"#
            ),
            code("INVALID_PARAMETERS")
        );
        assert_eq!(
            verdict(
                401,
                r#"{"status":"UNAUTHORIZED","error":"TOKEN_NOT_FOUND"}"#
            ),
            code("TOKEN_NOT_FOUND")
        );
        assert_eq!(
            verdict(200, r#"{"error":"invalid_grant"}"#),
            code("invalid_grant")
        );
        assert_eq!(
            verdict(401, r#"{"error":"invalid_client"}"#),
            credentials("invalid_client")
        );
        assert_eq!(
            verdict(401, r#"{"status":"UNAUTHORIZED","message":"bad client"}"#),
            credentials("UNAUTHORIZED")
        );
        assert_eq!(
            verdict(401, r#"{"error":"UNAUTHORIZED"}"#),
            credentials("UNAUTHORIZED")
        );
        assert_eq!(verdict(500, r#"{"error":"invalid_grant"}"#).0, "unusable");
        assert_eq!(verdict(503, "").0, "unusable");
        assert_eq!(verdict(429, r#"{"error":"slow_down"}"#).0, "unusable");
        assert_eq!(verdict(302, "").0, "unusable");
        assert_eq!(verdict(404, "<html>not found</html>").0, "unusable");
        assert_eq!(verdict(401, "").0, "unusable");
        assert_eq!(verdict(200, "<html>ok</html>").0, "unusable");
        assert_eq!(verdict(200, r#"{"token_type":"bearer"}"#).0, "unusable");
        assert_eq!(verdict(200, r#"{"access_token":""}"#).0, "unusable");
        assert_eq!(verdict(200, r#"[1,2]"#).0, "unusable");
    }

    #[test]
    fn error_text_is_bounded() {
        let long = "x".repeat(5000);
        let body = format!(r#"{{"error":"{long}","message":"{long}"}}"#);
        let Answer::CodeRejected(error) = read_answer(400, body.as_bytes()) else {
            panic!()
        };
        assert_eq!(error.error.len(), 100);
        assert_eq!(error.message.unwrap().len(), 300);
    }
}

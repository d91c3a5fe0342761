//! What a token call yields for a code: a User Access Token as MondiaPay issued it (before it is
//! sealed and stored), MondiaPay's error (a verdict on the code), or why there was no usable
//! verdict at all; and the token as stored, with what is known about it.

use secrecy::SecretString;
use serde_json::{Map, Value};

use super::label::Owner;

/// The error code recorded when a `2xx` carried no usable `access_token` (nor an error code):
/// MondiaPay took the code, so it is spent and final, but there is no token to keep.
pub const NO_TOKEN_IN_ANSWER: &str = "NO_TOKEN_IN_ANSWER";

/// An error code longer than this, or with other characters than `[A-Za-z0-9_.-]`, is free text,
/// not a code: it is replaced, so free text never reaches a page, the API or the store.
const MAX_ERROR_CODE_CHARS: usize = 64;
pub const UNRECOGNISED_ERROR: &str = "UNRECOGNISED_ERROR";

/// The error code as given when it looks like one, else a fixed stand-in.
/// `error` if it is an error code (`[A-Za-z0-9_.-]`, at most 64 characters), else a fixed
/// marker: free text, from MondiaPay or from a forged redirect, never passes for a code.
pub fn error_code(error: &str) -> String {
    let looks_like_a_code = error.chars().count() <= MAX_ERROR_CODE_CHARS
        && error
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if looks_like_a_code {
        error.to_owned()
    } else {
        UNRECOGNISED_ERROR.to_owned()
    }
}

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
/// (`error`, `error_description`). `error` is always an error code (`[A-Za-z0-9_.-]`, at most
/// 64 characters), never free text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    pub http_status: u16,
    pub error: String,
    pub message: Option<String>,
}

impl UpstreamError {
    /// A `2xx` without a usable token: the code is spent all the same.
    pub fn no_token(http_status: u16) -> Self {
        Self {
            http_status,
            error: NO_TOKEN_IN_ANSWER.to_owned(),
            message: None,
        }
    }

    /// A stored refusal whose error code was not kept (rows written before it was): RFC 6749's
    /// generic refusal of a grant.
    pub fn invalid_grant() -> Self {
        Self {
            http_status: 400,
            error: "invalid_grant".to_owned(),
            message: None,
        }
    }

    /// Whether this is the verdict for a `2xx` that carried no usable token.
    pub fn is_no_token(&self) -> bool {
        self.error == NO_TOKEN_IN_ANSWER
    }
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

impl NoAnswer {
    /// Its name as a metric's `outcome` label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::TimedOut => "timed_out",
            Self::Unreachable => "unreachable",
            Self::Invalid(_) => "invalid_answer",
        }
    }
}

/// A stored User Access Token with what is known about it. The secrets print only through the
/// JSON the internal API returns.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: String,
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub token_type: String,
    pub obtained_at: i64,
    pub expires_at: i64,
    pub reference: Option<String>,
    pub uuid: Option<String>,
    /// Fields of MondiaPay's answer this service does not know.
    pub extra: Map<String, Value>,
}

impl TokenRecord {
    /// The record of a token MondiaPay issued at `obtained_at` (Unix seconds) to `owner`,
    /// stored as `id`.
    pub fn issued(id: String, token: &UserToken, owner: &Owner, obtained_at: i64) -> Self {
        Self {
            id,
            access_token: token.access_token.clone(),
            refresh_token: token.refresh_token.clone(),
            token_type: token.token_type.clone(),
            obtained_at,
            expires_at: obtained_at.saturating_add_unsigned(token.expires_in),
            reference: owner.reference.clone(),
            uuid: owner.uuid.clone(),
            extra: token.extra.clone(),
        }
    }
}

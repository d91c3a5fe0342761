//! API keys of the internal API: `Authorization: Bearer <key>`, compared in constant time.

use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::problem::ApiError;
use crate::http::state::AppState;

/// The accepted keys, kept as SHA-256 digests: equal lengths make the comparison constant-time
/// whatever key is presented, and the keys themselves are not kept in memory.
pub struct ApiKeys(Vec<[u8; 32]>);

impl ApiKeys {
    pub fn new(keys: &[SecretString]) -> Self {
        Self(keys.iter().map(|key| digest(key.expose_secret())).collect())
    }

    /// Checks against every key, without stopping at a match, so timing says nothing.
    pub fn accepts(&self, presented: &str) -> bool {
        let presented = digest(presented);
        self.0
            .iter()
            .fold(Choice::from(0), |found, key| found | key.ct_eq(&presented))
            .into()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The internal listener's admission: a `/v1` route needs an accepted key; the operations
/// routes, and a path no route matches (a `404`), do not.
pub fn admit(state: &AppState, route: &str, request: &Request) -> Option<Response> {
    if !route.starts_with("/v1/") {
        return None;
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    match presented {
        Some(key) if state.api_keys.accepts(key) => None,
        _ => Some(ApiError::Unauthorized.into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_any_configured_key_and_nothing_else() {
        let keys = ApiKeys::new(&[
            "first-key-0123456789".into(),
            "second-key-0123456789".into(),
        ]);
        assert!(keys.accepts("first-key-0123456789"));
        assert!(keys.accepts("second-key-0123456789"));
        assert!(!keys.accepts("first-key-012345678"));
        assert!(!keys.accepts(""));
        assert!(!ApiKeys::new(&[]).accepts(""));
    }
}

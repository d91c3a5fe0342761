//! `notifications.secret` as the HTTP edge keeps it: shared by the state and the route.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `notifications.secret`, kept as its SHA-256 digest: equal lengths make the comparison
/// constant-time whatever is presented, and the secret itself is not kept in memory.
pub struct NotificationSecret(Option<[u8; 32]>);

impl NotificationSecret {
    pub fn new(secret: Option<&SecretString>) -> Self {
        Self(secret.map(|secret| digest(secret.expose_secret())))
    }

    /// Whether the route is served.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `presented` is the secret (compared in constant time).
    pub fn accepts(&self, presented: &str) -> bool {
        self.0
            .is_some_and(|secret| bool::from(secret.ct_eq(&digest(presented))))
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_configured_secret_and_nothing_when_off() {
        let configured = SecretString::from("n0tify-me-0123456789-0123456789-ab");
        let secret = NotificationSecret::new(Some(&configured));
        assert!(secret.is_on());
        assert!(secret.accepts("n0tify-me-0123456789-0123456789-ab"));
        assert!(!secret.accepts("n0tify-me-0123456789-0123456789-a"));
        assert!(!secret.accepts(""));
        let off = NotificationSecret::new(None);
        assert!(!off.is_on() && !off.accepts("") && !off.accepts("anything"));
    }
}

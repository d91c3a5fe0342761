//! The token record as the internal API returns it.

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::crypto::random_bytes;

/// A stored User Access Token with what is known about it. The secrets print only through the
/// JSON the internal API returns.
#[derive(Debug)]
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

impl Clone for TokenRecord {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            access_token: self.access_token.expose_secret().into(),
            refresh_token: self
                .refresh_token
                .as_ref()
                .map(|t| t.expose_secret().into()),
            token_type: self.token_type.clone(),
            obtained_at: self.obtained_at,
            expires_at: self.expires_at,
            reference: self.reference.clone(),
            uuid: self.uuid.clone(),
            extra: self.extra.clone(),
        }
    }
}

/// `tok_` and 128 random bits, URL-safe: unguessable, so an id alone reveals nothing.
pub fn new_token_id() -> String {
    format!(
        "tok_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<16>())
    )
}

impl Serialize for TokenRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let now = super::now_unix();
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("access_token", self.access_token.expose_secret())?;
        map.serialize_entry("token_type", &self.token_type)?;
        map.serialize_entry("expires_at", &rfc3339(self.expires_at))?;
        map.serialize_entry("expires_in", &(self.expires_at - now).max(0))?;
        map.serialize_entry("obtained_at", &rfc3339(self.obtained_at))?;
        map.serialize_entry("ref", &self.reference)?;
        map.serialize_entry("uuid", &self.uuid)?;
        if let Some(refresh_token) = &self.refresh_token {
            map.serialize_entry("refresh_token", refresh_token.expose_secret())?;
        }
        if !self.extra.is_empty() {
            map.serialize_entry("extra", &self.extra)?;
        }
        map.end()
    }
}

/// A Unix time as `2026-11-25T06:00:00Z`.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_to_the_documented_shape() {
        let record = TokenRecord {
            id: "tok_x".into(),
            access_token: "U12345".into(),
            refresh_token: None,
            token_type: "bearer".into(),
            obtained_at: 1_795_975_213,
            expires_at: 4_102_444_800,
            reference: Some("ORDER-42".into()),
            uuid: None,
            extra: Map::new(),
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["access_token"], "U12345");
        assert_eq!(json["expires_at"], "2100-01-01T00:00:00Z");
        assert_eq!(json["obtained_at"], "2026-11-29T18:00:13Z");
        assert_eq!(json["ref"], "ORDER-42");
        assert!(json["uuid"].is_null());
        assert!(json["expires_in"].as_i64().unwrap() > 0);
        assert!(json.get("refresh_token").is_none() && json.get("extra").is_none());
        assert!(!format!("{record:?}").contains("U12345"));
    }

    #[test]
    fn token_ids_are_unique_and_url_safe() {
        let (a, b) = (new_token_id(), new_token_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 22);
        assert!(
            a[4..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }
}

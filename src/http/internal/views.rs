//! The JSON the internal API answers with: a token record and a callback outcome, as SPEC.md
//! shapes them. (The `exchange` command prints a record in the same shape.)

use secrecy::ExposeSecret;
use serde::ser::{Serialize, SerializeMap, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::{CallbackOutcome, TokenRecord, wording};
use crate::store::now_unix;

impl Serialize for TokenRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let now = now_unix();
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

/// The shape `GET /v1/callbacks` lists.
impl Serialize for CallbackOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let o = &self.outcome;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("time", &rfc3339(self.created_at))?;
        map.serialize_entry("outcome", o.kind.as_str())?;
        map.serialize_entry("mondiapay_error", &o.error)?;
        map.serialize_entry("mondiapay_status", &o.status)?;
        // MondiaPay's free text is never stored: what its error code means, in fixed words.
        let meaning = wording::outcome(o.kind, o.error.as_deref());
        map.serialize_entry("mondiapay_message", &meaning)?;
        map.serialize_entry("ref", &o.reference)?;
        map.serialize_entry("uuid", &o.uuid)?;
        map.serialize_entry("token_id", &o.token_id)?;
        map.serialize_entry("request_id", &o.request_id)?;
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
    use serde_json::Map;

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
}

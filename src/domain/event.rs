//! MondiaPay's notifications of subscription events, as the service reads them: the fields it
//! files an event under, taken from the body MondiaPay posted, and the body itself, kept as it
//! came. MondiaPay's examples send every value as a string; a number is taken as its decimal
//! text, so a notification is not refused (and retried for nothing) over a value's JSON type.

use serde_json::{Map, Value};

use super::label::{MAX_LABEL_CHARS, is_acceptable_label};

/// One notification, read from MondiaPay's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// `eventUUID`: unique per event, what makes a redelivery the same event.
    pub event_uuid: String,
    /// `event`: `CREATE`, `ACTIVATE`, `RENEWAL`, `CANCEL`, …
    pub event: String,
    pub reason: Option<String>,
    pub status: Option<String>,
    pub sub_state: Option<String>,
    pub uuid: Option<String>,
    pub subscription_id: Option<String>,
    pub subscription_type_id: Option<String>,
    /// `eventDateTime`, as MondiaPay wrote it.
    pub event_time: Option<String>,
    /// The `purchaseToken` of the Prepare Purchase the subscription came from, if any.
    pub purchase_token: Option<String>,
    /// The body as received.
    pub raw: String,
}

/// A notification as stored: its place in the feed, when it came, and the purchase its
/// `purchaseToken` matched, if any.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The event's place in the feed: increasing in the order events became visible.
    pub cursor: i64,
    pub received_at: i64,
    pub notification: Notification,
    pub purchase_id: Option<String>,
    /// The matched purchase's `ref`.
    pub reference: Option<String>,
}

/// Why a body is not a notification (a `400`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("the body is not a JSON object")]
    NotAnObject,
    #[error("{0} is missing or empty")]
    Missing(&'static str),
    #[error("{0} must be at most {MAX_LABEL_CHARS} printable characters")]
    Unacceptable(&'static str),
}

impl Notification {
    pub fn parse(body: &[u8]) -> Result<Self, NotificationError> {
        let raw = std::str::from_utf8(body).map_err(|_| NotificationError::NotAnObject)?;
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(raw) else {
            return Err(NotificationError::NotAnObject);
        };
        let required = |name: &'static str| match fields.get(name) {
            Some(Value::String(value)) if !value.is_empty() => acceptable(name, value.clone()),
            _ => Err(NotificationError::Missing(name)),
        };
        // An optional field that breaks the label rule is left out, not the notification: it is
        // kept in `raw`, and refusing it would lose the event (MondiaPay's retries carry the same).
        let optional = |name: &'static str| text(&fields, name).filter(|v| is_acceptable_label(v));
        Ok(Self {
            event_uuid: required("eventUUID")?,
            event: required("event")?,
            reason: optional("reason"),
            status: optional("status"),
            sub_state: optional("subState"),
            uuid: optional("uuid"),
            subscription_id: optional("subscriptionId"),
            subscription_type_id: optional("subscriptionTypeId"),
            event_time: optional("eventDateTime"),
            purchase_token: optional("purchaseToken"),
            raw: raw.to_owned(),
        })
    }
}

/// A field as text: a non-empty string, or a number's decimal text; anything else is absent.
fn text(fields: &Map<String, Value>, name: &str) -> Option<String> {
    match fields.get(name)? {
        Value::String(value) if !value.is_empty() => Some(value.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The fields an event is filed under follow the label rule: short enough for an index, and no
/// control characters to forge a log line or a page with.
fn acceptable(name: &'static str, value: String) -> Result<String, NotificationError> {
    if is_acceptable_label(&value) {
        Ok(value)
    } else {
        Err(NotificationError::Unacceptable(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mondiapays_example_and_keeps_the_body_as_received() {
        let body = br#"{"uuid": "u-1", "purchaseToken": "8adca8fb", "subscriptionId": "77",
            "subscriptionTypeId": 12345, "event": "CREATE", "reason": "CREATE_ACTIVE",
            "status": "ACTIVE", "subState": "NONE", "eventDateTime": "2026-11-26T06:00:00Z",
            "eventUUID": "e-1", "price": {"amount": "1.99", "currency": "EUR"}}"#;
        let notification = Notification::parse(body).unwrap();
        assert_eq!(notification.event_uuid, "e-1");
        assert_eq!(notification.event, "CREATE");
        assert_eq!(notification.subscription_type_id.as_deref(), Some("12345"));
        assert_eq!(notification.purchase_token.as_deref(), Some("8adca8fb"));
        assert_eq!(notification.sub_state.as_deref(), Some("NONE"));
        assert_eq!(
            notification.event_time.as_deref(),
            Some("2026-11-26T06:00:00Z")
        );
        assert_eq!(notification.raw.as_bytes(), body);
    }

    #[test]
    fn refuses_what_is_not_a_notification() {
        use NotificationError::*;
        for (body, error) in [
            (&b"not json"[..], NotAnObject),
            (b"[1, 2]", NotAnObject),
            (b"\xff\xfe", NotAnObject),
            (br#"{"event": "CREATE"}"#, Missing("eventUUID")),
            (
                br#"{"eventUUID": "", "event": "CREATE"}"#,
                Missing("eventUUID"),
            ),
            (
                br#"{"eventUUID": 7, "event": "CREATE"}"#,
                Missing("eventUUID"),
            ),
            (br#"{"eventUUID": "e"}"#, Missing("event")),
        ] {
            assert_eq!(Notification::parse(body), Err(error), "{body:?}");
        }
        let long = format!(r#"{{"eventUUID": "{}", "event": "C"}}"#, "e".repeat(257));
        assert_eq!(
            Notification::parse(long.as_bytes()),
            Err(Unacceptable("eventUUID"))
        );
    }

    #[test]
    fn an_optional_field_that_breaks_the_label_rule_is_left_out_not_the_notification() {
        let long = "s".repeat(257);
        let body =
            format!(r#"{{"eventUUID": "e", "event": "C", "uuid": "a\nb", "status": "{long}"}}"#);
        let notification = Notification::parse(body.as_bytes()).unwrap();
        assert_eq!((notification.uuid, notification.status), (None, None));
        assert_eq!(notification.raw, body);
    }

    #[test]
    fn values_of_other_types_are_absent_but_kept_in_the_body() {
        let body = br#"{"eventUUID": "e", "event": "C", "uuid": null, "status": true}"#;
        let notification = Notification::parse(body).unwrap();
        assert_eq!((notification.uuid, notification.status), (None, None));
        assert!(notification.raw.contains("true"));
    }
}

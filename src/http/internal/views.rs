//! The JSON the internal API answers with: a token record and a callback outcome, as SPEC.md
//! shapes them. (The `exchange` command prints a record in the same shape.)

use secrecy::ExposeSecret;
use serde::Serialize;
use serde::ser::Serializer;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::{CallbackOutcome, OutcomeKind, TokenRecord, wording};
use crate::store::now_unix;

/// A stored MondiaPay User Access Token. Expired tokens are never returned.
#[derive(Serialize, ToSchema)]
struct TokenView<'a> {
    /// `tok_`, then the time it was made (ms) and 128 random bits in URL-safe base64 whose
    /// alphabet is in ASCII order, so ids sort by age. Opaque: do not parse it.
    #[schema(example = "tok_MOBwS7bq-3q2-7wAAAAAAAAAAAAAAA")]
    id: &'a str,
    /// The User Access Token.
    access_token: &'a str,
    #[schema(example = "bearer")]
    token_type: &'a str,
    #[schema(format = DateTime, example = "2026-11-25T06:00:00Z")]
    expires_at: String,
    /// Seconds until `expires_at`, at the time of the answer.
    #[schema(minimum = 0)]
    expires_in: i64,
    #[schema(format = DateTime, example = "2026-11-24T18:00:13Z")]
    obtained_at: String,
    /// The merchant reference; null when unknown.
    #[serde(rename = "ref")]
    #[schema(required = true)]
    reference: Option<&'a str>,
    /// MondiaPay's user uuid; null when unknown.
    #[schema(required = true)]
    uuid: Option<&'a str>,
    /// Present only when MondiaPay sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    refresh_token: Option<&'a str>,
    /// Fields of MondiaPay's answer this service does not know, as they came; present only
    /// when there are some.
    #[serde(skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object, additional_properties = true)]
    extra: &'a Map<String, Value>,
}

impl Serialize for TokenRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TokenView {
            id: &self.id,
            access_token: self.access_token.expose_secret(),
            token_type: &self.token_type,
            expires_at: rfc3339(self.expires_at),
            expires_in: (self.expires_at - now_unix()).max(0),
            obtained_at: rfc3339(self.obtained_at),
            reference: self.reference.as_deref(),
            uuid: self.uuid.as_deref(),
            refresh_token: self.refresh_token.as_ref().map(|t| t.expose_secret()),
            extra: &self.extra,
        }
        .serialize(serializer)
    }
}

// The API's schemas are named after the domain's types and shaped by their views.
impl ToSchema for TokenRecord {}
impl PartialSchema for TokenRecord {
    fn schema() -> RefOr<Schema> {
        TokenView::schema()
    }
}

/// What one browser callback ended in; `GET /v1/callbacks` lists them. Every field is always
/// there; what is unknown is null.
#[derive(Serialize, ToSchema)]
struct OutcomeView<'a> {
    #[schema(format = DateTime)]
    time: String,
    #[schema(schema_with = outcome_names)]
    outcome: &'static str,
    /// MondiaPay's `error` redirect parameter, or its error code when it rejected the code.
    mondiapay_error: Option<&'a str>,
    /// MondiaPay's `status` redirect parameter.
    mondiapay_status: Option<&'a str>,
    /// What `mondiapay_error` means, as a fixed sentence of this service (for `purchase_failed`
    /// and `code_rejected`; null otherwise). Never MondiaPay's own text nor the redirect's
    /// `message`.
    mondiapay_message: Option<&'static str>,
    /// The merchant reference the callback carried.
    #[serde(rename = "ref")]
    reference: Option<&'a str>,
    /// MondiaPay's user uuid the callback carried.
    uuid: Option<&'a str>,
    /// The stored token's id when the callback succeeded.
    token_id: Option<&'a str>,
    /// The callback request's id, shown on the result page as the support reference.
    request_id: &'a str,
}

impl Serialize for CallbackOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let o = &self.outcome;
        OutcomeView {
            time: rfc3339(self.created_at),
            outcome: o.kind.as_str(),
            mondiapay_error: o.error.as_deref(),
            mondiapay_status: o.status.as_deref(),
            // MondiaPay's free text is never stored: what its error code means, in fixed words.
            mondiapay_message: wording::outcome(o.kind, o.error.as_deref()),
            reference: o.reference.as_deref(),
            uuid: o.uuid.as_deref(),
            token_id: o.token_id.as_deref(),
            request_id: &o.request_id,
        }
        .serialize(serializer)
    }
}

impl ToSchema for CallbackOutcome {}
impl PartialSchema for CallbackOutcome {
    fn schema() -> RefOr<Schema> {
        every_field_required(OutcomeView::schema())
    }
}

/// A view's schema whose every field is always there: what is unknown is null, not left out.
pub fn every_field_required(mut schema: RefOr<Schema>) -> RefOr<Schema> {
    if let RefOr::T(Schema::Object(object)) = &mut schema {
        object.required = object.properties.keys().cloned().collect();
    }
    schema
}

/// Every outcome's name.
fn outcome_names() -> impl Into<RefOr<Schema>> {
    let names = OutcomeKind::ALL.iter().map(|kind| kind.as_str());
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .build()
}

/// An error, as RFC 9457 problem details (`application/problem+json`).
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// `urn:mondiapay-token-proxy:problem:` and one of `bad-request`, `unsupported-media-type`,
    /// `payload-too-large`, `not-found`, `method-not-allowed`, `request-too-large`,
    /// `unauthorized`, `request-timeout`, `code-rejected`, `no-token-in-answer`,
    /// `credentials-rejected`, `upstream-timeout`, `upstream-unavailable`, `token-gone`,
    /// `exchange-in-progress`, `exchange-capacity`, `store-unavailable`, `internal`,
    /// `purchase-refused`, `idempotency-key-reused`, `idempotency-key-in-progress`,
    /// `renewal-refused`, `renewal-in-progress`, `token-refused`, `mondiapay-refused`.
    #[serde(rename = "type")]
    #[schema(
        format = "uri",
        example = "urn:mondiapay-token-proxy:problem:code-rejected"
    )]
    pub kind: String,
    pub title: &'static str,
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// A short safe message: never a token, a code or an upstream body.
    pub detail: String,
    /// MondiaPay's error code; only on `code-rejected`, `purchase-refused`, `renewal-refused`,
    /// `token-refused` and `mondiapay-refused`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub mondiapay_error: Option<String>,
}

/// A Unix time as `2026-11-25T06:00:00Z`; empty outside the years 0 to 9999, as RFC 3339 has
/// no form for them. Written digit by digit: each token answer has two, and `time`'s general
/// formatter took a tenth of a lookup's own work.
pub fn rfc3339(unix: i64) -> String {
    let Ok(at) = OffsetDateTime::from_unix_timestamp(unix) else {
        return String::new();
    };
    let (year, month, day) = at.to_calendar_date();
    let Ok(year) = u16::try_from(year) else {
        return String::new();
    };
    let (hour, minute, second) = at.to_hms();
    let mut text = String::with_capacity(20);
    push_digits(&mut text, year, 4);
    for (separator, value) in [
        ('-', u8::from(month)),
        ('-', day),
        ('T', hour),
        (':', minute),
        (':', second),
    ] {
        text.push(separator);
        push_digits(&mut text, u16::from(value), 2);
    }
    text.push('Z');
    text
}

/// `value`'s last `width` decimal digits, zero-padded.
fn push_digits(text: &mut String, value: u16, width: u32) {
    for place in (0..width).rev() {
        let digit = (value / 10u16.pow(place)) % 10;
        text.push(char::from(b'0' + digit as u8));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;
    use time::format_description::well_known::Rfc3339;

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
    fn times_read_as_time_formats_them_and_are_empty_where_rfc_3339_has_no_form() {
        let by_time = |unix: i64| {
            OffsetDateTime::from_unix_timestamp(unix)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .unwrap_or_default()
        };
        let year_zero = -62_167_219_200;
        let last_second_of_9999 = 253_402_300_799;
        let mut times = vec![
            0,
            -1,
            1_795_975_213,
            951_782_400, // 2000-02-29
            year_zero,
            year_zero - 1,
            last_second_of_9999,
            last_second_of_9999 + 1,
            i64::MIN,
            i64::MAX,
        ];
        // Every day of four years around a leap year, at a different second of each.
        times.extend((0..4 * 366).map(|day| 1_700_000_000 + day * 86_400 + day * 59));
        for unix in times {
            assert_eq!(rfc3339(unix), by_time(unix), "{unix}");
        }
        assert_eq!(rfc3339(year_zero - 1), "");
        assert_eq!(rfc3339(last_second_of_9999), "9999-12-31T23:59:59Z");
    }
}

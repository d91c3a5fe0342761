//! Reading the callback's query string: untrusted input from the internet, so size and shape
//! are checked before anything else looks at it.

use crate::domain::{error_code, is_acceptable_label};

/// Longer queries are not MondiaPay redirects.
pub const MAX_QUERY_BYTES: usize = 4096;
const MAX_ERROR_CHARS: usize = 100;
const MAX_MESSAGE_CHARS: usize = 300;
/// What a `status` that is not an HTTP-like number is recorded as.
const UNRECOGNISED_STATUS: &str = "UNRECOGNISED_STATUS";

/// The parameters of a MondiaPay redirect, plus the merchant's correlation parameter.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub error: Option<String>,
    pub status: Option<String>,
    pub message: Option<String>,
    pub uuid: Option<String>,
    pub reference: Option<String>,
    /// The purchase this service started (`purchase=<id>`, put into the redirect by Prepare
    /// Purchase).
    pub purchase: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadCallback {
    #[error("the query is longer than {MAX_QUERY_BYTES} bytes")]
    TooLong,
    #[error("`{0}` appears more than once")]
    Repeated(String),
    #[error("neither `code` nor `error` is present")]
    NothingToDo,
    #[error("`{0}` is too long or contains control characters")]
    BadValue(String),
}

impl CallbackParams {
    /// MondiaPay's redirect says the purchase failed: an `error`, or a `status` that is not 2xx.
    pub fn purchase_failed(&self) -> bool {
        self.error.is_some()
            || self
                .status
                .as_deref()
                .is_some_and(|status| !status.parse::<u16>().is_ok_and(|n| (200..300).contains(&n)))
    }
}

/// Parses the raw query. Every parameter this service reads may appear once; an empty value
/// counts as absent (except `code`, whose emptiness is a malformed code).
pub fn parse(raw: &str, correlation_param: &str) -> Result<CallbackParams, BadCallback> {
    if raw.len() > MAX_QUERY_BYTES {
        return Err(BadCallback::TooLong);
    }
    let mut params = CallbackParams::default();
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        let slot = match name.as_ref() {
            "code" => &mut params.code,
            "error" => &mut params.error,
            "status" => &mut params.status,
            "message" => &mut params.message,
            "uuid" => &mut params.uuid,
            "purchase" => &mut params.purchase,
            name if name == correlation_param => &mut params.reference,
            _ => continue,
        };
        if slot.is_some() {
            return Err(BadCallback::Repeated(name.into_owned()));
        }
        *slot = Some(value.into_owned());
    }
    let short_code: fn(&str) -> bool =
        |value| value.chars().count() <= MAX_ERROR_CHARS && !value.chars().any(char::is_control);
    for (name, slot, acceptable) in [
        ("error", &mut params.error, short_code),
        ("status", &mut params.status, short_code),
        ("uuid", &mut params.uuid, is_acceptable_label),
        ("purchase", &mut params.purchase, is_acceptable_label),
        (
            correlation_param,
            &mut params.reference,
            is_acceptable_label,
        ),
    ] {
        if let Some(value) = slot.as_deref() {
            if !acceptable(value) {
                return Err(BadCallback::BadValue(name.to_owned()));
            }
            if value.is_empty() {
                *slot = None;
            }
        }
    }
    // `error` and `status` are recorded, listed and passed to `failure_url`: only as the code and
    // number MondiaPay sends, never as text someone wrote into a link. A `status` that is not a
    // number still says the purchase failed.
    params.error = params.error.as_deref().map(error_code);
    params.status = params.status.map(|status| {
        if (1..=3).contains(&status.len()) && status.bytes().all(|b| b.is_ascii_digit()) {
            status
        } else {
            UNRECOGNISED_STATUS.to_owned()
        }
    });
    // MondiaPay's message is never shown nor stored (anyone can write one into a link); it is
    // only kept short and printable, like the rest.
    params.message = params
        .message
        .map(|m| {
            m.chars()
                .filter(|c| !c.is_control())
                .take(MAX_MESSAGE_CHARS)
                .collect::<String>()
        })
        .filter(|m| !m.trim().is_empty());
    if params.code.is_none() && params.error.is_none() {
        return Err(BadCallback::NothingToDo);
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_mondiapay_success_redirect() {
        let params = parse(
            "ref=ORDER-42&code=Adb74b75&message=OK&uuid=8142&status=200",
            "ref",
        )
        .unwrap();
        assert_eq!(params.code.as_deref(), Some("Adb74b75"));
        assert_eq!(params.reference.as_deref(), Some("ORDER-42"));
        assert_eq!(params.uuid.as_deref(), Some("8142"));
        assert!(!params.purchase_failed());
    }

    #[test]
    fn failed_purchases_are_recognised() {
        for (query, failed) in [
            ("code=A1&error=INSUFFICIENT_FUNDS&status=402", true),
            ("code=A1&status=402", true),
            ("code=A1&status=abc", true),
            ("error=USER_DECLINED_PURCHASE_DURING_CONFIRMATION", true),
            ("code=A1&status=201", false),
        ] {
            let params = parse(query, "ref").unwrap();
            assert_eq!(params.purchase_failed(), failed, "{query}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_redirect() {
        assert_eq!(
            parse(&format!("code=A{}", "1".repeat(4096)), "ref"),
            Err(BadCallback::TooLong)
        );
        assert_eq!(
            parse("code=A1&code=A2", "ref"),
            Err(BadCallback::Repeated("code".into()))
        );
        assert_eq!(
            parse("code=A1&ref=a&ref=b", "ref"),
            Err(BadCallback::Repeated("ref".into()))
        );
        assert_eq!(parse("", "ref"), Err(BadCallback::NothingToDo));
        assert_eq!(
            parse("ref=X&status=200", "ref"),
            Err(BadCallback::NothingToDo)
        );
        assert_eq!(
            parse("code=A1&ref=a%0Ab", "ref"),
            Err(BadCallback::BadValue("ref".into()))
        );
        assert_eq!(
            parse(&format!("code=A1&uuid={}", "u".repeat(257)), "ref"),
            Err(BadCallback::BadValue("uuid".into()))
        );
    }

    #[test]
    fn reads_the_purchase_id_once() {
        let params = parse("code=A1&purchase=pur_abc&ref=X", "ref").unwrap();
        assert_eq!(params.purchase.as_deref(), Some("pur_abc"));
        assert_eq!(
            parse("code=A1&purchase=a&purchase=b", "ref"),
            Err(BadCallback::Repeated("purchase".into()))
        );
    }

    #[test]
    fn the_correlation_parameter_is_configurable_and_others_are_ignored() {
        let params = parse("order=77&ref=ignored&utm_source=x&code=A1", "order").unwrap();
        assert_eq!(params.reference.as_deref(), Some("77"));
    }

    #[test]
    fn only_codes_and_numbers_pass_as_error_and_status() {
        let params = parse("error=INSUFFICIENT_FUNDS&status=402", "ref").unwrap();
        assert_eq!(params.error.as_deref(), Some("INSUFFICIENT_FUNDS"));
        assert_eq!(params.status.as_deref(), Some("402"));
        let forged = parse("error=Call+%2B1-555-0100+now&status=give+your+PIN", "ref").unwrap();
        assert_eq!(forged.error.as_deref(), Some("UNRECOGNISED_ERROR"));
        assert_eq!(forged.status.as_deref(), Some("UNRECOGNISED_STATUS"));
        assert!(
            forged.purchase_failed(),
            "an unreadable status still says it failed"
        );
        let coded = parse("code=A1&status=2000", "ref").unwrap();
        assert!(coded.purchase_failed());
    }

    #[test]
    fn messages_are_trimmed_to_something_showable() {
        let long = "m".repeat(1000);
        let params = parse(&format!("error=X&message={long}%07"), "ref").unwrap();
        assert_eq!(params.message.unwrap().len(), 300);
        assert_eq!(parse("error=X&message=%20", "ref").unwrap().message, None);
        assert_eq!(
            parse("code=&error=", "ref").unwrap().code.as_deref(),
            Some("")
        );
    }
}

//! The callback's query string, straight from the internet.
//!
//! Run with `cargo +nightly fuzz run callback_query` from the repository root.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mondiapay_token_proxy::http::public::query::{BadCallback, MAX_QUERY_BYTES, parse};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the correlation parameter, so a configured name other than `ref` and
    // names that collide with MondiaPay's are covered too.
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let correlation_param = ["ref", "order", "code", ""][usize::from(selector % 4)];
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    match parse(raw, correlation_param) {
        Ok(params) => {
            assert!(raw.len() <= MAX_QUERY_BYTES);
            assert!(params.code.is_some() || params.error.is_some());
            for (value, max) in [
                (&params.error, 100),
                (&params.status, 100),
                (&params.uuid, 256),
                (&params.reference, 256),
                (&params.message, 300),
            ] {
                if let Some(value) = value {
                    assert!(!value.is_empty());
                    assert!(value.chars().count() <= max);
                    assert!(!value.chars().any(char::is_control));
                }
            }
            let _ = params.purchase_failed();
        }
        Err(BadCallback::TooLong) => assert!(raw.len() > MAX_QUERY_BYTES),
        Err(_) => assert!(raw.len() <= MAX_QUERY_BYTES),
    }
});

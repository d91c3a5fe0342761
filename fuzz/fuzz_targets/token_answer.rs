//! MondiaPay's answer to a token call: the first two bytes are the HTTP status, the rest the body.
//!
//! Run with `cargo +nightly fuzz run token_answer` from the repository root.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mondiapay_token_proxy::mondiapay::{Answer, read_answer};

const MAX_EXPIRES_IN_SECS: u64 = 30 * 24 * 3600;
const CREDENTIAL_ERRORS: [&str; 3] = ["invalid_client", "unauthorized_client", "unauthorized"];

fuzz_target!(|data: &[u8]| {
    let Some((status, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    // Folded into 100..=599 so that every class of status is reached.
    let status = 100 + u16::from_be_bytes(*status) % 500;
    let answer = read_answer(status, body);
    if status >= 500 || status == 408 || status == 429 || (300..=399).contains(&status) {
        assert!(
            matches!(answer, Answer::Unusable(_)),
            "HTTP {status} gave {answer:?}"
        );
    }
    match &answer {
        Answer::Issued(token) => {
            assert!((200..=299).contains(&status));
            assert_eq!(token.token_type, token.token_type.to_ascii_lowercase());
            assert!(token.expires_in <= MAX_EXPIRES_IN_SECS);
        }
        Answer::CodeRejected(error) | Answer::CredentialsRejected(error) => {
            assert!(!error.error.is_empty() && error.error.chars().count() <= 100);
            assert!(
                error
                    .message
                    .as_ref()
                    .is_none_or(|m| m.chars().count() <= 300)
            );
            let blames_credentials = CREDENTIAL_ERRORS
                .iter()
                .any(|c| error.error.eq_ignore_ascii_case(c));
            assert_eq!(
                blames_credentials,
                matches!(answer, Answer::CredentialsRejected(_))
            );
        }
        Answer::Unusable(_) => {}
    }
});

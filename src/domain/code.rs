//! The authorization code MondiaPay hands to the thank-you page: validated before anything else
//! touches it, and never printable.

use std::fmt;

/// Codes are opaque to us, but MondiaPay's are short URL-safe strings; anything longer is abuse.
pub const MAX_CODE_BYTES: usize = 512;

/// A single-use MondiaPay authorization code that passed [`Code::parse`].
///
/// There is deliberately no `Display` and the `Debug` output is redacted: a code is as good as a
/// token until it is exchanged, so it must not reach a log line or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("the code is empty")]
    Empty,
    #[error("the code is longer than {MAX_CODE_BYTES} bytes")]
    TooLong,
    #[error("the code contains characters outside A-Z a-z 0-9 . _ ~ -")]
    BadCharacter,
    #[error("the code does not start with the expected prefix")]
    WrongPrefix,
}

impl Code {
    /// Checks length, the RFC 3986 unreserved character set and the configured prefix
    /// (`mondiapay.code_prefix`; empty turns the prefix check off).
    pub fn parse(raw: &str, prefix: &str) -> Result<Self, CodeError> {
        if raw.is_empty() {
            return Err(CodeError::Empty);
        }
        if raw.len() > MAX_CODE_BYTES {
            return Err(CodeError::TooLong);
        }
        if !raw.bytes().all(is_unreserved) {
            return Err(CodeError::BadCharacter);
        }
        if !raw.starts_with(prefix) {
            return Err(CodeError::WrongPrefix);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The code itself, for the one place that sends it to MondiaPay and the keyed hash.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code([redacted])")
    }
}

/// RFC 3986 §2.3 unreserved characters: what a code may contain and still travel unencoded.
pub fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_mondiapay_shaped_codes() {
        let code = Code::parse("A1234abcde-1234-abcd-1234-abcd1234abcd", "A").unwrap();
        assert_eq!(code.expose(), "A1234abcde-1234-abcd-1234-abcd1234abcd");
        assert!(Code::parse("Ab.c_d~e", "A").is_ok());
    }

    #[test]
    fn rejects_malformed_codes() {
        assert_eq!(Code::parse("", "A"), Err(CodeError::Empty));
        assert_eq!(Code::parse(&"A".repeat(513), "A"), Err(CodeError::TooLong));
        assert!(Code::parse(&"A".repeat(512), "A").is_ok());
        assert_eq!(Code::parse("A12 3", "A"), Err(CodeError::BadCharacter));
        assert_eq!(Code::parse("A<b>", "A"), Err(CodeError::BadCharacter));
        assert_eq!(Code::parse("Aé", "A"), Err(CodeError::BadCharacter));
        assert_eq!(Code::parse("B123", "A"), Err(CodeError::WrongPrefix));
    }

    #[test]
    fn empty_prefix_turns_the_prefix_check_off() {
        assert!(Code::parse("B123", "").is_ok());
    }

    #[test]
    fn debug_output_never_shows_the_code() {
        let code = Code::parse("Asecret", "A").unwrap();
        assert!(!format!("{code:?}").contains("secret"));
    }
}

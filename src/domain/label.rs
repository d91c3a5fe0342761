//! The merchant's labels for a purchase: its reference (`ref`) and `uuid`, as the callback and
//! the API take them, with one rule for what a label may be.

/// A label longer than this many characters is refused.
pub const MAX_LABEL_CHARS: usize = 256;

/// Whether a label is short enough and printable (no control characters).
pub fn is_acceptable_label(value: &str) -> bool {
    value.chars().count() <= MAX_LABEL_CHARS && !value.chars().any(char::is_control)
}

/// Who the token belongs to, as the caller named them.
#[derive(Debug, Clone, Default)]
pub struct Owner {
    pub reference: Option<String>,
    pub uuid: Option<String>,
}

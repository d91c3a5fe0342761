//! Whether an API key is strong enough to guard the tokens: not a placeholder, and at least
//! 128 bits by an estimate that keys from a random source pass and made-up ones do not.
//!
//! The estimate is length × log2(alphabet), the alphabet being the one the key's characters
//! imply: hex digits (16) for a key of hex digits only; base64/base64url (64) for a key of those
//! characters mixing upper and lower case; otherwise the character classes it uses (26 lower
//! case, 26 upper case, 10 digits, 33 other). A key must also mix at least two of lower case,
//! upper case and digits (so lower-case words with dashes do not pass), use at least 8 distinct
//! characters, and hold no run of 10 repeated or consecutive characters (`aaaaaaaaaa`,
//! `0123456789`). `openssl rand -base64 32`, `openssl rand -hex 32` and the base64url of 16 or
//! more random bytes pass (a 16-byte one is refused about once in 150,000, when it happens to
//! hold neither upper case nor `-`/`_`; 24 bytes or more, practically never).

/// 128 bits: what a key must carry.
const MIN_BITS: f64 = 128.0;
/// 22 base64url characters hold 132 bits; nothing shorter can hold 128.
const MIN_CHARS: usize = 22;
/// Text that marks a key as copied from an example, compared ignoring case.
const PLACEHOLDERS: &[&str] = &[
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "replaceme",
    "replace_me",
    "example",
    "placeholder",
    "your-",
    "your_",
    "<",
    ">",
    "...",
];
const MIN_DISTINCT: usize = 8;
const MAX_RUN: usize = 10;

/// Why `key` is not acceptable, or `None` when it is. The reason never repeats the key.
pub fn weakness(key: &str) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        return Some("a placeholder");
    }
    if key.chars().count() < MIN_CHARS {
        return Some("shorter than 22 characters");
    }
    let has_lower = key.chars().any(|c| c.is_ascii_lowercase());
    let has_upper = key.chars().any(|c| c.is_ascii_uppercase());
    let has_digit = key.chars().any(|c| c.is_ascii_digit());
    if [has_lower, has_upper, has_digit]
        .iter()
        .filter(|&&x| x)
        .count()
        < 2
    {
        return Some(
            "not random-looking (it must mix at least two of lower case, upper case and digits)",
        );
    }
    let mut distinct: Vec<char> = key.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT || has_run(key) {
        return Some(
            "not random-looking (too few different characters, or a run like aaaaaaaaaa or 0123456789)",
        );
    }
    if repeats_itself(key) {
        return Some("not random-looking (it repeats itself, like Password1Password1Password1)");
    }
    if bits(key, has_lower, has_upper, has_digit) < MIN_BITS {
        return Some("below 128 bits");
    }
    None
}

fn bits(key: &str, has_lower: bool, has_upper: bool, has_digit: bool) -> f64 {
    let all = |f: fn(char) -> bool| key.chars().all(f);
    let alphabet = if all(|c| matches!(c, '0'..='9' | 'a'..='f'))
        || all(|c| matches!(c, '0'..='9' | 'A'..='F'))
    {
        16
    } else if has_lower
        && has_upper
        && all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_'))
    {
        64
    } else {
        let has_other = key.chars().any(|c| !c.is_ascii_alphanumeric());
        [
            (has_lower, 26),
            (has_upper, 26),
            (has_digit, 10),
            (has_other, 33),
        ]
        .iter()
        .filter(|(present, _)| *present)
        .map(|(_, size)| size)
        .sum()
    };
    key.chars().count() as f64 * f64::from(alphabet).log2()
}

/// Whether the key is mostly one piece over and over: for some shift shorter than half the key,
/// four in five characters equal the one that shift further on. A random key is never close.
fn repeats_itself(key: &str) -> bool {
    let chars: Vec<char> = key.chars().collect();
    (1..=chars.len() / 2).any(|shift| {
        let compared = chars.len() - shift;
        let equal = (0..compared)
            .filter(|&i| chars[i] == chars[i + shift])
            .count();
        equal * 5 >= compared * 4
    })
}

/// A run of `MAX_RUN` characters each one step (−1, 0 or +1, the same step throughout) from
/// the one before.
fn has_run(key: &str) -> bool {
    let codes: Vec<i64> = key.chars().map(|c| i64::from(u32::from(c))).collect();
    codes.windows(MAX_RUN).any(|run| {
        let step = run[1] - run[0];
        (-1..=1).contains(&step) && run.windows(2).all(|pair| pair[1] - pair[0] == step)
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;
    use crate::crypto::random_bytes;

    #[test]
    fn keys_from_a_random_source_pass() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        for _ in 0..500 {
            let keys = [
                b64.encode(random_bytes::<32>()),
                b64.encode(random_bytes::<16>()),
                b64url.encode(random_bytes::<24>()),
                hex(&random_bytes::<32>()),
                hex(&random_bytes::<16>()).to_uppercase(),
            ];
            for key in keys {
                assert_eq!(weakness(&key), None, "{key}");
            }
        }
        // base64url of 16 random bytes: 22 characters, 132 bits.
        for key in [
            "x3Hq9ZrT_kLm2VbN8pWc4A",
            "Qm7-Rt2yVx9LpK4sNd8ZbQ",
            "9fJ2kR7vXq1LmZ8tWc3bNg",
        ] {
            assert_eq!(weakness(key), None, "{key}");
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn placeholders_short_and_made_up_keys_are_refused() {
        for (key, why) in [
            ("change-me-to-a-long-random-key", "a placeholder"),
            ("another-key-for-rotation", "not random-looking"),
            ("CHANGEME-0123456789abcdefXYZ", "a placeholder"),
            ("your-api-key-goes-here-please", "a placeholder"),
            ("<insert a random key here 123>", "a placeholder"),
            ("aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "not random-looking"),
            (
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1",
                "not random-looking",
            ),
            ("correct-horse-battery-staple", "not random-looking"),
            ("test-api-key-0123456789abcdef", "not random-looking"),
            ("key-one-0123456789", "shorter than 22"),
            ("Zq3xR8wT2mK9", "shorter than 22"),
            ("abcd1234abcd1234abcd12", "not random-looking"),
            ("Password1Password1Password1", "not random-looking"),
            ("Xk7Qp2Lm9Xk7Qp2Lm9Xk7Qp2Lm9Xk7Qp2Lm9", "not random-looking"),
            ("ab12cd34ef56gh78ij90kl", "below 128 bits"),
        ] {
            let found = weakness(key).unwrap_or_else(|| panic!("{key} accepted"));
            assert!(found.starts_with(why), "{key}: {found}");
        }
    }
}

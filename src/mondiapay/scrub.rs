//! Hiding what this service sent MondiaPay (the code, the client secret) in a body it logs.
//!
//! MondiaPay may echo a parameter back in any spelling: as sent, percent-encoded (`%2F` or
//! `%2f`, `+` or `%20` for a space) or JSON-escaped (`\/`, `\u002f`), even mixed within one
//! value. Each character of a secret is matched in any of those spellings, and the whole body is
//! scrubbed before it is cut to length, so a secret straddling the cut leaves no prefix behind.

/// How much of a scrubbed body goes into a log line.
pub const MAX_EXCERPT_BYTES: usize = 512;

/// `body` for a log line: every spelling of each `(secret, label)` replaced by its label, then
/// cut to [`MAX_EXCERPT_BYTES`] on a character boundary.
pub fn excerpt(body: &[u8], hidden: &[(&str, &str)]) -> String {
    let mut text = String::from_utf8_lossy(body).into_owned();
    for (secret, label) in hidden {
        text = hide(&text, secret, label);
    }
    let mut cut = text.len().min(MAX_EXCERPT_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}

/// `text` with every spelling of `secret` replaced by `label`.
pub fn hide(text: &str, secret: &str, label: &str) -> String {
    if secret.is_empty() {
        return text.to_owned();
    }
    let spellings: Vec<Vec<Spelling>> = secret.chars().map(spellings).collect();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < bytes.len() {
        if let Some(end) = longest_match(bytes, at, &spellings) {
            out.push_str(label);
            at = end;
            continue;
        }
        let ch = text[at..].chars().next().expect("at is a char boundary");
        out.push(ch);
        at += ch.len_utf8();
    }
    out
}

/// One way a character may be written; encoded spellings compare ignoring ASCII case (hex
/// digits), which at worst hides a little more than needed.
struct Spelling {
    bytes: Vec<u8>,
    ignore_case: bool,
}

fn spellings(c: char) -> Vec<Spelling> {
    let exact = |s: &str| Spelling {
        bytes: s.as_bytes().to_vec(),
        ignore_case: false,
    };
    let encoded = |s: String| Spelling {
        bytes: s.into_bytes(),
        ignore_case: true,
    };
    let mut utf8 = [0u8; 4];
    let literal = c.encode_utf8(&mut utf8);
    let mut all = vec![
        exact(literal),
        encoded(literal.bytes().map(|b| format!("%{b:02X}")).collect()),
    ];
    if c == ' ' {
        all.push(exact("+"));
    }
    let mut units = [0u16; 2];
    all.push(encoded(
        c.encode_utf16(&mut units)
            .iter()
            .map(|u| format!("\\u{u:04X}"))
            .collect(),
    ));
    let short = match c {
        '"' => Some("\\\""),
        '\\' => Some("\\\\"),
        '/' => Some("\\/"),
        '\n' => Some("\\n"),
        '\r' => Some("\\r"),
        '\t' => Some("\\t"),
        '\u{8}' => Some("\\b"),
        '\u{c}' => Some("\\f"),
        _ => None,
    };
    all.extend(short.map(exact));
    all
}

/// Where the longest spelling of the whole secret that starts at `start` ends. The set of
/// positions reachable after each character is tracked (not one path at a time), so a secret
/// with many ambiguous characters cannot make this blow up.
fn longest_match(text: &[u8], start: usize, secret: &[Vec<Spelling>]) -> Option<usize> {
    let mut ends = vec![start];
    for spellings in secret {
        let mut next: Vec<usize> = Vec::new();
        for &at in &ends {
            for spelling in spellings {
                let end = at + spelling.bytes.len();
                let Some(found) = text.get(at..end) else {
                    continue;
                };
                let same = if spelling.ignore_case {
                    found.eq_ignore_ascii_case(&spelling.bytes)
                } else {
                    found == spelling.bytes.as_slice()
                };
                if same && !next.contains(&end) {
                    next.push(end);
                }
            }
        }
        if next.is_empty() {
            return None;
        }
        ends = next;
    }
    ends.into_iter().max()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr/t+key é\"x";

    fn scrubbed(text: &str) -> String {
        hide(text, SECRET, "[secret]")
    }

    #[test]
    fn every_spelling_of_a_secret_is_hidden() {
        let spellings = [
            SECRET.to_owned(),
            // form encoding (space as +), upper and lower hex
            "s3cr%2Ft%2Bkey+%C3%A9%22x".to_owned(),
            "s3cr%2ft%2bkey+%c3%a9%22x".to_owned(),
            // percent-encoding with %20 for the space, and only some characters encoded
            "s3cr%2Ft%2Bkey%20%C3%A9%22x".to_owned(),
            "s3cr/t%2Bkey é%22x".to_owned(),
            // JSON escapes: short forms and \u
            r#"s3cr\/t+key é\"x"#.to_owned(),
            r#"s3cr\u002Ft\u002bkey\u0020\u00E9\u0022x"#.to_owned(),
            r#"\u0073\u0033cr/t+key é"x"#.to_owned(),
        ];
        for spelling in spellings {
            let text = format!(r#"{{"error":"invalid_grant","message":"bad {spelling} here"}}"#);
            let out = scrubbed(&text);
            assert_eq!(
                out, r#"{"error":"invalid_grant","message":"bad [secret] here"}"#,
                "{spelling}"
            );
        }
    }

    #[test]
    fn characters_outside_the_basic_plane_match_as_json_surrogate_pairs() {
        let out = hide(r#"x \uD83D\uDE00 y 😀"#, "😀", "[s]");
        assert_eq!(out, "x [s] y [s]");
    }

    #[test]
    fn a_secret_straddling_the_cut_leaves_no_prefix() {
        for offset in 490..512 {
            let body = format!("{}{SECRET} and more text after it", "a".repeat(offset));
            let out = excerpt(body.as_bytes(), &[(SECRET, "[secret]")]);
            assert!(out.len() <= MAX_EXCERPT_BYTES);
            assert!(!out.contains("s3cr"), "offset {offset}: {out}");
        }
    }

    #[test]
    fn the_cut_falls_on_a_character_boundary() {
        let body = "é".repeat(600);
        let out = excerpt(body.as_bytes(), &[]);
        assert_eq!(out.len(), 512);
        assert!(out.chars().all(|c| c == 'é'));
    }

    #[test]
    fn codes_and_secrets_are_both_hidden_and_other_text_stays() {
        let code = "Adb74b75-1234";
        let body = format!(r#"code={code} secret=%73%33cr%2Ft%2Bkey+%C3%A9%22x ok"#);
        let out = excerpt(body.as_bytes(), &[(SECRET, "[secret]"), (code, "[code]")]);
        assert_eq!(out, "code=[code] secret=[secret] ok");
        assert_eq!(hide("nothing here", "", "[x]"), "nothing here");
    }

    #[test]
    fn ambiguous_secrets_do_not_blow_up() {
        let secret = "\\".repeat(64);
        let text = "\\".repeat(5000);
        let out = hide(&text, &secret, "[s]");
        assert!(!out.contains(&secret));
    }
}

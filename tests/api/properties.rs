//! Property tests for the two parsers of untrusted input: the callback's query string and
//! MondiaPay's answer to a token call. Random input must never panic, and whatever comes out must
//! keep the documented bounds.

use mondiapay_token_proxy::domain::NO_TOKEN_IN_ANSWER;
use mondiapay_token_proxy::http::public::query::{
    BadCallback, CallbackParams, MAX_QUERY_BYTES, parse,
};
use mondiapay_token_proxy::mondiapay::{Answer, DEFAULT_EXPIRES_IN_SECS, read_answer};
use proptest::prelude::*;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

const CASES: u32 = 512;
const MAX_EXPIRES_IN_SECS: u64 = 30 * 24 * 3600;
/// Blame the credentials whatever the status.
const CREDENTIAL_ERRORS: [&str; 5] = [
    "invalid_client",
    "unauthorized_client",
    "unauthorized",
    "forbidden",
    "authorization_failed",
];
/// Name the grant or the code: on a 401/403, a verdict on the code; any other error there
/// blames the credentials.
const CODE_ERRORS: [&str; 6] = [
    "invalid_grant",
    "invalid_request",
    "token_not_found",
    "token_expired",
    "token_context_is_not_valid",
    "invalid_parameters",
];

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(CASES)
}

// ---------------------------------------------------------------------------------------------
// The callback query
// ---------------------------------------------------------------------------------------------

/// The parameters the parser reads; the correlation parameter is `ref` in these tests.
const KNOWN: [&str; 6] = ["code", "error", "status", "message", "uuid", "ref"];

/// Everything an `Ok` may hold, whatever the query was.
fn assert_callback_invariants(params: &CallbackParams) -> Result<(), TestCaseError> {
    prop_assert!(
        params.code.is_some() || params.error.is_some(),
        "neither code nor error in {params:?}"
    );
    for (name, value, max) in [
        ("error", &params.error, 100),
        ("status", &params.status, 100),
        ("uuid", &params.uuid, 256),
        ("reference", &params.reference, 256),
        ("message", &params.message, 300),
    ] {
        if let Some(value) = value {
            prop_assert!(value.chars().count() <= max, "{name} too long: {value:?}");
            prop_assert!(
                !value.chars().any(char::is_control),
                "{name} has a control character: {value:?}"
            );
            prop_assert!(!value.is_empty(), "{name} is present but empty");
        }
    }
    if let Some(message) = &params.message {
        prop_assert!(
            !message.trim().is_empty(),
            "blank message kept: {message:?}"
        );
    }
    Ok(())
}

fn assert_any_query(raw: &str, correlation_param: &str) -> Result<(), TestCaseError> {
    let result = parse(raw, correlation_param);
    if raw.len() > MAX_QUERY_BYTES {
        prop_assert_eq!(result, Err(BadCallback::TooLong));
    } else if let Ok(params) = &result {
        assert_callback_invariants(params)?;
    }
    Ok(())
}

/// How one value travels in the query.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    /// Only what must be escaped is escaped.
    Minimal,
    /// Like `Minimal`, spaces as `+`.
    Plus,
    /// Every byte as `%XX`, in random hex case.
    Every { upper: bool },
}

fn encode(value: &str, encoding: Encoding) -> String {
    let mut out = String::new();
    for c in value.chars() {
        let must_escape = matches!(c, '&' | '=' | '+' | '%' | '#' | ' ') || c.is_control();
        let (escape, upper) = match encoding {
            Encoding::Plus if c == ' ' => {
                out.push('+');
                continue;
            }
            Encoding::Minimal | Encoding::Plus => (must_escape, true),
            Encoding::Every { upper } => (true, upper),
        };
        if !escape {
            out.push(c);
            continue;
        }
        let mut buf = [0; 4];
        for byte in c.encode_utf8(&mut buf).bytes() {
            if upper {
                out.push_str(&format!("%{byte:02X}"));
            } else {
                out.push_str(&format!("%{byte:02x}"));
            }
        }
    }
    out
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![
        Just(Encoding::Minimal),
        Just(Encoding::Plus),
        any::<bool>().prop_map(|upper| Encoding::Every { upper }),
    ]
}

/// Realistic values and the awkward ones: empty, blank, long, unicode, control characters.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9._~-]{1,40}",
        2 => "[A-Z_]{1,30}",
        2 => "[0-9]{1,4}",
        1 => Just(String::new()),
        1 => " {1,3}",
        1 => "[ -~]{0,60}",
        1 => "\\PC{0,60}",
        1 => any::<String>(),
        1 => "[a-z]{0,20}[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}][a-z ]{0,20}",
        1 => "[a-zA-Z ]{90,110}",
        1 => "[a-z0-9]{250,262}",
        1 => "[a-z é]{290,420}",
    ]
}

/// One `name=value` pair as decoded, and as it travels.
#[derive(Debug, Clone)]
struct Pair {
    name: String,
    value: String,
    encoding: Encoding,
}

impl Pair {
    fn raw(&self) -> String {
        format!("{}={}", self.name, encode(&self.value, self.encoding))
    }
}

fn pair(name: impl Strategy<Value = String>) -> impl Strategy<Value = Pair> {
    (name, value(), encoding()).prop_map(|(name, value, encoding)| Pair {
        name,
        value,
        encoding,
    })
}

fn known_name() -> impl Strategy<Value = String> {
    prop::sample::select(KNOWN.to_vec()).prop_map(str::to_owned)
}

fn noise_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("utm_source".to_owned()),
        Just("Code".to_owned()),
        Just("order".to_owned()),
        "[a-z_]{1,8}",
    ]
    .prop_filter("not a known name", |name| !KNOWN.contains(&name.as_str()))
}

/// A MondiaPay-like redirect: some of the known parameters in random order, sometimes repeated,
/// with noise parameters among them.
fn redirect() -> impl Strategy<Value = Vec<Pair>> {
    let known = prop::sample::subsequence(KNOWN.to_vec(), 0..=KNOWN.len()).prop_flat_map(|names| {
        names
            .into_iter()
            .map(|name| pair(Just(name.to_owned())))
            .collect::<Vec<_>>()
    });
    let repeats = prop::collection::vec(pair(known_name()), 0..=2);
    let repeats = prop_oneof![3 => Just(Vec::new()), 1 => repeats];
    let noise = prop::collection::vec(pair(noise_name()), 0..=3);
    (known, repeats, noise).prop_flat_map(|(mut known, repeats, noise)| {
        known.extend(repeats);
        known.extend(noise);
        Just(known).prop_shuffle()
    })
}

fn query(pairs: &[Pair]) -> String {
    pairs.iter().map(Pair::raw).collect::<Vec<_>>().join("&")
}

/// What the parser should make of a redirect short enough to be read at all: the documented
/// rules, applied to the decoded pairs.
fn expected(pairs: &[Pair]) -> Result<CallbackParams, BadCallback> {
    let mut seen: Vec<&str> = Vec::new();
    for pair in pairs {
        if KNOWN.contains(&pair.name.as_str()) {
            if seen.contains(&pair.name.as_str()) {
                return Err(BadCallback::Repeated(pair.name.clone()));
            }
            seen.push(&pair.name);
        }
    }
    let get = |name: &str| {
        pairs
            .iter()
            .find(|pair| pair.name == name)
            .map(|pair| pair.value.clone())
    };
    let mut params = CallbackParams {
        code: get("code"),
        error: get("error"),
        status: get("status"),
        message: get("message"),
        uuid: get("uuid"),
        reference: get("ref"),
    };
    for (name, slot, max) in [
        ("error", &mut params.error, 100),
        ("status", &mut params.status, 100),
        ("uuid", &mut params.uuid, 256),
        ("ref", &mut params.reference, 256),
    ] {
        if let Some(value) = slot.as_deref() {
            if value.chars().count() > max || value.chars().any(char::is_control) {
                return Err(BadCallback::BadValue(name.to_owned()));
            }
            if value.is_empty() {
                *slot = None;
            }
        }
    }
    // Only codes and numbers pass as MondiaPay's `error` and `status`; anything else is marked.
    params.error = params.error.map(|error| {
        let code = error.len() <= 64
            && error
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
        if code {
            error
        } else {
            "UNRECOGNISED_ERROR".to_owned()
        }
    });
    params.status = params.status.map(|status| {
        if status.len() <= 3 && status.bytes().all(|b| b.is_ascii_digit()) {
            status
        } else {
            "UNRECOGNISED_STATUS".to_owned()
        }
    });
    params.message = params
        .message
        .map(|m| m.chars().filter(|c| !c.is_control()).take(300).collect())
        .filter(|m: &String| !m.trim().is_empty());
    if params.code.is_none() && params.error.is_none() {
        return Err(BadCallback::NothingToDo);
    }
    Ok(params)
}

#[test]
fn any_string_is_a_safe_query() {
    proptest!(config(), |(raw in any::<String>())| {
        assert_any_query(&raw, "ref")?;
    });
}

#[test]
fn query_shaped_strings_are_safe() {
    let alphabet = "([a-z]{0,6}|code|error|status|message|uuid|ref|[=&+%#;]|%[0-9a-fA-F]{0,2}|\\PC{0,3}|[\\x00-\\x1f\\x7f])*";
    let correlation = prop_oneof![
        Just("ref".to_owned()),
        Just("order".to_owned()),
        Just("code".to_owned()),
        Just(String::new()),
        "\\PC{0,4}",
    ];
    proptest!(config(), |(raw in alphabet, correlation_param in correlation)| {
        assert_any_query(&raw, &correlation_param)?;
    });
}

#[test]
fn redirects_are_read_by_the_documented_rules() {
    proptest!(config(), |(pairs in redirect())| {
        let raw = query(&pairs);
        let result = parse(&raw, "ref");
        if raw.len() > MAX_QUERY_BYTES {
            prop_assert_eq!(result, Err(BadCallback::TooLong));
            return Ok(());
        }
        if let Ok(params) = &result {
            assert_callback_invariants(params)?;
        }
        let codes = pairs.iter().filter(|pair| pair.name == "code").count();
        if codes > 1 {
            prop_assert!(
                matches!(result, Err(BadCallback::Repeated(_))),
                "two codes, got {:?}", result
            );
        }
        prop_assert_eq!(result, expected(&pairs), "query {:?}", raw);
    });
}

#[test]
fn queries_past_the_limit_are_too_long() {
    let long = (redirect(), 0usize..200).prop_map(|(pairs, extra)| {
        let mut raw = query(&pairs);
        let missing = (MAX_QUERY_BYTES + 1 + extra).saturating_sub(raw.len() + 1);
        raw.push_str("&pad=");
        raw.push_str(&"x".repeat(missing));
        raw
    });
    proptest!(config(), |(raw in long)| {
        prop_assert!(raw.len() > MAX_QUERY_BYTES);
        prop_assert_eq!(parse(&raw, "ref"), Err(BadCallback::TooLong));
    });
}

#[test]
fn a_second_code_is_refused() {
    let twice = (
        redirect(),
        pair(Just("code".to_owned())),
        pair(Just("code".to_owned())),
    )
        .prop_flat_map(|(mut pairs, first, second)| {
            pairs.retain(|pair| pair.name != "code");
            pairs.push(first);
            pairs.push(second);
            Just(pairs).prop_shuffle()
        })
        .prop_filter("short enough to be read", |pairs| {
            query(pairs).len() <= MAX_QUERY_BYTES
        });
    proptest!(config(), |(pairs in twice)| {
        let result = parse(&query(&pairs), "ref");
        prop_assert!(matches!(result, Err(BadCallback::Repeated(_))), "got {:?}", result);
        let other_repeats = KNOWN[1..]
            .iter()
            .any(|name| pairs.iter().filter(|pair| pair.name == *name).count() > 1);
        if !other_repeats {
            prop_assert_eq!(result, Err(BadCallback::Repeated("code".to_owned())));
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The token answer
// ---------------------------------------------------------------------------------------------

fn always_unusable(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429 || (300..=399).contains(&status)
}

/// An error code as kept: never free text.
fn is_error_code(error: &str) -> bool {
    !error.is_empty()
        && error.chars().count() <= 64
        && error
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A 2xx spends the code and is never a credentials fault; otherwise a credential error code,
/// or a 401/403 that does not name the grant or the code.
fn blames_credentials(status: u16, error: &str) -> bool {
    let listed = |list: &[&str]| list.iter().any(|c| error.eq_ignore_ascii_case(c));
    !(200..=299).contains(&status)
        && (listed(&CREDENTIAL_ERRORS) || (matches!(status, 401 | 403) && !listed(&CODE_ERRORS)))
}

/// Everything an answer may be, whatever the status and body were.
fn assert_answer_invariants(status: u16, answer: &Answer) -> Result<(), TestCaseError> {
    if always_unusable(status) {
        prop_assert!(
            matches!(answer, Answer::Unusable(_)),
            "HTTP {status} gave {answer:?}"
        );
    }
    // A 2xx always spends the code; a 401/403 always has a verdict (the code's or the
    // credentials').
    if (200..=299).contains(&status) || matches!(status, 401 | 403) {
        prop_assert!(
            !matches!(answer, Answer::Unusable(_)),
            "HTTP {status} gave {answer:?}"
        );
    }
    match answer {
        Answer::Issued(token) => {
            prop_assert!((200..=299).contains(&status), "issued on HTTP {status}");
            prop_assert!(!token.access_token.expose_secret().is_empty());
            prop_assert_eq!(&token.token_type, &token.token_type.to_ascii_lowercase());
            prop_assert!(!token.token_type.is_empty());
            prop_assert!(token.expires_in <= MAX_EXPIRES_IN_SECS);
            if let Some(refresh) = &token.refresh_token {
                prop_assert!(!refresh.expose_secret().is_empty());
            }
        }
        Answer::CodeRejected(error) | Answer::CredentialsRejected(error) => {
            prop_assert_eq!(error.http_status, status);
            prop_assert!(is_error_code(&error.error), "{:?}", error.error);
            if let Some(message) = &error.message {
                prop_assert!(!message.is_empty());
                prop_assert!(message.chars().count() <= 300, "{:?}", message);
            }
            prop_assert_eq!(
                blames_credentials(status, &error.error),
                matches!(answer, Answer::CredentialsRejected(_)),
                "{:?}",
                answer
            );
        }
        Answer::Unusable(_) => {}
    }
    Ok(())
}

fn http_status() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => 200u16..=299,
        3 => 400u16..=499,
        1 => prop::sample::select(vec![200u16, 201, 204, 301, 302, 400, 401, 403, 408, 429, 500, 503]),
        2 => 100u16..=599,
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z0-9_.-]{1,24}",
        1 => Just(String::new()),
        1 => proptest::string::string_regex(&format!("\\PC{{0,{max}}}")).unwrap(),
        1 => proptest::string::string_regex(&format!("[a-zé]{{{},{}}}", max - 10, max + 300)).unwrap(),
        1 => any::<String>(),
    ]
}

/// Any JSON value that is not a string.
fn non_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(serde_json::json!([])),
        Just(serde_json::json!({"nested": "x"})),
    ]
}

fn string_or_not(text: impl Strategy<Value = String>) -> impl Strategy<Value = Value> {
    prop_oneof![3 => text.prop_map(Value::from), 1 => non_string()]
}

/// Flips the case of ASCII letters at random.
fn random_case(word: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), word.len()).prop_map(move |flips| {
        word.chars()
            .zip(flips)
            .map(|(c, flip)| {
                if flip {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    })
}

fn access_token() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "[A-Za-z0-9._~-]{1,64}".prop_map(Value::from),
        1 => Just(Value::from("")),
        1 => any::<String>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => non_string(),
    ]
}

fn expires_in() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (0u64..=200_000).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => (i64::MIN..0).prop_map(Value::from),
        1 => (0.0f64..1e7).prop_map(Value::from),
        1 => (-1e7f64..0.0).prop_map(Value::from),
        1 => prop::sample::select(vec![1e19, 1e300, f64::MAX, -0.0, 0.5, 2_592_000.9]).prop_map(Value::from),
        1 => (0u64..=u64::MAX).prop_map(|n| Value::from(n.to_string())),
        1 => (0u64..=10_000_000, " {0,2}", " {0,2}").prop_map(|(n, a, b)| Value::from(format!("{a}{n}{b}"))),
        1 => prop::sample::select(vec!["", "soon", "-5", "+60", "1e3", "3600.0", "99999999999999999999999"])
            .prop_map(Value::from),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::from),
    ]
}

fn token_type() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => random_case("bearer").prop_map(Value::from),
        1 => random_case("mac").prop_map(Value::from),
        1 => "[A-Za-z_-]{0,12}".prop_map(Value::from),
        1 => non_string(),
    ]
}

fn error_code() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => random_case("invalid_client").prop_map(Value::from),
        2 => random_case("unauthorized_client").prop_map(Value::from),
        2 => random_case("unauthorized").prop_map(Value::from),
        1 => prop::sample::select(vec!["invalid_grant", "TOKEN_NOT_FOUND", "unauthorized ", "invalid-client", "unauthorised"])
            .prop_map(Value::from),
        1 => (random_case("invalid_client"), "[a-z]{87,120}")
            .prop_map(|(c, tail)| Value::from(format!("{c}{tail}"))),
        3 => string_or_not(text(100)),
    ]
}

fn status_field() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => random_case("unauthorized").prop_map(Value::from),
        2 => prop::sample::select(vec!["BAD_REQUEST", "OK", "200", "SUCCESS"]).prop_map(Value::from),
        1 => string_or_not(text(100)),
    ]
}

/// A JSON object built from a random subset of the fields a token answer may have.
fn answer_body() -> impl Strategy<Value = Map<String, Value>> {
    let success = (
        prop::option::weighted(0.9, access_token()),
        prop::option::of(expires_in()),
        prop::option::of(token_type()),
        prop::option::of(string_or_not(text(64))),
    );
    let failure = (
        prop::option::weighted(0.4, error_code()),
        prop::option::weighted(0.3, status_field()),
        prop::option::weighted(0.3, string_or_not(text(300))),
        prop::option::weighted(0.3, string_or_not(text(300))),
    );
    let extra = prop::collection::btree_map("[a-z]{1,8}", non_string(), 0..3);
    (success, failure, extra).prop_map(
        |(
            (access_token, expires_in, token_type, refresh_token),
            (error, status, message, error_description),
            extra,
        )| {
            let mut fields: Map<String, Value> = extra.into_iter().collect();
            for (name, value) in [
                ("access_token", access_token),
                ("expires_in", expires_in),
                ("token_type", token_type),
                ("refresh_token", refresh_token),
                ("error", error),
                ("status", status),
                ("message", message),
                ("error_description", error_description),
            ] {
                match value {
                    Some(value) => {
                        fields.insert(name.to_owned(), value);
                    }
                    None => {
                        fields.remove(name);
                    }
                }
            }
            fields
        },
    )
}

/// The documented reading of an `expires_in`: a number or a numeric string of non-negative
/// seconds (a fraction cut); anything else counts as 12 hours.
fn expected_expires_in(value: Option<&Value>) -> u64 {
    let from_float = |f: f64| (f.is_finite() && f >= 0.0).then_some(f as u64);
    let seconds = match value {
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().and_then(from_float)),
        Some(Value::String(s)) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(from_float))
        }
        _ => None,
    };
    seconds
        .unwrap_or(DEFAULT_EXPIRES_IN_SECS)
        .min(MAX_EXPIRES_IN_SECS)
}

fn nonempty_str<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    fields
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn trimmed_str<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    fields
        .get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The error code kept for an error field: as given when it looks like one.
fn kept_error(error: &str) -> String {
    if is_error_code(error) {
        error.to_owned()
    } else {
        "UNRECOGNISED_ERROR".to_owned()
    }
}

/// Checks a structured answer against the documented classification.
fn assert_classified(
    status: u16,
    fields: &Map<String, Value>,
    answer: &Answer,
) -> Result<(), TestCaseError> {
    if always_unusable(status) {
        prop_assert!(matches!(answer, Answer::Unusable(_)), "{answer:?}");
        return Ok(());
    }
    let success = (200..=299).contains(&status);
    if success && let Some(access_token) = nonempty_str(fields, "access_token") {
        let Answer::Issued(token) = answer else {
            return Err(TestCaseError::fail(format!(
                "expected a token, got {answer:?}"
            )));
        };
        prop_assert_eq!(token.access_token.expose_secret(), access_token);
        prop_assert_eq!(
            token.expires_in,
            expected_expires_in(fields.get("expires_in"))
        );
        let token_type = nonempty_str(fields, "token_type")
            .map_or_else(|| "bearer".to_owned(), str::to_ascii_lowercase);
        prop_assert_eq!(&token.token_type, &token_type);
        prop_assert_eq!(
            token
                .refresh_token
                .as_ref()
                .map(|r| r.expose_secret().to_owned()),
            nonempty_str(fields, "refresh_token").map(str::to_owned)
        );
        return Ok(());
    }
    let error = trimmed_str(fields, "error")
        .or_else(|| trimmed_str(fields, "status").filter(|_| status >= 400));
    let Some(error) = error else {
        match answer {
            Answer::CodeRejected(got) if success => prop_assert_eq!(&got.error, NO_TOKEN_IN_ANSWER),
            Answer::CredentialsRejected(_) if matches!(status, 401 | 403) => {}
            Answer::Unusable(_) if !success && !matches!(status, 401 | 403) => {}
            other => {
                return Err(TestCaseError::fail(format!(
                    "no error code on HTTP {status} gave {other:?}"
                )));
            }
        }
        return Ok(());
    };
    let kept = kept_error(error);
    // A 4xx other than 400, 401 and 403 (a 404 from a wrong URL) is no verdict on the code,
    // unless its error blames the credentials.
    if !success && !matches!(status, 400 | 401 | 403) && !blames_credentials(status, &kept) {
        prop_assert!(matches!(answer, Answer::Unusable(_)), "{answer:?}");
        return Ok(());
    }
    let (Answer::CodeRejected(got) | Answer::CredentialsRejected(got)) = answer else {
        return Err(TestCaseError::fail(format!(
            "error {error:?} on HTTP {status} gave {answer:?}"
        )));
    };
    prop_assert_eq!(&got.error, &kept);
    prop_assert_eq!(
        blames_credentials(status, &kept),
        matches!(answer, Answer::CredentialsRejected(_))
    );
    let message = trimmed_str(fields, "error_description")
        .or_else(|| trimmed_str(fields, "message"))
        .map(|m| m.chars().take(300).collect::<String>());
    prop_assert_eq!(&got.message, &message);
    Ok(())
}

#[test]
fn any_status_and_bytes_are_a_safe_answer() {
    proptest!(config(), |(status in 100u16..=599, body in prop::collection::vec(any::<u8>(), 0..256))| {
        let answer = read_answer(status, &body);
        assert_answer_invariants(status, &answer)?;
    });
}

#[test]
fn json_shaped_bytes_are_a_safe_answer() {
    let body = "\\{(\"(access_token|expires_in|token_type|error|status|message)\":(\"[^\"]{0,8}\"|-?[0-9]{0,25}(\\.[0-9]{0,3})?(e[0-9]{0,3})?|null|true|\\{|\\[),?){0,6}\\}?";
    proptest!(config(), |(status in http_status(), body in body)| {
        let answer = read_answer(status, body.as_bytes());
        assert_answer_invariants(status, &answer)?;
    });
}

#[test]
fn structured_answers_are_classified_by_the_documented_rules() {
    proptest!(config(), |(status in http_status(), fields in answer_body())| {
        let body = serde_json::to_vec(&Value::Object(fields.clone())).unwrap();
        let answer = read_answer(status, &body);
        assert_answer_invariants(status, &answer)?;
        assert_classified(status, &fields, &answer)?;
    });
}

#[test]
fn issued_token_types_are_lower_case() {
    let answer = (
        200u16..=299,
        prop_oneof![random_case("bearer"), random_case("mac"), "[A-Za-z]{1,12}"],
        expires_in(),
    );
    proptest!(config(), |((status, token_type, expires_in) in answer)| {
        let body = serde_json::json!({
            "access_token": "U1",
            "token_type": token_type.clone(),
            "expires_in": expires_in,
        });
        if let Answer::Issued(token) = read_answer(status, body.to_string().as_bytes()) {
            prop_assert_eq!(&token.token_type, &token_type.to_lowercase());
            prop_assert!(token.expires_in <= MAX_EXPIRES_IN_SECS);
        }
    });
}

//! Property tests for the two parsers of untrusted input: the callback's query string and
//! MondiaPay's answer to a token call.
//!
//! The oracle is a model of what the sender meant, not a second copy of the parser's rules: a
//! redirect is built from the parameters MondiaPay means to send, written by a real URL encoder,
//! and must parse back to them; an answer is built from what MondiaPay means (a token, a verdict
//! on the code, a refusal of the credentials, no verdict; MONDIAPAY.md and the SPEC name the
//! error codes used here) and must be classified as meant. Each way of spoiling a redirect is a
//! property of its own that says what the SPEC promises for it. Random input, for both, must
//! never panic and whatever comes out keeps the documented bounds.

use mondiapay_token_proxy::domain::NO_TOKEN_IN_ANSWER;
use mondiapay_token_proxy::http::public::query::{
    BadCallback, CallbackParams, MAX_QUERY_BYTES, parse,
};
use mondiapay_token_proxy::mondiapay::{Answer, DEFAULT_EXPIRES_IN_SECS, read_answer};
use proptest::prelude::*;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

const CASES: u32 = 512;
const MAX_EXPIRES_IN_SECS: u64 = 30 * 24 * 3600;
/// The longest `error` and `status` a callback may carry, and the longest `uuid` and `ref`.
const MAX_ERROR_CHARS: usize = 100;
const MAX_LABEL_CHARS: usize = 256;
const MAX_MESSAGE_CHARS: usize = 300;

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
        ("error", &params.error, MAX_ERROR_CHARS),
        ("status", &params.status, MAX_ERROR_CHARS),
        ("uuid", &params.uuid, MAX_LABEL_CHARS),
        ("reference", &params.reference, MAX_LABEL_CHARS),
        ("message", &params.message, MAX_MESSAGE_CHARS),
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

/// How one pair travels in the query.
#[derive(Debug, Clone, Copy)]
enum Spelling {
    /// As `application/x-www-form-urlencoded` writes it (`url`'s `form_urlencoded`): spaces as
    /// `+`, what must be escaped as upper-case `%XX`.
    Form,
    /// Every byte of the value as `%XX`, in one hex case: what a decoder must read too.
    EveryByte { upper: bool },
}

/// One `name=value` pair as meant, and how it travels.
#[derive(Debug, Clone)]
struct Pair {
    name: String,
    value: String,
    spelling: Spelling,
}

impl Pair {
    fn raw(&self) -> String {
        match self.spelling {
            Spelling::Form => form_urlencoded::Serializer::new(String::new())
                .append_pair(&self.name, &self.value)
                .finish(),
            Spelling::EveryByte { upper } => {
                let value: String = self
                    .value
                    .bytes()
                    .map(|byte| {
                        if upper {
                            format!("%{byte:02X}")
                        } else {
                            format!("%{byte:02x}")
                        }
                    })
                    .collect();
                format!("{}={value}", self.name)
            }
        }
    }
}

fn spelling() -> impl Strategy<Value = Spelling> {
    prop_oneof![
        2 => Just(Spelling::Form),
        1 => any::<bool>().prop_map(|upper| Spelling::EveryByte { upper }),
    ]
}

fn query(pairs: &[Pair]) -> String {
    pairs.iter().map(Pair::raw).collect::<Vec<_>>().join("&")
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

fn pair(name: impl Strategy<Value = String>) -> impl Strategy<Value = Pair> {
    (name, value(), spelling()).prop_map(|(name, value, spelling)| Pair {
        name,
        value,
        spelling,
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
    .prop_filter("not a known name", |name| {
        !KNOWN.contains(&name.as_str()) && name != "purchase"
    })
}

/// Parameters this service does not read, anywhere in the query, with any value.
fn noise() -> impl Strategy<Value = Vec<Pair>> {
    prop::collection::vec(pair(noise_name()), 0..=3)
}

/// What a MondiaPay redirect means to say (MONDIAPAY.md's redirect parameters, plus the
/// merchant's `ref`), each value one MondiaPay or a merchant could send.
fn redirect_model() -> impl Strategy<Value = CallbackParams> {
    let code = "A[A-Za-z0-9._~-]{1,80}";
    let error = prop_oneof![
        Just("INSUFFICIENT_FUNDS".to_owned()),
        Just("USER_ALREADY_SUBSCRIBED".to_owned()),
        Just("USER_DECLINED_PURCHASE_DURING_CONFIRMATION".to_owned()),
        "[A-Za-z0-9_.-]{1,64}",
    ];
    let status = "[0-9]{1,3}";
    // Free text: never blank, every character printable, characters a URL must escape among them.
    let message = ("[A-Za-z0-9é]", "[A-Za-z0-9 .,!?'é&=+%#;/-]{0,280}")
        .prop_map(|(first, rest)| format!("{first}{rest}"));
    let label = prop_oneof![
        3 => "[A-Za-z0-9-]{1,40}",
        1 => "[ -~é]{1,256}".prop_filter("not empty", |s| !s.is_empty()),
        1 => "\\PC{1,120}",
    ];
    (
        prop::option::of(code),
        prop::option::of(error),
        prop::option::of(status),
        prop::option::of(message),
        prop::option::of(label.clone()),
        prop::option::of(label),
    )
        .prop_map(
            |(code, error, status, message, uuid, reference)| CallbackParams {
                code,
                error,
                status,
                message,
                uuid,
                reference,
                purchase: None,
            },
        )
        .prop_filter("a code or an error: something to do", |model| {
            model.code.is_some() || model.error.is_some()
        })
}

/// The model's parameters as `name=value` pairs.
fn pairs_of(model: &CallbackParams) -> Vec<(&'static str, String)> {
    [
        ("code", &model.code),
        ("error", &model.error),
        ("status", &model.status),
        ("message", &model.message),
        ("uuid", &model.uuid),
        ("ref", &model.reference),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, value.clone()?)))
    .collect()
}

/// The redirect for `model`, with `extra` pairs of the caller's and noise, in random order, each
/// pair spelled one way or another.
fn redirect_with(
    model: CallbackParams,
    extra: Vec<(String, String)>,
) -> impl Strategy<Value = (CallbackParams, Vec<Pair>)> {
    let mut meant: Vec<(String, String)> = pairs_of(&model)
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    meant.extend(extra);
    let spellings = prop::collection::vec(spelling(), meant.len());
    (spellings, noise()).prop_flat_map(move |(spellings, noise)| {
        let mut pairs: Vec<Pair> = meant
            .iter()
            .cloned()
            .zip(spellings)
            .map(|((name, value), spelling)| Pair {
                name,
                value,
                spelling,
            })
            .collect();
        pairs.extend(noise);
        (Just(model.clone()), Just(pairs).prop_shuffle())
    })
}

/// A redirect for a model, as MondiaPay would send it.
fn redirect() -> impl Strategy<Value = (CallbackParams, Vec<Pair>)> {
    redirect_model().prop_flat_map(|model| redirect_with(model, Vec::new()))
}

/// Parses `pairs` as a query short enough to be read (longer ones are another property's).
fn parse_short(pairs: &[Pair]) -> Result<Result<CallbackParams, BadCallback>, TestCaseError> {
    let raw = query(pairs);
    prop_assume!(raw.len() <= MAX_QUERY_BYTES, "too long to be read");
    Ok(parse(&raw, "ref"))
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

/// Any mix of known and unknown names with any values: safe, and within the bounds.
#[test]
fn random_redirect_shaped_queries_are_safe() {
    let pairs = (prop::collection::vec(pair(known_name()), 0..=8), noise()).prop_flat_map(
        |(mut pairs, noise)| {
            pairs.extend(noise);
            Just(pairs).prop_shuffle()
        },
    );
    proptest!(config(), |(pairs in pairs)| {
        assert_any_query(&query(&pairs), "ref")?;
    });
}

#[test]
fn a_redirect_parses_back_to_what_it_was_built_from() {
    proptest!(config(), |((model, pairs) in redirect())| {
        prop_assert_eq!(parse_short(&pairs)?, Ok(model), "query {:?}", query(&pairs));
    });
}

#[test]
fn queries_past_the_limit_are_too_long() {
    let long = (redirect(), 0usize..200).prop_map(|((_, pairs), extra)| {
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

/// SPEC: a repeated `code` is a `400`; so is any other parameter this service reads, named.
#[test]
fn a_repeated_parameter_is_refused_by_its_name() {
    let repeated = (redirect_model(), known_name(), value(), value()).prop_flat_map(
        |(model, name, first, second)| {
            let present = pairs_of(&model).iter().any(|(known, _)| *known == name);
            let mut extra = vec![(name.clone(), first)];
            if !present {
                extra.push((name.clone(), second));
            }
            (Just(name), redirect_with(model, extra))
        },
    );
    proptest!(config(), |((name, (_, pairs)) in repeated)| {
        prop_assert_eq!(parse_short(&pairs)?, Err(BadCallback::Repeated(name)));
    });
}

/// SPEC: a second `code` is a `400`, whatever else the query holds or repeats.
#[test]
fn a_second_code_is_refused() {
    let twice = (
        redirect(),
        pair(Just("code".to_owned())),
        pair(Just("code".to_owned())),
        prop::collection::vec(pair(known_name()), 0..=2),
    )
        .prop_flat_map(|((_, mut pairs), first, second, repeats)| {
            pairs.retain(|pair| pair.name != "code");
            pairs.extend([first, second]);
            pairs.extend(repeats);
            Just(pairs).prop_shuffle()
        });
    proptest!(config(), |(pairs in twice)| {
        let result = parse_short(&pairs)?;
        prop_assert!(matches!(result, Err(BadCallback::Repeated(_))), "got {:?}", result);
        let other_repeats = KNOWN[1..]
            .iter()
            .any(|name| pairs.iter().filter(|pair| pair.name == *name).count() > 1);
        if !other_repeats {
            prop_assert_eq!(result, Err(BadCallback::Repeated("code".to_owned())));
        }
    });
}

/// A value too long, or with a control character, where a short printable one belongs.
fn unusable_value(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex(&format!("[A-Za-z0-9_]{{{},{}}}", max + 1, max + 40))
            .unwrap(),
        (
            "[A-Za-z0-9_]{0,20}",
            "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}]",
            "[A-Za-z0-9_]{0,20}"
        )
            .prop_map(|(a, control, b)| format!("{a}{control}{b}")),
    ]
}

#[test]
fn an_unusable_error_status_uuid_or_ref_is_refused_by_its_name() {
    let spoiled = (
        redirect_model(),
        prop::sample::select(vec![
            ("error", MAX_ERROR_CHARS),
            ("status", MAX_ERROR_CHARS),
            ("uuid", MAX_LABEL_CHARS),
            ("ref", MAX_LABEL_CHARS),
        ]),
    )
        .prop_flat_map(|(model, (name, max))| {
            (unusable_value(max), Just(name)).prop_flat_map(move |(bad, name)| {
                let mut model = model.clone();
                let slot = match name {
                    "error" => &mut model.error,
                    "status" => &mut model.status,
                    "uuid" => &mut model.uuid,
                    _ => &mut model.reference,
                };
                *slot = Some(bad);
                (Just(name), redirect_with(model, Vec::new()))
            })
        });
    proptest!(config(), |((name, (_, pairs)) in spoiled)| {
        prop_assert_eq!(parse_short(&pairs)?, Err(BadCallback::BadValue(name.to_owned())));
    });
}

/// SPEC (pages and lists): `error` and `status` pass only as MondiaPay's codes and numbers; free
/// text in their place is kept as the fixed word for "not one", never as written.
#[test]
fn free_text_where_a_code_or_a_number_belongs_is_marked_unrecognised() {
    let not_a_code = prop_oneof!["[A-Za-z_]{0,10}[ !'/é<>][A-Za-z _]{0,10}", "[A-Z_]{65,100}",];
    let not_a_number = prop_oneof![
        "[0-9]{4,9}",
        "[0-9]{0,2}[A-Za-z .+-][0-9]{0,2}",
        " {1,3}200"
    ];
    let spoiled = (redirect_model(), not_a_code, not_a_number, any::<bool>()).prop_flat_map(
        |(mut model, text, number, spoil_error)| {
            let mut meant = model.clone();
            if spoil_error {
                model.error = Some(text);
                meant.error = Some("UNRECOGNISED_ERROR".to_owned());
            } else {
                model.status = Some(number);
                meant.status = Some("UNRECOGNISED_STATUS".to_owned());
            }
            (Just(meant), redirect_with(model, Vec::new()))
        },
    );
    proptest!(config(), |((meant, (_, pairs)) in spoiled)| {
        prop_assert_eq!(parse_short(&pairs)?, Ok(meant));
    });
}

/// An empty `error`, `status`, `uuid`, `ref` or `message`, or a blank `message`, is as if it
/// were not there.
#[test]
fn empty_values_count_as_absent() {
    let with_empties = (
        redirect_model(),
        prop::sample::subsequence(vec!["error", "status", "message", "uuid", "ref"], 1..=5),
        " {1,4}",
    )
        .prop_flat_map(|(model, names, blank)| {
            let present: Vec<&str> = pairs_of(&model).iter().map(|(name, _)| *name).collect();
            let extra = names
                .into_iter()
                .filter(|name| !present.contains(name))
                .map(|name| {
                    let value = if name == "message" {
                        blank.clone()
                    } else {
                        String::new()
                    };
                    (name.to_owned(), value)
                })
                .collect();
            redirect_with(model, extra)
        });
    proptest!(config(), |((model, pairs) in with_empties)| {
        prop_assert_eq!(parse_short(&pairs)?, Ok(model));
    });
}

/// MondiaPay's `message` is kept printable and short: control characters dropped, the text cut
/// at 300 characters.
#[test]
fn a_message_is_kept_printable_and_short() {
    let spoiled = (
        redirect_model(),
        "[A-Za-z][a-z é]{0,400}",
        prop::collection::vec(
            (
                "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}]",
                any::<prop::sample::Index>(),
            ),
            0..4,
        ),
    )
        .prop_flat_map(|(mut model, text, controls)| {
            let mut sent: Vec<char> = text.chars().collect();
            for (control, at) in controls {
                let at = at.index(sent.len() + 1);
                sent.splice(at..at, control.chars());
            }
            let mut meant = model.clone();
            meant.message = Some(text.chars().take(MAX_MESSAGE_CHARS).collect());
            model.message = Some(sent.into_iter().collect());
            (Just(meant), redirect_with(model, Vec::new()))
        });
    proptest!(config(), |((meant, (_, pairs)) in spoiled)| {
        prop_assert_eq!(parse_short(&pairs)?, Ok(meant));
    });
}

/// SPEC: no `code` and no `error` is a `400`, whatever else the query holds.
#[test]
fn neither_code_nor_error_is_nothing_to_do() {
    let idle = redirect_model().prop_flat_map(|mut model| {
        model.code = None;
        model.error = None;
        redirect_with(model, Vec::new())
    });
    proptest!(config(), |((_, pairs) in idle)| {
        prop_assert_eq!(parse_short(&pairs)?, Err(BadCallback::NothingToDo));
    });
}

// ---------------------------------------------------------------------------------------------
// The token answer
// ---------------------------------------------------------------------------------------------

/// Statuses that are no verdict whatever the body: a server error, a timeout, too many
/// requests, a redirect (not followed).
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
            // SPEC: a 2xx spends the code, so it is never the credentials' fault.
            prop_assert!(
                !(200..=299).contains(&status) || matches!(answer, Answer::CodeRejected(_)),
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
        Just(json!([])),
        Just(json!({"nested": "x"})),
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

fn error_field() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => random_case("invalid_client").prop_map(Value::from),
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
        prop::option::weighted(0.4, error_field()),
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

/// Any mix of the fields an answer may have: safe and bounded, and (SPEC) a `2xx` with a
/// non-empty `access_token` is that token, whatever else the answer holds.
#[test]
fn random_answer_fields_are_safe_and_a_2xx_with_a_token_issues_it() {
    proptest!(config(), |(status in http_status(), fields in answer_body())| {
        let body = serde_json::to_vec(&Value::Object(fields.clone())).unwrap();
        let answer = read_answer(status, &body);
        assert_answer_invariants(status, &answer)?;
        let sent = fields.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty());
        if let (true, Some(sent)) = ((200..=299).contains(&status), sent) {
            let Answer::Issued(token) = &answer else {
                let expected = format!("expected {sent:?} issued, got {answer:?}");
                return Err(TestCaseError::fail(expected));
            };
            prop_assert_eq!(token.access_token.expose_secret(), sent);
        }
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
        let body = json!({
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

// --- Answers built from what MondiaPay means ---------------------------------------------------

/// How long MondiaPay says a token lives, and how it writes it (MONDIAPAY.md: a number or a
/// numeric string, "43200" in its examples; a missing one means 12 hours).
#[derive(Debug, Clone)]
enum Lifetime {
    /// Left out, or `null`.
    Unsaid { null: bool },
    /// A number of seconds, and how MondiaPay wrote it.
    Seconds { seconds: u64, written: Value },
    /// Written, but not as a number of seconds: the token still lives the documented 12 hours.
    Unreadable(Value),
}

impl Lifetime {
    fn expected(&self) -> u64 {
        match self {
            Self::Seconds { seconds, .. } => (*seconds).min(MAX_EXPIRES_IN_SECS),
            Self::Unsaid { .. } | Self::Unreadable(_) => DEFAULT_EXPIRES_IN_SECS,
        }
    }
}

fn lifetime() -> impl Strategy<Value = Lifetime> {
    let seconds = prop_oneof![3 => 0u64..=200_000, 1 => 0u64..=1_000_000_000_000];
    let written = seconds.prop_flat_map(|seconds| {
        let spellings = prop_oneof![
            Just(Value::from(seconds)),
            Just(Value::from(seconds.to_string())),
            (" {0,2}", " {0,2}").prop_map(move |(a, b)| Value::from(format!("{a}{seconds}{b}"))),
            // A fraction is cut to whole seconds.
            Just(Value::from(seconds as f64 + 0.5)),
            Just(Value::from(format!("{seconds}.25"))),
        ];
        spellings.prop_map(move |written| Lifetime::Seconds { seconds, written })
    });
    let unreadable = prop_oneof![
        (i64::MIN..0).prop_map(Value::from),
        (-1e7f64..-0.001).prop_map(Value::from),
        prop::sample::select(vec!["", "soon", "-5", "twelve hours", "1e400"]).prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(json!([43200])),
        Just(json!({"seconds": 1})),
    ];
    prop_oneof![
        2 => any::<bool>().prop_map(|null| Lifetime::Unsaid { null }),
        4 => written,
        2 => unreadable.prop_map(Lifetime::Unreadable),
    ]
}

/// How an error answer is written: RFC 6749's shape, or MondiaPay's own (its class in `status`,
/// the detail in `error`, text in `message`).
#[derive(Debug, Clone, Copy)]
enum Shape {
    Rfc6749,
    MondiaPay,
}

/// What MondiaPay means by an answer.
#[derive(Debug, Clone)]
enum Meant {
    /// A token (MONDIAPAY.md's success body), with a type in any case, a lifetime in one of its
    /// spellings, fields nobody documented, and sometimes an `error` beside it.
    Token {
        status: u16,
        access_token: String,
        token_type: Option<String>,
        lifetime: Lifetime,
        refresh_token: Option<String>,
        extra: Map<String, Value>,
    },
    /// A `2xx` without a usable token: the code is spent all the same (SPEC).
    SpentWithoutToken {
        status: u16,
        error: Option<String>,
        access_token: Option<Value>,
    },
    /// A verdict on the code: final.
    CodeRejected {
        status: u16,
        error: String,
        message: Option<String>,
        shape: Shape,
    },
    /// The merchant's own credentials refused: a configuration fault, not the code's.
    CredentialsRefused {
        status: u16,
        error: Option<String>,
        shape: Shape,
    },
    /// No verdict on the code at all.
    NoVerdict { status: u16, body: Vec<u8> },
}

/// Error codes that name the grant or the code: RFC 6749's, and MondiaPay's `401` codes about
/// the token or its context (MONDIAPAY.md).
fn naming_the_code() -> impl Strategy<Value = String> {
    prop_oneof![
        random_case("invalid_grant"),
        Just("TOKEN_NOT_FOUND".to_owned()),
        Just("TOKEN_CONTEXT_IS_NOT_VALID".to_owned()),
    ]
}

/// Error codes that blame the merchant's credentials whatever the status: the SPEC's
/// `invalid_client` and `UNAUTHORIZED`, RFC 6749's `unauthorized_client`, and MondiaPay's `403`
/// codes (MONDIAPAY.md).
fn blaming_the_credentials() -> impl Strategy<Value = String> {
    prop_oneof![
        random_case("invalid_client"),
        random_case("unauthorized_client"),
        random_case("UNAUTHORIZED"),
        random_case("FORBIDDEN"),
        random_case("AUTHORIZATION_FAILED"),
    ]
}

/// An error code that says nothing of the code nor of the credentials.
fn unrelated_error_code() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Z]{3,10}_[A-Z]{3,10}", "[a-z]{3,8}_[a-z]{3,8}\\.[0-9]"]
}

/// What a `400` may name besides the grant: MondiaPay's documented `400` codes, or another.
fn on_a_400() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("INVALID_PARAMETERS".to_owned()),
        Just("BAD_REQUEST".to_owned()),
        unrelated_error_code(),
    ]
}

/// Free text for `message` or `error_description`, perhaps long, perhaps padded.
fn message() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        3 => "[A-Za-z][A-Za-z0-9 .,]{0,80}",
        1 => " {1,2}[A-Za-z][a-z é]{250,400} {0,2}",
    ])
}

fn meant() -> impl Strategy<Value = Meant> {
    let shape = prop_oneof![Just(Shape::Rfc6749), Just(Shape::MondiaPay)];
    let token = (
        200u16..=299,
        "[A-Za-z0-9._~-]{1,64}",
        prop::option::of(prop_oneof![random_case("bearer"), "[A-Za-z]{1,12}"]),
        lifetime(),
        prop::option::of("R[A-Za-z0-9._~-]{1,64}"),
        prop::collection::btree_map(
            prop_oneof!["[a-z]{1,8}", Just("error".to_owned())],
            prop_oneof![non_string(), "[A-Za-z_]{1,12}".prop_map(Value::from)],
            0..3,
        ),
    )
        .prop_map(
            |(status, access_token, token_type, lifetime, refresh_token, extra)| Meant::Token {
                status,
                access_token,
                token_type,
                lifetime,
                refresh_token,
                extra: extra
                    .into_iter()
                    .filter(|(name, _)| {
                        !["access_token", "token_type", "expires_in", "refresh_token"]
                            .contains(&name.as_str())
                    })
                    .collect(),
            },
        );
    let spent = (
        200u16..=299,
        prop::option::of(on_a_400()),
        prop::option::of(prop_oneof![
            Just(Value::from("")),
            Just(Value::Null),
            any::<u64>().prop_map(Value::from),
        ]),
    )
        .prop_map(|(status, error, access_token)| Meant::SpentWithoutToken {
            status,
            error,
            access_token,
        });
    let on_400 = prop_oneof![naming_the_code(), on_a_400()];
    let rejected = prop_oneof![
        (Just(400u16), on_400.boxed()),
        (
            prop::sample::select(vec![401u16, 403]),
            naming_the_code().boxed()
        ),
    ]
    .prop_flat_map(move |(status, error)| {
        (message(), shape.clone()).prop_map(move |(message, shape)| Meant::CodeRejected {
            status,
            error: error.clone(),
            message,
            shape,
        })
    });
    let shape = prop_oneof![Just(Shape::Rfc6749), Just(Shape::MondiaPay)];
    let refused = prop_oneof![
        (
            prop::sample::select(vec![400u16, 401, 403]),
            blaming_the_credentials().prop_map(Some).boxed()
        ),
        // SPEC: any 401/403 that does not name the grant or the code, or names nothing.
        (
            prop::sample::select(vec![401u16, 403]),
            prop::option::of(unrelated_error_code()).boxed()
        ),
    ]
    .prop_flat_map(move |(status, error)| {
        shape
            .clone()
            .prop_map(move |shape| Meant::CredentialsRefused {
                status,
                error: error.clone(),
                shape,
            })
    });
    let no_verdict_status = prop_oneof![500u16..=599, 300u16..=399, Just(408u16), Just(429u16),];
    let any_body = prop_oneof![
        Just(Vec::new()),
        Just(b"<html>Bad Gateway</html>".to_vec()),
        prop::collection::vec(any::<u8>(), 0..64),
        Just(br#"{"access_token":"U1","expires_in":"43200"}"#.to_vec()),
        (blaming_the_credentials(), naming_the_code())
            .prop_map(|(a, b)| format!(r#"{{"error":"{a}","status":"{b}"}}"#).into_bytes()),
    ];
    // A 4xx other than 400, 401 and 403 speaks of the endpoint (a wrong URL), not the code.
    let endpoint_status =
        (402u16..=499).prop_filter("not 403, 408 nor 429", |s| !matches!(s, 403 | 408 | 429));
    let endpoint_body = prop_oneof![
        Just(br#"{"error":"Not Found"}"#.to_vec()),
        Just(Vec::new()),
        Just(b"{}".to_vec()),
        naming_the_code().prop_map(|e| format!(r#"{{"error":"{e}"}}"#).into_bytes()),
        on_a_400().prop_map(|e| format!(r#"{{"error":"{e}"}}"#).into_bytes()),
    ];
    let no_verdict = prop_oneof![
        (no_verdict_status, any_body),
        (endpoint_status, endpoint_body),
    ]
    .prop_map(|(status, body)| Meant::NoVerdict { status, body });
    prop_oneof![
        3 => token,
        1 => spent,
        2 => rejected,
        2 => refused,
        2 => no_verdict,
    ]
}

/// An error body in `shape` for HTTP `status`.
fn error_body(status: u16, shape: Shape, error: Option<&str>, message: Option<&str>) -> Vec<u8> {
    let mut fields = Map::new();
    let mut put = |name: &str, value: Option<&str>| {
        if let Some(value) = value {
            fields.insert(name.to_owned(), Value::from(value));
        }
    };
    match shape {
        Shape::Rfc6749 => {
            put("error", error);
            put("error_description", message);
        }
        Shape::MondiaPay => {
            let class = match status {
                400 => "BAD_REQUEST",
                401 => "UNAUTHORIZED",
                _ => "FORBIDDEN",
            };
            put("status", Some(class));
            put("error", error);
            put("message", message);
            put("trace", Some("d41d8cd98f00b204"));
        }
    }
    if fields.is_empty() {
        return Vec::new();
    }
    serde_json::to_vec(&fields).unwrap()
}

impl Meant {
    /// The status and body MondiaPay answers with.
    fn answer(&self) -> (u16, Vec<u8>) {
        match self {
            Self::Token {
                status,
                access_token,
                token_type,
                lifetime,
                refresh_token,
                extra,
            } => {
                let mut fields = extra.clone();
                fields.insert("access_token".into(), Value::from(access_token.as_str()));
                if let Some(token_type) = token_type {
                    fields.insert("token_type".into(), Value::from(token_type.as_str()));
                }
                match lifetime {
                    Lifetime::Unsaid { null: false } => {}
                    Lifetime::Unsaid { null: true } => {
                        fields.insert("expires_in".into(), Value::Null);
                    }
                    Lifetime::Seconds { written, .. } | Lifetime::Unreadable(written) => {
                        fields.insert("expires_in".into(), written.clone());
                    }
                }
                if let Some(refresh_token) = refresh_token {
                    fields.insert("refresh_token".into(), Value::from(refresh_token.as_str()));
                }
                (*status, serde_json::to_vec(&fields).unwrap())
            }
            Self::SpentWithoutToken {
                status,
                error,
                access_token,
            } => {
                let mut fields = Map::new();
                if let Some(error) = error {
                    fields.insert("error".into(), Value::from(error.as_str()));
                }
                if let Some(access_token) = access_token {
                    fields.insert("access_token".into(), access_token.clone());
                }
                (*status, serde_json::to_vec(&fields).unwrap())
            }
            Self::CodeRejected {
                status,
                error,
                message,
                shape,
            } => (
                *status,
                error_body(*status, *shape, Some(error), message.as_deref()),
            ),
            Self::CredentialsRefused {
                status,
                error,
                shape,
            } => (*status, error_body(*status, *shape, error.as_deref(), None)),
            Self::NoVerdict { status, body } => (*status, body.clone()),
        }
    }

    /// Checks that `answer` says what was meant.
    fn check(&self, answer: &Answer) -> Result<(), TestCaseError> {
        match (self, answer) {
            (
                Self::Token {
                    access_token,
                    token_type,
                    lifetime,
                    refresh_token,
                    ..
                },
                Answer::Issued(token),
            ) => {
                prop_assert_eq!(token.access_token.expose_secret(), access_token.as_str());
                let kind = token_type
                    .as_deref()
                    .filter(|t| !t.is_empty())
                    .unwrap_or("bearer");
                prop_assert_eq!(&token.token_type, &kind.to_ascii_lowercase());
                prop_assert_eq!(token.expires_in, lifetime.expected());
                prop_assert_eq!(
                    token.refresh_token.as_ref().map(|r| r.expose_secret()),
                    refresh_token.as_deref()
                );
            }
            (Self::SpentWithoutToken { error, .. }, Answer::CodeRejected(got)) => {
                prop_assert_eq!(
                    got.error.as_str(),
                    error.as_deref().unwrap_or(NO_TOKEN_IN_ANSWER)
                );
            }
            (
                Self::CodeRejected {
                    status,
                    error,
                    message,
                    ..
                },
                Answer::CodeRejected(got),
            ) => {
                prop_assert_eq!(got.http_status, *status);
                prop_assert_eq!(&got.error, error);
                let kept = message
                    .as_deref()
                    .map(|m| m.trim().chars().take(MAX_MESSAGE_CHARS).collect::<String>());
                prop_assert_eq!(&got.message, &kept);
            }
            (Self::CredentialsRefused { status, error, .. }, Answer::CredentialsRejected(got)) => {
                prop_assert_eq!(got.http_status, *status);
                if let Some(error) = error {
                    prop_assert_eq!(&got.error, error);
                }
            }
            (Self::NoVerdict { .. }, Answer::Unusable(_)) => {}
            (meant, answer) => {
                return Err(TestCaseError::fail(format!(
                    "meant {meant:?}, read as {answer:?}"
                )));
            }
        }
        Ok(())
    }
}

#[test]
fn an_answer_is_read_as_mondiapay_meant_it() {
    proptest!(config(), |(meant in meant())| {
        let (status, body) = meant.answer();
        let answer = read_answer(status, &body);
        assert_answer_invariants(status, &answer)?;
        meant.check(&answer)?;
    });
}

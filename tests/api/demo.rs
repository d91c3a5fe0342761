//! `demo`, the real binary: the round trip it prints is a list of `curl` commands a newcomer
//! can paste, each well-formed, with the demo's API key, and naming a route the SPEC defines.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

const BINARY: &str = env!("CARGO_BIN_EXE_mondiapay-token-proxy");

/// The internal API's routes as the SPEC names them: method, path template, query parameters.
const SPEC_ROUTES: &[(&str, &str, &[&str])] = &[
    ("POST", "/v1/exchange", &[]),
    ("GET", "/v1/tokens/{id}", &[]),
    ("GET", "/v1/tokens", &["ref", "uuid", "renew"]),
    ("DELETE", "/v1/tokens/{id}", &[]),
    ("GET", "/v1/callbacks", &["ref"]),
    ("POST", "/v1/purchases", &[]),
    ("GET", "/v1/purchases/{id}", &[]),
    ("GET", "/v1/purchases", &["ref"]),
    (
        "GET",
        "/v1/subscriptions",
        &["ref", "uuid", "token_id", "subscription_type_id"],
    ),
    (
        "DELETE",
        "/v1/subscriptions/{subscription_id}",
        &["ref", "uuid", "token_id", "immediately"],
    ),
    ("GET", "/v1/events", &["after", "limit", "wait"]),
];

/// The demo process, stopped when the test ends however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `demo` and reads what it prints, up to its last line.
fn demo_guide() -> (Running, String) {
    let mut child = Command::new(BINARY)
        .args(["demo", "--port", "0", "--internal-port", "0"])
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let running = Running(child);
    let mut guide = String::new();
    while !guide.contains("Ctrl-C stops it") {
        let read = stdout.read_line(&mut guide).unwrap();
        assert!(read > 0, "the demo ended before its guide did: {guide}");
    }
    (running, guide)
}

/// A command line split as a POSIX shell splits one made of plain words and '…' quotes.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            ' ' if !quoted => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(!quoted, "an unclosed quote: {line}");
    words.extend(word);
    words
}

/// One printed `curl`: its method, headers, body and URL.
struct Curl {
    method: String,
    headers: Vec<String>,
    body: Option<String>,
    url: Url,
}

fn read_curl(line: &str) -> Curl {
    let words = shell_words(line);
    assert_eq!(words[0], "curl", "{line}");
    let (mut method, mut headers, mut body, mut url) = ("GET".to_owned(), vec![], None, None);
    let mut words = words.into_iter().skip(1);
    while let Some(word) = words.next() {
        match word.as_str() {
            "-s" => {}
            "-X" => method = words.next().expect("a method after -X"),
            "-H" => headers.push(words.next().expect("a header after -H")),
            "-d" => body = Some(words.next().expect("a body after -d")),
            _ => {
                assert!(url.is_none(), "two URLs in {line}");
                url = Some(Url::parse(&word).unwrap_or_else(|e| panic!("{word}: {e}")));
            }
        }
    }
    Curl {
        method,
        headers,
        body,
        url: url.expect("a URL"),
    }
}

/// The `curl` commands the guide prints, in order.
fn printed_commands(guide: &str) -> Vec<Curl> {
    guide
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("curl "))
        .map(read_curl)
        .collect()
}

/// Whether `path` fits the SPEC's `template` (a `{…}` segment stands for any one segment).
fn fits(template: &str, path: &str) -> bool {
    let (template, path): (Vec<_>, Vec<_>) =
        (template.split('/').collect(), path.split('/').collect());
    template.len() == path.len()
        && template
            .iter()
            .zip(&path)
            .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
}

#[tokio::test]
async fn the_demo_prints_the_round_trip_as_well_formed_curl_commands_on_routes_the_spec_defines() {
    let (_demo, guide) = demo_guide();
    let curls = printed_commands(&guide);
    let mut steps = Vec::new();
    let internal = curls[0].url.origin();
    for curl in &curls {
        let path = curl.url.path();
        let (_, template, params) = SPEC_ROUTES
            .iter()
            .find(|(method, template, _)| *method == curl.method && fits(template, path))
            .unwrap_or_else(|| panic!("{} {path} is no route of the SPEC", curl.method));
        for (name, _) in curl.url.query_pairs() {
            assert!(params.contains(&name.as_ref()), "{name} on {template}");
        }
        assert_eq!(
            curl.url.origin(),
            internal,
            "every command goes to the internal listener"
        );
        let key = curl
            .headers
            .iter()
            .find_map(|header| header.strip_prefix("Authorization: Bearer "))
            .expect("every command carries the API key");
        assert!(key.len() >= 32);
        if let Some(body) = &curl.body {
            let body: Value = serde_json::from_str(body).expect("a JSON body");
            assert!(
                curl.headers
                    .contains(&"Content-Type: application/json".to_owned())
            );
            assert!(body["subscription_type_id"].is_u64(), "{body}");
            assert_eq!(body["ref"], "ORDER-1");
        }
        steps.push(format!("{} {template}", curl.method));
    }
    // The round trip, in order: start a purchase, the token, the subscription, its cancel, events.
    let order = [
        "POST /v1/purchases",
        "GET /v1/tokens",
        "GET /v1/subscriptions",
        "DELETE /v1/subscriptions/{subscription_id}",
        "GET /v1/events",
    ];
    let positions: Vec<_> = order
        .iter()
        .map(|step| {
            steps
                .iter()
                .position(|s| s == step)
                .unwrap_or_else(|| panic!("{step} missing: {steps:?}"))
        })
        .collect();
    assert!(positions.is_sorted(), "{steps:?}");
    assert!(guide.contains("redirect_url"), "{guide}");

    // The printed key and address are the running service's: a lookup is answered, not refused.
    let tokens = curls
        .iter()
        .find(|curl| curl.url.path() == "/v1/tokens")
        .unwrap();
    let mut request = reqwest::Client::new().get(tokens.url.clone());
    for header in &tokens.headers {
        let (name, value) = header.split_once(": ").unwrap();
        request = request.header(name, value);
    }
    let answer = request.send().await.unwrap();
    assert_eq!(
        answer.status(),
        StatusCode::NOT_FOUND,
        "no token yet, but the key works"
    );
}

/// Sends a printed command as `curl` would.
async fn paste(curl: &Curl) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(curl.method.as_bytes()).unwrap();
    let mut request = reqwest::Client::new().request(method, curl.url.clone());
    for header in &curl.headers {
        let (name, value) = header.split_once(": ").unwrap();
        request = request.header(name, value);
    }
    if let Some(body) = &curl.body {
        request = request.body(body.clone());
    }
    request.send().await.unwrap()
}

/// What a newcomer does with the guide: paste each command in turn, and do step 2 as the
/// browser would (the purchase page's form, then MondiaPay's redirect back to the service). The
/// round trip works end to end, on the ports `--port 0` picked.
#[tokio::test]
async fn pasting_the_demos_commands_runs_the_whole_round_trip() {
    let (_demo, guide) = demo_guide();
    let curls = printed_commands(&guide);
    let step = |path: &str, method: &str| {
        curls
            .iter()
            .find(|curl| curl.method == method && curl.url.path().starts_with(path))
            .unwrap_or_else(|| panic!("no {method} {path} in the guide"))
    };

    // 1. Start a purchase.
    let started = paste(step("/v1/purchases", "POST")).await;
    assert_eq!(started.status(), StatusCode::CREATED);
    let purchase: Value = started.json().await.unwrap();

    // 2. The browser: the purchase page, its "confirm" button, the redirect to the callback.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page_url = Url::parse(purchase["redirect_url"].as_str().unwrap()).unwrap();
    let page = browser.get(page_url.clone()).send().await.unwrap();
    let page = page.text().await.unwrap();
    let action = page
        .split("action=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the purchase page's form");
    let confirmed = browser
        .post(page_url.join(action).unwrap())
        .form(&[("decision", "confirm")])
        .send()
        .await
        .unwrap();
    let back = confirmed.headers()["location"].to_str().unwrap().to_owned();
    let callback = browser.get(&back).send().await.unwrap();
    assert_eq!(callback.status(), StatusCode::SEE_OTHER, "{back}");
    let result = callback.headers()["location"].to_str().unwrap().to_owned();
    assert!(result.starts_with("/oauth/result/res_"), "{result}");

    // 3. The token; 4. the subscription; 5. its cancel.
    let token = paste(step("/v1/tokens", "GET")).await;
    assert_eq!(token.status(), StatusCode::OK);
    let token: Value = token.json().await.unwrap();
    assert_eq!(token["ref"], "ORDER-1", "{token}");
    let subscriptions: Value = paste(step("/v1/subscriptions", "GET"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        subscriptions["subscriptions"][0]["id"], "1001",
        "{subscriptions}"
    );
    assert_eq!(subscriptions["subscriptions"][0]["state"], "ACTIVE");
    let cancelled = paste(step("/v1/subscriptions/", "DELETE")).await;
    assert_eq!(cancelled.status(), StatusCode::NO_CONTENT);

    // 6. The events: the printed command waits up to 5 s; pasted again until both are there.
    let events = step("/v1/events", "GET");
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..6 {
        let page: Value = paste(events).await.json().await.unwrap();
        seen = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["event"].as_str().unwrap().to_owned())
            .collect();
        if seen.len() >= 2 {
            break;
        }
    }
    assert_eq!(seen, ["CREATE", "CANCEL"]);
}

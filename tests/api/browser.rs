//! End to end in a real headless Chromium (Debian's chromium and chromium-driver, driven over
//! WebDriver): the sandbox MondiaPay's purchase page, its redirect to the service's callback,
//! and the page the person lands on; and the whole round trip a merchant runs through the
//! service: a purchase started by the service, its callback, the token, the subscription, its
//! cancel and MondiaPay's notifications in the event feed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use mondiapay_token_proxy::sandbox::{self, Sandbox};
use reqwest::StatusCode;
use url::Url;

use crate::helpers::{CLIENT_ID, CLIENT_SECRET, MondiaPay, TestApp, json, send_for_json, settings};
use crate::sandbox::{SandboxMondiaPay, service_on};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A child process that is stopped when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `stdout` until a line contains `marker`; returns that line.
fn line_with(stdout: &mut BufReader<ChildStdout>, marker: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the process ended before printing {marker:?}"
        );
        if line.contains(marker) {
            return line.trim().to_owned();
        }
    }
}

/// The service in-process with a sandbox MondiaPay as its MondiaPay; purchases are prepared at
/// the sandbox as a merchant would, returning to the service's callback.
struct Shop {
    mondiapay: SandboxMondiaPay,
    app: TestApp,
}

impl Shop {
    async fn open() -> Self {
        let mondiapay = SandboxMondiaPay::start().await;
        let app = service_on(&mondiapay, "query").await;
        Self { mondiapay, app }
    }

    /// A purchase for `reference`: the sandbox's initiate page to send the browser to.
    async fn purchase(&self, reference: &str) -> String {
        let redirect = format!("{}/oauth/callback?ref={reference}", self.app.public);
        self.mondiapay.purchase(&redirect).await
    }
}

struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: Running,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        assert!(
            Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
            "this test needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver (.ci/run does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        line_with(&mut stdout, "started successfully");
        let driver = Running(child);
        let profile = tempfile::tempdir().unwrap();
        let http = reqwest::Client::new();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,900", format!("--user-data-dir={}", profile.path().display()),
            ]}
        }}});
        let base = format!("http://127.0.0.1:{port}/session");
        let created = send_for_json(http.post(&base).json(&capabilities)).await;
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"));
        Self {
            http,
            session: format!("{base}/{session}"),
            _driver: driver,
            _profile: profile,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let request = self.http.request(method, format!("{}{path}", self.session));
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(
            answer["value"].get("error").is_none(),
            "WebDriver {path}: {answer}"
        );
        answer["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn click(&self, css: &str) {
        let element = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let id = element[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {element}"));
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Waits (bounded) until the address contains `part`; returns the address.
    async fn wait_for_url(&self, part: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self
                .command(reqwest::Method::GET, "/url", None)
                .await
                .as_str()
                .unwrap()
                .to_owned();
            if url.contains(part) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "still at {url}, waiting for {part}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn text(&self) -> String {
        let script = json!({"script": "return document.body.innerText", "args": []});
        self.command(reqwest::Method::POST, "/execute/sync", Some(script))
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    async fn close(self) {
        self.command(reqwest::Method::DELETE, "", None).await;
    }
}

#[tokio::test]
async fn a_person_buys_in_chromium_and_lands_on_the_thank_you_page_then_fails_one() {
    let shop = Shop::open().await;
    let browser = Browser::start().await;

    browser.open(&shop.purchase("ORDER-1").await).await;
    assert!(browser.text().await.contains("Confirm your purchase"));
    browser.click("#confirm").await;
    let landed = browser.wait_for_url("/oauth/result/res_").await;
    assert!(
        !landed.contains("code="),
        "the code left the address bar: {landed}"
    );
    let text = browser.text().await;
    assert!(text.contains("Thank you for your purchase"), "{text}");
    assert!(
        text.contains("ORDER-1") && text.contains("Support reference"),
        "{text}"
    );
    browser.screenshot("thank-you-desktop.png").await;
    browser.resize(412, 915).await;
    browser.screenshot("thank-you-phone.png").await;
    browser.resize(1280, 900).await;

    let token = json(shop.app.tokens_by_ref("ORDER-1").await).await;
    assert!(
        token["access_token"].as_str().unwrap().starts_with('U'),
        "{token}"
    );
    assert!(!text.contains(token["access_token"].as_str().unwrap()));

    browser.open(&shop.purchase("ORDER-2").await).await;
    browser.click("#insufficient").await;
    browser.wait_for_url("/oauth/result/res_").await;
    let text = browser.text().await;
    assert!(
        text.contains("The purchase did not go through")
            && text.contains("mobile balance was too low"),
        "{text}"
    );
    assert!(text.contains("ORDER-2"));
    browser.screenshot("purchase-failed.png").await;
    browser.close().await;
}

/// The whole round trip as a merchant runs it, in a real browser: an internal service starts a
/// purchase, the person confirms it at MondiaPay (the sandbox), lands on the thank-you page; the
/// internal service then reads the purchase, the token, the subscription, cancels it, and reads
/// both of MondiaPay's notifications from the event feed.
#[tokio::test]
async fn a_purchase_started_by_the_service_runs_the_whole_round_trip_in_chromium() {
    let sandbox_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox_url = format!("http://{}", sandbox_listener.local_addr().unwrap());
    let secret = "e2e-notification-secret-0123456789abcdef";
    // MondiaPay sends the browser back to `mondiapay.redirect_uri`: the public listener's own
    // address, so it is chosen before the service starts.
    let public = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (stand_in, dir, mut env) = MondiaPay::start().await;
    env.extend(settings(&format!(
        "MONDIAPAY__TOKEN_URL={sandbox_url}{} MONDIAPAY__API_URL={sandbox_url} \
         MONDIAPAY__REDIRECT_URI=http://{public}/oauth/callback PUBLIC__LISTEN={public} \
         PURCHASES__ENFORCE=true NOTIFICATIONS__SECRET={secret}",
        sandbox::TOKEN_PATH
    )));
    let app = TestApp::spawn(stand_in, dir, env).await;
    let notify = Url::parse(&format!("{}/mondiapay/notifications/{secret}", app.public)).unwrap();
    tokio::spawn(
        Sandbox::new(CLIENT_ID, CLIENT_SECRET)
            .notifying(notify)
            .serve(sandbox_listener),
    );
    let browser = Browser::start().await;

    // The internal service starts the purchase and sends the browser to MondiaPay.
    let started = app
        .start_purchase(
            &json!({"subscription_type_id": 12345, "ref": "ORDER-RT"}),
            None,
        )
        .await;
    assert_eq!(started.status(), StatusCode::CREATED);
    let purchase = json(started).await;
    assert_eq!(purchase["state"], "started", "{purchase}");
    browser
        .open(purchase["redirect_url"].as_str().unwrap())
        .await;
    browser.screenshot("round-trip-1-mondiapay.png").await;
    browser.click("#confirm").await;
    let landed = browser.wait_for_url("/oauth/result/res_").await;
    assert!(!landed.contains("code="), "{landed}");
    let text = browser.text().await;
    assert!(
        text.contains("Thank you for your purchase") && text.contains("ORDER-RT"),
        "{text}"
    );
    browser.screenshot("round-trip-2-thank-you.png").await;

    // The purchase, its token and the subscription.
    let id = purchase["id"].as_str().unwrap();
    let purchase = json(app.purchase(id).await).await;
    assert_eq!(purchase["state"], "succeeded", "{purchase}");
    let token = json(app.tokens_by_ref("ORDER-RT").await).await;
    assert_eq!(purchase["token_id"], token["id"], "{purchase} {token}");
    assert!(!text.contains(token["access_token"].as_str().unwrap()));
    let subscriptions = json(app.subscriptions("ref=ORDER-RT").await).await;
    let subscription = &subscriptions["subscriptions"][0];
    assert_eq!(subscription["state"], "ACTIVE", "{subscriptions}");
    let subscription_id = subscription["id"].as_str().unwrap().to_owned();

    // The cancel, and both notifications in the feed (each arrives in the background).
    let cancelled = app
        .cancel_subscription(&subscription_id, "ref=ORDER-RT&immediately=true")
        .await;
    assert_eq!(cancelled.status(), StatusCode::NO_CONTENT);
    let mut events = Vec::new();
    let mut after = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while events.len() < 2 {
        assert!(Instant::now() < deadline, "events so far: {events:?}");
        let page = app.events_json(&format!("after={after}&wait=5")).await;
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        after = page["next"].as_str().unwrap().to_owned();
    }
    assert_eq!(events[0]["event"], "CREATE", "{events:?}");
    assert_eq!(events[0]["purchase_id"], id, "{events:?}");
    assert_eq!(events[0]["ref"], "ORDER-RT", "{events:?}");
    assert_eq!(events[1]["event"], "CANCEL", "{events:?}");
    assert_eq!(
        events[1]["subscription_id"],
        subscription_id.as_str(),
        "{events:?}"
    );
    let purchase = json(app.purchase(id).await).await;
    assert_eq!(purchase["uuid_confirmed"], true, "{purchase}");
    assert_eq!(
        purchase["subscription_id"],
        subscription_id.as_str(),
        "{purchase}"
    );
    browser.close().await;
}

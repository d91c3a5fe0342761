//! End to end in a real headless Chromium (Debian's chromium and chromium-driver, driven over
//! WebDriver): the sandbox MondiaPay's purchase page, its redirect to the service's callback,
//! and the page the person lands on.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::helpers::{TestApp, json, send_for_json};
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

//! The sandbox MondiaPay's contract: every call answers in MondiaPay's documented shape (token
//! endpoint, Prepare Purchase, the initiate page and its redirects, Subscription Management),
//! and the service itself gets its tokens from it in each client auth style.

use std::time::Duration;

use mondiapay_token_proxy::sandbox::{self, Sandbox};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use url::Url;

use crate::helpers::*;

/// A sandbox MondiaPay serving on a free loopback port, spoken to the way the service does.
pub struct SandboxMondiaPay {
    /// `http://127.0.0.1:port`.
    pub url: String,
    http: reqwest::Client,
}

/// Where the test purchases send the browser back to (never called: redirects are not followed).
pub const THANKS: &str = "https://shop.example/thanks?purchase=pur_42";

impl SandboxMondiaPay {
    /// The sandbox accepting the tests' merchant credentials, notifying nobody.
    pub async fn start() -> Self {
        Self::serve(Sandbox::new(CLIENT_ID, CLIENT_SECRET)).await
    }

    pub async fn serve(sandbox: Sandbox) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(sandbox.serve(listener));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { url, http }
    }

    /// A token call with `query` in the query string (MondiaPay's documented style).
    pub async fn token_call(&self, query: &str) -> Response {
        self.http
            .post(format!("{}{}?{query}", self.url, sandbox::TOKEN_PATH))
            .header("content-type", "application/x-www-form-urlencoded")
            .send()
            .await
            .unwrap()
    }

    fn credentials() -> String {
        format!("client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}")
    }

    /// The token a token call with `grant` (and the credentials) issues, after checking it did.
    async fn token_for(&self, grant: &str) -> String {
        let answer = self
            .token_call(&format!("{grant}&{}", Self::credentials()))
            .await;
        assert_eq!(answer.status(), StatusCode::OK, "{grant}");
        json(answer).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A fresh client token.
    pub async fn client_token(&self) -> String {
        self.token_for("grant_type=client_credentials").await
    }

    /// A code exchanged for the user's token.
    pub async fn user_token(&self, code: &str) -> String {
        self.token_for(&format!(
            "grant_type=authorization_code&code={code}&redirect_uri=x"
        ))
        .await
    }

    /// Prepare Purchase with `token` and `body` as they are.
    pub async fn prepare(&self, token: &str, body: Value) -> Response {
        self.http
            .post(format!("{}{}", self.url, sandbox::PREPARE_PATH))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// A prepared purchase returning to `redirect`: its initiate href.
    pub async fn purchase(&self, redirect: &str) -> String {
        let token = self.client_token().await;
        let body = json!({"redirect": redirect, "subscriptionTypeId": 12345});
        let answer = json(self.prepare(&token, body).await).await;
        answer["_links"]["initiatePurchase"]["href"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The person's choice on the initiate page at `href`, as the page's form posts it.
    pub async fn decide(&self, href: &str, decision: &str) -> Response {
        self.http
            .post(href)
            .form(&[("decision", decision)])
            .send()
            .await
            .unwrap()
    }

    /// A purchase returning to `THANKS`, decided: where the browser is sent back to, after
    /// checking that the redirect's own query was kept.
    pub async fn decided_purchase(&self, decision: &str) -> Url {
        let href = self.purchase(THANKS).await;
        let back = redirected_to(self.decide(&href, decision).await);
        assert_eq!(param(&back, "purchase").as_deref(), Some("pur_42"));
        back
    }

    /// A confirmed purchase: where the browser is sent back to.
    pub async fn confirmed_purchase(&self) -> Url {
        self.decided_purchase("confirm").await
    }

    pub async fn subscriptions(&self, token: &str, query: &str) -> Response {
        self.http
            .get(format!("{}{}{query}", self.url, sandbox::SUBSCRIPTION_PATH))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn cancel(&self, token: &str, id: &str, immediately: &str) -> Response {
        self.http
            .delete(format!(
                "{}{}/{id}?immediately={immediately}",
                self.url,
                sandbox::SUBSCRIPTION_PATH
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

/// The `303`'s target, after checking it is one.
pub fn redirected_to(response: Response) -> Url {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
}

/// A query parameter of `url`.
pub fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Asserts that `response` is MondiaPay's error body `{"status", "error", …}` with `status`.
pub async fn assert_mondiapay_error(response: Response, status: StatusCode, error: &str) {
    assert_eq!(response.status(), status);
    let body = json(response).await;
    let name = status
        .canonical_reason()
        .unwrap()
        .to_uppercase()
        .replace(' ', "_");
    assert_eq!(body["status"], name.as_str(), "{body}");
    assert_eq!(body["error"], error, "{body}");
}

/// The service in-process, its token calls going to `mondiapay` with `client_auth`.
pub async fn service_on(mondiapay: &SandboxMondiaPay, client_auth: &str) -> TestApp {
    let (stand_in, dir, mut env) = MondiaPay::start().await;
    env.extend(settings(&format!(
        "MONDIAPAY__TOKEN_URL={}{} MONDIAPAY__API_URL={} MONDIAPAY__CLIENT_AUTH={client_auth}",
        mondiapay.url,
        sandbox::TOKEN_PATH,
        mondiapay.url
    )));
    TestApp::spawn(stand_in, dir, env).await
}

#[tokio::test]
async fn the_service_exchanges_a_sandbox_code_in_each_client_auth_style() {
    let mondiapay = SandboxMondiaPay::start().await;
    for style in ["query", "form", "basic"] {
        let app = service_on(&mondiapay, style).await;
        let back = mondiapay.confirmed_purchase().await;
        let code = param(&back, "code").unwrap();
        let record = app.exchange(&code, "ORDER-1").await;
        assert_eq!(record.status(), StatusCode::OK, "{style}");
        let record = json(record).await;
        assert!(record["access_token"].as_str().unwrap().starts_with('U'));
    }
}

#[tokio::test]
async fn wrong_client_credentials_are_refused_401_in_mondiapays_error_shape() {
    let mondiapay = SandboxMondiaPay::start().await;
    for query in [
        format!("grant_type=client_credentials&client_id={CLIENT_ID}&client_secret=wrong"),
        "grant_type=client_credentials&client_id=someone&client_secret=x".to_owned(),
        "grant_type=client_credentials".to_owned(),
    ] {
        let refused = mondiapay.token_call(&query).await;
        assert_mondiapay_error(refused, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    }
}

#[tokio::test]
async fn client_credentials_give_a_c_client_token_for_12_hours() {
    let mondiapay = SandboxMondiaPay::start().await;
    let answer = mondiapay
        .token_call(&format!(
            "grant_type=client_credentials&{}",
            SandboxMondiaPay::credentials()
        ))
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let answer = json(answer).await;
    assert!(answer["access_token"].as_str().unwrap().starts_with('C'));
    assert_eq!(answer["token_type"], "bearer");
    assert_eq!(answer["expires_in"], "43200");
}

#[tokio::test]
async fn an_authorization_code_gives_a_u_user_token_exactly_once() {
    let mondiapay = SandboxMondiaPay::start().await;
    let code = param(&mondiapay.confirmed_purchase().await, "code").unwrap();
    let call = format!(
        "grant_type=authorization_code&code={code}&redirect_uri=x&{}",
        SandboxMondiaPay::credentials()
    );
    let first = json(mondiapay.token_call(&call).await).await;
    assert!(first["access_token"].as_str().unwrap().starts_with('U'));
    assert!(first["refresh_token"].as_str().unwrap().starts_with('R'));
    assert_eq!(first["expires_in"], "43200");
    let again = mondiapay.token_call(&call).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(again).await["error"], "invalid_grant");
}

#[tokio::test]
async fn user_credentials_give_a_fresh_user_token_for_a_known_uuid_only() {
    let mondiapay = SandboxMondiaPay::start().await;
    let back = mondiapay.confirmed_purchase().await;
    let uuid = param(&back, "uuid").unwrap();
    let first = mondiapay.user_token(&param(&back, "code").unwrap()).await;
    let call = |uuid: &str| {
        format!(
            "grant_type=user_credentials&uuid={uuid}&{}",
            SandboxMondiaPay::credentials()
        )
    };
    let renewed = json(mondiapay.token_call(&call(&uuid)).await).await;
    let renewed = renewed["access_token"].as_str().unwrap().to_owned();
    assert!(renewed.starts_with('U') && renewed != first);
    // The renewed token is the same user's: it sees the same subscription.
    let subscriptions = json(mondiapay.subscriptions(&renewed, "").await).await;
    assert_eq!(subscriptions.as_array().unwrap().len(), 1);
    let unknown = mondiapay.token_call(&call("nobody-we-know")).await;
    assert_mondiapay_error(unknown, StatusCode::BAD_REQUEST, "INVALID_PARAMETERS").await;
}

#[tokio::test]
async fn prepare_purchase_answers_a_purchase_token_and_the_initiate_link() {
    let mondiapay = SandboxMondiaPay::start().await;
    let token = mondiapay.client_token().await;
    for type_id in [json!(12345), json!("12345")] {
        let body = json!({"redirect": THANKS, "subscriptionTypeId": type_id,
            "marketingCampaign": {"name": "spring", "agency": "ads", "conversionId": "c-1"}});
        let answer = mondiapay.prepare(&token, body).await;
        assert_eq!(answer.status(), StatusCode::OK);
        let answer = json(answer).await;
        let purchase_token = answer["purchaseToken"].as_str().unwrap();
        assert_eq!(answer["expiresIn"], "300");
        assert_eq!(
            answer["_links"]["initiatePurchase"]["href"],
            format!(
                "{}/v1/web/purchase/initiate/{purchase_token}",
                mondiapay.url
            )
        );
    }
}

#[tokio::test]
async fn prepare_purchase_refuses_an_unknown_expired_or_user_token_with_401() {
    let mondiapay = SandboxMondiaPay::start().await;
    let body = json!({"redirect": THANKS, "subscriptionTypeId": 12345});
    let unknown = mondiapay.prepare("Cnot-one-we-issued", body.clone()).await;
    assert_mondiapay_error(unknown, StatusCode::UNAUTHORIZED, "TOKEN_NOT_FOUND").await;
    let code = param(&mondiapay.confirmed_purchase().await, "code").unwrap();
    let user_token = mondiapay.user_token(&code).await;
    let wrong_kind = mondiapay.prepare(&user_token, body.clone()).await;
    assert_eq!(wrong_kind.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        json(wrong_kind).await["error"],
        "TOKEN_CONTEXT_IS_NOT_VALID"
    );

    let expiring = SandboxMondiaPay::serve(
        Sandbox::new(CLIENT_ID, CLIENT_SECRET).token_lifetime(Duration::ZERO),
    )
    .await;
    let expired = expiring.client_token().await;
    let refused = expiring.prepare(&expired, body).await;
    assert_mondiapay_error(refused, StatusCode::UNAUTHORIZED, "TOKEN_NOT_FOUND").await;
}

#[tokio::test]
async fn prepare_purchase_refuses_a_body_without_a_redirect_or_a_type_id_with_400() {
    let mondiapay = SandboxMondiaPay::start().await;
    let token = mondiapay.client_token().await;
    for body in [
        json!({"subscriptionTypeId": 12345}),
        json!({"redirect": THANKS}),
        json!({"redirect": "not a url", "subscriptionTypeId": 12345}),
        json!({"redirect": THANKS, "subscriptionTypeId": "12a"}),
        json!([1, 2]),
    ] {
        let refused = mondiapay.prepare(&token, body.clone()).await;
        assert_mondiapay_error(refused, StatusCode::BAD_REQUEST, "INVALID_PARAMETERS").await;
    }
}

#[tokio::test]
async fn the_initiate_page_offers_confirm_an_empty_balance_and_cancel() {
    let mondiapay = SandboxMondiaPay::start().await;
    let href = mondiapay.purchase(THANKS).await;
    let page = mondiapay.http.get(&href).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(content_type(&page).starts_with("text/html"));
    let page = page.text().await.unwrap();
    for choice in [
        r#"value="confirm""#,
        r#"value="insufficient_funds""#,
        r#"value="cancel""#,
    ] {
        assert!(page.contains(choice), "{choice} missing: {page}");
    }
    let action = Url::parse(&href).unwrap().path().to_owned();
    assert!(page.contains(&format!(r#"action="{action}" method="post""#)));
}

#[tokio::test]
async fn confirming_redirects_303_with_code_message_uuid_and_status_200_keeping_the_redirects_query()
 {
    let mondiapay = SandboxMondiaPay::start().await;
    let back = mondiapay.confirmed_purchase().await;
    assert_eq!(
        back.as_str().split('?').next(),
        Some("https://shop.example/thanks")
    );
    assert!(param(&back, "code").unwrap().starts_with('A'));
    assert_eq!(param(&back, "message").as_deref(), Some("OK"));
    assert_eq!(param(&back, "status").as_deref(), Some("200"));
    assert!(!param(&back, "uuid").unwrap().is_empty());
    assert_eq!(param(&back, "error"), None);
}

#[tokio::test]
async fn an_empty_balance_redirects_with_insufficient_funds_status_402_and_still_a_code() {
    let mondiapay = SandboxMondiaPay::start().await;
    let back = mondiapay.decided_purchase("insufficient_funds").await;
    assert_eq!(param(&back, "error").as_deref(), Some("INSUFFICIENT_FUNDS"));
    assert_eq!(param(&back, "status").as_deref(), Some("402"));
    assert!(param(&back, "code").unwrap().starts_with('A'));
    assert!(param(&back, "uuid").is_some());
    // No subscription came of it.
    let token = mondiapay.user_token(&param(&back, "code").unwrap()).await;
    assert_eq!(
        json(mondiapay.subscriptions(&token, "").await).await,
        json!([])
    );
}

#[tokio::test]
async fn cancelling_redirects_as_the_user_declining_without_a_code() {
    let mondiapay = SandboxMondiaPay::start().await;
    let back = mondiapay.decided_purchase("cancel").await;
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("USER_DECLINED_PURCHASE_DURING_CONFIRMATION")
    );
    assert_eq!(param(&back, "status").as_deref(), Some("400"));
    assert_eq!(param(&back, "code"), None);
}

#[tokio::test]
async fn an_initiate_link_is_single_use_and_an_unknown_one_is_no_page() {
    let mondiapay = SandboxMondiaPay::start().await;
    let href = mondiapay.purchase(THANKS).await;
    redirected_to(mondiapay.decide(&href, "confirm").await);
    assert_eq!(
        mondiapay.decide(&href, "confirm").await.status(),
        StatusCode::NOT_FOUND
    );
    let page = mondiapay.http.get(&href).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(page.text().await.unwrap().contains("no longer valid"));
    let unknown = format!("{}/v1/web/purchase/initiate/made-up", mondiapay.url);
    let unknown = mondiapay.http.get(&unknown).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let other = mondiapay.purchase(THANKS).await;
    assert_eq!(
        mondiapay.decide(&other, "anything").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn get_subscription_lists_the_users_subscriptions_in_mondiapays_shape() {
    let mondiapay = SandboxMondiaPay::start().await;
    let back = mondiapay.confirmed_purchase().await;
    let token = mondiapay.user_token(&param(&back, "code").unwrap()).await;
    let listed = mondiapay
        .subscriptions(&token, "?subscriptionTypeId=12345")
        .await;
    assert_eq!(listed.status(), StatusCode::OK);
    assert!(content_type(&listed).starts_with("application/json"));
    let listed = json(listed).await;
    let [subscription] = listed.as_array().unwrap().as_slice() else {
        panic!("one subscription expected: {listed}");
    };
    assert_eq!(subscription["id"], "1001");
    assert_eq!(subscription["typeId"], "12345");
    assert_eq!(subscription["state"], "ACTIVE");
    assert_eq!(subscription["subState"], "NONE");
    assert_eq!(subscription["attributes"], json!([]));
    for time in ["startDate", "created", "lastModified"] {
        let time = subscription[time].as_str().unwrap();
        assert!(time.len() == 20 && time.ends_with('Z'), "{time}");
    }
    let other_type = mondiapay
        .subscriptions(&token, "?subscriptionTypeId=999")
        .await;
    assert_eq!(json(other_type).await, json!([]));
    // Another user sees only their own.
    let someone = mondiapay.confirmed_purchase().await;
    let theirs = mondiapay
        .user_token(&param(&someone, "code").unwrap())
        .await;
    let theirs = json(mondiapay.subscriptions(&theirs, "").await).await;
    assert_eq!(theirs[0]["id"], "1002");
    assert_eq!(theirs.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn cancel_tags_for_cancel_or_cancels_immediately() {
    let mondiapay = SandboxMondiaPay::start().await;
    let back = mondiapay.confirmed_purchase().await;
    let token = mondiapay.user_token(&param(&back, "code").unwrap()).await;
    let tagged = mondiapay.cancel(&token, "1001", "false").await;
    assert_eq!(tagged.status(), StatusCode::NO_CONTENT);
    let listed = json(mondiapay.subscriptions(&token, "").await).await;
    assert_eq!(
        (&listed[0]["state"], &listed[0]["subState"]),
        (&json!("ACTIVE"), &json!("TAGGED_FOR_CANCEL"))
    );
    let cancelled = mondiapay.cancel(&token, "1001", "true").await;
    assert_eq!(cancelled.status(), StatusCode::NO_CONTENT);
    let listed = json(mondiapay.subscriptions(&token, "").await).await;
    assert_eq!(listed[0]["state"], "CANCELED");
    let again = mondiapay.cancel(&token, "1001", "true").await;
    assert_mondiapay_error(again, StatusCode::NOT_FOUND, "SUBSCRIPTION_NOT_FOUND").await;
    let unclear = mondiapay.cancel(&token, "1001", "maybe").await;
    assert_mondiapay_error(unclear, StatusCode::BAD_REQUEST, "INVALID_PARAMETERS").await;
}

#[tokio::test]
async fn subscription_management_refuses_an_unknown_or_client_token_with_401() {
    let mondiapay = SandboxMondiaPay::start().await;
    mondiapay.confirmed_purchase().await;
    let client_token = mondiapay.client_token().await;
    for (token, error) in [
        ("Unot-one-we-issued", "TOKEN_NOT_FOUND"),
        (client_token.as_str(), "TOKEN_CONTEXT_IS_NOT_VALID"),
    ] {
        let listed = mondiapay.subscriptions(token, "").await;
        assert_mondiapay_error(listed, StatusCode::UNAUTHORIZED, error).await;
        let cancelled = mondiapay.cancel(token, "1001", "true").await;
        assert_mondiapay_error(cancelled, StatusCode::UNAUTHORIZED, error).await;
    }
}

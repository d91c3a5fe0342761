//! `Client`: the service's routes in the SPEC's words, one method a route, the same whether the
//! service runs in-process (`TestApp`) or as the real binary (`Served`); both hand one out.

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{API_KEY, json};

/// Both listeners of one running service, and the API key its internal callers use.
#[derive(Clone)]
pub struct Client {
    /// `http://host:port` of the public listener (browsers).
    pub public: String,
    /// `http://host:port` of the internal listener (`/v1`, operations).
    pub internal: String,
    api_key: String,
    http: reqwest::Client,
    /// A browser that does not follow redirects and opens a connection a request, as a test's
    /// browser did before (connection caps and rate limits see one client a request).
    browser: reqwest::Client,
}

impl Client {
    pub fn new(public: String, internal: String) -> Self {
        Self {
            public,
            internal,
            api_key: API_KEY.to_owned(),
            http: reqwest::Client::new(),
            browser: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    /// The same service, called with another API key (a rotated one, a wrong one).
    pub fn with_api_key(&self, api_key: &str) -> Self {
        Self {
            api_key: api_key.to_owned(),
            ..self.clone()
        }
    }

    // --- The internal API (`/v1`, with the API key) ------------------------------------------

    /// Any request to the internal listener, with the API key.
    pub fn api(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.internal))
            .bearer_auth(&self.api_key)
    }

    /// A keyed `GET` of any internal path, for the routes and the malformed paths a typed
    /// method does not cover.
    pub async fn get(&self, path: &str) -> Response {
        self.api(Method::GET, path).send().await.unwrap()
    }

    /// `POST /v1/exchange {"code", "ref"}`.
    pub async fn exchange(&self, code: &str, reference: &str) -> Response {
        self.exchange_with(json!({"code": code, "ref": reference}))
            .await
    }

    /// `POST /v1/exchange` with `body` as it is (no `ref`, a `uuid`, a malformed one).
    pub async fn exchange_with(&self, body: Value) -> Response {
        self.api(Method::POST, "/v1/exchange")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `GET /v1/tokens/{id}`.
    pub async fn token(&self, id: &str) -> Response {
        self.get(&format!("/v1/tokens/{id}")).await
    }

    /// The stored token for `record` (an exchange's answer), by its id, read as JSON.
    pub async fn stored_token(&self, record: &Value) -> Value {
        json(self.token(record["id"].as_str().unwrap()).await).await
    }

    /// `GET /v1/tokens?ref=…`.
    pub async fn tokens_by_ref(&self, reference: &str) -> Response {
        self.get(&format!("/v1/tokens?ref={reference}")).await
    }

    /// `GET /v1/tokens?uuid=…`.
    pub async fn tokens_by_uuid(&self, uuid: &str) -> Response {
        self.get(&format!("/v1/tokens?uuid={uuid}")).await
    }

    /// `DELETE /v1/tokens/{id}`.
    pub async fn delete_token(&self, id: &str) -> Response {
        self.api(Method::DELETE, &format!("/v1/tokens/{id}"))
            .send()
            .await
            .unwrap()
    }

    /// `GET /v1/callbacks?ref=…`, read as the JSON list it is.
    pub async fn callbacks(&self, reference: &str) -> Value {
        json(self.get(&format!("/v1/callbacks?ref={reference}")).await).await
    }

    // --- Purchases (`/v1/purchases`) -----------------------------------------------------------

    /// `POST /v1/purchases` with `body` as it is, and an `Idempotency-Key` when given.
    pub async fn start_purchase(&self, body: &Value, idempotency_key: Option<&str>) -> Response {
        let request = self.api(Method::POST, "/v1/purchases").json(body);
        let request = match idempotency_key {
            Some(key) => request.header("idempotency-key", key),
            None => request,
        };
        request.send().await.unwrap()
    }

    /// `GET /v1/purchases/{id}`.
    pub async fn purchase(&self, id: &str) -> Response {
        self.get(&format!("/v1/purchases/{id}")).await
    }

    /// `GET /v1/purchases?ref=…`, read as the JSON it is.
    pub async fn purchases_by_ref(&self, reference: &str) -> Value {
        json(self.get(&format!("/v1/purchases?ref={reference}")).await).await
    }

    // --- Renewal and subscriptions -----------------------------------------------------------

    /// `GET /v1/tokens?{who}&renew=true`, `who` being `ref=…` or `uuid=…`.
    pub async fn renewed_token(&self, who: &str) -> Response {
        self.get(&format!("/v1/tokens?{who}&renew=true")).await
    }

    /// `GET /v1/subscriptions?{query}`: `ref=…`, `uuid=…` or `token_id=…`, and maybe
    /// `subscription_type_id=…`.
    pub async fn subscriptions(&self, query: &str) -> Response {
        self.get(&format!("/v1/subscriptions?{query}")).await
    }

    /// `DELETE /v1/subscriptions/{id}?{query}`, `id` as it goes in the path.
    pub async fn cancel_subscription(&self, id: &str, query: &str) -> Response {
        self.api(Method::DELETE, &format!("/v1/subscriptions/{id}?{query}"))
            .send()
            .await
            .unwrap()
    }

    // --- Operations (no key) ----------------------------------------------------------------

    /// `GET /readyz` on the internal listener.
    pub async fn ready(&self) -> Response {
        self.http_get(&format!("{}/readyz", self.internal)).await
    }

    /// `GET /metrics` on the internal listener.
    pub async fn metrics(&self) -> Response {
        self.http_get(&format!("{}/metrics", self.internal)).await
    }

    /// The Prometheus text `/metrics` answers, after checking that it answered.
    pub async fn metrics_text(&self) -> String {
        let response = self.metrics().await;
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }

    /// A plain `GET` of a full URL, without an API key.
    pub async fn http_get(&self, url: &str) -> Response {
        self.http.get(url).send().await.unwrap()
    }

    // --- The public listener (what a browser does) -----------------------------------------

    /// A browser's `GET` on the public listener, not yet sent (to give it a time limit).
    pub fn browser(&self, path_and_query: &str) -> RequestBuilder {
        self.browser.get(format!("{}{path_and_query}", self.public))
    }

    /// A browser's `GET` on the public listener, without following redirects.
    pub async fn browser_get(&self, path_and_query: &str) -> Response {
        self.browser(path_and_query).send().await.unwrap()
    }

    /// `GET /oauth/callback?{query}`, as MondiaPay's redirect sends the browser there.
    pub async fn callback(&self, query: &str) -> Response {
        self.browser_get(&format!("/oauth/callback?{query}")).await
    }

    /// Follows a callback's `303` to the built-in result page; returns the location and the page.
    pub async fn callback_page(&self, query: &str) -> (String, StatusCode, String) {
        let response = self.callback(query).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "callback {query}");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let page = self.browser_get(&location).await;
        let status = page.status();
        (location, status, page.text().await.unwrap())
    }
}

// --- Notifications and the event feed ----------------------------------------------------

impl Client {
    /// A `POST` of `body` (as JSON) to any path of the public listener, not yet sent.
    pub fn public_post_request(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> RequestBuilder {
        self.http
            .post(format!("{}{path}", self.public))
            .header("content-type", "application/json")
            .body(body)
    }

    /// A `POST` of `body` (as JSON) to any path of the public listener.
    pub async fn public_post(&self, path: &str, body: impl Into<reqwest::Body>) -> Response {
        self.public_post_request(path, body).send().await.unwrap()
    }

    /// `POST /mondiapay/notifications/{secret_segment}` with `body` as it is (MondiaPay sends
    /// JSON); `secret_segment` may be anything, even empty.
    pub async fn notify_raw(
        &self,
        secret_segment: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.public_post(&format!("/mondiapay/notifications/{secret_segment}"), body)
            .await
    }

    /// `POST /mondiapay/notifications/{secret}` with a JSON notification.
    pub async fn notify(&self, secret: &str, notification: &Value) -> Response {
        self.notify_raw(secret, notification.to_string()).await
    }

    /// `GET /v1/events?{query}`.
    pub async fn events(&self, query: &str) -> Response {
        self.get(&format!("/v1/events?{query}")).await
    }

    /// `GET /v1/events?{query}`, after checking that it answered `200`, as JSON.
    pub async fn events_json(&self, query: &str) -> Value {
        let response = self.events(query).await;
        assert_eq!(response.status(), StatusCode::OK, "/v1/events?{query}");
        json(response).await
    }
}

/// `app.exchange(…)`, `served.token(…)`: a running service, in-process or as a process, is
/// spoken to through its `client` field.
macro_rules! spoken_to_through_its_client {
    ($service:ty) => {
        impl std::ops::Deref for $service {
            type Target = $crate::client::Client;

            fn deref(&self) -> &Self::Target {
                &self.client
            }
        }
    };
}

pub(crate) use spoken_to_through_its_client;

/// An answer's `Content-Type`, as text.
pub fn content_type(response: &Response) -> &str {
    response.headers()["content-type"].to_str().unwrap()
}

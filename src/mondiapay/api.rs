//! MondiaPay's API calls made with a bearer token: Prepare Purchase (with the merchant's client
//! token) and Subscription Management (with a user's token). Bounded like the token call: the
//! same timeouts, no redirect followed, the body capped, and a logged error body scrubbed of the
//! token and the secret.

use std::time::Instant;

use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::answer::upstream_error;
use super::{MondiaPayClient, read_capped, scrub, shares_a_run, with_query};
use crate::domain::{NoAnswer, UNRECOGNISED_ERROR, UpstreamError};
use crate::metrics::outcome_labels;

outcome_labels! {
    /// The calls of MondiaPay counted by `token_proxy_mondiapay_calls_total` (its `call` label).
    pub enum CallName {
        /// Each fetch of the merchant's client token.
        ClientToken = "client_token",
        PreparePurchase = "prepare_purchase",
        GetSubscriptions = "get_subscriptions",
        CancelSubscription = "cancel_subscription",
    }
}

outcome_labels! {
    /// How a call of MondiaPay ended: the `outcome` label of `token_proxy_mondiapay_calls_total`.
    pub enum CallOutcome {
        /// The client token issued.
        Issued = "issued",
        /// An API call answered with a `2xx`.
        Done = "done",
        /// An API call's bearer token refused (`401`).
        TokenRefused = "token_refused",
        Refused = "refused",
        TimedOut = "timed_out",
        Unreachable = "unreachable",
        InvalidAnswer = "invalid_answer",
    }
}

impl CallOutcome {
    pub fn no_answer(reason: &NoAnswer) -> Self {
        match reason {
            NoAnswer::TimedOut => Self::TimedOut,
            NoAnswer::Unreachable => Self::Unreachable,
            NoAnswer::Invalid(_) => Self::InvalidAnswer,
        }
    }
}

impl CallName {
    /// The outcomes this call can end in, each shown at 0 from the start.
    pub fn outcomes(self) -> &'static [CallOutcome] {
        use CallOutcome::{
            Done, InvalidAnswer, Issued, Refused, TimedOut, TokenRefused, Unreachable,
        };
        match self {
            Self::ClientToken => &[Issued, Refused, TimedOut, Unreachable, InvalidAnswer],
            Self::PreparePurchase | Self::GetSubscriptions | Self::CancelSubscription => &[
                Done,
                TokenRefused,
                Refused,
                TimedOut,
                Unreachable,
                InvalidAnswer,
            ],
        }
    }
}

/// One call of MondiaPay's API.
pub struct ApiCall<'a> {
    /// What the call is, for its metric and log lines: `prepare_purchase`, `get_subscriptions`…
    pub name: &'static str,
    pub method: Method,
    /// Below `mondiapay.api_url`, e.g. `v1/api/subscription` (a leading `/` is ignored).
    pub path: &'a str,
    /// Query pairs, encoded by the client.
    pub query: &'a [(&'a str, &'a str)],
    /// The client token or the user's token.
    pub bearer: &'a SecretString,
    /// A JSON body, for a `POST`.
    pub body: Option<&'a Value>,
}

/// What MondiaPay answered an API call.
#[derive(Debug)]
pub enum ApiAnswer {
    /// A `2xx`, with its body as JSON (`Null` when it had none).
    Done(Value),
    /// A `401`: MondiaPay refused the bearer token (expired, revoked, unknown). A new token
    /// and one more try may help.
    TokenRefused(UpstreamError),
    /// Another `4xx` naming an error: MondiaPay's verdict on the request.
    Refused(UpstreamError),
    /// No usable answer: unreachable, timed out, a `5xx`, a redirect, a body that is not JSON.
    Unusable(NoAnswer),
}

impl ApiAnswer {
    /// The `outcome` label of `token_proxy_mondiapay_calls_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Done(_) => CallOutcome::Done,
            Self::TokenRefused(_) => CallOutcome::TokenRefused,
            Self::Refused(_) => CallOutcome::Refused,
            Self::Unusable(reason) => CallOutcome::no_answer(reason),
        }
        .as_str()
    }
}

impl MondiaPayClient {
    /// Makes `call`, retrying only a failure to connect.
    #[tracing::instrument(name = "mondiapay_api_call", skip_all, fields(call = call.name))]
    pub async fn api_call(&self, call: &ApiCall<'_>) -> ApiAnswer {
        let started = Instant::now();
        let mut url = self.api_base.clone();
        url.set_path(&format!(
            "{}/{}",
            self.api_base.path().trim_end_matches('/'),
            call.path.trim_start_matches('/')
        ));
        if !call.query.is_empty() {
            let query =
                serde_urlencoded::to_string(call.query).expect("pairs of strings always serialize");
            url = with_query(&url, &query);
        }
        let build = || {
            let request = self
                .http
                .request(call.method.clone(), url.clone())
                .bearer_auth(call.bearer.expose_secret())
                .header(ACCEPT, "application/json");
            match call.body {
                Some(body) => request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_string()),
                None => request,
            }
        };
        let answer = match self.send(build).await {
            Ok(response) => self.read_api(response, call).await,
            Err(reason) => ApiAnswer::Unusable(reason),
        };
        self.metrics
            .mondiapay_api_call(call.name, answer.label(), started.elapsed());
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            outcome = answer.label(),
            "MondiaPay API call finished"
        );
        answer
    }

    async fn read_api(&self, response: reqwest::Response, call: &ApiCall<'_>) -> ApiAnswer {
        let status = response.status().as_u16();
        let body = match read_capped(response).await {
            Ok(body) => body,
            Err(reason) => return ApiAnswer::Unusable(reason),
        };
        let json = if body.iter().all(u8::is_ascii_whitespace) {
            Some(Value::Null)
        } else {
            serde_json::from_slice::<Value>(&body).ok()
        };
        if (200..300).contains(&status) {
            return match json {
                Some(value) => ApiAnswer::Done(value),
                None => ApiAnswer::Unusable(NoAnswer::Invalid(format!(
                    "MondiaPay answered HTTP {status} with a body that is not JSON"
                ))),
            };
        }
        let hidden = [
            (call.bearer.expose_secret(), "[token]"),
            (self.client_secret.expose_secret(), "[secret]"),
        ];
        tracing::warn!(status, body = %scrub::excerpt(&body, &hidden), "MondiaPay refused an API call");
        let error = match &json {
            Some(Value::Object(fields)) => upstream_error(status, fields),
            _ => None,
        }
        .map(|error| without_echo(error, &[call.bearer.expose_secret()]));
        match (status, error) {
            (401, error) => ApiAnswer::TokenRefused(error.unwrap_or_else(|| UpstreamError {
                http_status: status,
                error: "UNAUTHORIZED".to_owned(),
                message: None,
            })),
            (400..=499, Some(error)) if status != 408 && status != 429 => ApiAnswer::Refused(error),
            _ => ApiAnswer::Unusable(NoAnswer::Invalid(format!(
                "MondiaPay answered HTTP {status}"
            ))),
        }
    }
}

/// An error code that repeats the token sent is not passed on (it would be logged and returned).
fn without_echo(mut error: UpstreamError, sent: &[&str]) -> UpstreamError {
    if sent.iter().any(|sent| shares_a_run(&error.error, sent)) {
        error.error = UNRECOGNISED_ERROR.to_owned();
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_is_one_some_call_can_end_in() {
        for outcome in CallOutcome::ALL {
            assert!(
                CallName::ALL
                    .iter()
                    .any(|call| call.outcomes().contains(outcome)),
                "{outcome:?} is never shown at 0"
            );
        }
    }
}

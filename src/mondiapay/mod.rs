//! The client for MondiaPay: one pooled HTTP client for the token endpoint (its three grants and
//! three client authentication styles) and the API calls made with a bearer token (`api.rs`);
//! bounded answers, and retries only where the request never left.

mod answer;
mod api;
mod client_token;
mod prepare;
mod scrub;
mod subscriptions;

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{RequestBuilder, Response, redirect};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use url::Url;

pub use answer::{Answer, DEFAULT_EXPIRES_IN_SECS, read_answer};
pub use api::{ApiAnswer, ApiCall, CallName, CallOutcome};
pub use client_token::{ClientToken, ClientTokenError};
pub use prepare::{PrepareError, Prepared, PurchaseOrder};

use std::sync::Arc;

use crate::crypto::random_bytes;
use crate::domain::{Code, NoAnswer, UNRECOGNISED_ERROR, UpstreamError};
use crate::metrics::Metrics;
use crate::settings::{ClientAuth, MondiaPaySettings};

/// A token answer is a few hundred bytes; anything past this is not one and is not buffered.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// What a token call asks for.
#[derive(Debug, Clone, Copy)]
pub enum Grant<'a> {
    /// A user's token for the code from the purchase's redirect (single use).
    AuthorizationCode(&'a Code),
    /// The merchant's own client token, for Prepare Purchase.
    ClientCredentials,
    /// A fresh user token for a user MondiaPay knows, without a new code.
    UserCredentials { uuid: &'a str },
}

impl<'a> Grant<'a> {
    fn grant_type(self) -> &'static str {
        match self {
            Self::AuthorizationCode(_) => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::UserCredentials { .. } => "user_credentials",
        }
    }

    /// The code this call spends, if it carries one.
    fn code(self) -> Option<&'a Code> {
        match self {
            Self::AuthorizationCode(code) => Some(code),
            _ => None,
        }
    }
}

pub struct MondiaPayClient {
    http: reqwest::Client,
    token_url: Url,
    api_base: Url,
    client_id: String,
    client_secret: SecretString,
    redirect_uri: String,
    client_auth: ClientAuth,
    connect_retries: u32,
    metrics: Arc<Metrics>,
    /// The merchant's client token, in memory only (see `client_token`).
    client_tokens: client_token::ClientTokenCache,
}

impl MondiaPayClient {
    /// Builds the client from validated settings.
    pub fn new(
        settings: &MondiaPaySettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(settings.connect_timeout())
            .timeout(settings.timeout())
            // A redirect is never a token answer, and following one would resend the code.
            .redirect(redirect::Policy::none())
            // Closed before servers and load balancers commonly close an idle connection (60 to
            // 75 s), and instead of reqwest's 90 s: a burst of exchanges left every connection
            // it opened (about 36 KiB each) resident for that long (bench/analysis.md).
            .pool_idle_timeout(settings.idle_connection())
            .user_agent(concat!("mondiapay-token-proxy/", env!("CARGO_PKG_VERSION")))
            .build()?;
        for call in CallName::ALL {
            metrics.start_call_at_zero(
                call.as_str(),
                call.outcomes().iter().map(|outcome| outcome.as_str()),
            );
        }
        Ok(Self {
            http,
            token_url: settings.token_url.clone(),
            api_base: settings.api_base(),
            client_id: settings.client_id.clone().unwrap_or_default(),
            client_secret: settings
                .client_secret
                .as_ref()
                .map(|s| SecretString::from(s.expose_secret()))
                .unwrap_or_default(),
            redirect_uri: settings
                .redirect_uri
                .as_ref()
                .map(Url::to_string)
                .unwrap_or_default(),
            client_auth: settings.client_auth,
            connect_retries: settings.connect_retries,
            metrics,
            client_tokens: client_token::ClientTokenCache::default(),
        })
    }

    /// Exchanges `code` for a User Access Token.
    pub async fn exchange_code(&self, code: &Code) -> Answer {
        self.token_call(Grant::AuthorizationCode(code)).await
    }

    /// One call of the token endpoint. Retries only failures to connect (refused, DNS, TLS
    /// handshake, connect timeout): the request provably never reached MondiaPay then.
    #[tracing::instrument(name = "mondiapay_token_call", skip_all, fields(grant = grant.grant_type()))]
    pub async fn token_call(&self, grant: Grant<'_>) -> Answer {
        let started = Instant::now();
        let answer = match self.send(|| self.token_request(grant)).await {
            Ok(response) => self.read(response, grant).await,
            Err(reason) => Answer::Unusable(reason),
        };
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            outcome = answer_kind(&answer),
            "MondiaPay token call finished"
        );
        answer
    }

    /// Sends the request `build` makes, again after a failure to connect (refused, DNS, TLS
    /// handshake, connect timeout) up to `mondiapay.connect_retries` times: only then did it
    /// provably never reach MondiaPay.
    async fn send(&self, build: impl Fn() -> RequestBuilder) -> Result<Response, NoAnswer> {
        let mut attempt = 0;
        loop {
            match build().send().await {
                Ok(response) => return Ok(response),
                Err(error) if error.is_connect() && attempt < self.connect_retries => {
                    attempt += 1;
                    self.metrics.connect_retry();
                    let pause = backoff(attempt);
                    tracing::warn!(attempt, error = %error.without_url(), pause_ms = pause.as_millis() as u64, "MondiaPay unreachable; retrying");
                    tokio::time::sleep(pause).await;
                }
                Err(error) => {
                    let error = error.without_url();
                    tracing::warn!(%error, "MondiaPay call failed");
                    return Err(if error.is_timeout() {
                        NoAnswer::TimedOut
                    } else {
                        NoAnswer::Unreachable
                    });
                }
            }
        }
    }

    fn token_request(&self, grant: Grant<'_>) -> RequestBuilder {
        let id = self.client_id.as_str();
        let secret = self.client_secret.expose_secret();
        let request = match self.client_auth {
            ClientAuth::Query => {
                let params = TokenParams::new(grant, &self.redirect_uri, Some((id, secret)));
                self.http
                    .post(with_query(&self.token_url, &params.encode()))
                    .body("")
            }
            ClientAuth::Form => {
                let params = TokenParams::new(grant, &self.redirect_uri, Some((id, secret)));
                self.http.post(self.token_url.clone()).body(params.encode())
            }
            ClientAuth::Basic => {
                let params = TokenParams::new(grant, &self.redirect_uri, None);
                self.http
                    .post(self.token_url.clone())
                    .header(AUTHORIZATION, basic_authorization(id, secret))
                    .body(params.encode())
            }
        };
        request
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, FORM_CONTENT_TYPE)
    }

    async fn read(&self, response: Response, grant: Grant<'_>) -> Answer {
        let status = response.status().as_u16();
        // A 2xx means MondiaPay took the grant (a code's is spent), whatever follows.
        let spent = response.status().is_success();
        let body = match read_capped(response).await {
            Ok(body) => body,
            Err(reason) if spent => {
                tracing::error!(status, %reason, "MondiaPay answered success but its answer could not be read: a code sent is spent");
                return Answer::CodeRejected(UpstreamError::no_token(status));
            }
            Err(reason) => {
                tracing::warn!(status, %reason, "MondiaPay's answer could not be read");
                return Answer::Unusable(reason);
            }
        };
        let mut sent = vec![self.client_secret.expose_secret()];
        sent.extend(grant.code().map(Code::expose));
        let answer = without_echoes(read_answer(status, &body), &sent);
        match &answer {
            Answer::Issued(_) => {}
            // A 2xx body may hold a token in a shape this service did not take: never logged.
            Answer::CodeRejected(error) if spent && error.is_no_token() => {
                tracing::error!(
                    status,
                    "MondiaPay answered success without a usable access_token: a code sent is spent"
                );
            }
            Answer::CodeRejected(error) if spent => {
                tracing::warn!(status, mondiapay_error = %error.error, "MondiaPay answered success with an error and no token");
            }
            _ => {
                // The raw body helps an operator: scrubbed of anything we sent, then cut short.
                let sent = self.sent_spellings(grant.code());
                let hidden: Vec<(&str, &str)> = sent
                    .iter()
                    .map(|(text, label)| (text.as_str(), *label))
                    .collect();
                let excerpt = scrub::excerpt(&body, &hidden);
                tracing::warn!(status, body = %excerpt, "MondiaPay did not issue a token");
            }
        }
        answer
    }
}

impl MondiaPayClient {
    /// What an error body must not show of what was sent, with the label that replaces it:
    /// the secret and the code, also base64-encoded (unpadded covers padded), and with HTTP
    /// Basic the base64 of `id:secret`. `scrub` adds the percent-encoded and JSON-escaped forms.
    fn sent_spellings(&self, code: Option<&Code>) -> Vec<(String, &'static str)> {
        use base64::engine::general_purpose::STANDARD_NO_PAD;
        let secret = self.client_secret.expose_secret();
        let mut sent = vec![
            (secret.to_owned(), "[secret]"),
            (STANDARD_NO_PAD.encode(secret), "[secret]"),
        ];
        if let Some(code) = code {
            sent.push((code.expose().to_owned(), "[code]"));
            sent.push((STANDARD_NO_PAD.encode(code.expose()), "[code]"));
        }
        if self.client_auth == ClientAuth::Basic {
            sent.push((
                basic_pair_unpadded(&self.client_id, secret),
                "[credentials]",
            ));
        }
        sent.retain(|(text, _)| !text.is_empty());
        sent
    }
}

/// An error code that repeats what was sent (the code, the client secret), even in part or in
/// another case, is not passed on: it would be logged, stored and returned by the API.
fn without_echoes(answer: Answer, sent: &[&str]) -> Answer {
    let echoes = |error: &str| sent.iter().any(|sent| shares_a_run(error, sent));
    match answer {
        Answer::CodeRejected(mut error) if echoes(&error.error) => {
            error.error = UNRECOGNISED_ERROR.to_owned();
            Answer::CodeRejected(error)
        }
        Answer::CredentialsRejected(mut error) if echoes(&error.error) => {
            error.error = UNRECOGNISED_ERROR.to_owned();
            Answer::CredentialsRejected(error)
        }
        other => other,
    }
}

/// Shortest piece of a code or secret that counts as repeating it: error codes are words
/// (`INVALID_PARAMETERS`), and a random code shares no run this long with one.
const ECHO_RUN: usize = 8;

/// Whether `error` holds a run of `ECHO_RUN` letters and digits of `sent` (or all of a shorter
/// `sent`), ignoring case and punctuation.
fn shares_a_run(error: &str, sent: &str) -> bool {
    let plain = |text: &str| -> Vec<u8> {
        text.bytes()
            .filter(u8::is_ascii_alphanumeric)
            .map(|b| b.to_ascii_lowercase())
            .collect()
    };
    let (error, sent) = (plain(error), plain(sent));
    if sent.is_empty() {
        return false;
    }
    let run = ECHO_RUN.min(sent.len());
    error
        .windows(run)
        .any(|piece| sent.windows(run).any(|other| other == piece))
}

/// The base64 of Basic's `id:secret` without padding: it also hides the padded form, and an
/// echo may drop the padding. (Form-urlencoded text never yields `+` or `/` in base64, so the
/// URL-safe alphabet spells it the same.)
fn basic_pair_unpadded(client_id: &str, client_secret: &str) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(basic_pair(client_id, client_secret))
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined. Each is one bare
/// value, not a `name=value` pair, and serde_urlencoded only serializes pairs, so the value
/// encoder it is built on (`form_urlencoded::byte_serialize`) does it.
fn basic_pair(client_id: &str, client_secret: &str) -> String {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("{}:{}", encode(client_id), encode(client_secret))
}

/// RFC 6749 §2.3.1: the form-urlencoded `id:secret`, base64-encoded.
pub fn basic_authorization(client_id: &str, client_secret: &str) -> HeaderValue {
    let pair = basic_pair(client_id, client_secret);
    let mut value = HeaderValue::try_from(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
    .expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

/// The token call's parameters, in the order MondiaPay's examples send them. With HTTP Basic the
/// credentials travel in the `Authorization` header, so they are left out here.
#[derive(Serialize)]
struct TokenParams<'a> {
    grant_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect_uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uuid: Option<&'a str>,
}

impl<'a> TokenParams<'a> {
    fn new(
        grant: Grant<'a>,
        redirect_uri: &'a str,
        credentials: Option<(&'a str, &'a str)>,
    ) -> Self {
        let code = grant.code().map(Code::expose);
        Self {
            grant_type: grant.grant_type(),
            client_id: credentials.map(|(id, _)| id),
            client_secret: credentials.map(|(_, secret)| secret),
            code,
            // The redirect URI belongs to the code it came with (RFC 6749 §4.1.3).
            redirect_uri: code.map(|_| redirect_uri),
            uuid: match grant {
                Grant::UserCredentials { uuid } => Some(uuid),
                _ => None,
            },
        }
    }

    /// `application/x-www-form-urlencoded`: the query string or the form body.
    fn encode(&self) -> String {
        serde_urlencoded::to_string(self).expect("a struct of strings always serializes")
    }
}

/// `url` with `params` appended to its own query, if it has one.
fn with_query(url: &Url, params: &str) -> Url {
    let mut url = url.clone();
    let query = match url.query() {
        Some(own) if !own.is_empty() => format!("{own}&{params}"),
        _ => params.to_owned(),
    };
    url.set_query(Some(&query));
    url
}

async fn read_capped(mut response: Response) -> Result<Vec<u8>, NoAnswer> {
    let too_large = || {
        NoAnswer::Invalid(format!(
            "MondiaPay's answer is larger than {MAX_ANSWER_BYTES} bytes"
        ))
    };
    if response
        .content_length()
        .is_some_and(|len| len > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| {
        if error.is_timeout() {
            NoAnswer::TimedOut
        } else {
            NoAnswer::Unreachable
        }
    })? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Exponential backoff from 100 ms with up to 100 ms of jitter, so replicas do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let jitter = u64::from(random_bytes::<1>()[0]) * 100 / 255;
    Duration::from_millis(100 * 2u64.pow(attempt.saturating_sub(1).min(6)) + jitter)
}

fn answer_kind(answer: &Answer) -> &'static str {
    match answer {
        Answer::Issued(_) => "issued",
        Answer::CodeRejected(error) if error.is_no_token() => "no_token_in_answer",
        Answer::CodeRejected(_) => "code_rejected",
        Answer::CredentialsRejected(_) => "credentials_rejected",
        Answer::Unusable(reason) => reason.label(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_authorization_matches_the_spec_test_vector() {
        let value = basic_authorization(
            "1PpG/Q 1",
            "z/tZ9VwFZqApmIQ+ZH1I5pLk/uB4ud:X2/8bL+wfFTt1rFw=",
        );
        assert_eq!(
            value.to_str().unwrap(),
            "Basic MVBwRyUyRlErMTp6JTJGdFo5VndGWnFBcG1JUSUyQlpIMUk1cExrJTJGdUI0dWQlM0FYMiUyRjhiTCUyQndmRlR0MXJGdyUzRA=="
        );
        assert!(value.is_sensitive());
    }

    #[test]
    fn an_error_code_repeating_the_code_or_the_secret_is_not_passed_on() {
        let rejected = |body: &str| {
            without_echoes(
                read_answer(400, body.as_bytes()),
                &["Aq7Zp3Xk9Lm2", "S3cret-value-42"],
            )
        };
        for body in [
            r#"{"error":"Aq7Zp3Xk9Lm2"}"#,
            r#"{"error":"BAD_Aq7Zp3Xk9Lm2_CODE"}"#,
            r#"{"error":"S3cret-value-42"}"#,
            // A part of it, another case, its punctuation dropped.
            r#"{"error":"aq7zp3xk9lm"}"#,
            r#"{"error":"ERR_AQ7ZP3XK9"}"#,
            r#"{"error":"S3cretvalue42"}"#,
            r#"{"error":"x_cretvalu_x"}"#,
        ] {
            let Answer::CodeRejected(error) = rejected(body) else {
                panic!("{body}")
            };
            assert_eq!(error.error, UNRECOGNISED_ERROR, "{body}");
        }
        for kept in ["invalid_grant", "TOKEN_NOT_FOUND", "INVALID_PARAMETERS"] {
            let body = format!(r#"{{"error":"{kept}"}}"#);
            let Answer::CodeRejected(error) = rejected(&body) else {
                panic!()
            };
            assert_eq!(error.error, kept);
        }
    }

    #[test]
    fn every_spelling_of_what_was_sent_is_hidden_from_a_logged_body() {
        let settings = MondiaPaySettings {
            client_id: Some("merchant".to_owned()),
            client_secret: Some("S3cret/value".into()),
            client_auth: ClientAuth::Basic,
            ..MondiaPaySettings::default()
        };
        let client = MondiaPayClient::new(&settings, Arc::new(Metrics::default())).unwrap();
        let code = Code::parse("Aq7Zp3Xk9Lm2", "A").unwrap();
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let basic = basic_authorization("merchant", "S3cret/value");
        let body = format!(
            "{} {} {} {} {}",
            "S3cret/value",
            b64("S3cret/value"),
            "Aq7Zp3Xk9Lm2",
            b64("Aq7Zp3Xk9Lm2"),
            basic.to_str().unwrap().trim_start_matches("Basic ")
        );
        let sent = client.sent_spellings(Some(&code));
        let hidden: Vec<(&str, &str)> = sent.iter().map(|(t, l)| (t.as_str(), *l)).collect();
        let excerpt = scrub::excerpt(body.as_bytes(), &hidden);
        for leak in [
            "S3cret",
            "Aq7Zp3",
            &b64("S3cret/value")[..8],
            &b64("Aq7Zp3Xk9Lm2")[..8],
        ] {
            assert!(!excerpt.contains(leak), "{leak} in {excerpt}");
        }
        assert!(excerpt.contains("[credentials]"), "{excerpt}");
    }

    #[test]
    fn basic_credentials_are_hidden_padded_or_not() {
        let (id, secret) = ("merchant?", "s3cr3t >>~");
        let unpadded = basic_pair_unpadded(id, secret);
        let padded = basic_authorization(id, secret);
        let padded = padded.to_str().unwrap().trim_start_matches("Basic ");
        assert!(padded.ends_with('=') && padded.starts_with(&unpadded));
        for echoed in [padded, unpadded.as_str()] {
            let body = format!(r#"{{"error":"invalid_client","message":"got {echoed}"}}"#);
            let excerpt = scrub::excerpt(body.as_bytes(), &[(&unpadded, "[credentials]")]);
            assert!(
                !excerpt.contains(&unpadded[..unpadded.len() - 2]),
                "{excerpt}"
            );
            assert!(excerpt.contains("got [credentials]"), "{excerpt}");
        }
    }

    #[test]
    fn the_token_call_parameters_are_spelled_byte_for_byte() {
        let code = Code::parse("Aq7-Zp_3.X~k", "A").unwrap();
        let redirect_uri = "https://merchant.example/thanks?x=1&y=a b";
        let credentials = Some(("id +/:&=", "s e+c/r:e&t="));
        let with =
            TokenParams::new(Grant::AuthorizationCode(&code), redirect_uri, credentials).encode();
        assert_eq!(
            with,
            "grant_type=authorization_code&client_id=id+%2B%2F%3A%26%3D\
             &client_secret=s+e%2Bc%2Fr%3Ae%26t%3D&code=Aq7-Zp_3.X%7Ek\
             &redirect_uri=https%3A%2F%2Fmerchant.example%2Fthanks%3Fx%3D1%26y%3Da+b"
        );
        // HTTP Basic: the credentials are in the header, not the body.
        assert_eq!(
            TokenParams::new(Grant::AuthorizationCode(&code), redirect_uri, None).encode(),
            "grant_type=authorization_code&code=Aq7-Zp_3.X%7Ek\
             &redirect_uri=https%3A%2F%2Fmerchant.example%2Fthanks%3Fx%3D1%26y%3Da+b"
        );
        // Query style: appended to the token URL's own query, kept as serialized.
        let bare = Url::parse("https://pay.example/v1/api/oauth/token").unwrap();
        assert_eq!(
            with_query(&bare, &with).as_str(),
            format!("https://pay.example/v1/api/oauth/token?{with}")
        );
        let own = Url::parse("https://pay.example/token?tenant=7").unwrap();
        assert_eq!(
            with_query(&own, &with).as_str(),
            format!("https://pay.example/token?tenant=7&{with}")
        );
    }

    #[test]
    fn the_other_grants_send_no_code_and_no_redirect_uri() {
        let redirect_uri = "https://merchant.example/thanks";
        let credentials = Some(("id", "secret"));
        assert_eq!(
            TokenParams::new(Grant::ClientCredentials, redirect_uri, credentials).encode(),
            "grant_type=client_credentials&client_id=id&client_secret=secret"
        );
        assert_eq!(
            TokenParams::new(Grant::UserCredentials { uuid: "81 42" }, redirect_uri, None).encode(),
            "grant_type=user_credentials&uuid=81+42"
        );
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(
            backoff(1) >= Duration::from_millis(100) && backoff(1) <= Duration::from_millis(200)
        );
        assert!(backoff(3) >= Duration::from_millis(400));
        assert!(backoff(50) <= Duration::from_millis(6500));
    }
}

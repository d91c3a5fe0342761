//! The merchant's client token (`grant_type=client_credentials`), for Prepare Purchase: held in
//! memory only (never stored, never logged), reused until shortly before it expires, as
//! MondiaPay asks, and fetched one at a time however many requests need it at once.
//!
//! One lock guards the cache and the fetch: requests that arrive while a fetch is under way wait
//! for it and take its token, or its failure (so a MondiaPay that is down sees one call per
//! burst, not one per request). A token MondiaPay refused is dropped by `invalidate`, but only
//! if it is still the cached one: a refusal of an older token does not throw away a newer one.

use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{Answer, CallName, CallOutcome, MondiaPayClient};
use crate::domain::{NoAnswer, UpstreamError};

/// A client token is fetched again this long before it expires (or at half its life, if that
/// is shorter): a call made with it must not reach MondiaPay just after it lapsed.
const REFRESH_AHEAD: Duration = Duration::from_secs(120);

/// A client token, and which fetch it came from (so that `invalidate` drops only this one).
#[derive(Clone)]
pub struct ClientToken {
    pub token: SecretString,
    fetch: u64,
}

/// Why there is no client token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientTokenError {
    /// MondiaPay refused the merchant's credentials (or the grant): a configuration fault.
    #[error("MondiaPay refused the client credentials grant ({})", .0.error)]
    Refused(UpstreamError),
    /// No usable answer from the token endpoint.
    #[error(transparent)]
    Unusable(NoAnswer),
}

#[derive(Default)]
pub(super) struct ClientTokenCache {
    state: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    token: Option<(ClientToken, Instant)>,
    fetches: u64,
    /// The last fetch's failure and when it ended: waiters that arrived before then get it.
    failure: Option<(ClientTokenError, Instant)>,
}

impl MondiaPayClient {
    /// The cached client token, or a new one (one fetch at a time).
    pub async fn client_token(&self) -> Result<ClientToken, ClientTokenError> {
        let arrived = Instant::now();
        let mut held = self.client_tokens.state.lock().await;
        if let Some((token, refresh_at)) = &held.token
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        // A fetch that ended while this request waited for the lock speaks for it too.
        if let Some((error, ended)) = &held.failure
            && *ended >= arrived
        {
            return Err(error.clone());
        }
        let fetched = self.fetch_client_token().await;
        let now = Instant::now();
        match fetched {
            Ok((token, lifetime)) => {
                held.fetches += 1;
                let token = ClientToken {
                    token,
                    fetch: held.fetches,
                };
                let ahead = REFRESH_AHEAD.min(lifetime / 2);
                held.token = Some((token.clone(), now + lifetime - ahead));
                held.failure = None;
                Ok(token)
            }
            Err(error) => {
                held.token = None;
                held.failure = Some((error.clone(), now));
                Err(error)
            }
        }
    }

    /// Forgets `refused`, which MondiaPay answered `401` to, if it is still the cached token:
    /// the next `client_token` fetches a new one.
    pub async fn invalidate(&self, refused: &ClientToken) {
        let mut held = self.client_tokens.state.lock().await;
        if held
            .token
            .as_ref()
            .is_some_and(|(token, _)| token.fetch == refused.fetch)
        {
            held.token = None;
        }
    }

    async fn fetch_client_token(&self) -> Result<(SecretString, Duration), ClientTokenError> {
        let started = std::time::Instant::now();
        let answer = self.token_call(super::Grant::ClientCredentials).await;
        let (result, outcome) = match answer {
            Answer::Issued(token) => (
                Ok((token.access_token, Duration::from_secs(token.expires_in))),
                CallOutcome::Issued,
            ),
            // A 2xx without a token is no usable answer here: no code was spent.
            Answer::CodeRejected(error) if error.is_no_token() => (
                Err(ClientTokenError::Unusable(NoAnswer::Invalid(
                    "MondiaPay answered the client credentials grant without a token".to_owned(),
                ))),
                CallOutcome::InvalidAnswer,
            ),
            Answer::CodeRejected(error) | Answer::CredentialsRejected(error) => {
                tracing::error!(mondiapay_error = %error.error, http_status = error.http_status,
                    "MondiaPay refused the client credentials grant: check mondiapay.client_id and mondiapay.client_secret");
                (Err(ClientTokenError::Refused(error)), CallOutcome::Refused)
            }
            Answer::Unusable(reason) => {
                let outcome = CallOutcome::no_answer(&reason);
                (Err(ClientTokenError::Unusable(reason)), outcome)
            }
        };
        self.metrics.mondiapay_api_call(
            CallName::ClientToken.as_str(),
            outcome.as_str(),
            started.elapsed(),
        );
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use secrecy::ExposeSecret;
    use serde_json::json;
    use wiremock::matchers::{method, query_param};
    use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

    use super::*;
    use crate::metrics::Metrics;
    use crate::settings::MondiaPaySettings;

    /// Issues `C<n>` tokens living `lifetime` seconds, counting the calls.
    struct Issue(&'static str, std::sync::atomic::AtomicU64);

    impl Respond for Issue {
        fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
            let n = self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": format!("C{n}"), "expires_in": self.0}))
        }
    }

    async fn client_with(lifetime: &'static str, calls: u64) -> (MockServer, MondiaPayClient) {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(query_param("grant_type", "client_credentials"))
            .respond_with(Issue(lifetime, 0.into()))
            .expect(calls)
            .mount(&server)
            .await;
        let settings = MondiaPaySettings {
            token_url: format!("{}/v1/api/oauth/token", server.uri())
                .parse()
                .unwrap(),
            client_id: Some("merchant".to_owned()),
            client_secret: Some("secret".into()),
            ..MondiaPaySettings::default()
        };
        let client = MondiaPayClient::new(&settings, Arc::new(Metrics::default())).unwrap();
        (server, client)
    }

    fn text(token: &ClientToken) -> &str {
        token.token.expose_secret()
    }

    #[tokio::test]
    async fn only_the_refused_token_is_forgotten() {
        let (_server, client) = client_with("43200", 2).await;
        let first = client.client_token().await.unwrap();
        assert_eq!(text(&client.client_token().await.unwrap()), "C0");
        client.invalidate(&first).await;
        let second = client.client_token().await.unwrap();
        assert_eq!(text(&second), "C1");
        // A late refusal of the old token leaves the new one cached.
        client.invalidate(&first).await;
        assert_eq!(text(&client.client_token().await.unwrap()), "C1");
    }

    #[tokio::test]
    async fn a_token_is_fetched_again_shortly_before_it_expires() {
        // Two seconds of life: fetched again after one (half its life, as it is that short).
        let (_server, client) = client_with("2", 2).await;
        assert_eq!(text(&client.client_token().await.unwrap()), "C0");
        assert_eq!(text(&client.client_token().await.unwrap()), "C0");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(text(&client.client_token().await.unwrap()), "C1");
    }

    #[tokio::test]
    async fn requests_waiting_for_a_failed_fetch_share_its_failure() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_millis(300)))
            .expect(1)
            .mount(&server)
            .await;
        let settings = MondiaPaySettings {
            token_url: format!("{}/token", server.uri()).parse().unwrap(),
            connect_retries: 0,
            ..MondiaPaySettings::default()
        };
        let client =
            Arc::new(MondiaPayClient::new(&settings, Arc::new(Metrics::default())).unwrap());
        let waiting: Vec<_> = (0..10)
            .map(|_| {
                let client = Arc::clone(&client);
                tokio::spawn(async move { client.client_token().await.is_err() })
            })
            .collect();
        for failed in waiting {
            assert!(failed.await.unwrap());
        }
    }
}

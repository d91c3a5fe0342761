//! The service's own MondiaPay client against the sandbox: every grant in every client auth
//! style, and every API call of the round trip, is read as the answer MondiaPay means — so the
//! sandbox and the service speak the same MondiaPay.

use std::sync::Arc;

use mondiapay_token_proxy::domain::Code;
use mondiapay_token_proxy::metrics::Metrics;
use mondiapay_token_proxy::mondiapay::{Answer, ApiAnswer, ApiCall, Grant, MondiaPayClient};
use mondiapay_token_proxy::sandbox;
use mondiapay_token_proxy::settings::{Purpose, Settings};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::sandbox::{SandboxMondiaPay, THANKS, param, redirected_to};

/// The service's client, built from settings as the service builds it, talking to `mondiapay`.
fn client_of(mondiapay: &SandboxMondiaPay, client_auth: &str, secret: &str) -> MondiaPayClient {
    let dir = tempfile::tempdir().unwrap();
    let mut env: std::collections::HashMap<_, _> = settings(&format!(
        "MONDIAPAY__TOKEN_URL={}{} MONDIAPAY__API_URL={} MONDIAPAY__CLIENT_AUTH={client_auth} \
         MONDIAPAY__CLIENT_ID={CLIENT_ID} MONDIAPAY__CLIENT_SECRET={secret} \
         MONDIAPAY__REDIRECT_URI={REDIRECT_URI} INTERNAL__API_KEYS={API_KEY}",
        mondiapay.url,
        sandbox::TOKEN_PATH,
        mondiapay.url
    ))
    .collect();
    env.insert(
        "TOKEN_PROXY__STORE__URL".to_owned(),
        format!("sqlite://{}/tokens.db", dir.path().display()),
    );
    let settings = Settings::load(None, Some(env), Purpose::Serve).unwrap();
    MondiaPayClient::new(&settings.mondiapay, Arc::new(Metrics::default())).unwrap()
}

fn issued(answer: Answer) -> SecretString {
    match answer {
        Answer::Issued(token) => {
            assert_eq!(token.expires_in, 43_200);
            token.access_token
        }
        other => panic!("no token: {other:?}"),
    }
}

async fn call(
    client: &MondiaPayClient,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    bearer: &SecretString,
    body: Option<&Value>,
) -> ApiAnswer {
    let call = ApiCall {
        name: "sandbox_test",
        method,
        path,
        query,
        bearer,
        body,
    };
    client.api_call(&call).await
}

#[tokio::test]
async fn the_services_client_gets_every_grant_from_the_sandbox_in_every_client_auth_style() {
    let mondiapay = SandboxMondiaPay::start().await;
    for style in ["query", "form", "basic"] {
        let client = client_of(&mondiapay, style, CLIENT_SECRET);
        let client_token = issued(client.token_call(Grant::ClientCredentials).await);
        assert!(client_token.expose_secret().starts_with('C'), "{style}");
        let back = mondiapay.confirmed_purchase().await;
        let code = Code::parse(&param(&back, "code").unwrap(), "A").unwrap();
        let user_token = issued(client.token_call(Grant::AuthorizationCode(&code)).await);
        assert!(user_token.expose_secret().starts_with('U'), "{style}");
        let uuid = param(&back, "uuid").unwrap();
        let renewed = issued(
            client
                .token_call(Grant::UserCredentials { uuid: &uuid })
                .await,
        );
        assert!(renewed.expose_secret().starts_with('U'), "{style}");
        let refused = client_of(&mondiapay, style, "not-the-secret")
            .token_call(Grant::ClientCredentials)
            .await;
        assert!(
            matches!(refused, Answer::CredentialsRejected(_)),
            "{style}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn the_services_client_reads_the_sandboxs_round_trip_calls_as_mondiapays() {
    let mondiapay = SandboxMondiaPay::start().await;
    let client = client_of(&mondiapay, "query", CLIENT_SECRET);
    let client_token = issued(client.token_call(Grant::ClientCredentials).await);
    let prepare = json!({"redirect": THANKS, "subscriptionTypeId": "12345"});
    let prepared = call(
        &client,
        Method::POST,
        sandbox::PREPARE_PATH,
        &[],
        &client_token,
        Some(&prepare),
    )
    .await;
    let ApiAnswer::Done(prepared) = prepared else {
        panic!("Prepare Purchase: {prepared:?}");
    };
    let href = prepared["_links"]["initiatePurchase"]["href"]
        .as_str()
        .unwrap();
    let back = redirected_to(mondiapay.decide(href, "confirm").await);
    let code = Code::parse(&param(&back, "code").unwrap(), "A").unwrap();
    let user_token = issued(client.token_call(Grant::AuthorizationCode(&code)).await);

    let subscription = sandbox::SUBSCRIPTION_PATH;
    let query = [("subscriptionTypeId", "12345")];
    let listed = call(
        &client,
        Method::GET,
        subscription,
        &query,
        &user_token,
        None,
    )
    .await;
    let ApiAnswer::Done(Value::Array(listed)) = listed else {
        panic!("Get subscription: {listed:?}");
    };
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let path = format!("{subscription}/{id}");
    let now = [("immediately", "true")];
    let cancelled = call(&client, Method::DELETE, &path, &now, &user_token, None).await;
    assert!(
        matches!(cancelled, ApiAnswer::Done(Value::Null)),
        "{cancelled:?}"
    );
    let again = call(&client, Method::DELETE, &path, &now, &user_token, None).await;
    let ApiAnswer::Refused(error) = again else {
        panic!("a second cancel: {again:?}");
    };
    assert_eq!(error.error, "SUBSCRIPTION_NOT_FOUND");

    let unknown = SecretString::from("Unot-one-the-sandbox-issued");
    let refused = call(&client, Method::GET, subscription, &query, &unknown, None).await;
    let ApiAnswer::TokenRefused(error) = refused else {
        panic!("an unknown token: {refused:?}");
    };
    assert_eq!(error.error, "TOKEN_NOT_FOUND");
}

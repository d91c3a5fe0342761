//! `demo`: the whole round trip on loopback with no credentials and no configuration: a sandbox
//! MondiaPay (client tokens, Prepare Purchase, the purchase page, subscriptions, notifications),
//! the service wired to it on a throwaway SQLite store, and the steps as `curl` commands.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;

use base64::Engine;
use tokio::net::TcpListener;
use url::Url;

use crate::crypto::random_bytes;
use crate::sandbox::{self, Sandbox};
use crate::settings::{LogFormat, Purpose, Settings};
use crate::startup::Application;
use crate::telemetry;

/// Runs the demo until `shutdown` completes.
pub async fn run(
    port: u16,
    internal_port: u16,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init(LogFormat::Pretty);
    let store = tempfile::Builder::new()
        .prefix("mondiapay-token-proxy-demo-")
        .tempdir()?;
    let sandbox_listener = TcpListener::bind("127.0.0.1:0").await?;
    let sandbox_address = sandbox_listener.local_addr()?;
    // Bound first, so that the redirect MondiaPay is given names the port really listened on
    // (`--port 0` picks a free one).
    let public = bind(port, "--port").await?;
    let internal = bind(internal_port, "--internal-port").await?;
    let public_address = public.local_addr()?;
    let api_key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<24>());
    let client_secret =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<24>());
    let client_id = "demo-merchant";
    let notification_secret =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let env: HashMap<String, String> = [
        (
            "MONDIAPAY__TOKEN_URL",
            format!("http://{sandbox_address}{}", sandbox::TOKEN_PATH),
        ),
        ("MONDIAPAY__API_URL", format!("http://{sandbox_address}")),
        ("MONDIAPAY__CLIENT_ID", client_id.to_owned()),
        ("MONDIAPAY__CLIENT_SECRET", client_secret.clone()),
        (
            "MONDIAPAY__REDIRECT_URI",
            format!("http://{public_address}/oauth/callback"),
        ),
        // Every callback must belong to a purchase the service started: the recommended setting.
        ("PURCHASES__ENFORCE", "true".to_owned()),
        ("NOTIFICATIONS__SECRET", notification_secret.clone()),
        ("PUBLIC__LISTEN", public_address.to_string()),
        ("INTERNAL__LISTEN", internal.local_addr()?.to_string()),
        ("INTERNAL__API_KEYS", api_key.clone()),
        (
            "STORE__URL",
            format!("sqlite://{}/tokens.db", store.path().display()),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (format!("TOKEN_PROXY__{key}"), value))
    .collect();
    let settings = Settings::load(None, Some(env), Purpose::Serve)?;
    let app = Application::with_listeners(&settings, public, internal).await?;
    let notifications = Url::parse(&format!(
        "http://{}/mondiapay/notifications/{notification_secret}",
        app.public_addr()
    ))?;
    let mondiapay = Sandbox::new(client_id, &client_secret).notifying(notifications);
    tokio::spawn(mondiapay.serve(sandbox_listener));
    let guide = guide(
        &format!("http://{sandbox_address}"),
        &format!("http://{}", app.internal_addr()),
        &api_key,
        &store.path().display().to_string(),
    );
    // A closed standard output (a reader that went away) must not stop the demo.
    let _ = std::io::stdout()
        .write_all(guide.as_bytes())
        .and_then(|()| std::io::stdout().flush());
    app.run_until(shutdown).await?;
    Ok(())
}

/// A loopback listener on `port`, or one line naming the option and the cause.
async fn bind(port: u16, option: &str) -> Result<TcpListener, Box<dyn std::error::Error>> {
    TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|error| format!("{option}: cannot listen on 127.0.0.1:{port}: {error}").into())
}

/// The round trip, step by step, as commands to paste.
fn guide(sandbox: &str, internal: &str, api_key: &str, store: &str) -> String {
    let key = format!("-H 'Authorization: Bearer {api_key}'");
    let json = "-H 'Content-Type: application/json'";
    format!(
        "mondiapay-token-proxy demo: a sandbox MondiaPay and the service, on loopback.\n\
         The sandbox MondiaPay: {sandbox} (it confirms purchases, keeps subscriptions and \
         notifies the service)\n\n\
         1. Start a purchase:\n   \
         curl -s -X POST {key} {json} -d '{{\"subscription_type_id\": 12345, \"ref\": \"ORDER-1\"}}' '{internal}/v1/purchases'\n\
         2. Open its redirect_url in a browser and confirm the purchase (or pay with an empty \
         balance, or cancel).\n\
         3. See the token:\n   \
         curl -s {key} '{internal}/v1/tokens?ref=ORDER-1'\n\
         4. See the subscription:\n   \
         curl -s {key} '{internal}/v1/subscriptions?ref=ORDER-1'\n\
         5. Cancel it (the sandbox numbers subscriptions from 1001: use the id step 4 shows):\n   \
         curl -s -X DELETE {key} '{internal}/v1/subscriptions/1001?ref=ORDER-1&immediately=true'\n\
         6. Read the events (CREATE, then CANCEL):\n   \
         curl -s {key} '{internal}/v1/events?wait=5'\n\
         Why a purchase failed, if one did:\n   \
         curl -s {key} '{internal}/v1/callbacks?ref=ORDER-1'\n\n\
         Ctrl-C stops it; the store in {store} is deleted.\n"
    )
}

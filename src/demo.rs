//! `demo`: the whole flow on loopback with no credentials and no configuration: a sandbox
//! MondiaPay, the service wired to it on a throwaway SQLite store, and what to open and run.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;

use base64::Engine;
use tokio::net::TcpListener;
use url::Url;

use crate::crypto::random_bytes;
use crate::sandbox;
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
    let api_key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<24>());
    let client_secret =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<24>());
    let env: HashMap<String, String> = [
        (
            "MONDIAPAY__TOKEN_URL",
            format!("http://{sandbox_address}{}", sandbox::TOKEN_PATH),
        ),
        ("MONDIAPAY__CLIENT_ID", "demo-merchant".to_owned()),
        ("MONDIAPAY__CLIENT_SECRET", client_secret),
        (
            "MONDIAPAY__REDIRECT_URI",
            format!("http://127.0.0.1:{port}/oauth/callback"),
        ),
        ("PUBLIC__LISTEN", format!("127.0.0.1:{port}")),
        ("INTERNAL__LISTEN", format!("127.0.0.1:{internal_port}")),
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
    let app = Application::build(&settings).await?;
    let callback = Url::parse(&format!("http://{}/oauth/callback", app.public_addr()))?;
    tokio::spawn(axum::serve(sandbox_listener, sandbox::router(Some(callback))).into_future());
    let internal = app.internal_addr();
    let key = format!("Authorization: Bearer {api_key}");
    let guide = format!(
        "mondiapay-token-proxy demo: a sandbox MondiaPay and the service, on loopback.\n\n\
         Open in a browser:  http://{sandbox_address}/purchase?ref=ORDER-1\n\
         Fetch the token:    curl -s -H '{key}' 'http://{internal}/v1/tokens?ref=ORDER-1'\n\
         See what happened:  curl -s -H '{key}' 'http://{internal}/v1/callbacks?ref=ORDER-1'\n\n\
         Ctrl-C stops it; the store in {} is deleted.\n",
        store.path().display()
    );
    // A closed standard output (a reader that went away) must not stop the demo.
    let _ = std::io::stdout()
        .write_all(guide.as_bytes())
        .and_then(|()| std::io::stdout().flush());
    app.run_until(shutdown).await?;
    Ok(())
}

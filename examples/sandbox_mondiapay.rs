//! A sandbox MondiaPay for trying the service by hand:
//! `cargo run --example sandbox_mondiapay [ADDRESS] [NOTIFICATION_URL]` (default 127.0.0.1:9090,
//! notifying nobody). It accepts the client id `merchant` with the secret `sandbox-secret`.

use mondiapay_token_proxy::sandbox::{self, Sandbox};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:9090".to_owned());
    let mut mondiapay = Sandbox::new("merchant", "sandbox-secret");
    if let Some(url) = args.next() {
        mondiapay = mondiapay.notifying(url.parse()?);
    }
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!(
        "sandbox MondiaPay (client id merchant, secret sandbox-secret): http://{}, token endpoint {}",
        listener.local_addr()?,
        sandbox::TOKEN_PATH
    );
    mondiapay.serve(listener).await?;
    Ok(())
}

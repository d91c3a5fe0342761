//! A sandbox MondiaPay for trying the service by hand:
//! `cargo run --example sandbox_mondiapay [ADDRESS]` (default 127.0.0.1:9090). It accepts the
//! client id `merchant` with the secret `sandbox-secret`, and notifies nobody.

use mondiapay_token_proxy::sandbox::{self, Sandbox};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!(
        "sandbox MondiaPay (client id merchant, secret sandbox-secret): token endpoint http://{}{}",
        listener.local_addr()?,
        sandbox::TOKEN_PATH
    );
    Sandbox::new("merchant", "sandbox-secret")
        .serve(listener)
        .await
}

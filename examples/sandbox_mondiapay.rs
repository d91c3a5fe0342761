//! A sandbox MondiaPay token endpoint for trying the service by hand:
//! `cargo run --example sandbox_mondiapay [ADDRESS]` (default 127.0.0.1:9090).

use mondiapay_token_proxy::sandbox;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!(
        "sandbox MondiaPay token endpoint: http://{}{}",
        listener.local_addr()?,
        sandbox::TOKEN_PATH
    );
    sandbox::serve(listener).await
}

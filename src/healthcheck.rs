//! `healthcheck`: asks the running service whether it is ready, for a container's HEALTHCHECK
//! (the runtime image has no curl). Exit 0 when `/readyz` answers 200, else 1 with one line on
//! stderr saying why (the whole cause chain, never the URL: it may carry a password).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::settings::{InternalSettings, Settings};
use crate::telemetry::cause_chain;

pub async fn run(config: &Option<PathBuf>, url: Option<String>) -> ExitCode {
    let url = url.unwrap_or_else(|| readiness_url(config));
    // The service is on this host: a proxy from the environment (HTTP_PROXY, ALL_PROXY), set
    // for the service's own calls out, would only stand in the way or fail.
    let client = match reqwest::Client::builder()
        .no_proxy()
        // Longer than `/readyz` takes to give up on a database that does not answer (the pool's
        // 3 s wait for a connection), so an outage reads "answered 503", not "timed out"; and
        // shorter than the image's HEALTHCHECK --timeout (5 s), so this line is still printed.
        .timeout(Duration::from_secs(4))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("unhealthy: {}", cause_chain(&error.without_url()));
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("unhealthy: the service answered {}", response.status());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("unhealthy: {}", cause_chain(&error.without_url()));
            ExitCode::FAILURE
        }
    }
}

/// `/readyz` on the configured internal listener; a wildcard address is reached on loopback.
fn readiness_url(config: &Option<PathBuf>) -> String {
    let listen = config_listen(config).unwrap_or_else(|| InternalSettings::default().listen);
    let address = if listen.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
    } else {
        listen
    };
    format!("http://{address}/readyz")
}

fn config_listen(config: &Option<PathBuf>) -> Option<SocketAddr> {
    // Only the listener matters here: the other settings are the service's to check.
    Settings::load(config.as_deref(), None, crate::settings::Purpose::Exchange)
        .ok()
        .map(|settings| settings.internal.listen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_is_reached_on_loopback() {
        assert_eq!(
            readiness_url(&Some(PathBuf::from("/nonexistent.toml"))),
            "http://127.0.0.1:8081/readyz"
        );
    }
}

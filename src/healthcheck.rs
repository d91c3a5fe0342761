//! `healthcheck`: asks the running service whether it is ready, for a container's HEALTHCHECK
//! (the runtime image has no curl). Exit 0 when `/readyz` answers 200, else 1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::settings::{InternalSettings, Settings};

pub async fn run(config: &Option<PathBuf>, url: Option<String>) -> ExitCode {
    let url = url.unwrap_or_else(|| readiness_url(config));
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("unhealthy: {error}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("unhealthy: {url} answered {}", response.status());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("unhealthy: {}", error.without_url());
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

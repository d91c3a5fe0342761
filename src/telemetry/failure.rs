//! Why `serve` could not start or stopped, in the form of the log: one JSON line on standard
//! error (a log reader parses every line), or `error: …` for people. Shown whatever the log
//! filter says, since it is the last thing the process says.

use tracing_subscriber::layer::SubscriberExt;

use crate::settings::LogFormat;

pub fn report_failure(format: LogFormat, message: &str) {
    match format {
        LogFormat::Json => always(|| tracing::error!(event = "failed", "{message}")),
        LogFormat::Pretty => eprintln!("error: {message}"),
    }
}

/// Runs `log` with a JSON logger on standard error that takes every line.
pub(super) fn always(log: impl FnOnce()) {
    let subscriber = tracing_subscriber::registry()
        .with(super::RequestIdLayer)
        .with(super::json_layer(std::io::stderr));
    tracing::subscriber::with_default(subscriber, log);
}

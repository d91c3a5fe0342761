//! Logging: JSON lines (or pretty text) on standard error, filtered by `RUST_LOG` when it is set,
//! else by `log.level`. A line logged within a request carries its `request_id` at the top level
//! as well as the spans it happened in; panics and start-up failures are lines of the same form.

mod failure;
mod panics;
mod request_id;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::{LogFormat, LogSettings};

pub use failure::report_failure;
pub use panics::{WITHHELD as PANIC_MESSAGE_WITHHELD, install as install_panic_hook};
pub use request_id::{RequestIdLayer, WithRequestId};

/// Logging for a command that has no settings of its own (`demo`): `info` unless `RUST_LOG`.
pub fn init(format: LogFormat) {
    start(format, "info");
}

/// Logging as the settings ask.
pub fn init_from(log: &LogSettings) {
    start(log.format, log.level.as_str());
}

fn start(format: LogFormat, level: &str) {
    let (filter, rust_log_refused) = filter(level);
    let registry = tracing_subscriber::registry().with(filter);
    // A second initialisation (tests, or a command that already set one up) keeps the first.
    let initialised = match format {
        LogFormat::Json => registry
            .with(RequestIdLayer)
            .with(json_layer(std::io::stderr))
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .pretty()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if initialised.is_ok() {
        install_panic_hook(format);
        if rust_log_refused {
            tracing::warn!("RUST_LOG is not a log filter; log.level is used instead");
        }
    }
}

/// The JSON lines, written to `writer`: the event's fields at the top level with the request id
/// of the request it happened in, and the list of its spans.
pub fn json_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let format = tracing_subscriber::fmt::format()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true);
    tracing_subscriber::fmt::layer()
        .json()
        .event_format(WithRequestId(format))
        .with_writer(writer)
}

/// `RUST_LOG` when it is set and valid, else `level` (checked when the settings were read);
/// and whether a `RUST_LOG` was set but refused.
fn filter(level: &str) -> (EnvFilter, bool) {
    match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(rust_log) if !rust_log.trim().is_empty() => match EnvFilter::try_new(&rust_log) {
            Ok(filter) => (filter, false),
            Err(_) => (EnvFilter::new(level), true),
        },
        _ => (EnvFilter::new(level), false),
    }
}

/// `error: cause: cause`: an error and its sources on one line, for a log field or a message.
pub fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

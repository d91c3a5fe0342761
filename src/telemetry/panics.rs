//! A panic becomes one log line of the usual form (JSON by default), in the span it happened
//! in, so a request's panic carries its `request_id`.
//!
//! Its message is logged only when it is a literal written in the source (`panic!("…")`): any
//! other message was formatted at run time and may hold what was being handled — a code, a
//! token, an upstream body (`unwrap()` on an error prints the error). The location (file, line,
//! column) and the thread say where it happened, which is what a fix needs.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::panic::PanicHookInfo;

use tracing::Level;

use crate::settings::LogFormat;

/// What stands for a message that is not logged.
pub const WITHHELD: &str = "message not logged: it was formatted at run time and may hold data";

pub fn install(format: LogFormat) {
    std::panic::set_hook(Box::new(move |info| log_panic(format, info)));
}

pub fn log_panic(format: LogFormat, info: &PanicHookInfo<'_>) {
    let message = info
        .payload()
        .downcast_ref::<&'static str>()
        .copied()
        .unwrap_or(WITHHELD);
    let location = info
        .location()
        .map(|at| format!("{}:{}:{}", at.file(), at.line(), at.column()))
        .unwrap_or_default();
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");
    // Only when RUST_BACKTRACE asks for it; frames name code, never data.
    let backtrace = Backtrace::capture();
    let backtrace =
        (backtrace.status() == BacktraceStatus::Captured).then(|| backtrace.to_string());
    let log = || {
        tracing::error!(
            event = "panic",
            location,
            thread,
            backtrace,
            "panicked: {message}"
        );
    };
    // A panic is shown whatever the filter says, as the default hook would.
    if tracing::enabled!(Level::ERROR) {
        log();
    } else if format == LogFormat::Json {
        super::failure::always(log);
    } else {
        eprintln!("error: panicked at {location}: {message}");
    }
}

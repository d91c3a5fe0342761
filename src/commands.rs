//! The commands of the binary, each returning the process's exit code.

use std::io::Read;
use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::domain::Code;
use crate::domain::Owner;
use crate::settings::{LogFormat, LogSettings, Purpose, Settings};
use crate::startup::{Application, Engine};
use crate::telemetry;

/// Settings problems and bad arguments.
const EXIT_USAGE: u8 = 2;

pub async fn run(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.config).await,
        Command::CheckConfig => check_config(&cli.config),
        Command::Exchange {
            code,
            reference,
            uuid,
        } => exchange(&cli.config, code, reference, uuid).await,
        Command::Demo {
            port,
            internal_port,
        } => match crate::demo::run(port, internal_port, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(error.as_ref()),
        },
        Command::Healthcheck { url } => crate::healthcheck::run(&cli.config, url).await,
    }
}

pub(crate) fn load(
    config: &Option<std::path::PathBuf>,
    purpose: Purpose,
) -> Result<Settings, ExitCode> {
    Settings::load(config.as_deref(), None, purpose).map_err(|error| {
        for problem in &error.problems {
            eprintln!("error: {problem}");
        }
        ExitCode::from(EXIT_USAGE)
    })
}

fn check_config(config: &Option<std::path::PathBuf>) -> ExitCode {
    match load(config, Purpose::Serve) {
        Ok(settings) => {
            print!("{}", settings.redacted_toml());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// The service: what stops it is said in the form of its log (one JSON line by default), as a
/// log collector reads everything it writes.
async fn serve(config: &Option<std::path::PathBuf>) -> ExitCode {
    let settings = match Settings::load(config.as_deref(), None, Purpose::Serve) {
        Ok(settings) => settings,
        Err(error) => {
            let format = LogSettings::format_alone(config.as_deref());
            for problem in &error.problems {
                telemetry::report_failure(format, problem);
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    telemetry::init_from(&settings.log);
    let format = settings.log.format;
    let app = match Application::build(&settings).await {
        Ok(app) => app,
        Err(error) => return failed(format, &error),
    };
    match app.run_until(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => failed(format, &error),
    }
}

fn failed(format: LogFormat, error: &dyn std::error::Error) -> ExitCode {
    telemetry::report_failure(format, &telemetry::cause_chain(error));
    ExitCode::FAILURE
}

async fn exchange(
    config: &Option<std::path::PathBuf>,
    code: String,
    reference: Option<String>,
    uuid: Option<String>,
) -> ExitCode {
    let settings = match load(config, Purpose::Exchange) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    telemetry::init_from(&settings.log);
    let raw = if code == "-" {
        let mut text = String::new();
        if std::io::stdin().read_to_string(&mut text).is_err() {
            eprintln!("error: cannot read the code from standard input");
            return ExitCode::from(EXIT_USAGE);
        }
        text.trim().to_owned()
    } else {
        code
    };
    let code = match Code::parse(&raw, &settings.mondiapay.code_prefix) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: --code: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let engine = match Engine::build(&settings).await {
        Ok(engine) => engine,
        Err(error) => return fail(&error),
    };
    let owner = Owner { reference, uuid };
    let result = engine.exchanger.exchange(code, owner).await;
    engine
        .shut_down(std::time::Duration::from_secs(
            settings.server.shutdown_grace_secs,
        ))
        .await;
    match result {
        Ok(record) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&record).expect("a record serializes")
            );
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error),
    }
}

/// One line on standard error with the cause chain; exit code 1.
pub fn fail(error: &dyn std::error::Error) -> ExitCode {
    eprintln!("error: {}", telemetry::cause_chain(error));
    ExitCode::FAILURE
}

/// SIGTERM or SIGINT. The handlers are installed when this is called, not when the future is
/// first polled: a signal sent as soon as the service says it listens is then always heard,
/// instead of ending the process by its default action before the shutdown task has run.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let terminate = signal(SignalKind::terminate()).ok();
    let interrupt = signal(SignalKind::interrupt()).ok();
    async fn received(signal: Option<Signal>) {
        match signal {
            Some(mut signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    async move {
        tokio::select! {
            () = received(terminate) => {},
            () = received(interrupt) => {},
        }
    }
}

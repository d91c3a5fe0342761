//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "mondiapay-token-proxy",
    version,
    about = "Exchanges MondiaPay authorization codes exactly once and serves the tokens to internal services"
)]
pub struct Cli {
    /// A TOML settings file; environment variables TOKEN_PROXY__<SECTION>__<KEY> override it.
    /// As a variable, it reaches every command of a container, its HEALTHCHECK included.
    #[arg(long, global = true, value_name = "FILE", env = crate::settings::CONFIG_ENV)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the public and internal listeners until SIGTERM or SIGINT (the default).
    Serve,
    /// Validate the settings and print them with secrets redacted; exit 0, or 2 with the reasons.
    CheckConfig,
    /// Exchange one code from the shell and print the stored record as JSON.
    Exchange {
        /// The authorization code; `-` reads it from standard input (keeps it out of `ps`).
        #[arg(long)]
        code: String,
        /// The merchant's correlation reference to store with the token.
        #[arg(long = "ref", value_name = "REF")]
        reference: Option<String>,
        /// MondiaPay's user uuid to store with the token.
        #[arg(long)]
        uuid: Option<String>,
    },
    /// Exit 0 when the running service is ready (`GET /readyz` on the internal listener), else
    /// 1: for a container's HEALTHCHECK.
    Healthcheck {
        /// The readiness URL; by default built from `internal.listen`.
        #[arg(long)]
        url: Option<String>,
    },
    /// Everything local with no credentials: a sandbox MondiaPay, the service wired to it on a
    /// temporary store, and the URL to open and the curl to fetch the token.
    Demo {
        /// Port of the public listener (the callback); 0 picks a free one.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Port of the internal listener (the API); 0 picks a free one.
        #[arg(long, default_value_t = 8081)]
        internal_port: u16,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_config_file_can_be_named_by_an_environment_variable() {
        let command = Cli::command();
        let config = command
            .get_arguments()
            .find(|arg| arg.get_id() == "config")
            .expect("--config exists");
        assert_eq!(
            config.get_env(),
            Some(std::ffi::OsStr::new(crate::settings::CONFIG_ENV))
        );
    }
}

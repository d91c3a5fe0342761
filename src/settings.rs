//! Settings, lowest to highest precedence: built-in defaults → a deployment's defaults file (the
//! TOML file named by `TOKEN_PROXY_DEFAULTS`; the container image names its own) → the TOML file
//! of `--config FILE` (or `TOKEN_PROXY_CONFIG`) → environment variables
//! `TOKEN_PROXY__<SECTION>__<KEY>`. Every secret may instead come from a file named by
//! `<key>_file`, for container secrets.
//!
//! The defaults file is a layer of its own, below the config file, so that what an image or a
//! package must change for its own layout (listen on every interface, the store under `/data`)
//! never beats what the operator mounts: an `ENV TOKEN_PROXY__…` in the image would.

mod api_keys;
mod checks;
mod connections;
mod database_tls;
mod sections;
mod values;

use std::collections::HashMap;
use std::path::Path;

use config::{Config, Environment, File, FileFormat};
use url::Url;

pub use sections::{
    ClientAuth, InternalSettings, LogFormat, LogSettings, MondiaPaySettings, NotificationSettings,
    PublicSettings, PurchaseSettings, ServerSettings, Settings, StoreBackend, StoreSettings,
};

pub const ENV_PREFIX: &str = "TOKEN_PROXY";

/// Names the defaults file, read before the config file (see the module's documentation). Not a
/// `TOKEN_PROXY__…` setting itself: a single `_` keeps it out of the settings' own variables.
pub const DEFAULTS_ENV: &str = "TOKEN_PROXY_DEFAULTS";

/// The environment form of `--config` (clap reads it, see `cli.rs`).
pub const CONFIG_ENV: &str = "TOKEN_PROXY_CONFIG";

/// Every setting a user can give, with whether it is a secret (and so also takes `<key>_file`).
/// The README's configuration reference and `.env.example` are checked against this list.
pub const KEYS: &[(&str, bool)] = &[
    ("mondiapay.token_url", false),
    ("mondiapay.api_url", false),
    ("mondiapay.client_id", false),
    ("mondiapay.client_secret", true),
    ("mondiapay.redirect_uri", false),
    ("mondiapay.client_auth", false),
    ("mondiapay.code_prefix", false),
    ("mondiapay.exchange_on_errors", false),
    ("mondiapay.timeout_secs", false),
    ("mondiapay.connect_timeout_secs", false),
    ("mondiapay.idle_connection_secs", false),
    ("mondiapay.connect_retries", false),
    ("mondiapay.max_concurrent_exchanges", false),
    ("public.listen", false),
    ("public.correlation_param", false),
    ("public.success_url", false),
    ("public.failure_url", false),
    ("public.templates_dir", false),
    ("public.rate_limit_per_second", false),
    ("public.rate_limit_burst", false),
    ("public.trusted_proxies", false),
    ("public.request_timeout_secs", false),
    ("public.header_read_timeout_secs", false),
    ("public.idle_timeout_secs", false),
    ("public.max_connections", false),
    ("internal.listen", false),
    ("internal.api_keys", true),
    ("internal.request_timeout_secs", false),
    ("internal.header_read_timeout_secs", false),
    ("internal.idle_timeout_secs", false),
    ("internal.max_connections", false),
    ("store.url", true),
    ("store.encryption_key", true),
    ("store.expiry_margin_secs", false),
    ("store.claim_lease_secs", false),
    ("store.retention_secs", false),
    ("store.purge_interval_secs", false),
    ("store.max_failure_outcomes", false),
    ("purchases.enforce", false),
    ("purchases.ttl_secs", false),
    ("notifications.secret", true),
    ("server.shutdown_grace_secs", false),
    ("log.format", false),
    ("log.level", false),
];

/// The environment variable that sets `key` (`mondiapay.client_id` → `TOKEN_PROXY__MONDIAPAY__CLIENT_ID`).
pub fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_uppercase())
}

/// Why the settings cannot be used: one line for each problem, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct SettingsError {
    pub problems: Vec<String>,
}

impl SettingsError {
    fn one(problem: impl Into<String>) -> Self {
        Self {
            problems: vec![problem.into()],
        }
    }
}

/// What the settings must provide: every command needs MondiaPay's credentials, `serve` also
/// needs the keys of the internal API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Serve,
    Exchange,
}

impl Settings {
    /// Reads built-in defaults, then the defaults file named by `TOKEN_PROXY_DEFAULTS`, then
    /// `file`, then the environment (`env` replaces the process environment, for tests), resolves
    /// `<key>_file` secrets and validates the result for `purpose`.
    pub fn load(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
        purpose: Purpose,
    ) -> Result<Self, SettingsError> {
        let defaults = match &env {
            Some(vars) => vars.get(DEFAULTS_ENV).cloned(),
            None => std::env::var_os(DEFAULTS_ENV).map(|path| path.to_string_lossy().into_owned()),
        };
        let strays = stray_variables(&env);
        if !strays.is_empty() {
            return Err(SettingsError { problems: strays });
        }
        let mut builder = Config::builder();
        if let Some(path) = defaults.filter(|path| !path.is_empty()) {
            builder = builder.add_source(toml_file(Path::new(&path), DEFAULTS_ENV)?);
        }
        if let Some(path) = file {
            builder = builder.add_source(toml_file(path, "--config (or TOKEN_PROXY_CONFIG)")?);
        }
        builder = builder.add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .source(env),
        );
        let mut settings: Settings = builder
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|error| SettingsError::one(error.to_string()))?;
        settings.read_secret_files()?;
        settings.validate(purpose)?;
        Ok(settings)
    }

    /// The settings as `check-config` prints them: TOML with every secret replaced.
    pub fn redacted_toml(&self) -> String {
        let mut value = toml::Value::try_from(self).expect("settings serialize to TOML");
        if let Some(url) = value.get_mut("store").and_then(|s| s.get_mut("url")) {
            *url = toml::Value::String(redact_url_password(&self.store.url));
        }
        toml::to_string_pretty(&value).expect("a TOML value prints")
    }
}

/// A problem line for each variable named like the service's but none of them: a typo with one
/// `_` after the prefix (`TOKEN_PROXY_STORE__URL`) would otherwise be ignored without a word, and
/// its setting left at its default. Names only: a value may be a secret.
fn stray_variables(env: &Option<HashMap<String, String>>) -> Vec<String> {
    let names: Vec<String> = match env {
        Some(vars) => vars.keys().cloned().collect(),
        None => std::env::vars_os()
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect(),
    };
    let settings = format!("{ENV_PREFIX}__");
    let mut strays: Vec<String> = names
        .into_iter()
        .filter(|name| name.starts_with(ENV_PREFIX) && !name.starts_with(&settings))
        .filter(|name| name != CONFIG_ENV && name != DEFAULTS_ENV)
        .map(|name| {
            format!(
                "{name} is not a setting: settings are {ENV_PREFIX}__<SECTION>__<KEY> (two \
                 underscores after {ENV_PREFIX}); {CONFIG_ENV} and {DEFAULTS_ENV} name files"
            )
        })
        .collect();
    strays.sort();
    strays
}

/// A TOML file as a source, read and checked here rather than by `config`: its syntax errors
/// quote the offending line, and a line of a settings file may hold a secret (or the file may
/// be a secret file named by mistake). `what` names where the path came from, for the user who
/// did not set it themselves (the image sets `TOKEN_PROXY_DEFAULTS`).
fn toml_file(
    path: &Path,
    what: &str,
) -> Result<File<config::FileSourceString, FileFormat>, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        SettingsError::one(format!("{what}: cannot read {}: {error}", path.display()))
    })?;
    if let Err(error) = text.parse::<toml::Table>() {
        let at = error.span().map_or_else(String::new, |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |at| at + 1) + 1;
            format!(" at line {line}, column {column}")
        });
        return Err(SettingsError::one(format!(
            "{what}: {} is not valid TOML{at}: {}",
            path.display(),
            error.message().trim_end()
        )));
    }
    Ok(File::from_str(&text, FileFormat::Toml))
}

/// `store.url` as printed: the password hidden, in the user-info part and in a `password` query
/// parameter; a URL that does not parse is not printed at all (it may be a password gone wrong).
fn redact_url_password(raw: &str) -> String {
    if raw.starts_with("sqlite://") {
        return raw.to_owned();
    }
    let Ok(mut url) = Url::parse(raw) else {
        return "[redacted: not a valid URL]".to_owned();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("[redacted]"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let hidden = name.contains("password");
                (
                    name.into_owned(),
                    if hidden {
                        "[redacted]".to_owned()
                    } else {
                        value.into_owned()
                    },
                )
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests;

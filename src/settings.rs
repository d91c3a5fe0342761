//! Settings, lowest to highest precedence: built-in defaults → a TOML file (`--config FILE`) →
//! environment variables `TOKEN_PROXY__<SECTION>__<KEY>`. Every secret may instead come from a
//! file named by `<key>_file`, for container secrets.

mod values;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use values::{list_or_comma_separated, redacted, redacted_list, secret_list_or_comma_separated};

pub const ENV_PREFIX: &str = "TOKEN_PROXY";

/// Every setting a user can give, with whether it is a secret (and so also takes `<key>_file`).
/// The README's configuration reference and `.env.example` are checked against this list.
pub const KEYS: &[(&str, bool)] = &[
    ("mondiapay.token_url", false),
    ("mondiapay.client_id", false),
    ("mondiapay.client_secret", true),
    ("mondiapay.redirect_uri", false),
    ("mondiapay.client_auth", false),
    ("mondiapay.code_prefix", false),
    ("mondiapay.exchange_on_errors", false),
    ("mondiapay.timeout_secs", false),
    ("mondiapay.connect_timeout_secs", false),
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
    ("internal.listen", false),
    ("internal.api_keys", true),
    ("internal.request_timeout_secs", false),
    ("store.url", true),
    ("store.encryption_key", true),
    ("store.expiry_margin_secs", false),
    ("store.claim_lease_secs", false),
    ("store.retention_secs", false),
    ("store.purge_interval_secs", false),
    ("server.shutdown_grace_secs", false),
    ("log.format", false),
];

/// The environment variable that sets `key` (`mondiapay.client_id` → `TOKEN_PROXY__MONDIAPAY__CLIENT_ID`).
pub fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_uppercase())
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub mondiapay: MondiaPaySettings,
    pub public: PublicSettings,
    pub internal: InternalSettings,
    pub store: StoreSettings,
    pub server: ServerSettings,
    pub log: LogSettings,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MondiaPaySettings {
    pub token_url: Url,
    pub client_id: Option<String>,
    #[serde(serialize_with = "redacted")]
    pub client_secret: Option<SecretString>,
    pub client_secret_file: Option<PathBuf>,
    pub redirect_uri: Option<Url>,
    pub client_auth: ClientAuth,
    pub code_prefix: String,
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub exchange_on_errors: Vec<String>,
    pub timeout_secs: u64,
    pub connect_timeout_secs: u64,
    /// Extra attempts after a failure that provably never reached MondiaPay.
    pub connect_retries: u32,
    /// Exchanges at once; more are refused at once with a "try again" (the code is not used).
    pub max_concurrent_exchanges: usize,
}

/// How the client credentials travel to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// In the POST's query string with an empty body, as every MondiaPay example does.
    #[default]
    Query,
    /// In the form-encoded body.
    Form,
    /// HTTP Basic for id and secret (RFC 6749 §2.3.1), the rest in the form body.
    Basic,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicSettings {
    pub listen: SocketAddr,
    /// The merchant's own query parameter in the thank-you URL that keys the token.
    pub correlation_param: String,
    /// When set, handled callbacks answer `303` there instead of the built-in result page.
    pub success_url: Option<Url>,
    pub failure_url: Option<Url>,
    /// Templates here replace the built-in pages of the same name.
    pub templates_dir: Option<PathBuf>,
    /// Per client address; 0 turns the limit off.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// Addresses or networks (CIDR) whose `X-Forwarded-For` is believed.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub trusted_proxies: Vec<String>,
    pub request_timeout_secs: u64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InternalSettings {
    pub listen: SocketAddr,
    #[serde(
        deserialize_with = "secret_list_or_comma_separated",
        serialize_with = "redacted_list"
    )]
    pub api_keys: Vec<SecretString>,
    /// One key a line; blank lines and lines starting with `#` are skipped.
    pub api_keys_file: Option<PathBuf>,
    pub request_timeout_secs: u64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `sqlite://PATH` or `postgres://…` (may hold a password: also readable from `url_file`).
    pub url: String,
    pub url_file: Option<PathBuf>,
    #[serde(serialize_with = "redacted")]
    pub encryption_key: Option<SecretString>,
    pub encryption_key_file: Option<PathBuf>,
    /// A token this close to its expiry counts as expired and is never handed out.
    pub expiry_margin_secs: u64,
    /// How long a claim on a code holds while its exchange is under way; a claim left by a
    /// process that died is taken over after it.
    pub claim_lease_secs: u64,
    /// Expired tokens, finished exchanges and callback outcomes are kept this long, then purged.
    pub retention_secs: u64,
    pub purge_interval_secs: u64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// At shutdown, how long requests and exchanges under way get to finish.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            shutdown_grace_secs: 30,
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

impl Default for MondiaPaySettings {
    fn default() -> Self {
        Self {
            token_url: Url::parse("https://gateway.mondiapay.com/v1/api/oauth/token")
                .expect("the default token URL is valid"),
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            redirect_uri: None,
            client_auth: ClientAuth::Query,
            code_prefix: "A".to_owned(),
            exchange_on_errors: vec!["USER_ALREADY_SUBSCRIBED".to_owned()],
            timeout_secs: 10,
            connect_timeout_secs: 3,
            connect_retries: 2,
            max_concurrent_exchanges: 64,
        }
    }
}

impl Default for PublicSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            correlation_param: "ref".to_owned(),
            success_url: None,
            failure_url: None,
            templates_dir: None,
            rate_limit_per_second: 50,
            rate_limit_burst: 100,
            trusted_proxies: Vec::new(),
            request_timeout_secs: 30,
        }
    }
}

impl Default for InternalSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            api_keys: Vec::new(),
            api_keys_file: None,
            request_timeout_secs: 30,
        }
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://data/tokens.db".to_owned(),
            url_file: None,
            encryption_key: None,
            encryption_key_file: None,
            expiry_margin_secs: 60,
            claim_lease_secs: 60,
            retention_secs: 7 * 24 * 3600,
            purge_interval_secs: 3600,
        }
    }
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
    /// Reads defaults, then `file`, then the environment (`env` replaces the process environment,
    /// for tests), resolves `<key>_file` secrets and validates the result for `purpose`.
    pub fn load(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
        purpose: Purpose,
    ) -> Result<Self, SettingsError> {
        let mut builder = Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
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

    fn read_secret_files(&mut self) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        let mp = &mut self.mondiapay;
        if let Some(secret) = from_file(
            &mp.client_secret,
            mp.client_secret_file.as_deref(),
            "mondiapay.client_secret",
            &mut problems,
        ) {
            mp.client_secret = Some(secret.into());
        }
        let store = &mut self.store;
        if let Some(key) = from_file(
            &store.encryption_key,
            store.encryption_key_file.as_deref(),
            "store.encryption_key",
            &mut problems,
        ) {
            store.encryption_key = Some(key.into());
        }
        if let Some(path) = self.store.url_file.clone() {
            match std::fs::read_to_string(&path) {
                Ok(text) => self.store.url = text.trim_end_matches(['\r', '\n']).to_owned(),
                Err(error) => problems.push(unreadable("store.url", &path, &error)),
            }
        }
        let internal = &mut self.internal;
        if let Some(path) = &internal.api_keys_file {
            if !internal.api_keys.is_empty() {
                problems.push(both_given("internal.api_keys"));
            } else {
                match std::fs::read_to_string(path) {
                    Ok(text) => {
                        internal.api_keys = text
                            .lines()
                            .map(str::trim)
                            .filter(|line| !line.is_empty() && !line.starts_with('#'))
                            .map(SecretString::from)
                            .collect();
                    }
                    Err(error) => problems.push(unreadable("internal.api_keys", path, &error)),
                }
            }
        }
        into_result(problems)
    }

    fn validate(&self, purpose: Purpose) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        let mp = &self.mondiapay;
        if mp.client_id.as_deref().is_none_or(str::is_empty) {
            problems.push(required("mondiapay.client_id"));
        }
        if mp
            .client_secret
            .as_ref()
            .is_none_or(|s| s.expose_secret().is_empty())
        {
            problems.push(required("mondiapay.client_secret"));
        }
        if mp.redirect_uri.is_none() {
            problems.push(required("mondiapay.redirect_uri"));
        }
        let public = &self.public;
        for (key, url) in [
            ("mondiapay.token_url", Some(&mp.token_url)),
            ("mondiapay.redirect_uri", mp.redirect_uri.as_ref()),
            ("public.success_url", public.success_url.as_ref()),
            ("public.failure_url", public.failure_url.as_ref()),
        ] {
            if let Some(url) = url
                && !matches!(url.scheme(), "http" | "https")
            {
                problems.push(format!("{key} must be an http or https URL"));
            }
        }
        if public.correlation_param.is_empty()
            || ["code", "error", "status", "message", "uuid"]
                .contains(&public.correlation_param.as_str())
        {
            problems.push("public.correlation_param must be a parameter name of its own (not code, error, status, message or uuid)".to_owned());
        }
        if let Err(problem) = public.trusted_proxy_networks() {
            problems.push(problem);
        }
        if let Some(dir) = &public.templates_dir
            && !dir.is_dir()
        {
            problems.push(format!(
                "public.templates_dir: {} is not a directory",
                dir.display()
            ));
        }
        if !mp.code_prefix.bytes().all(crate::code::is_unreserved) {
            problems.push("mondiapay.code_prefix may only contain A-Z a-z 0-9 . _ ~ -".to_owned());
        }
        for (key, secs) in [
            ("mondiapay.timeout_secs", mp.timeout_secs),
            ("mondiapay.connect_timeout_secs", mp.connect_timeout_secs),
            (
                "public.request_timeout_secs",
                self.public.request_timeout_secs,
            ),
            (
                "internal.request_timeout_secs",
                self.internal.request_timeout_secs,
            ),
            ("store.claim_lease_secs", self.store.claim_lease_secs),
            ("store.purge_interval_secs", self.store.purge_interval_secs),
            (
                "server.shutdown_grace_secs",
                self.server.shutdown_grace_secs,
            ),
            (
                "mondiapay.max_concurrent_exchanges",
                mp.max_concurrent_exchanges as u64,
            ),
        ] {
            if secs == 0 {
                problems.push(format!("{key} must be at least 1"));
            }
        }
        if mp.connect_retries > 10 {
            problems.push("mondiapay.connect_retries must be at most 10".to_owned());
        } else if Duration::from_secs(self.store.claim_lease_secs) <= mp.longest_exchange() {
            problems.push(format!(
                "store.claim_lease_secs must be longer than the longest exchange the mondiapay settings allow ({} s)",
                mp.longest_exchange().as_secs_f64().ceil()
            ));
        }
        match self.store.backend() {
            Err(problem) => problems.push(problem),
            Ok(StoreBackend::Postgres { .. }) if self.store.encryption_key.is_none() => problems.push(
                "store.encryption_key is required with PostgreSQL: every replica must seal and hash with the same key"
                    .to_owned(),
            ),
            Ok(_) => {}
        }
        if let Some(key) = &self.store.encryption_key
            && let Err(problem) = decode_key(key)
        {
            problems.push(problem);
        }
        if purpose == Purpose::Serve {
            if self.internal.api_keys.is_empty() {
                problems.push(required("internal.api_keys"));
            }
            if self
                .internal
                .api_keys
                .iter()
                .any(|k| k.expose_secret().len() < 16)
            {
                problems
                    .push("internal.api_keys: every key must be at least 16 characters".to_owned());
            }
        }
        into_result(problems)
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

impl MondiaPaySettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// The most one exchange can take: every connect attempt timing out, the longest backoffs
    /// between them, then the whole-request timeout. A claim must outlast it.
    pub fn longest_exchange(&self) -> Duration {
        let retries = self.connect_retries.min(10);
        let backoffs =
            Duration::from_millis(100 * ((1u64 << retries) - 1) + 100 * u64::from(retries));
        self.connect_timeout() * (retries + 1) + backoffs + self.timeout()
    }
}

impl PublicSettings {
    /// `public.trusted_proxies` as networks; a plain address is a network of one.
    pub fn trusted_proxy_networks(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trusted_proxies
            .iter()
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        format!(
                            "public.trusted_proxies: {entry:?} is not an address or a CIDR network"
                        )
                    })
            })
            .collect()
    }
}

/// Which database `store.url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    Sqlite { path: PathBuf },
    Postgres { url: String },
}

impl StoreSettings {
    pub fn backend(&self) -> Result<StoreBackend, String> {
        if let Some(path) = self.url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err("store.url: a sqlite:// URL needs a file path".to_owned());
            }
            return Ok(StoreBackend::Sqlite {
                path: PathBuf::from(path),
            });
        }
        if self.url.starts_with("postgres://") || self.url.starts_with("postgresql://") {
            return Ok(StoreBackend::Postgres {
                url: self.url.clone(),
            });
        }
        Err(
            "store.url must start with sqlite:// (a file path) or postgres:// (several replicas)"
                .to_owned(),
        )
    }

    /// The configured master key, if any; validated at load time.
    pub fn master_key(&self) -> Option<[u8; 32]> {
        self.encryption_key
            .as_ref()
            .and_then(|key| decode_key(key).ok())
    }
}

fn decode_key(key: &SecretString) -> Result<[u8; 32], String> {
    base64::engine::general_purpose::STANDARD
        .decode(key.expose_secret().trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| "store.encryption_key must be the base64 of exactly 32 bytes (e.g. `openssl rand -base64 32`)".to_owned())
}

fn from_file(
    inline: &Option<SecretString>,
    file: Option<&Path>,
    key: &str,
    problems: &mut Vec<String>,
) -> Option<String> {
    let path = file?;
    if inline.is_some() {
        problems.push(both_given(key));
        return None;
    }
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text.trim_end_matches(['\r', '\n']).to_owned()),
        Err(error) => {
            problems.push(unreadable(key, path, &error));
            None
        }
    }
}

fn required(key: &str) -> String {
    format!(
        "{key} is required: set it in the config file or as {}",
        env_var(key)
    )
}

fn both_given(key: &str) -> String {
    format!("{key} and {key}_file are both set: use one")
}

fn unreadable(key: &str, path: &Path, error: &std::io::Error) -> String {
    format!("{key}_file: cannot read {}: {error}", path.display())
}

fn into_result(problems: Vec<String>) -> Result<(), SettingsError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SettingsError { problems })
    }
}

fn redact_url_password(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("[redacted]"));
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests;

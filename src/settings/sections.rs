//! The settings' sections, their defaults, and what each section derives from its values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;
use url::Url;

use super::checks::decode_key;
use super::values::{
    list_or_comma_separated, redacted, redacted_list, secret_list_or_comma_separated,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub mondiapay: MondiaPaySettings,
    pub public: PublicSettings,
    pub internal: InternalSettings,
    pub store: StoreSettings,
    pub purchases: PurchaseSettings,
    pub notifications: NotificationSettings,
    pub server: ServerSettings,
    pub log: LogSettings,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MondiaPaySettings {
    pub token_url: Url,
    /// Base of Prepare Purchase and Subscription Management; unset: `token_url`'s origin.
    pub api_url: Option<Url>,
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
    /// How long a connection to MondiaPay is kept open unused for the next call.
    pub idle_connection_secs: u64,
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
    /// How long a client may take to send a request's headers (also the longest wait for the
    /// next request on a kept-alive connection).
    pub header_read_timeout_secs: u64,
    /// A connection on which no byte moves either way this long is closed.
    pub idle_timeout_secs: u64,
    /// Open connections at once; beyond it new ones wait in the kernel's backlog.
    pub max_connections: usize,
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
    pub header_read_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub max_connections: usize,
}

/// Purchases this service starts (`POST /v1/purchases`) and the callbacks that end them.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PurchaseSettings {
    /// `true`: a callback is exchanged only with a live purchase id this service issued.
    pub enforce: bool,
    /// How long a started purchase accepts its callback.
    pub ttl_secs: u64,
}

impl Default for PurchaseSettings {
    fn default() -> Self {
        Self {
            enforce: false,
            ttl_secs: 3600,
        }
    }
}

/// MondiaPay's notifications of subscription events (`POST /mondiapay/notifications/{secret}`).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// The notification URL's last path segment; unset turns the route off.
    #[serde(serialize_with = "redacted")]
    pub secret: Option<SecretString>,
    pub secret_file: Option<PathBuf>,
}

/// The shortest notification secret: it is all that tells MondiaPay's calls from anyone's.
pub const MIN_NOTIFICATION_SECRET_CHARS: usize = 32;

impl NotificationSettings {
    /// What is wrong with the secret, if anything; the message never shows it.
    pub(super) fn secret_problem(&self) -> Option<String> {
        let secret = self.secret.as_ref()?.expose_secret();
        if secret.chars().count() < MIN_NOTIFICATION_SECRET_CHARS {
            return Some(format!(
                "notifications.secret must be at least {MIN_NOTIFICATION_SECRET_CHARS} characters"
            ));
        }
        // A path segment compared as it stands: characters a URL would encode could be spelled
        // two ways.
        if !secret.bytes().all(crate::domain::is_unreserved) {
            return Some(
                "notifications.secret may only contain A-Z a-z 0-9 . _ ~ - (it is a URL path segment)"
                    .to_owned(),
            );
        }
        None
    }
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
    /// Failure outcomes of callbacks (anyone can forge one) kept in all, the oldest trimmed.
    pub max_failure_outcomes: u64,
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
    /// What is logged when `RUST_LOG` is not set.
    pub level: LogLevel,
}

impl LogSettings {
    /// The format asked for, read on its own (environment, then `file`; else the default) for
    /// when the settings as a whole cannot be loaded and that failure must still be reported in
    /// the form the log reader expects.
    pub fn format_alone(file: Option<&Path>) -> LogFormat {
        let from_env = std::env::var(super::env_var("log.format")).ok();
        let from_file = || {
            let text = std::fs::read_to_string(file?).ok()?;
            let table: toml::Table = text.parse().ok()?;
            Some(table.get("log")?.get("format")?.as_str()?.to_owned())
        };
        match from_env.or_else(from_file).as_deref() {
            Some("pretty") => LogFormat::Pretty,
            _ => LogFormat::Json,
        }
    }
}

/// A log filter in `RUST_LOG`'s syntax (`info`, `info,sqlx=warn`), checked when read: each part
/// must name its level, so a misspelt level is refused instead of read as a module's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct LogLevel(String);

impl Default for LogLevel {
    fn default() -> Self {
        Self("info".to_owned())
    }
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

impl LogLevel {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let named =
            |part: &str| part.contains('=') || LEVELS.contains(&part.to_lowercase().as_str());
        let parts_named = !text.is_empty() && text.split(',').map(str::trim).all(named);
        if parts_named && EnvFilter::builder().parse(text).is_ok() {
            return Ok(Self(text.to_owned()));
        }
        Err(format!(
            "{text:?} is not a log filter (each comma-separated part a level: {}; or target=level, as in \"info,sqlx=warn\")",
            LEVELS.join(", ")
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
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
            api_url: None,
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            redirect_uri: None,
            client_auth: ClientAuth::Query,
            code_prefix: "A".to_owned(),
            exchange_on_errors: vec!["USER_ALREADY_SUBSCRIBED".to_owned()],
            timeout_secs: 10,
            connect_timeout_secs: 3,
            idle_connection_secs: 30,
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
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 4096,
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
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 256,
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
            max_failure_outcomes: 10_000,
        }
    }
}

impl MondiaPaySettings {
    /// Where Prepare Purchase and Subscription Management live: `api_url`, else the origin of
    /// `token_url` (MondiaPay serves them all from one host).
    pub fn api_base(&self) -> Url {
        self.api_url.clone().unwrap_or_else(|| {
            let mut origin = self.token_url.clone();
            origin.set_path("/");
            origin.set_query(None);
            origin.set_fragment(None);
            origin
        })
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    pub fn idle_connection(&self) -> Duration {
        Duration::from_secs(self.idle_connection_secs)
    }

    /// The most one exchange can take: every connect attempt timing out, the longest backoffs
    /// between them, the whole-request timeout, then the pauses of storing the verdict again.
    /// A claim must outlast it.
    pub fn longest_exchange(&self) -> Duration {
        let retries = self.connect_retries.min(10);
        let backoffs =
            Duration::from_millis(100 * ((1u64 << retries) - 1) + 100 * u64::from(retries));
        // …and the pauses between attempts at storing the verdict (0.1 s, doubling, 5 times).
        let verdict_retries = Duration::from_millis(3_100);
        self.connect_timeout() * (retries + 1) + backoffs + self.timeout() + verdict_retries
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::settings::Purpose;

    fn with_level(level: &str) -> Result<Settings, String> {
        let env = HashMap::from(
            [
                ("MONDIAPAY__CLIENT_ID", "id"),
                ("MONDIAPAY__CLIENT_SECRET", "secret"),
                ("MONDIAPAY__REDIRECT_URI", "https://shop.example/thanks"),
                ("LOG__LEVEL", level),
            ]
            .map(|(key, value)| (format!("TOKEN_PROXY__{key}"), value.to_owned())),
        );
        Settings::load(None, Some(env), Purpose::Exchange).map_err(|error| error.to_string())
    }

    #[test]
    fn a_level_or_a_whole_filter_is_taken_as_written() {
        for level in [
            "debug",
            "WARN",
            "info,sqlx=warn",
            "off",
            "info,mondiapay_token_proxy::http=debug",
        ] {
            assert_eq!(with_level(level).unwrap().log.level.as_str(), level);
        }
        assert_eq!(LogLevel::default().as_str(), "info");
    }

    #[test]
    fn a_bad_level_is_one_line_naming_the_key() {
        for level in ["loud", "inf", "info,sqlx=loud", "", "info,,debug"] {
            let error = with_level(level).unwrap_err();
            assert!(error.contains("log.level"), "{level}: {error}");
            assert_eq!(error.lines().count(), 1, "{level}: {error}");
        }
    }
}

//! Reading `<key>_file` secrets and checking the settings: every problem is one line that names
//! its key (and never echoes a secret).

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use super::{Purpose, Settings, SettingsError, StoreBackend, api_keys, database_tls, env_var};

impl Settings {
    pub(super) fn read_secret_files(&mut self) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        let secrets = [
            (
                &mut self.mondiapay.client_secret,
                self.mondiapay.client_secret_file.as_deref(),
                "mondiapay.client_secret",
            ),
            (
                &mut self.store.encryption_key,
                self.store.encryption_key_file.as_deref(),
                "store.encryption_key",
            ),
            (
                &mut self.notifications.secret,
                self.notifications.secret_file.as_deref(),
                "notifications.secret",
            ),
        ];
        for (secret, file, key) in secrets {
            if let Some(text) = from_file(secret, file, key, &mut problems) {
                *secret = Some(text.into());
            }
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

    pub(super) fn validate(&self, purpose: Purpose) -> Result<(), SettingsError> {
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
            ("mondiapay.api_url", mp.api_url.as_ref()),
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
            || ["code", "error", "status", "message", "uuid", "purchase"]
                .contains(&public.correlation_param.as_str())
        {
            problems.push("public.correlation_param must be a parameter name of its own (not code, error, status, message, uuid or purchase)".to_owned());
        }
        // The service appends `purchase=<id>` to the redirect of each purchase it starts: one
        // already there would make every callback carry it twice, and be refused.
        if let Some(redirect) = &mp.redirect_uri
            && redirect.query_pairs().any(|(name, _)| name == "purchase")
        {
            problems.push("mondiapay.redirect_uri must not carry a `purchase` parameter: the service adds its own purchase id there".to_owned());
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
        if !mp.code_prefix.bytes().all(crate::domain::is_unreserved) {
            problems.push("mondiapay.code_prefix may only contain A-Z a-z 0-9 . _ ~ -".to_owned());
        }
        for (key, secs) in [
            ("mondiapay.timeout_secs", mp.timeout_secs),
            ("mondiapay.connect_timeout_secs", mp.connect_timeout_secs),
            ("mondiapay.idle_connection_secs", mp.idle_connection_secs),
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
            ("purchases.ttl_secs", self.purchases.ttl_secs),
            (
                "store.max_failure_outcomes",
                self.store.max_failure_outcomes,
            ),
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
        if let Some(problem) = self.notifications.secret_problem() {
            problems.push(problem);
        }
        self.check_connection_limits(&mut problems);
        let bounded = self.check_upper_bounds(&mut problems);
        if !bounded {
            // Times too large to add up: the lease is checked once they are fixed.
        } else if mp.connect_retries > 10 {
            problems.push("mondiapay.connect_retries must be at most 10".to_owned());
        } else if Duration::from_secs(self.store.claim_lease_secs) <= mp.longest_exchange() {
            problems.push(format!(
                "store.claim_lease_secs must be longer than the longest exchange the mondiapay settings allow ({} s)",
                mp.longest_exchange().as_secs_f64().ceil()
            ));
        }
        match self.store.backend() {
            Err(problem) => problems.push(problem),
            Ok(StoreBackend::Postgres { url }) => {
                if let Some(problem) = database_tls::problem(&url) {
                    problems.push(problem);
                }
                if self.store.encryption_key.is_none() {
                    problems.push(
                        "store.encryption_key is required with PostgreSQL: every replica must seal and hash with the same key"
                            .to_owned(),
                    );
                }
            }
            Ok(StoreBackend::Sqlite { .. }) => {}
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
            let weak: Vec<String> = self
                .internal
                .api_keys
                .iter()
                .enumerate()
                .filter_map(|(i, key)| {
                    api_keys::weakness(key.expose_secret())
                        .map(|why| format!("key {} is {why}", i + 1))
                })
                .collect();
            if !weak.is_empty() {
                problems.push(format!(
                    "internal.api_keys: {}; every key needs at least 128 random bits, e.g. `openssl rand -base64 32`",
                    weak.join("; ")
                ));
            }
        }
        into_result(problems)
    }
}

/// Longest time limit, lease or interval accepted (a day): a larger one is a typo or a way of
/// saying "never", and would overflow the timers it sets.
const MAX_TIME_LIMIT_SECS: u64 = 24 * 3600;
/// Longest retention accepted (ten years).
const MAX_RETENTION_SECS: u64 = 10 * 365 * 24 * 3600;

impl Settings {
    /// Every time setting has an upper bound; returns whether all are within theirs.
    fn check_upper_bounds(&self, problems: &mut Vec<String>) -> bool {
        let (mp, public, internal, store) =
            (&self.mondiapay, &self.public, &self.internal, &self.store);
        let limited = [
            ("mondiapay.timeout_secs", mp.timeout_secs),
            ("mondiapay.connect_timeout_secs", mp.connect_timeout_secs),
            ("mondiapay.idle_connection_secs", mp.idle_connection_secs),
            ("public.request_timeout_secs", public.request_timeout_secs),
            (
                "public.header_read_timeout_secs",
                public.header_read_timeout_secs,
            ),
            ("public.idle_timeout_secs", public.idle_timeout_secs),
            (
                "internal.request_timeout_secs",
                internal.request_timeout_secs,
            ),
            (
                "internal.header_read_timeout_secs",
                internal.header_read_timeout_secs,
            ),
            ("internal.idle_timeout_secs", internal.idle_timeout_secs),
            ("store.expiry_margin_secs", store.expiry_margin_secs),
            ("store.claim_lease_secs", store.claim_lease_secs),
            ("store.purge_interval_secs", store.purge_interval_secs),
            ("purchases.ttl_secs", self.purchases.ttl_secs),
            (
                "server.shutdown_grace_secs",
                self.server.shutdown_grace_secs,
            ),
        ]
        .map(|(key, secs)| (key, secs, MAX_TIME_LIMIT_SECS));
        let mut bounded = true;
        for (key, secs, max) in limited.into_iter().chain([(
            "store.retention_secs",
            store.retention_secs,
            MAX_RETENTION_SECS,
        )]) {
            if secs > max {
                problems.push(format!("{key} must be at most {max}"));
                bounded = false;
            }
        }
        bounded
    }
}

pub(super) fn decode_key(key: &SecretString) -> Result<[u8; 32], String> {
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

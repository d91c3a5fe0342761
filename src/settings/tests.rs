use std::collections::HashMap;
use std::io::Write;

use secrecy::ExposeSecret;

use super::*;

const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn required_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("TOKEN_PROXY__MONDIAPAY__CLIENT_ID", "merchant"),
        ("TOKEN_PROXY__MONDIAPAY__CLIENT_SECRET", "0123"),
        (
            "TOKEN_PROXY__MONDIAPAY__REDIRECT_URI",
            "https://shop.example/thanks",
        ),
        (
            "TOKEN_PROXY__INTERNAL__API_KEYS",
            "PeBhhbn1LxYe8GemQC70GU_H3QwKDeBb,O4Ws1IeOTvKr7dicXni_JBDsOVBBhDMR",
        ),
    ]
}

fn toml_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn defaults_apply_when_nothing_overrides_them() {
    let s = Settings::load(None, env(&required_env()), Purpose::Serve).unwrap();
    assert_eq!(
        s.mondiapay.token_url.as_str(),
        "https://gateway.mondiapay.com/v1/api/oauth/token"
    );
    assert_eq!(s.mondiapay.client_auth, ClientAuth::Query);
    assert_eq!(s.mondiapay.code_prefix, "A");
    assert_eq!(s.mondiapay.exchange_on_errors, ["USER_ALREADY_SUBSCRIBED"]);
    assert_eq!(
        (s.mondiapay.timeout_secs, s.mondiapay.connect_timeout_secs),
        (10, 3)
    );
    assert_eq!(s.mondiapay.idle_connection_secs, 30);
    assert_eq!(s.public.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(s.internal.listen.to_string(), "127.0.0.1:8081");
    assert_eq!(s.store.url, "sqlite://data/tokens.db");
    assert_eq!(s.store.expiry_margin_secs, 60);
    assert_eq!(s.log.format, LogFormat::Json);
}

#[test]
fn secrets_that_look_like_numbers_stay_strings_and_lists_split_at_commas() {
    let s = Settings::load(None, env(&required_env()), Purpose::Serve).unwrap();
    assert_eq!(s.mondiapay.client_secret.unwrap().expose_secret(), "0123");
    let keys: Vec<_> = s
        .internal
        .api_keys
        .iter()
        .map(|k| k.expose_secret().to_owned())
        .collect();
    assert_eq!(
        keys,
        [
            "PeBhhbn1LxYe8GemQC70GU_H3QwKDeBb",
            "O4Ws1IeOTvKr7dicXni_JBDsOVBBhDMR"
        ]
    );
}

#[test]
fn environment_overrides_file_which_overrides_defaults() {
    let file = toml_file(
        "[mondiapay]\ntimeout_secs = 4\nconnect_timeout_secs = 2\nclient_auth = \"basic\"\n\
         exchange_on_errors = [\"A\", \"B\"]\n[log]\nformat = \"pretty\"\n",
    );
    let mut vars = required_env();
    vars.push(("TOKEN_PROXY__MONDIAPAY__TIMEOUT_SECS", "7"));
    let s = Settings::load(Some(file.path()), env(&vars), Purpose::Serve).unwrap();
    assert_eq!(s.mondiapay.timeout_secs, 7, "environment beats file");
    assert_eq!(s.mondiapay.connect_timeout_secs, 2, "file beats default");
    assert_eq!(s.mondiapay.client_auth, ClientAuth::Basic);
    assert_eq!(s.mondiapay.exchange_on_errors, ["A", "B"]);
    assert_eq!(s.log.format, LogFormat::Pretty);
}

/// The image's defaults file, as the Dockerfile ships it.
const CONTAINER_DEFAULTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/container.toml");

#[test]
fn defaults_file_sits_between_built_in_defaults_and_the_config_file() {
    let defaults = toml_file(
        "[mondiapay]\ntimeout_secs = 4\nconnect_timeout_secs = 2\nconnect_retries = 5\n\
         [store]\nretention_secs = 100\n",
    );
    let file = toml_file("[mondiapay]\ntimeout_secs = 6\nconnect_timeout_secs = 1\n");
    let mut vars = required_env();
    vars.push((DEFAULTS_ENV, defaults.path().to_str().unwrap()));
    vars.push(("TOKEN_PROXY__MONDIAPAY__TIMEOUT_SECS", "7"));
    let s = Settings::load(Some(file.path()), env(&vars), Purpose::Serve).unwrap();
    assert_eq!(s.mondiapay.timeout_secs, 7, "environment beats all");
    assert_eq!(
        s.mondiapay.connect_timeout_secs, 1,
        "config file beats defaults file"
    );
    assert_eq!(
        s.mondiapay.connect_retries, 5,
        "defaults file beats built-in"
    );
    assert_eq!(s.store.retention_secs, 100, "defaults file beats built-in");
    assert_eq!(
        s.mondiapay.max_concurrent_exchanges, 64,
        "built-in when unset"
    );
}

#[test]
fn the_container_defaults_listen_everywhere_and_keep_the_store_in_the_volume() {
    let mut vars = required_env();
    vars.push((DEFAULTS_ENV, CONTAINER_DEFAULTS));
    let s = Settings::load(None, env(&vars), Purpose::Serve).unwrap();
    assert_eq!(s.public.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(s.internal.listen.to_string(), "0.0.0.0:8081");
    assert_eq!(s.store.url, "sqlite:///data/tokens.db");
}

#[test]
fn a_mounted_config_file_beats_the_container_defaults() {
    let file = toml_file(
        "[internal]\nlisten = \"10.1.2.3:9000\"\n\
         [store]\nurl = \"postgres://app@localhost/tokens\"\nencryption_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n",
    );
    let mut vars = required_env();
    vars.push((DEFAULTS_ENV, CONTAINER_DEFAULTS));
    let s = Settings::load(Some(file.path()), env(&vars), Purpose::Serve).unwrap();
    assert_eq!(s.internal.listen.to_string(), "10.1.2.3:9000");
    assert_eq!(s.store.url, "postgres://app@localhost/tokens");
    assert_eq!(
        s.public.listen.to_string(),
        "0.0.0.0:8080",
        "the rest stays"
    );
}

#[test]
fn a_store_url_file_beats_the_container_defaults_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("url");
    std::fs::write(&url, "postgres://app:pw@localhost/tokens\n").unwrap();
    let mut vars = required_env();
    vars.push((DEFAULTS_ENV, CONTAINER_DEFAULTS));
    vars.push(("TOKEN_PROXY__STORE__URL_FILE", url.to_str().unwrap()));
    vars.push(("TOKEN_PROXY__STORE__ENCRYPTION_KEY", KEY_B64));
    let s = Settings::load(None, env(&vars), Purpose::Serve).unwrap();
    assert_eq!(s.store.url, "postgres://app:pw@localhost/tokens");
}

#[test]
fn an_unreadable_defaults_file_is_one_line_naming_its_variable() {
    let mut vars = required_env();
    vars.push((DEFAULTS_ENV, "/nonexistent/defaults.toml"));
    let problems = problems(&vars, Purpose::Serve);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("TOKEN_PROXY_DEFAULTS: cannot read /nonexistent/defaults.toml"),
        "{problems:?}"
    );
}

#[test]
fn a_file_that_is_not_toml_is_one_line_with_its_place_and_never_its_text() {
    // A broken line of a settings file may hold a secret; a secret file named as the config file
    // by mistake is nothing but one.
    for (text, line, column) in [
        ("[mondiapay]\nclient_secret = \"s3cr3t-value\n", 2, 30),
        ("postgres://user:s3cr3t-value@db/tokens\n", 1, 39),
    ] {
        let file = toml_file(text);
        let mut vars = required_env();
        let path = file.path().to_str().unwrap();
        for (config, defaults) in [(Some(file.path()), ""), (None, path)] {
            vars.retain(|(name, _)| *name != DEFAULTS_ENV);
            vars.push((DEFAULTS_ENV, defaults));
            let problems = Settings::load(config, env(&vars), Purpose::Serve)
                .unwrap_err()
                .problems;
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(!problems[0].contains("s3cr3t"), "{}", problems[0]);
            assert!(!problems[0].contains('\n'), "{}", problems[0]);
            assert!(
                problems[0].contains(&format!(
                    "{path} is not valid TOML at line {line}, column {column}"
                )),
                "{}",
                problems[0]
            );
        }
    }
}

#[test]
fn a_variable_named_like_a_setting_but_with_one_underscore_is_refused_by_its_name_only() {
    let mut vars = required_env();
    vars.push(("TOKEN_PROXY_STORE__URL", "postgres://u:s3cr3t@db/tokens"));
    vars.push((CONFIG_ENV, "/etc/token-proxy.toml"));
    let problems = Settings::load(None, env(&vars), Purpose::Serve)
        .unwrap_err()
        .problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("TOKEN_PROXY_STORE__URL is not a setting"),
        "{}",
        problems[0]
    );
    assert!(!problems[0].contains("s3cr3t"), "{}", problems[0]);
}

#[test]
fn a_defaults_file_with_an_unknown_key_is_refused() {
    let defaults = toml_file("[internal]\nlisten_on = \"0.0.0.0:8081\"\n");
    let mut vars = required_env();
    vars.push((DEFAULTS_ENV, defaults.path().to_str().unwrap()));
    let problems = problems(&vars, Purpose::Serve);
    assert!(problems[0].contains("listen_on"), "{problems:?}");
}

#[test]
fn an_empty_defaults_variable_means_no_defaults_file() {
    let mut vars = required_env();
    vars.push((DEFAULTS_ENV, ""));
    let s = Settings::load(None, env(&vars), Purpose::Serve).unwrap();
    assert_eq!(s.internal.listen.to_string(), "127.0.0.1:8081");
}

#[test]
fn the_env_example_sets_nothing_that_breaks_a_container() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    let mut vars: HashMap<String, String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    // As `docker run --env-file` would, with the placeholder keys replaced as the user must.
    vars.extend(
        required_env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    vars.insert(DEFAULTS_ENV.to_owned(), CONTAINER_DEFAULTS.to_owned());
    let s = Settings::load(None, Some(vars), Purpose::Serve).unwrap();
    assert_eq!(s.internal.listen.to_string(), "0.0.0.0:8081");
    assert_eq!(s.public.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(s.store.url, "sqlite:///data/tokens.db");
}

#[test]
fn the_env_example_sets_only_what_has_no_default_so_the_config_file_is_not_overridden() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    let set: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('=').map(|(key, _)| key))
        .collect();
    assert!(!set.is_empty());
    // A variable beats the config file: each one set there must be one the service cannot start
    // without, or it would silently undo what the operator wrote in the file.
    for variable in set {
        let vars: Vec<_> = required_env()
            .into_iter()
            .filter(|(name, _)| *name != variable)
            .collect();
        let problems = Settings::load(None, env(&vars), Purpose::Serve)
            .map(|_| Vec::new())
            .unwrap_or_else(|error| error.problems);
        assert!(
            problems.iter().any(|problem| problem.contains(variable)),
            "{variable} has a default, so .env.example must leave it commented out: {problems:?}"
        );
    }
}

#[test]
fn the_compose_settings_take_every_secret_from_a_file() {
    // Loaded as a replica of compose.yaml loads it, but without compose's /run/secrets: the only
    // problems are the secret files it names, so the file parses, knows every key it sets, and
    // gives no secret inline.
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert(DEFAULTS_ENV.to_owned(), CONTAINER_DEFAULTS.to_owned());
    let file = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/compose.toml"));
    let problems = Settings::load(Some(file), Some(vars), Purpose::Serve)
        .unwrap_err()
        .problems;
    let mut named: Vec<&str> = problems
        .iter()
        .map(|problem| {
            assert!(
                problem.contains("_file: cannot read /run/secrets/"),
                "{problems:?}"
            );
            problem.split("_file:").next().unwrap()
        })
        .collect();
    named.sort_unstable();
    assert_eq!(
        named,
        [
            "internal.api_keys",
            "mondiapay.client_secret",
            "store.encryption_key",
            "store.url"
        ]
    );
}

#[test]
fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "from-file\n").unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        "# rotated 2026-11\nfAbd7w98yKNsFX4MCi5DSlrZgbuAPPZ6\n\nBFCe8ETS-Cwqb7ZR_fx_6GP5_tXUggX4\n",
    )
    .unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, KEY_B64).unwrap();
    let vars = [
        ("TOKEN_PROXY__MONDIAPAY__CLIENT_ID", "merchant"),
        (
            "TOKEN_PROXY__MONDIAPAY__REDIRECT_URI",
            "https://shop.example/thanks",
        ),
        (
            "TOKEN_PROXY__MONDIAPAY__CLIENT_SECRET_FILE",
            secret.to_str().unwrap(),
        ),
        (
            "TOKEN_PROXY__INTERNAL__API_KEYS_FILE",
            keys.to_str().unwrap(),
        ),
        (
            "TOKEN_PROXY__STORE__ENCRYPTION_KEY_FILE",
            key.to_str().unwrap(),
        ),
    ];
    let s = Settings::load(None, env(&vars), Purpose::Serve).unwrap();
    assert_eq!(
        s.mondiapay.client_secret.as_ref().unwrap().expose_secret(),
        "from-file"
    );
    assert_eq!(s.internal.api_keys.len(), 2);
    assert_eq!(s.store.master_key().unwrap()[31], 31);
}

fn problems(vars: &[(&str, &str)], purpose: Purpose) -> Vec<String> {
    Settings::load(None, env(vars), purpose)
        .unwrap_err()
        .problems
}

#[test]
fn every_missing_required_setting_is_named() {
    let found = problems(&[], Purpose::Serve);
    for key in [
        "mondiapay.client_id",
        "mondiapay.client_secret",
        "mondiapay.redirect_uri",
        "internal.api_keys",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(key)),
            "{key} not named in {found:?}"
        );
    }
    assert!(found[0].contains("TOKEN_PROXY__MONDIAPAY__CLIENT_ID"));
    let exchange_only = problems(&[], Purpose::Exchange);
    assert!(!exchange_only.iter().any(|p| p.contains("api_keys")));
}

#[test]
fn invalid_values_are_named_without_echoing_secrets() {
    let mut vars = required_env();
    vars.push(("TOKEN_PROXY__STORE__ENCRYPTION_KEY", "c2hvcnQ="));
    let found = problems(&vars, Purpose::Serve);
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("store.encryption_key"));
    assert!(!found[0].contains("c2hvcnQ="));

    let mut vars = required_env();
    vars.push(("TOKEN_PROXY__MONDIAPAY__TIMEOUT_SECS", "soon"));
    let found = problems(&vars, Purpose::Serve);
    assert!(found[0].contains("mondiapay.timeout_secs"), "{found:?}");

    let mut vars = required_env();
    vars.push(("TOKEN_PROXY__MONDIAPAY__CLIENT_AUTH", "digest"));
    let found = problems(&vars, Purpose::Serve);
    assert!(found[0].contains("mondiapay.client_auth"), "{found:?}");

    let mut vars = required_env();
    vars.push(("TOKEN_PROXY__INTERNAL__API_KEYS", "short"));
    assert!(problems(&vars, Purpose::Serve)[0].starts_with("internal.api_keys"));

    let mut vars = required_env();
    vars.push(("TOKEN_PROXY__MONDIAPAY__TIMEOUT_SECS", "60"));
    assert!(problems(&vars, Purpose::Serve)[0].starts_with("store.claim_lease_secs"));

    let mut vars = required_env();
    vars.push(("TOKEN_PROXY__STORE__URL", "mysql://db/tokens"));
    assert!(problems(&vars, Purpose::Serve)[0].starts_with("store.url"));
}

#[test]
fn placeholder_short_and_made_up_api_keys_are_refused_in_one_line_that_does_not_echo_them() {
    for keys in [
        "change-me-to-a-long-random-key,another-key-for-rotation",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "PeBhhbn1LxYe8GemQC70GU_H3QwKDeBb,short-key-0123",
        "test-api-key-0123456789abcdef",
    ] {
        let mut vars = required_env();
        vars.push(("TOKEN_PROXY__INTERNAL__API_KEYS", keys));
        let found = problems(&vars, Purpose::Serve);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("internal.api_keys: key "), "{found:?}");
        assert!(found[0].contains("openssl rand -base64 32"));
        for key in keys.split(',') {
            assert!(!found[0].contains(key), "{key} echoed: {}", found[0]);
        }
    }
    let mut vars = required_env();
    vars.push((
        "TOKEN_PROXY__INTERNAL__API_KEYS",
        "T997dPul53S0PgJ1bz4iRhETCwf334dm,geVoi8pOJY0H-LPDe8QcYujDX0Pcsu2N",
    ));
    assert!(Settings::load(None, env(&vars), Purpose::Serve).is_ok());
}

#[test]
fn a_secret_given_twice_is_refused() {
    let file = toml_file("");
    let mut vars = required_env();
    vars.push((
        "TOKEN_PROXY__MONDIAPAY__CLIENT_SECRET_FILE",
        file.path().to_str().unwrap(),
    ));
    assert!(
        problems(&vars, Purpose::Serve)[0]
            .contains("mondiapay.client_secret and mondiapay.client_secret_file")
    );
}

#[test]
fn redacted_toml_shows_no_secret() {
    let mut vars = required_env();
    vars.push(("TOKEN_PROXY__STORE__ENCRYPTION_KEY", KEY_B64));
    let s = Settings::load(None, env(&vars), Purpose::Serve).unwrap();
    let printed = s.redacted_toml();
    for secret in ["0123", "PeBhhbn1LxYe8GemQC70GU_H3QwKDeBb", KEY_B64] {
        assert!(!printed.contains(secret), "{secret} printed");
    }
    assert!(printed.contains("client_secret = \"[redacted]\""));
    assert!(printed.contains("client_id = \"merchant\""));
}

/// Every key the settings type has is in `KEYS`, so the documentation checked against `KEYS`
/// covers the settings type.
#[test]
fn keys_list_every_setting() {
    let mut vars = required_env();
    vars.push(("TOKEN_PROXY__STORE__ENCRYPTION_KEY", KEY_B64));
    let s = Settings::load(None, env(&vars), Purpose::Serve).unwrap();
    let value = toml::Value::try_from(&s).unwrap();
    for (section, table) in value.as_table().unwrap() {
        for key in table.as_table().unwrap().keys() {
            let full = format!("{section}.{key}");
            assert!(
                KEYS.iter().any(|(k, _)| *k == full),
                "{full} missing from KEYS"
            );
        }
    }
}

#[test]
fn readme_and_env_example_document_every_key() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let env_example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"))
            .unwrap();
    for (key, secret) in KEYS {
        assert!(
            readme.contains(&format!("`{key}`")),
            "README does not document {key}"
        );
        assert!(
            env_example.contains(&env_var(key)),
            ".env.example lacks {}",
            env_var(key)
        );
        let field = key.split('.').nth(1).unwrap();
        assert!(example.contains(field), "config/example.toml lacks {key}");
        if *secret {
            assert!(
                env_example.contains(&env_var(&format!("{key}_file"))),
                ".env.example lacks {key}_file"
            );
        }
    }
}

#[test]
fn database_passwords_are_never_printed() {
    assert_eq!(
        redact_url_password("postgres://app:s3cret@db:5432/tokens?sslmode=require"),
        "postgres://app:%5Bredacted%5D@db:5432/tokens?sslmode=require"
    );
    let query = redact_url_password("postgres://app@db/tokens?password=s3cret&sslmode=require");
    assert!(
        !query.contains("s3cret") && query.contains("sslmode=require"),
        "{query}"
    );
    assert!(!redact_url_password("postgres://u:pa/ss@db/x").contains("pa/ss"));
    assert_eq!(
        redact_url_password("sqlite://data/tokens.db"),
        "sqlite://data/tokens.db"
    );
}

#[test]
fn time_settings_too_large_to_hold_are_refused_instead_of_overflowing_a_timer() {
    // A trillion seconds: "never", or a typo.
    let huge = "1000000000000";
    for key in [
        "PUBLIC__IDLE_TIMEOUT_SECS",
        "INTERNAL__HEADER_READ_TIMEOUT_SECS",
        "MONDIAPAY__TIMEOUT_SECS",
        "MONDIAPAY__IDLE_CONNECTION_SECS",
        "STORE__CLAIM_LEASE_SECS",
        "STORE__RETENTION_SECS",
    ] {
        let name = format!("TOKEN_PROXY__{key}");
        let mut vars: Vec<(&str, &str)> = required_env();
        vars.push((&name, huge));
        let found = problems(&vars, Purpose::Serve);
        let setting = key.to_ascii_lowercase().replacen("__", ".", 1);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(&format!("{setting} must be at most ")),
            "{found:?}"
        );
    }
}

#[test]
fn idle_connections_to_mondiapay_closed_at_once_are_refused() {
    let mut vars: Vec<(&str, &str)> = required_env();
    vars.push(("TOKEN_PROXY__MONDIAPAY__IDLE_CONNECTION_SECS", "0"));
    let found = problems(&vars, Purpose::Serve);
    assert_eq!(found, ["mondiapay.idle_connection_secs must be at least 1"]);
}

#[test]
fn round_trip_settings_have_their_defaults_and_are_checked_without_echoing_the_secret() {
    let settings = Settings::load(None, env(&required_env()), Purpose::Serve).unwrap();
    assert_eq!(
        settings.mondiapay.api_base().as_str(),
        "https://gateway.mondiapay.com/"
    );
    assert!(!settings.purchases.enforce);
    assert_eq!(settings.purchases.ttl_secs, 3600);
    assert!(settings.notifications.secret.is_none());

    let mut vars = required_env();
    vars.push((
        "TOKEN_PROXY__MONDIAPAY__TOKEN_URL",
        "https://pay.example:8443/oauth/token?tenant=7",
    ));
    let settings = Settings::load(None, env(&vars), Purpose::Serve).unwrap();
    assert_eq!(
        settings.mondiapay.api_base().as_str(),
        "https://pay.example:8443/"
    );
    vars.push((
        "TOKEN_PROXY__MONDIAPAY__API_URL",
        "https://api.pay.example/base",
    ));
    vars.push(("TOKEN_PROXY__PURCHASES__ENFORCE", "true"));
    let secret = "n0tif1cation-Secret_0123456789abcdef";
    vars.push(("TOKEN_PROXY__NOTIFICATIONS__SECRET", secret));
    let settings = Settings::load(None, env(&vars), Purpose::Serve).unwrap();
    assert_eq!(
        settings.mondiapay.api_base().as_str(),
        "https://api.pay.example/base"
    );
    assert!(settings.purchases.enforce);
    assert!(!settings.redacted_toml().contains(secret));

    for (var, value, key) in [
        (
            "TOKEN_PROXY__MONDIAPAY__API_URL",
            "ftp://pay.example",
            "mondiapay.api_url",
        ),
        (
            "TOKEN_PROXY__PURCHASES__TTL_SECS",
            "0",
            "purchases.ttl_secs",
        ),
        (
            "TOKEN_PROXY__NOTIFICATIONS__SECRET",
            "too-short-0123",
            "notifications.secret",
        ),
        (
            "TOKEN_PROXY__NOTIFICATIONS__SECRET",
            "has/a/slash/and?query=0123456789abcdef",
            "notifications.secret",
        ),
    ] {
        let mut vars = required_env();
        vars.push((var, value));
        let found = problems(&vars, Purpose::Serve);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with(key), "{found:?}");
        if key == "notifications.secret" {
            assert!(!found[0].contains(value), "{found:?}");
        }
    }
}

#[test]
fn the_purchase_parameter_is_the_services_own() {
    for (var, value, key) in [
        (
            "TOKEN_PROXY__PUBLIC__CORRELATION_PARAM",
            "purchase",
            "public.correlation_param",
        ),
        (
            "TOKEN_PROXY__MONDIAPAY__REDIRECT_URI",
            "https://shop.example/thanks?purchase=42",
            "mondiapay.redirect_uri",
        ),
    ] {
        let mut vars = required_env();
        vars.retain(|(name, _)| *name != var);
        vars.push((var, value));
        let found = problems(&vars, Purpose::Serve);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with(key), "{found:?}");
    }
}

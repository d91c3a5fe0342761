//! Serde helpers for setting values: lists that may arrive comma-separated from the environment,
//! and secrets that print as `[redacted]`.

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serializer};

pub const REDACTED: &str = "[redacted]";

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A TOML array, or one string split at commas (`TOKEN_PROXY__INTERNAL__API_KEYS=key1,key2`).
/// Parsing by key keeps a secret that happens to look like a number or a boolean a string.
pub fn list_or_comma_separated<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    Ok(match OneOrMany::deserialize(de)? {
        OneOrMany::One(joined) => joined
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(items) => items,
    })
}

pub fn secret_list_or_comma_separated<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Vec<SecretString>, D::Error> {
    Ok(list_or_comma_separated(de)?
        .into_iter()
        .map(SecretString::from)
        .collect())
}

pub fn redacted<S: Serializer>(secret: &Option<SecretString>, ser: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => ser.serialize_str(REDACTED),
        None => ser.serialize_none(),
    }
}

pub fn redacted_list<S: Serializer>(secrets: &[SecretString], ser: S) -> Result<S::Ok, S::Error> {
    ser.collect_seq(secrets.iter().map(|_| REDACTED))
}

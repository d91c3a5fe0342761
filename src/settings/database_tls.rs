//! A PostgreSQL `store.url` on another machine must use TLS that checks the server's
//! certificate: `sslmode=prefer` (the default) falls back to plaintext, and `require` encrypts
//! without knowing whom it talks to, so anyone on the path could read the tokens.
//!
//! The URL is read by the same parser that opens the pool (so `host=`/`hostaddr=` parameters and
//! the `PG*` environment variables count exactly as they will). Local means a Unix socket, or a
//! host that is `localhost`, in 127.0.0.0/8, or `::1`.

use std::net::IpAddr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// The one problem line for `url`, if it has one. Never repeats the URL (it may hold a password).
pub fn problem(url: &str) -> Option<String> {
    let Ok(options) = url.parse::<PgConnectOptions>() else {
        return Some("store.url is not a valid PostgreSQL URL".to_owned());
    };
    if is_local(&options) {
        return None;
    }
    let mode = match options.get_ssl_mode() {
        PgSslMode::VerifyFull | PgSslMode::VerifyCa => return None,
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
    };
    // A password with a raw `@` ends the user info early, and what the parser then takes for the
    // host is the rest of the password: only a URL with one `@` at most has its host named.
    let host = if url.matches('@').count() > 1 {
        "(not shown: the URL has more than one `@`, and an `@` in a password must be written %40)"
            .to_owned()
    } else {
        options.get_host().to_owned()
    };
    Some(format!(
        "store.url: the database host {host} is not on this machine, so its TLS certificate must be \
         checked: add sslmode=verify-full (or verify-ca with sslrootcert=FILE) to the URL (sslmode is now {mode})"
    ))
}

fn is_local(options: &PgConnectOptions) -> bool {
    let host = options.get_host();
    if options.get_socket().is_some() || host.starts_with('/') {
        return true;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.eq_ignore_ascii_case("localhost.")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_with_a_raw_at_sign_is_never_shown_as_the_host() {
        let raw_at = problem("postgres://user:pa@ss3cret/word@db.internal/tokens").unwrap();
        assert!(!raw_at.contains("ss3cret"), "{raw_at}");
        assert!(raw_at.contains("%40"), "{raw_at}");
        let named = problem("postgres://user:password@db.internal/tokens").unwrap();
        assert!(named.contains("db.internal"), "{named}");
    }

    #[test]
    fn a_remote_host_needs_a_checked_certificate() {
        for url in [
            "postgres://app:pw@db.internal:5432/tokens",
            "postgres://app:pw@db.internal/tokens?sslmode=require",
            "postgres://app:pw@db.internal/tokens?sslmode=prefer",
            "postgres://app:pw@10.0.0.5/tokens?sslmode=disable",
            "postgres://app:pw@[2001:db8::1]/tokens",
            "postgres://app:pw@localhost/tokens?host=db.internal",
            "postgres://app:pw@127.0.0.1/tokens?hostaddr=10.1.2.3",
        ] {
            let found = problem(url).unwrap_or_else(|| panic!("{url} accepted"));
            assert!(found.starts_with("store.url: "), "{found}");
            assert!(found.contains("sslmode=verify-full"), "{found}");
            assert!(!found.contains("pw"), "{found}");
        }
    }

    #[test]
    fn verified_tls_or_a_local_database_is_accepted() {
        for url in [
            "postgres://app:pw@db.internal/tokens?sslmode=verify-full",
            "postgresql://app:pw@db.internal/tokens?sslmode=verify-ca&sslrootcert=/etc/ca.pem",
            "postgres://app:pw@localhost/tokens",
            "postgres://app:pw@LOCALHOST:5433/tokens",
            "postgres://app:pw@127.0.0.1/tokens",
            "postgres://app:pw@127.8.9.10/tokens?sslmode=disable",
            "postgres://app:pw@[::1]:5432/tokens",
            "postgres://app:pw@localhost/tokens?host=/var/run/postgresql",
            "postgres://app:pw@%2Fvar%2Frun%2Fpostgresql/tokens",
        ] {
            assert_eq!(problem(url), None, "{url}");
        }
    }

    #[test]
    fn an_unparseable_url_is_named_without_being_repeated() {
        let found = problem("postgres://app:s3cret@db:notaport/x").unwrap();
        assert_eq!(found, "store.url is not a valid PostgreSQL URL");
    }
}

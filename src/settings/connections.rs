//! Checks of the per-listener connection limits (`header_read_timeout_secs`,
//! `idle_timeout_secs`, `max_connections` of `public` and `internal`).

use super::Settings;

impl Settings {
    pub(super) fn check_connection_limits(&self, problems: &mut Vec<String>) {
        let listeners = [
            (
                "public",
                self.public.request_timeout_secs,
                self.public.header_read_timeout_secs,
                self.public.idle_timeout_secs,
                self.public.max_connections,
            ),
            (
                "internal",
                self.internal.request_timeout_secs,
                self.internal.header_read_timeout_secs,
                self.internal.idle_timeout_secs,
                self.internal.max_connections,
            ),
        ];
        for (listener, request, header_read, idle, max_connections) in listeners {
            if header_read == 0 {
                problems.push(format!(
                    "{listener}.header_read_timeout_secs must be at least 1"
                ));
            }
            if max_connections == 0 {
                problems.push(format!("{listener}.max_connections must be at least 1"));
            }
            // While a request is handled no byte moves on its connection: an idle limit at or
            // below the request time limit would cut requests under way.
            if idle <= request {
                problems.push(format!(
                    "{listener}.idle_timeout_secs must be longer than {listener}.request_timeout_secs ({request} s)"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_are_checked_per_listener_and_name_their_key() {
        let mut problems = Vec::new();
        Settings::default().check_connection_limits(&mut problems);
        assert!(problems.is_empty(), "{problems:?}");

        let mut settings = Settings::default();
        settings.public.idle_timeout_secs = 30;
        settings.internal.max_connections = 0;
        settings.internal.header_read_timeout_secs = 0;
        settings.check_connection_limits(&mut problems);
        assert_eq!(
            problems,
            [
                "public.idle_timeout_secs must be longer than public.request_timeout_secs (30 s)",
                "internal.header_read_timeout_secs must be at least 1",
                "internal.max_connections must be at least 1",
            ]
        );
    }
}

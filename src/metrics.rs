//! Prometheus metrics, one registry per running service (tests run many side by side), served
//! as OpenMetrics text at `GET /metrics` on the internal listener. Rendering reads memory only:
//! a scrape must answer while the store is out of reach, the outage it should show.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

/// The `outcome` labels of a counter: a closed set, spelled once where the outcome is decided,
/// whose `ALL` starts each at 0 on `/metrics` (a rate or an alert on an outcome works before it
/// first happens).
pub(crate) use crate::domain::closed_set as outcome_labels;

/// The counters by `outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Callbacks,
    Exchanges,
    Renewals,
    Notifications,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

/// One of MondiaPay's API calls (`call`) and how it ended (`outcome`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamCall {
    pub call: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpRequest {
    pub listener: &'static str,
    /// The route template, never the URI: low cardinality, and no code from a query string.
    pub route: String,
    pub status: u16,
}

/// A route of a listener, for the request durations (no status: fewer series).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpRoute {
    pub listener: &'static str,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildInfo {
    version: &'static str,
}

/// From a fraction of a millisecond (a cached page, `/healthz`) to the longest time limit.
const HTTP_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

type DurationFamily = Family<HttpRoute, Histogram, fn() -> Histogram>;

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

pub struct Metrics {
    registry: Registry,
    callbacks: Family<Outcome, Counter>,
    exchanges: Family<Outcome, Counter>,
    renewals: Family<Outcome, Counter>,
    mondiapay_duration: Histogram,
    connect_retries: Counter,
    mondiapay_calls: Family<UpstreamCall, Counter>,
    mondiapay_call_duration: Histogram,
    http_requests: Family<HttpRequest, Counter>,
    rate_limited: Counter,
    http_durations: DurationFamily,
    live_tokens: Gauge,
    live_tokens_refreshed: Gauge<f64, AtomicU64>,
    /// Woken by each scrape: the live token count is taken again in the background.
    live_tokens_wanted: Notify,
    notifications: Family<Outcome, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("token_proxy");
        let callbacks = Family::<Outcome, Counter>::default();
        let exchanges = Family::<Outcome, Counter>::default();
        let renewals = Family::<Outcome, Counter>::default();
        let mondiapay_duration =
            Histogram::new([0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        let connect_retries = Counter::default();
        let mondiapay_calls = Family::<UpstreamCall, Counter>::default();
        let mondiapay_call_duration =
            Histogram::new([0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        let http_requests = Family::<HttpRequest, Counter>::default();
        let rate_limited = Counter::default();
        let http_durations = DurationFamily::new_with_constructor(http_histogram);
        let live_tokens = Gauge::default();
        let live_tokens_refreshed = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "build",
            "The running version",
            Info::new(BuildInfo {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        registry.register(
            "callbacks",
            "Browser callbacks handled, by outcome",
            callbacks.clone(),
        );
        registry.register(
            "exchanges",
            "Code exchanges requested (API, callback, command), by outcome",
            exchanges.clone(),
        );
        registry.register(
            "renewals",
            "User token renewals (user_credentials) requested, by outcome",
            renewals.clone(),
        );
        registry.register(
            "mondiapay_request_duration_seconds",
            "Duration of MondiaPay token calls, retries included",
            mondiapay_duration.clone(),
        );
        registry.register(
            "mondiapay_connect_retries",
            "Token calls attempted again after a connection failure",
            connect_retries.clone(),
        );
        registry.register(
            "mondiapay_calls",
            "Calls of MondiaPay's API (Prepare Purchase, Subscription Management), by call and outcome",
            mondiapay_calls.clone(),
        );
        registry.register(
            "mondiapay_call_duration_seconds",
            "Duration of calls of MondiaPay's API, retries included",
            mondiapay_call_duration.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by listener, route and status",
            http_requests.clone(),
        );
        registry.register(
            "rate_limited",
            "Public requests refused by the per-client rate limit",
            rate_limited.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by listener and route",
            http_durations.clone(),
        );
        registry.register(
            "live_tokens",
            "Stored tokens not yet expired, as last counted (see live_tokens_refreshed_timestamp_seconds)",
            live_tokens.clone(),
        );
        registry.register(
            "live_tokens_refreshed_timestamp_seconds",
            "When live_tokens was last counted (Unix time; 0: not yet)",
            live_tokens_refreshed.clone(),
        );
        let notifications = Family::<Outcome, Counter>::default();
        registry.register(
            "notifications",
            "MondiaPay notifications received, by outcome",
            notifications.clone(),
        );
        Self {
            registry,
            callbacks,
            exchanges,
            renewals,
            mondiapay_duration,
            connect_retries,
            mondiapay_calls,
            mondiapay_call_duration,
            http_requests,
            rate_limited,
            http_durations,
            live_tokens,
            live_tokens_refreshed,
            live_tokens_wanted: Notify::new(),
            notifications,
        }
    }
}

impl Metrics {
    /// Shows each of `outcomes` of `counted` at 0 until it happens.
    pub fn start_at_zero(
        &self,
        counted: Counted,
        outcomes: impl IntoIterator<Item = &'static str>,
    ) {
        let family = match counted {
            Counted::Callbacks => &self.callbacks,
            Counted::Exchanges => &self.exchanges,
            Counted::Renewals => &self.renewals,
            Counted::Notifications => &self.notifications,
        };
        for outcome in outcomes {
            let _ = family.get_or_create(&Outcome { outcome });
        }
    }

    /// Shows each of `outcomes` of MondiaPay's `call` at 0 until it happens.
    pub fn start_call_at_zero(
        &self,
        call: &'static str,
        outcomes: impl IntoIterator<Item = &'static str>,
    ) {
        for outcome in outcomes {
            let _ = self
                .mondiapay_calls
                .get_or_create(&UpstreamCall { call, outcome });
        }
    }

    pub fn callback(&self, outcome: &'static str) {
        self.callbacks.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn exchange(&self, outcome: &'static str) {
        self.exchanges.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn renewal(&self, outcome: &'static str) {
        self.renewals.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn mondiapay_call(&self, took: Duration) {
        self.mondiapay_duration.observe(took.as_secs_f64());
    }

    pub fn mondiapay_api_call(&self, call: &'static str, outcome: &'static str, took: Duration) {
        self.mondiapay_calls
            .get_or_create(&UpstreamCall { call, outcome })
            .inc();
        self.mondiapay_call_duration.observe(took.as_secs_f64());
    }

    pub fn connect_retry(&self) {
        self.connect_retries.inc();
    }

    pub fn http_request(&self, listener: &'static str, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&HttpRequest {
                listener,
                route: route.to_owned(),
                status,
            })
            .inc();
    }

    /// A request a router answered: counted by status, timed by route.
    pub fn http_request_took(
        &self,
        listener: &'static str,
        route: &str,
        status: u16,
        took: Duration,
    ) {
        self.http_request(listener, route, status);
        self.http_durations
            .get_or_create(&HttpRoute {
                listener,
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn notification(&self, outcome: &'static str) {
        self.notifications.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// The live token count, taken at `at` (Unix time).
    pub fn live_tokens_counted(&self, live_tokens: i64, at: f64) {
        self.live_tokens.set(live_tokens);
        self.live_tokens_refreshed.set(at);
    }

    /// Resolves when a scrape asked for a fresh live token count (at once if one asked since
    /// the last call: asks made while a count runs are one ask).
    pub async fn live_tokens_wanted(&self) {
        self.live_tokens_wanted.notified().await;
    }

    /// The exposition, from memory only; asks for the live token count to be taken again, for
    /// the next scrape.
    pub fn render(&self) -> String {
        self.live_tokens_wanted.notify_one();
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics_text_with_the_documented_names() {
        let metrics = Metrics::default();
        metrics.exchange("issued");
        metrics.callback("succeeded");
        metrics.http_request("internal", "/v1/exchange", 200);
        metrics.mondiapay_call(Duration::from_millis(30));
        metrics.live_tokens_counted(3, 1_700_000_000.5);
        let text = metrics.render();
        for line in [
            "token_proxy_exchanges_total{outcome=\"issued\"} 1",
            "token_proxy_callbacks_total{outcome=\"succeeded\"} 1",
            "token_proxy_http_requests_total{listener=\"internal\",route=\"/v1/exchange\",status=\"200\"} 1",
            "token_proxy_mondiapay_request_duration_seconds_count 1",
            "token_proxy_live_tokens 3",
            "token_proxy_live_tokens_refreshed_timestamp_seconds 1700000000.5",
            "token_proxy_build_info{version=\"0.1.0\"} 1",
            "token_proxy_rate_limited_total 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn request_durations_are_bucketed_per_listener_and_route_from_a_fraction_of_a_millisecond() {
        let metrics = Metrics::default();
        let route = "/v1/tokens/{id}";
        metrics.http_request_took("internal", route, 200, Duration::from_micros(300));
        metrics.http_request_took("internal", route, 404, Duration::from_secs(2));
        let text = metrics.render();
        for line in [
            "token_proxy_http_request_duration_seconds_bucket{le=\"0.0005\",listener=\"internal\",route=\"/v1/tokens/{id}\"} 1",
            "token_proxy_http_request_duration_seconds_bucket{le=\"2.5\",listener=\"internal\",route=\"/v1/tokens/{id}\"} 2",
            "token_proxy_http_request_duration_seconds_count{listener=\"internal\",route=\"/v1/tokens/{id}\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[tokio::test]
    async fn a_scrape_asks_for_a_fresh_live_token_count_without_waiting_for_it() {
        let metrics = Metrics::default();
        metrics.render();
        // Resolves at once: the scrape's ask was kept for the counting task.
        metrics.live_tokens_wanted().await;
        assert!(
            metrics
                .render()
                .contains("token_proxy_live_tokens_refreshed_timestamp_seconds 0"),
            "never counted reads as 0"
        );
    }
}

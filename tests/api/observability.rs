//! What an operator sees: `/metrics` after real traffic and while the database is down, and the
//! housekeeping purge.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sqlx::Row;
use wiremock::ResponseTemplate;

use crate::helpers::*;
use crate::postgres::PgCluster;

/// The exposition once the live token gauge reads `live`. Each scrape asks for a count in the
/// background, so a later scrape sees it.
async fn metrics_once_counted(app: &TestApp, live: i64) -> String {
    let line = format!("token_proxy_live_tokens {live}\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = app.metrics_text().await;
        if text.contains(&line) {
            return text;
        }
        assert!(Instant::now() < deadline, "{line} never counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn metrics_answer_how_many_exchanges_failed_and_why() {
    let app = spawn_app().await;
    let rejected_code = new_code();
    wiremock::Mock::given(wiremock::matchers::query_param(
        "code",
        rejected_code.as_str(),
    ))
    .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
    .expect(1)
    .mount(&app.mondiapay)
    .await;
    app.mondiapay.issues_tokens(2).await;
    let code = new_code();
    assert_eq!(
        app.exchange(&code, "ORDER-M").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.exchange(&code, "ORDER-M").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.exchange(&rejected_code, "ORDER-M").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    app.callback_page(&format!("ref=ORDER-M2&code={}", new_code()))
        .await;
    app.callback_page("ref=ORDER-M3&error=INSUFFICIENT_FUNDS")
        .await;
    assert_eq!(
        app.callback("nothing=1").await.status(),
        StatusCode::BAD_REQUEST
    );
    let unmatched = format!("{}/no/such/{code}", app.internal);
    assert_eq!(
        app.http_get(&unmatched).await.status(),
        StatusCode::NOT_FOUND
    );

    let response = app.metrics().await;
    assert!(content_type(&response).starts_with("application/openmetrics-text"));
    let metrics = metrics_once_counted(&app, 2).await;
    for line in [
        "token_proxy_exchanges_total{outcome=\"issued\"} 2",
        "token_proxy_exchanges_total{outcome=\"replayed\"} 1",
        "token_proxy_exchanges_total{outcome=\"code_rejected\"} 1",
        "token_proxy_callbacks_total{outcome=\"succeeded\"} 1",
        "token_proxy_callbacks_total{outcome=\"purchase_failed\"} 1",
        "token_proxy_callbacks_total{outcome=\"bad_request\"} 1",
        "token_proxy_mondiapay_request_duration_seconds_count 3",
        "token_proxy_http_requests_total{listener=\"internal\",route=\"/v1/exchange\",status=\"422\"} 1",
        "token_proxy_http_requests_total{listener=\"public\",route=\"/oauth/callback\",status=\"303\"} 2",
        "token_proxy_live_tokens 2",
        "token_proxy_http_request_duration_seconds_count{listener=\"public\",route=\"/oauth/callback\"} 3",
        "token_proxy_http_request_duration_seconds_count{listener=\"internal\",route=\"/v1/exchange\"} 3",
        "token_proxy_http_request_duration_seconds_bucket{le=\"0.0005\",listener=\"internal\",route=\"/v1/exchange\"}",
        "token_proxy_http_request_duration_seconds_count{listener=\"internal\",route=\"unmatched\"} 1",
        "# TYPE token_proxy_build info",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    assert!(!metrics.contains(&code) && !metrics.contains(&rejected_code));
    let build = format!(
        "token_proxy_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(metrics.contains(&build), "{build} missing from\n{metrics}");
}

#[tokio::test]
async fn every_known_outcome_is_listed_at_zero_before_it_first_happens() {
    use mondiapay_token_proxy::domain::OutcomeKind;
    use mondiapay_token_proxy::events::NotificationOutcome;
    use mondiapay_token_proxy::exchange::{ExchangeOutcome, RenewalOutcome};
    use mondiapay_token_proxy::http::public::CallbackRefusal;
    use mondiapay_token_proxy::mondiapay::CallName;

    let app = spawn_app().await;
    let metrics = app.metrics_text().await;
    let listed = |counter: &str, outcome: &str| {
        let line = format!("token_proxy_{counter}_total{{outcome=\"{outcome}\"}} 0\n");
        assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
    };
    for outcome in ExchangeOutcome::ALL {
        listed("exchanges", outcome.as_str());
    }
    for outcome in RenewalOutcome::ALL {
        listed("renewals", outcome.as_str());
    }
    for outcome in NotificationOutcome::ALL {
        listed("notifications", outcome.as_str());
    }
    for outcome in OutcomeKind::ALL {
        listed("callbacks", outcome.as_str());
    }
    for outcome in CallbackRefusal::ALL {
        listed("callbacks", outcome.as_str());
    }
    for outcome in [
        ExchangeOutcome::StoreUnavailable,
        ExchangeOutcome::StoreFault,
    ] {
        listed("callbacks", outcome.as_str());
    }
    for call in CallName::ALL {
        for outcome in call.outcomes() {
            let line = format!(
                "token_proxy_mondiapay_calls_total{{call=\"{}\",outcome=\"{}\"}} 0\n",
                call.as_str(),
                outcome.as_str()
            );
            assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
        }
    }
}

#[tokio::test]
async fn metrics_answer_from_memory_while_the_database_is_down() {
    let cluster = PgCluster::start();
    let app = spawn_app_with(&cluster.store_settings()).await;
    app.mondiapay.issues_tokens(1).await;
    assert_eq!(
        app.exchange(&new_code(), "ORDER-PG-METRICS").await.status(),
        StatusCode::OK
    );
    metrics_once_counted(&app, 1).await;

    cluster.stop();
    // Each scrape asks for a count, which fails in the background: the gauge keeps its value.
    for _ in 0..3 {
        let metrics = app.metrics_text().await;
        assert!(metrics.contains("token_proxy_live_tokens 1\n"), "{metrics}");
        assert!(
            !metrics.contains("token_proxy_live_tokens_refreshed_timestamp_seconds 0\n"),
            "{metrics}"
        );
    }
    assert_eq!(
        app.ready().await.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the database is down indeed"
    );
}

async fn count(pool: &sqlx::SqlitePool, table: &str) -> i64 {
    let query = match table {
        "tokens" => "SELECT COUNT(*) AS n FROM tokens",
        "exchanges" => "SELECT COUNT(*) AS n FROM exchanges",
        _ => "SELECT COUNT(*) AS n FROM callbacks",
    };
    sqlx::query(query).fetch_one(pool).await.unwrap().get("n")
}

#[tokio::test]
async fn expired_tokens_and_old_outcomes_are_purged_after_the_retention_period() {
    let app = spawn_app_with("STORE__RETENTION_SECS=1 STORE__PURGE_INTERVAL_SECS=1").await;
    let expiring = json!({"access_token": "Ugone", "token_type": "bearer", "expires_in": "0"});
    let expiring_code = new_code();
    wiremock::Mock::given(wiremock::matchers::query_param(
        "code",
        expiring_code.as_str(),
    ))
    .respond_with(ResponseTemplate::new(200).set_body_json(expiring))
    .expect(1)
    .mount(&app.mondiapay)
    .await;
    app.mondiapay.issues_tokens(1).await;
    assert_eq!(
        app.exchange(&expiring_code, "ORDER-OLD").await.status(),
        StatusCode::GONE
    );
    let live = json(app.exchange(&new_code(), "ORDER-LIVE").await).await;
    app.callback_page("ref=ORDER-OLD&error=INSUFFICIENT_FUNDS")
        .await;

    let database = format!("sqlite://{}/tokens.db", app.dir.path().display());
    let pool = sqlx::SqlitePool::connect(&database).await.unwrap();
    assert_eq!(count(&pool, "tokens").await, 2);
    let deadline = Instant::now() + Duration::from_secs(15);
    assert_eq!(count(&pool, "callbacks").await, 1);
    while count(&pool, "tokens").await > 1
        || count(&pool, "exchanges").await > 1
        || count(&pool, "callbacks").await > 0
    {
        assert!(Instant::now() < deadline, "nothing purged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = app.stored_token(&live).await;
    assert_eq!(
        kept["access_token"], live["access_token"],
        "a live token and its exchange stay"
    );
    assert_eq!(count(&pool, "exchanges").await, 1);
}

const BINARY: &str = env!("CARGO_BIN_EXE_mondiapay-token-proxy");

/// A port nothing listens on.
fn closed_port() -> u16 {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    closed.local_addr().unwrap().port()
}

/// `healthcheck --url url` with every proxy variable pointing at a proxy that is not there.
fn healthcheck_behind_a_dead_proxy(url: &str) -> std::process::Output {
    let proxy = format!("http://127.0.0.1:{}", closed_port());
    let mut command = std::process::Command::new(BINARY);
    command.args(["healthcheck", "--url", url]);
    for variable in ["NO_PROXY", "no_proxy"] {
        command.env_remove(variable);
    }
    for variable in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        command.env(variable, &proxy);
    }
    command.output().unwrap()
}

// Multi-threaded: the service answers while this thread waits for the probe to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_ignores_proxies_in_the_environment() {
    let app = spawn_app().await;
    let probe = healthcheck_behind_a_dead_proxy(&format!("{}/readyz", app.internal));
    assert_eq!(
        probe.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
}

#[test]
fn healthcheck_says_in_one_line_why_it_failed_and_never_the_urls_password() {
    let url = format!(
        "http://probe:{CLIENT_SECRET}@127.0.0.1:{}/readyz",
        closed_port()
    );
    let probe = healthcheck_behind_a_dead_proxy(&url);
    assert_eq!(probe.status.code(), Some(1));
    let stderr = String::from_utf8(probe.stderr).unwrap();
    assert!(stderr.starts_with("unhealthy: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.to_lowercase().contains("connection refused"),
        "no cause: {stderr}"
    );
    assert!(!stderr.contains(CLIENT_SECRET), "{stderr}");
}

#[tokio::test]
async fn the_readme_lists_every_metric_served() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md is readable");
    let app = spawn_app().await;
    let metrics = app.metrics_text().await;
    let mut families = 0;
    for family in metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
    {
        let (name, kind) = family.split_once(' ').unwrap();
        // A counter's samples end in `_total`, an info's in `_info`: the names queries use.
        let queried = match kind {
            "counter" => format!("`{name}_total`"),
            "info" => format!("`{name}_info`"),
            _ => format!("`{name}`"),
        };
        assert!(
            readme.contains(&queried),
            "README.md does not list {queried}"
        );
        families += 1;
    }
    assert!(families > 10, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_says_the_service_is_not_ready_in_one_line() {
    let app = spawn_app().await;
    // Refused credentials make the service unready (`/readyz` answers 503) at once.
    let refused = ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"}));
    app.mondiapay.answers(refused, 1).await;
    assert_eq!(
        app.exchange(&new_code(), "ORDER-UNREADY").await.status(),
        StatusCode::BAD_GATEWAY
    );
    let probe = healthcheck_behind_a_dead_proxy(&format!("{}/readyz", app.internal));
    assert_eq!(probe.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(probe.stderr).unwrap(),
        "unhealthy: the service answered 503 Service Unavailable\n"
    );
}

//! Clients that hang up mid-request, on PostgreSQL. A request future dropped while a store
//! transaction's `BEGIN` is in flight used to leave its pooled connection inside a transaction
//! nothing rolled back (sqlx 0.9, transact-rs/sqlx issue 4393): later borrowers ran inside it and
//! PostgreSQL said `there is already a transaction in progress`. Store writes now run to
//! completion whatever the client does.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::helpers::*;
use crate::postgres::PgCluster;
use crate::process::Served;

/// A fresh token per call, a little late: long enough for clients to give up mid-request.
struct SlowTokens;

impl Respond for SlowTokens {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        IssueTokens
            .respond(request)
            .set_delay(Duration::from_millis(10))
    }
}

/// What a client asks for.
#[derive(Clone, Copy, Debug)]
enum Ask {
    /// A callback whose code is exchanged, then its outcome recorded.
    Callback,
    /// A failed purchase's callback: its outcome recorded at once.
    FailedPurchase,
    /// `POST /v1/exchange`.
    Exchange,
}

/// What one client saw.
enum Seen {
    /// `POST /v1/exchange` answered `200` with this token id.
    Exchanged(String),
    /// A callback answered `303`: its outcome was recorded.
    Recorded(Ask),
    /// The client hung up first.
    HungUp,
}

/// Client `n` asks `ask` of `service`, giving up after `patience`.
async fn client(service: Client, ask: Ask, n: usize, patience: Duration) -> Seen {
    let reference = format!("HANG-{n}");
    let request = match ask {
        Ask::Callback => service.browser(&format!(
            "/oauth/callback?ref={reference}&code={}",
            new_code()
        )),
        Ask::FailedPurchase => service.browser(&format!(
            "/oauth/callback?ref={reference}&error=INSUFFICIENT_FUNDS"
        )),
        Ask::Exchange => service
            .api(Method::POST, "/v1/exchange")
            .json(&json!({"code": new_code(), "ref": reference})),
    };
    let sent = request.timeout(patience).send().await;
    match (ask, sent) {
        (Ask::Exchange, Ok(response)) if response.status() == StatusCode::OK => {
            match response.json::<Value>().await {
                Ok(record) => Seen::Exchanged(record["id"].as_str().unwrap().to_owned()),
                Err(_) => Seen::HungUp,
            }
        }
        (_, Ok(response)) if response.status() == StatusCode::SEE_OTHER => Seen::Recorded(ask),
        (_, Ok(response)) => panic!("{ask:?} {n}: {}", response.status()),
        (_, Err(_)) => Seen::HungUp,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_hanging_up_mid_request_leave_no_connection_inside_a_transaction() {
    let cluster = PgCluster::start();
    let (mondiapay, _dir, mut env) = MondiaPay::start().await;
    env.extend(settings(&cluster.store_settings()));
    env.extend(settings(
        "PUBLIC__RATE_LIMIT_PER_SECOND=100000 PUBLIC__RATE_LIMIT_BURST=100000 \
         MONDIAPAY__MAX_CONCURRENT_EXCHANGES=1000",
    ));
    // As many calls as get through before their clients hang up.
    Mock::given(wiremock::matchers::path(TOKEN_PATH))
        .respond_with(SlowTokens)
        .mount(&mondiapay)
        .await;
    let served = Served::start(&env);

    let mut seen = Vec::new();
    let mut n = 0;
    for ask in [Ask::Callback, Ask::FailedPurchase, Ask::Exchange] {
        // How long this kind of request takes here, now: the hang-ups are spread around it.
        let mut took = Vec::new();
        for _ in 0..5 {
            n += 1;
            let started = std::time::Instant::now();
            let answer = client(served.client.clone(), ask, n, Duration::from_secs(30)).await;
            took.push(started.elapsed());
            seen.push((n, answer));
        }
        took.sort();
        let typical = took[2];
        // 200 clients giving up between a fifth of that and three times it, a few at a time,
        // so some drop their request while a store transaction is starting.
        for batch in 0..20 {
            let clients: Vec<_> = (0..10)
                .map(|i| {
                    n += 1;
                    let step = (batch * 10 + i) as u32;
                    let patience = typical * (20 + (step * 7919) % 280) / 100;
                    let service = served.client.clone();
                    tokio::spawn(async move { (n, client(service, ask, n, patience).await) })
                })
                .collect();
            for client in clients {
                seen.push(client.await.unwrap());
            }
        }
    }
    // As many that wait, so the pool hands every connection out again.
    for batch in 0..10 {
        let clients: Vec<_> = (0..30)
            .map(|i| {
                n += 1;
                let ask = [Ask::Callback, Ask::FailedPurchase, Ask::Exchange][(batch + i) % 3];
                let service = served.client.clone();
                tokio::spawn(
                    async move { (n, client(service, ask, n, Duration::from_secs(30)).await) },
                )
            })
            .collect();
        for client in clients {
            seen.push(client.await.unwrap());
        }
    }
    let hung_up = seen
        .iter()
        .filter(|(_, seen)| matches!(seen, Seen::HungUp))
        .count();
    assert!(hung_up >= 100, "only {hung_up} clients hung up");

    // Every acknowledged token and outcome is still there.
    for (n, seen) in &seen {
        match seen {
            Seen::Exchanged(id) => {
                let found = served.token(id).await;
                assert_eq!(found.status(), StatusCode::OK, "exchange {n}: {id}");
            }
            Seen::Recorded(ask) => {
                let outcomes = served.callbacks(&format!("HANG-{n}")).await;
                let expected = match ask {
                    Ask::FailedPurchase => "purchase_failed",
                    _ => "succeeded",
                };
                assert_eq!(outcomes[0]["outcome"], expected, "{ask:?} {n}: {outcomes}");
                if expected == "succeeded" {
                    let found = served.tokens_by_ref(&format!("HANG-{n}")).await;
                    assert_eq!(found.status(), StatusCode::OK, "callback {n}");
                }
            }
            Seen::HungUp => {}
        }
    }

    let (code, lines) = served.stop();
    assert_eq!(code, Some(0));
    let poisoned: Vec<_> = lines
        .iter()
        .filter(|line| line.contains("transaction in progress"))
        .take(3)
        .collect();
    assert!(poisoned.is_empty(), "{poisoned:#?}");
}

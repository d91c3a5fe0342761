//! Start-up: the store, the exchanger and the two listeners, built from settings; serving until
//! a shutdown future resolves, then draining what is in flight.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::crypto::Keyring;
use crate::events::Events;
use crate::exchange::{ExchangeLimits, Exchanger, Renewer};
use crate::housekeeping::Housekeeping;
use crate::http::internal::{self, auth::ApiKeys};
use crate::http::public;
use crate::http::public::limit::ClientLimiter;
use crate::http::public::pages::{Pages, TemplateError};
use crate::http::public::secret::NotificationSecret;
use crate::http::state::{AppState, CallbackSettings, Shared};
use crate::keyfile::{self, KeyFileError};
use crate::metrics::Metrics;
use crate::mondiapay::MondiaPayClient;
use crate::purchases::{self, Purchases};
use crate::serve::{
    self, BareAnswers, ConnectionLimits, ConnectionThreads, FdLimitError, Listener,
};
use crate::settings::{Settings, StoreBackend};
use crate::store::{StoreError, TokenStore};
use crate::subscriptions::Subscriptions;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error(transparent)]
    Templates(#[from] TemplateError),
    #[error("cannot build the HTTP client for MondiaPay")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    FdLimit(#[from] FdLimitError),
    #[error("{key}: cannot listen on {address}")]
    Bind {
        key: &'static str,
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the threads connections are served on")]
    Threads(#[source] std::io::Error),
}

/// The store and the exchanger: all `exchange` needs, and the core of `serve`.
pub struct Engine {
    pub store: Arc<TokenStore>,
    pub exchanger: Arc<Exchanger>,
    pub metrics: Arc<Metrics>,
    pub purchases: Arc<Purchases>,
    /// User token renewals, and the Subscription Management calls that use them.
    pub renewer: Arc<Renewer>,
    pub subscriptions: Arc<Subscriptions>,
}

impl Engine {
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let backend = settings.store.backend().expect("store.url was validated");
        let master_key = match settings.store.master_key() {
            Some(key) => key,
            None => generated_key(&backend)?,
        };
        let store = Arc::new(
            TokenStore::open(&backend, Keyring::new(&master_key))
                .await?
                .with_max_failure_outcomes(settings.store.max_failure_outcomes)
                .with_expiry_margin(settings.store.expiry_margin_secs),
        );
        let metrics = Arc::new(Metrics::default());
        let mondiapay = Arc::new(MondiaPayClient::new(
            &settings.mondiapay,
            Arc::clone(&metrics),
        )?);
        let limits = ExchangeLimits {
            lease: Duration::from_secs(settings.store.claim_lease_secs),
            max_concurrent: settings.mondiapay.max_concurrent_exchanges,
        };
        let exchanger = Arc::new(Exchanger::new(
            Arc::clone(&store),
            Arc::clone(&mondiapay),
            Arc::clone(&metrics),
            limits,
        ));
        let purchases = Arc::new(Purchases::new(
            Arc::clone(&store),
            Arc::clone(&mondiapay),
            settings.purchases.ttl_secs,
            settings.purchases.enforce,
            purchases::key_lease(
                Duration::from_secs(settings.store.claim_lease_secs),
                settings.mondiapay.longest_exchange(),
            ),
        ));
        // One client, one connection pool for every MondiaPay call: reqwest's pool does not cap
        // connections, so no call waits on another's.
        let renewer = Arc::new(Renewer::new(
            Arc::clone(&store),
            Arc::clone(&mondiapay),
            Arc::clone(&metrics),
            Duration::from_secs(settings.store.claim_lease_secs),
            !settings.purchases.enforce,
        ));
        let subscriptions = Arc::new(Subscriptions::new(
            Arc::clone(&store),
            mondiapay,
            Arc::clone(&renewer),
        ));
        Ok(Self {
            store,
            exchanger,
            metrics,
            purchases,
            renewer,
            subscriptions,
        })
    }

    /// Lets exchanges under way finish and be stored (at most `grace`), then closes the store.
    pub async fn shut_down(&self, grace: Duration) {
        let (exchanges, renewals) =
            tokio::join!(self.exchanger.drain(grace), self.renewer.drain(grace));
        if !renewals {
            tracing::error!(
                grace_secs = grace.as_secs(),
                "renewals still running at the end of the shutdown grace period"
            );
        }
        if !exchanges {
            tracing::error!(
                grace_secs = grace.as_secs(),
                "exchanges still running at the end of the shutdown grace period"
            );
        }
        self.store.close().await;
    }
}

fn generated_key(backend: &StoreBackend) -> Result<[u8; 32], KeyFileError> {
    let StoreBackend::Sqlite { path } = backend else {
        return Err(KeyFileError::NotForPostgres);
    };
    let key_path = path.with_file_name(keyfile::FILE_NAME);
    let (key, created) = keyfile::load_or_create(&key_path)?;
    if created {
        tracing::warn!(path = %key_path.display(), "no store.encryption_key configured: generated one; back this file up with the database, without it the tokens cannot be read");
    }
    Ok(key)
}

pub struct Application {
    engine: Engine,
    /// Its waiting readers are answered when the shutdown begins.
    events: Arc<Events>,
    public: Listener,
    internal: Listener,
    shutdown_grace: Duration,
    housekeeping: Housekeeping,
    /// Both listeners' connections are served on these; they stop once the application has
    /// stopped, after the work requests started has had its grace period.
    threads: Arc<ConnectionThreads>,
}

impl Application {
    /// Opens the store and binds both listeners (port 0 picks a free port, for tests).
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        Self::assemble(settings, None).await
    }

    /// Opens the store and serves on listeners the caller bound (`public`, then `internal`);
    /// `public.listen` and `internal.listen` are not used.
    pub async fn with_listeners(
        settings: &Settings,
        public: TcpListener,
        internal: TcpListener,
    ) -> Result<Self, StartupError> {
        Self::assemble(settings, Some((public, internal))).await
    }

    async fn assemble(
        settings: &Settings,
        listeners: Option<(TcpListener, TcpListener)>,
    ) -> Result<Self, StartupError> {
        let pages = Pages::new(settings.public.templates_dir.clone())?;
        let threads = Arc::new(ConnectionThreads::for_cores().map_err(StartupError::Threads)?);
        let public_cap = serve::fit_connection_caps(
            settings.public.max_connections,
            settings.internal.max_connections,
            settings.mondiapay.max_concurrent_exchanges,
            threads.count(),
        )?;
        let engine = Engine::build(settings).await?;
        let public = &settings.public;
        let state = AppState(Arc::new(Shared {
            store: Arc::clone(&engine.store),
            exchanger: Arc::clone(&engine.exchanger),
            metrics: Arc::clone(&engine.metrics),
            purchases: Arc::clone(&engine.purchases),
            renewer: Arc::clone(&engine.renewer),
            subscriptions: Arc::clone(&engine.subscriptions),
            api_keys: Arc::new(ApiKeys::new(&settings.internal.api_keys)),
            code_prefix: settings.mondiapay.code_prefix.clone(),
            pages,
            callback: CallbackSettings::new(public, &settings.mondiapay.exchange_on_errors),
            events: Arc::new(Events::new(
                Arc::clone(&engine.store),
                Arc::clone(&engine.metrics),
                Duration::from_secs(settings.internal.request_timeout_secs),
            )),
            notification_secret: NotificationSecret::new(settings.notifications.secret.as_ref()),
            limiter: Arc::new(ClientLimiter::new(
                public.rate_limit_per_second,
                public.rate_limit_burst,
                public
                    .trusted_proxy_networks()
                    .expect("public.trusted_proxies was validated"),
            )),
        }));
        let events = Arc::clone(&state.events);
        let housekeeping = Housekeeping {
            store: Arc::clone(&engine.store),
            limiter: Arc::clone(&state.limiter),
            every: Duration::from_secs(settings.store.purge_interval_secs),
            retention_secs: settings.store.retention_secs as i64,
            metrics: Arc::clone(&engine.metrics),
        };
        let (public_listener, internal_listener) = match listeners {
            Some(bound) => bound,
            None => (
                bind("public.listen", public.listen).await?,
                bind("internal.listen", settings.internal.listen).await?,
            ),
        };
        let internal = &settings.internal;
        let page_state = state.clone();
        let public = Listener {
            name: "public",
            socket: public_listener,
            router: public::router(
                state.clone(),
                Duration::from_secs(public.request_timeout_secs),
            ),
            limits: ConnectionLimits {
                header_read_timeout: Duration::from_secs(public.header_read_timeout_secs),
                idle_timeout: Duration::from_secs(public.idle_timeout_secs),
                max_connections: public_cap,
            },
            bare: Arc::new(
                BareAnswers::prepare("public", Arc::clone(&engine.metrics), |status, id| {
                    public::bare_answer(&page_state, status, id)
                })
                .await,
            ),
            threads: Arc::clone(&threads),
        };
        let internal = Listener {
            name: "internal",
            socket: internal_listener,
            router: internal::router(state, Duration::from_secs(internal.request_timeout_secs)),
            limits: ConnectionLimits {
                header_read_timeout: Duration::from_secs(internal.header_read_timeout_secs),
                idle_timeout: Duration::from_secs(internal.idle_timeout_secs),
                max_connections: internal.max_connections,
            },
            bare: Arc::new(
                BareAnswers::prepare(
                    "internal",
                    Arc::clone(&engine.metrics),
                    internal::bare_answer,
                )
                .await,
            ),
            threads: Arc::clone(&threads),
        };
        Ok(Self {
            engine,
            events,
            public,
            internal,
            shutdown_grace: Duration::from_secs(settings.server.shutdown_grace_secs),
            housekeeping,
            threads,
        })
    }

    pub fn public_addr(&self) -> SocketAddr {
        self.public
            .socket
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn internal_addr(&self) -> SocketAddr {
        self.internal
            .socket
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets requests and exchanges under
    /// way finish within the grace period, and closes the store.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // `event` is the field tools and tests wait on; the sentence may be reworded.
        tracing::info!(event = "listening", public = %self.public_addr(), internal = %self.internal_addr(), "listening");
        let stop = CancellationToken::new();
        let trigger = stop.clone();
        let events = Arc::clone(&self.events);
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!(
                event = "shutdown_started",
                "shutting down: no new connections, finishing requests under way"
            );
            trigger.cancel();
            events.close();
        });
        let housekeeping = tokio::spawn(self.housekeeping.run(stop.clone()));
        let (public, internal) = (self.public, self.internal);
        let grace = self.shutdown_grace;
        tokio::select! {
            ((), ()) = async { tokio::join!(public.serve(stop.clone()), internal.serve(stop.clone())) } => {}
            () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::error!(grace_secs = grace.as_secs(), "connections still open at the end of the shutdown grace period: closing them");
            }
        };
        let _ = housekeeping.await;
        self.engine.shut_down(grace).await;
        // Only now, after the store has closed: exchanges that requests started run on these
        // threads, and connections to the store or MondiaPay opened during a request belong to
        // the event loop of the thread that opened them.
        drop(self.threads);
        tracing::info!("stopped");
        Ok(())
    }
}

async fn bind(key: &'static str, address: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StartupError::Bind {
            key,
            address,
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::settings::Purpose;

    /// `(path, method)` for every route `router` serves, read from the router itself. axum has
    /// no API that lists routes, so this reads its `Debug` form: each route's id with its path,
    /// and each id's `Allow` header. (A change of that form fails the test loudly: no routes.)
    fn served_routes(router: &axum::Router) -> BTreeSet<(String, String)> {
        let debug = format!("{router:?}");
        // The first `paths` map is the routes' own; a later one is the fallback's. Its entries
        // read `RouteId(7): "/v1/tokens/{id}"`, separated by `, `, and it ends at `}`.
        let mut rest = &debug[debug.find("node: Node { paths: {").expect("a route table") + 21..];
        let mut served = BTreeSet::new();
        while let Some(entry) = rest.strip_prefix("RouteId(") {
            let (id, after) = entry.split_once("): \"").unwrap();
            let (path, after) = after.split_once('"').unwrap();
            rest = after.strip_prefix(", ").unwrap_or(after);
            let route = debug
                .find(&format!("RouteId({id}): MethodRouter("))
                .expect("the route's methods");
            let allow = &debug[route..];
            let allow = &allow[allow.find("allow_header: Bytes(b\"").unwrap() + 22..];
            let allow = &allow[..allow.find('"').unwrap()];
            for method in allow.split(',').filter(|method| *method != "HEAD") {
                served.insert((path.to_owned(), method.to_owned()));
            }
        }
        served
    }

    /// The routes the contract documents.
    fn documented_routes(document: &serde_json::Value) -> BTreeSet<(String, String)> {
        let mut documented = BTreeSet::new();
        for (path, operations) in document["paths"].as_object().unwrap() {
            for method in operations.as_object().unwrap().keys() {
                documented.insert((path.clone(), method.to_uppercase()));
            }
        }
        documented
    }

    #[tokio::test]
    async fn the_internal_listener_serves_exactly_the_routes_its_contract_documents() {
        let dir = tempfile::tempdir().unwrap();
        let env: HashMap<String, String> = [
            ("MONDIAPAY__CLIENT_ID", "merchant".to_owned()),
            ("MONDIAPAY__CLIENT_SECRET", "0123".to_owned()),
            (
                "MONDIAPAY__REDIRECT_URI",
                "https://shop.example/thanks".to_owned(),
            ),
            (
                "INTERNAL__API_KEYS",
                "PeBhhbn1LxYe8GemQC70GU_H3QwKDeBb".to_owned(),
            ),
            ("PUBLIC__LISTEN", "127.0.0.1:0".to_owned()),
            ("INTERNAL__LISTEN", "127.0.0.1:0".to_owned()),
            (
                "STORE__URL",
                format!("sqlite://{}/tokens.db", dir.path().display()),
            ),
        ]
        .into_iter()
        .map(|(key, value)| (format!("TOKEN_PROXY__{key}"), value))
        .collect();
        let settings = Settings::load(None, Some(env), Purpose::Serve).unwrap();
        let app = Application::build(&settings).await.unwrap();
        let router = app.internal.router.clone();

        let served = served_routes(&router);
        let answer = router
            .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let document =
            serde_json::from_slice(&to_bytes(answer.into_body(), 1 << 20).await.unwrap()).unwrap();
        let documented = documented_routes(&document);

        assert!(served.len() >= 8, "too few routes read: {served:?}");
        assert_eq!(
            served, documented,
            "served (left) and documented (right) differ"
        );
        app.engine.store.close().await;
    }
}

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
use crate::exchange::{ExchangeLimits, Exchanger};
use crate::housekeeping::Housekeeping;
use crate::http::internal::{self, auth::ApiKeys};
use crate::http::public;
use crate::http::public::limit::ClientLimiter;
use crate::http::public::notifications::NotificationSecret;
use crate::http::public::pages::{Pages, TemplateError};
use crate::http::state::{AppState, CallbackSettings, Shared};
use crate::keyfile::{self, KeyFileError};
use crate::metrics::Metrics;
use crate::mondiapay::MondiaPayClient;
use crate::serve::{self, BareAnswers, ConnectionLimits, FdLimitError, Listener};
use crate::settings::{Settings, StoreBackend};
use crate::store::{StoreError, TokenStore};

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
}

/// The store and the exchanger: all `exchange` needs, and the core of `serve`.
pub struct Engine {
    pub store: Arc<TokenStore>,
    pub exchanger: Arc<Exchanger>,
    pub metrics: Arc<Metrics>,
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
        let mondiapay = MondiaPayClient::new(&settings.mondiapay, Arc::clone(&metrics))?;
        let limits = ExchangeLimits {
            lease: Duration::from_secs(settings.store.claim_lease_secs),
            max_concurrent: settings.mondiapay.max_concurrent_exchanges,
        };
        let exchanger = Arc::new(Exchanger::new(
            Arc::clone(&store),
            mondiapay,
            Arc::clone(&metrics),
            limits,
        ));
        Ok(Self {
            store,
            exchanger,
            metrics,
        })
    }

    /// Lets exchanges under way finish and be stored (at most `grace`), then closes the store.
    pub async fn shut_down(&self, grace: Duration) {
        if !self.exchanger.drain(grace).await {
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
        let public_cap = serve::fit_connection_caps(
            settings.public.max_connections,
            settings.internal.max_connections,
            settings.mondiapay.max_concurrent_exchanges,
        )?;
        let engine = Engine::build(settings).await?;
        let public = &settings.public;
        let state = AppState(Arc::new(Shared {
            store: Arc::clone(&engine.store),
            exchanger: Arc::clone(&engine.exchanger),
            metrics: Arc::clone(&engine.metrics),
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
        };
        Ok(Self {
            engine,
            events,
            public,
            internal,
            shutdown_grace: Duration::from_secs(settings.server.shutdown_grace_secs),
            housekeeping,
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

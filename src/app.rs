//! Start-up: the store, the exchanger and the two listeners, built from settings; serving until
//! a shutdown future resolves, then draining what is in flight.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiKeys};
use crate::crypto::Keyring;
use crate::exchange::Exchanger;
use crate::keyfile::{self, KeyFileError};
use crate::mondiapay::MondiaPayClient;
use crate::public;
use crate::public::pages::{Pages, TemplateError};
use crate::settings::{PublicSettings, Settings, StoreBackend};
use crate::store::{StoreError, TokenStore};

/// How long exchanges still under way at shutdown get to finish and be stored.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

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
    #[error("{key}: cannot listen on {address}")]
    Bind {
        key: &'static str,
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Arc<TokenStore>,
    pub exchanger: Arc<Exchanger>,
    pub api_keys: ApiKeys,
    pub code_prefix: String,
    pub expiry_margin_secs: i64,
    pub pages: Pages,
    pub callback: CallbackSettings,
}

/// How browser callbacks are read and answered.
pub struct CallbackSettings {
    pub correlation_param: String,
    pub exchange_on_errors: Vec<String>,
    pub success_url: Option<url::Url>,
    pub failure_url: Option<url::Url>,
}

impl CallbackSettings {
    fn new(public: &PublicSettings, exchange_on_errors: &[String]) -> Self {
        Self {
            correlation_param: public.correlation_param.clone(),
            exchange_on_errors: exchange_on_errors.to_vec(),
            success_url: public.success_url.clone(),
            failure_url: public.failure_url.clone(),
        }
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The store and the exchanger: all `exchange` needs, and the core of `serve`.
pub struct Engine {
    pub store: Arc<TokenStore>,
    pub exchanger: Arc<Exchanger>,
}

impl Engine {
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let backend = settings.store.backend().expect("store.url was validated");
        let master_key = match settings.store.master_key() {
            Some(key) => key,
            None => generated_key(&backend)?,
        };
        let store = Arc::new(TokenStore::open(&backend, Keyring::new(&master_key)).await?);
        let mondiapay = MondiaPayClient::new(&settings.mondiapay)?;
        let exchanger = Arc::new(Exchanger::new(
            Arc::clone(&store),
            mondiapay,
            Duration::from_secs(settings.store.claim_lease_secs),
            settings.store.expiry_margin_secs,
        ));
        Ok(Self { store, exchanger })
    }

    /// Lets exchanges under way finish and be stored, then closes the store.
    pub async fn shut_down(&self) {
        if !self.exchanger.drain(SHUTDOWN_GRACE).await {
            tracing::error!(
                grace_secs = SHUTDOWN_GRACE.as_secs(),
                "exchanges still running at the end of the shutdown grace period"
            );
        }
        self.store.close().await;
    }
}

fn generated_key(backend: &StoreBackend) -> Result<[u8; 32], KeyFileError> {
    let StoreBackend::Sqlite { path } = backend;
    let key_path = path.with_file_name(keyfile::FILE_NAME);
    let (key, created) = keyfile::load_or_create(&key_path)?;
    if created {
        tracing::warn!(path = %key_path.display(), "no store.encryption_key configured: generated one; back this file up with the database, without it the tokens cannot be read");
    }
    Ok(key)
}

pub struct Application {
    engine: Engine,
    state: AppState,
    public: TcpListener,
    internal: TcpListener,
    public_timeout: Duration,
    internal_timeout: Duration,
}

impl Application {
    /// Opens the store and binds both listeners (port 0 picks a free port, for tests).
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let pages = Pages::new(settings.public.templates_dir.clone())?;
        let engine = Engine::build(settings).await?;
        let state = AppState(Arc::new(Shared {
            store: Arc::clone(&engine.store),
            exchanger: Arc::clone(&engine.exchanger),
            api_keys: ApiKeys::new(&settings.internal.api_keys),
            code_prefix: settings.mondiapay.code_prefix.clone(),
            expiry_margin_secs: settings.store.expiry_margin_secs as i64,
            pages,
            callback: CallbackSettings::new(
                &settings.public,
                &settings.mondiapay.exchange_on_errors,
            ),
        }));
        let public = bind("public.listen", settings.public.listen).await?;
        let internal = bind("internal.listen", settings.internal.listen).await?;
        Ok(Self {
            engine,
            state,
            public,
            internal,
            public_timeout: Duration::from_secs(settings.public.request_timeout_secs),
            internal_timeout: Duration::from_secs(settings.internal.request_timeout_secs),
        })
    }

    pub fn public_addr(&self) -> SocketAddr {
        self.public
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn internal_addr(&self) -> SocketAddr {
        self.internal
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets requests and exchanges under
    /// way finish, and closes the store.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(public = %self.public_addr(), internal = %self.internal_addr(), "listening");
        let stop = CancellationToken::new();
        let trigger = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, finishing requests under way");
            trigger.cancel();
        });
        let public = axum::serve(
            self.public,
            public::router(self.state.clone(), self.public_timeout)
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop.clone().cancelled_owned());
        let internal = axum::serve(
            self.internal,
            api::router(self.state.clone(), self.internal_timeout)
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop.clone().cancelled_owned());
        let (public, internal) = tokio::join!(public.into_future(), internal.into_future());
        self.engine.shut_down().await;
        tracing::info!("stopped");
        public.and(internal)
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

//! The state the HTTP edge shares: what handlers and layers of both listeners use.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRef;

use super::internal::auth::ApiKeys;
use super::public::limit::ClientLimiter;
use super::public::pages::Pages;
use super::public::secret::NotificationSecret;
use crate::events::Events;
use crate::exchange::{Exchanger, Renewer};
use crate::metrics::Metrics;
use crate::purchases::Purchases;
use crate::settings::PublicSettings;
use crate::store::TokenStore;
use crate::subscriptions::Subscriptions;

/// What handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Shared>);

pub struct Shared {
    pub store: Arc<TokenStore>,
    pub exchanger: Arc<Exchanger>,
    pub metrics: Arc<Metrics>,
    pub purchases: Arc<Purchases>,
    pub limiter: Arc<ClientLimiter>,
    pub api_keys: Arc<ApiKeys>,
    pub code_prefix: String,
    pub pages: Pages,
    pub callback: CallbackSettings,
    pub renewer: Arc<Renewer>,
    pub subscriptions: Arc<Subscriptions>,
    /// MondiaPay's notifications and the event feed.
    pub events: Arc<Events>,
    pub notification_secret: NotificationSecret,
}

/// How browser callbacks are read and answered.
pub struct CallbackSettings {
    pub correlation_param: String,
    pub exchange_on_errors: Vec<String>,
    pub success_url: Option<url::Url>,
    pub failure_url: Option<url::Url>,
}

impl CallbackSettings {
    pub(crate) fn new(public: &PublicSettings, exchange_on_errors: &[String]) -> Self {
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

/// A handler or layer takes the one shared part it uses (`State<Arc<TokenStore>>`), not the
/// whole state.
macro_rules! sub_states {
    ($($field:ident: $part:ty),* $(,)?) => {$(
        impl FromRef<AppState> for Arc<$part> {
            fn from_ref(state: &AppState) -> Self {
                Arc::clone(&state.$field)
            }
        }
    )*};
}

sub_states!(
    api_keys: ApiKeys,
    store: TokenStore,
    exchanger: Exchanger,
    metrics: Metrics,
    purchases: Purchases,
    renewer: Renewer,
    subscriptions: Subscriptions,
    events: Events,
);

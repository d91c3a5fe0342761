//! Subscription Management through the service: the user's subscriptions and their cancel,
//! with the token this service holds for the user. The live token is used; where none is left
//! and the user's uuid is known, it is renewed. A token MondiaPay refuses (`401`) is retired and
//! renewed, and the call made once more: one renewal and one retry, never a loop.

use std::future::Future;
use std::sync::Arc;

use secrecy::SecretString;
use serde_json::Value;

use crate::domain::{NoAnswer, TokenRecord, UpstreamError};
use crate::exchange::{RenewalError, Renewer};
use crate::mondiapay::{ApiAnswer, MondiaPayClient};
use crate::store::{OwnerColumn, StoreError, TokenStore};

/// Whose token a call is made with: the caller names the user by one of these.
#[derive(Debug, Clone)]
pub enum Holder {
    Ref(String),
    Uuid(String),
    TokenId(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("no live token for this ref, uuid or token id, and no uuid to renew one for")]
    NoToken,
    #[error(transparent)]
    Renewal(#[from] RenewalError),
    /// MondiaPay refused the renewed token too.
    #[error("MondiaPay refused the user's token ({})", .0.error)]
    TokenRefused(UpstreamError),
    /// MondiaPay's verdict on the request (another `4xx` naming an error).
    #[error("MondiaPay refused the call ({})", .0.error)]
    Refused(UpstreamError),
    #[error("no usable answer from MondiaPay: {0}")]
    NoAnswer(NoAnswer),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Subscriptions {
    store: Arc<TokenStore>,
    mondiapay: Arc<MondiaPayClient>,
    renewer: Arc<Renewer>,
}

impl Subscriptions {
    pub fn new(
        store: Arc<TokenStore>,
        mondiapay: Arc<MondiaPayClient>,
        renewer: Arc<Renewer>,
    ) -> Self {
        Self {
            store,
            mondiapay,
            renewer,
        }
    }

    /// The user's subscriptions as MondiaPay sent them: its list, or its one object as a list
    /// of one (no body: none).
    pub async fn list(
        &self,
        holder: &Holder,
        subscription_type_id: Option<u64>,
    ) -> Result<Vec<Value>, SubscriptionError> {
        let answer = self
            .with_user_token(holder, |token| async move {
                self.mondiapay
                    .get_subscriptions(&token, subscription_type_id)
                    .await
            })
            .await?;
        match answer {
            Value::Array(subscriptions) => Ok(subscriptions),
            Value::Null => Ok(Vec::new()),
            object @ Value::Object(_) => Ok(vec![object]),
            _ => Err(SubscriptionError::NoAnswer(NoAnswer::Invalid(
                "MondiaPay answered with neither a list nor an object of subscriptions".to_owned(),
            ))),
        }
    }

    /// Cancels the user's subscription `id`, at once or at the end of its paid period; done
    /// once MondiaPay accepted it.
    pub async fn cancel(
        &self,
        holder: &Holder,
        id: &str,
        immediately: bool,
    ) -> Result<(), SubscriptionError> {
        self.with_user_token(holder, |token| async move {
            self.mondiapay
                .cancel_subscription(&token, id, immediately)
                .await
        })
        .await
        .map(drop)
    }

    /// Makes `call` with the holder's token; when MondiaPay's `401` says the token is no good
    /// (`TOKEN_NOT_FOUND`, `TOKEN_CONTEXT_IS_NOT_VALID`, `TOKEN_EXPIRED`), retires it, renews
    /// it once and makes the call once more. Any other `401` (a gateway's, one about the request)
    /// leaves the token alone: it is reported, not renewed.
    async fn with_user_token<Call, Answered>(
        &self,
        holder: &Holder,
        call: Call,
    ) -> Result<Value, SubscriptionError>
    where
        Call: Fn(SecretString) -> Answered,
        Answered: Future<Output = ApiAnswer>,
    {
        let token = self.token_for(holder).await?;
        let refused = match self.call_with(&token, &call).await {
            Err(SubscriptionError::TokenRefused(error)) if names_a_bad_token(&error) => error,
            done => return done,
        };
        tracing::info!(token_id = %token.id, mondiapay_error = %refused.error,
            "MondiaPay refused the user's token: retired");
        self.store.retire_token(&token.id).await?;
        // The same rule as any renewal decides which user the new token is for.
        let Some(renewed) =
            renew_for(&self.store, &self.renewer, OwnerColumn::Id, &token.id).await?
        else {
            // No user to renew for: the refusal stands.
            return Err(SubscriptionError::TokenRefused(refused));
        };
        let answer = self.call_with(&renewed, &call).await;
        if let Err(SubscriptionError::TokenRefused(error)) = &answer
            && names_a_bad_token(error)
        {
            self.store.retire_token(&renewed.id).await?;
        }
        answer
    }

    /// One call with `token`.
    async fn call_with<Call, Answered>(
        &self,
        token: &TokenRecord,
        call: &Call,
    ) -> Result<Value, SubscriptionError>
    where
        Call: Fn(SecretString) -> Answered,
        Answered: Future<Output = ApiAnswer>,
    {
        match call(token.access_token.clone()).await {
            ApiAnswer::Done(value) => Ok(value),
            ApiAnswer::TokenRefused(error) => Err(SubscriptionError::TokenRefused(error)),
            ApiAnswer::Refused(error) => Err(SubscriptionError::Refused(error)),
            ApiAnswer::Unusable(reason) => Err(SubscriptionError::NoAnswer(reason)),
        }
    }

    /// The holder's live token, or a renewed one when the holder's uuid is known.
    async fn token_for(&self, holder: &Holder) -> Result<TokenRecord, SubscriptionError> {
        let (column, value) = match holder {
            Holder::Ref(reference) => (OwnerColumn::Ref, reference),
            Holder::Uuid(uuid) => (OwnerColumn::Uuid, uuid),
            Holder::TokenId(id) => (OwnerColumn::Id, id),
        };
        let live = self.store.live_token_for(column, value).await?;
        if let Some(live) = live {
            return Ok(live);
        }
        renew_for(&self.store, &self.renewer, column, value)
            .await?
            .ok_or(SubscriptionError::NoToken)
    }
}

/// A renewed token for the user behind `column = value` (a `ref`, a `uuid` or a token id), or
/// `None` when no uuid may be renewed for. The token is stored under the same `ref` and `uuid`
/// as the user's last one.
///
/// Which user that is: a `uuid` the internal caller names is taken as given (the API key is the
/// boundary). For a `ref` or a token id, the uuid MondiaPay confirmed for that `ref` (a
/// notification about its purchase); a token's own uuid is only what the redirect's query said,
/// anyone's to forge, and is used only while `purchases.enforce` is off.
pub async fn renew_for(
    store: &TokenStore,
    renewer: &Arc<Renewer>,
    column: OwnerColumn,
    value: &str,
) -> Result<Option<TokenRecord>, SubscriptionError> {
    let owner = store.last_owner(column, value).await?;
    let (uuid, reference) = match column {
        // A uuid never seen is still the user's: MondiaPay knows it or refuses it.
        OwnerColumn::Uuid => (
            Some(value.to_owned()),
            owner.and_then(|owner| owner.reference),
        ),
        OwnerColumn::Ref | OwnerColumn::Id => {
            let reference = match column {
                OwnerColumn::Ref => Some(value.to_owned()),
                _ => owner.as_ref().and_then(|owner| owner.reference.clone()),
            };
            let confirmed = match &reference {
                Some(reference) => store.confirmed_uuid(reference).await?,
                None => None,
            };
            let claimed = owner
                .and_then(|owner| owner.uuid)
                .filter(|_| renewer.trusts_claimed_uuids());
            (confirmed.or(claimed), reference)
        }
    };
    let Some(uuid) = uuid else { return Ok(None) };
    Ok(Some(renewer.renew(uuid, reference).await?))
}

/// Whether MondiaPay's `401` names the token itself as no good (MONDIAPAY.md's error codes for
/// a token it does not know, or whose context or life has ended).
fn names_a_bad_token(error: &UpstreamError) -> bool {
    [
        "TOKEN_NOT_FOUND",
        "TOKEN_CONTEXT_IS_NOT_VALID",
        "TOKEN_EXPIRED",
    ]
    .iter()
    .any(|code| error.error.eq_ignore_ascii_case(code))
}

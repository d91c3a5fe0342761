//! A browser callback's code: exchanged at most once, and what came of it recorded, so that a
//! replayed callback gets its first outcome back.

use std::sync::Arc;

use super::{CallbackEnd, ExchangeError, Exchanger};
use crate::crypto::CodeHash;
use crate::domain::{CallbackOutcome, Code, NewCallback, OutcomeKind, Owner};
use crate::store::ReplayKey;

impl Exchanger {
    /// Exchanges a browser callback's code, unless a callback with it already has a final
    /// outcome, and records what happened. A replay (reload, double redirect, prefetch) gets the
    /// first outcome back. `new` is the callback's outcome should the exchange succeed; its `ref`
    /// and `uuid` are the caller's; `hash` is the code's keyed hash (`TokenStore::keys`). An
    /// error is the store's: nothing could be recorded.
    pub async fn exchange_callback(
        self: &Arc<Self>,
        code: Code,
        hash: CodeHash,
        mut new: NewCallback,
    ) -> Result<CallbackOutcome, ExchangeError> {
        let key = ReplayKey::exchange(&hash);
        if let Some(previous) = self.store.callback_for(&key).await?
            && previous.outcome.kind != OutcomeKind::Unavailable
        {
            tracing::info!(
                code = hash.short(),
                "callback replayed: same answer as before"
            );
            return Ok(previous);
        }
        let owner = Owner {
            reference: new.reference.clone(),
            uuid: new.uuid.clone(),
        };
        match self.exchange_hashed(code, hash, owner).await {
            // The token belongs to whoever first claimed the code (an earlier callback or an API
            // call): the outcome and the redirect name that owner, not this request's claim.
            Ok(record) => {
                new.token_id = Some(record.id);
                new.reference = record.reference;
                new.uuid = record.uuid;
            }
            Err(error) => match error.meaning().callback {
                // Exchanged before (through the API) and since deleted or expired: the purchase
                // stands.
                CallbackEnd::Stands => {}
                CallbackEnd::CodeRejected(mondiapay_error) => {
                    new.kind = OutcomeKind::CodeRejected;
                    new.error = Some(mondiapay_error.to_owned());
                }
                CallbackEnd::Unavailable(cause) => {
                    new.kind = OutcomeKind::Unavailable;
                    new.cause = Some(cause);
                }
                CallbackEnd::NotRecorded => return Err(error),
            },
        }
        Ok(self.store.record_callback(Some(&key), &new).await?)
    }
}

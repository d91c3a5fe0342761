//! A browser callback's code: exchanged at most once, and what came of it recorded, so that a
//! replayed callback gets its first outcome back.

use std::sync::Arc;

use super::{CallbackEnd, Ended, ExchangeError, Exchanger, Fresh};
use crate::crypto::CodeHash;
use crate::domain::{CallbackOutcome, Code, NewCallback, OutcomeKind, Owner, TokenRecord};
use crate::store::ReplayKey;

impl Exchanger {
    /// Exchanges a browser callback's code, unless a callback with it already has a final
    /// outcome, and records what happened. A replay (reload, double redirect, prefetch) gets the
    /// first outcome back. `new` is the callback's outcome should the exchange succeed; its `ref`
    /// and `uuid` are the caller's; `hash` is the code's keyed hash (`TokenStore::keys`). An
    /// error is the store's: nothing could be recorded.
    ///
    /// A code MondiaPay answers for is claimed in one write and settled in one: its verdict and
    /// this outcome together. Only an exchange that ends without a verdict of its own (the code
    /// seen before, another process holding it, no room for another exchange) records the
    /// outcome in a write of its own.
    pub async fn exchange_callback(
        self: &Arc<Self>,
        code: Code,
        hash: CodeHash,
        new: NewCallback,
    ) -> Result<CallbackOutcome, ExchangeError> {
        let owner = Owner {
            reference: new.reference.clone(),
            uuid: new.uuid.clone(),
        };
        let key = ReplayKey::exchange(&hash);
        let result = match self
            .exchange_hashed(code, hash, owner, Some(new.clone()))
            .await
        {
            Ended::Replayed(recorded) | Ended::Recorded(_, recorded) => return Ok(recorded),
            Ended::Exchanged(result) => result,
        };
        match outcome_of(&new, &result) {
            Some(outcome) => Ok(self.store.record_callback(Some(&key), &outcome).await?),
            None => Err(result.err().unwrap_or(ExchangeError::Aborted)),
        }
    }
}

/// What a callback whose exchange ended in `result` records, from `new`, its outcome should the
/// exchange succeed; `None` when nothing can be recorded (the store failed).
pub(super) fn outcome_of(
    new: &NewCallback,
    result: &Result<(TokenRecord, Fresh), ExchangeError>,
) -> Option<NewCallback> {
    let mut new = new.clone();
    match result {
        // The token belongs to whoever first claimed the code (an earlier callback or an API
        // call): the outcome and the redirect name that owner, not this request's claim.
        Ok((record, _)) => {
            new.token_id = Some(record.id.clone());
            new.reference = record.reference.clone();
            new.uuid = record.uuid.clone();
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
            CallbackEnd::NotRecorded => return None,
        },
    }
    Some(new)
}

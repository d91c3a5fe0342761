//! A browser callback's code: exchanged at most once, and what came of it recorded, so that a
//! replayed callback gets its first outcome back.

use std::sync::Arc;

use super::{ExchangeError, Exchanger};
use crate::crypto::CodeHash;
use crate::domain::{CallbackOutcome, Code, NewCallback, NoAnswer, OutcomeKind, Owner};
use crate::store::{ReplayKey, StoreError};

/// The HTTP status of the result page of a rejected code (400 Bad Request).
const CODE_REJECTED_PAGE: u16 = 400;
/// The result page's status when MondiaPay did not answer in time (504 Gateway Timeout).
const TIMED_OUT_PAGE: u16 = 504;
/// The result page's status for any other missing answer (502 Bad Gateway).
const NO_ANSWER_PAGE: u16 = 502;

impl Exchanger {
    /// Exchanges a browser callback's code, unless a callback with it already has a final
    /// outcome, and records what happened. A replay (reload, double redirect, prefetch) gets the
    /// first outcome back. `new` is the callback's outcome should the exchange succeed; its `ref`
    /// and `uuid` are the caller's.
    pub async fn exchange_callback(
        self: &Arc<Self>,
        code: Code,
        mut new: NewCallback,
    ) -> Result<CallbackOutcome, StoreError> {
        let hash: CodeHash = self.store.keys().hash_code(&code);
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
            // Exchanged before (through the API) and since deleted or expired: the purchase
            // stands.
            Err(ExchangeError::TokenGone) => {}
            Err(ExchangeError::CodeRejected(rejection)) => {
                new.kind = OutcomeKind::CodeRejected;
                new.page_status = CODE_REJECTED_PAGE;
                new.error = Some(rejection.error);
            }
            Err(ExchangeError::Store(error)) => return Err(error),
            Err(other) => {
                new.kind = OutcomeKind::Unavailable;
                let timed_out = matches!(other, ExchangeError::NoAnswer(NoAnswer::TimedOut));
                new.page_status = if timed_out {
                    TIMED_OUT_PAGE
                } else {
                    NO_ANSWER_PAGE
                };
            }
        }
        self.store.record_callback(Some(&key), &new).await
    }
}

//! Exactly-once exchange of a code: one turn per code in this process, a claim in the store
//! before MondiaPay is called, and a stored outcome that every later request for the code reads.

mod callback;
mod error;
mod renewal;
mod turns;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use tokio::sync::Semaphore;

use crate::crypto::CodeHash;
use crate::domain::{
    CallbackOutcome, Code, ExchangeState, NewCallback, OutcomeKind, Owner, TokenRecord,
    UpstreamError,
};
use crate::metrics::{Counted, Metrics};
use crate::mondiapay::{Answer, MondiaPayClient};
use crate::store::{Claim, StoreError, TokenStore, Verdict};
pub use error::{CallbackEnd, ExchangeError, ExchangeOutcome, Meaning};
pub use renewal::{RenewalError, RenewalOutcome, Renewer};
use turns::Turns;

/// Whether MondiaPay issued the token for this request (rather than an earlier one).
type Fresh = bool;

/// The `outcome` label of `token_proxy_exchanges_total`.
fn outcome_label(result: &Result<(TokenRecord, Fresh), ExchangeError>) -> &'static str {
    match result {
        Ok((_, true)) => ExchangeOutcome::Issued,
        Ok((_, false)) => ExchangeOutcome::Replayed,
        Err(error) => error.meaning().label,
    }
    .as_str()
}

/// How an exchange ended, for a caller that may be a browser callback.
enum Ended {
    /// The exchange's result; a callback's outcome, if any, is still to be recorded.
    Exchanged(Result<(TokenRecord, Fresh), ExchangeError>),
    /// MondiaPay's verdict and the callback's outcome, recorded in one write.
    Recorded(Result<(TokenRecord, Fresh), ExchangeError>, CallbackOutcome),
    /// An earlier callback with the code has a final outcome: it stands.
    Replayed(CallbackOutcome),
}

/// Attempts at storing MondiaPay's verdict (100 ms, doubling, between them: about 3 s in all).
const STORE_ATTEMPTS: u32 = 6;

/// How often a request waiting on another process's claim looks again.
const CLAIM_POLL: Duration = Duration::from_millis(100);

/// The bounds an exchanger works within.
pub struct ExchangeLimits {
    /// How long a claim on a code holds.
    pub lease: Duration,
    /// Exchanges at once; more are refused at once (the code is not used).
    pub max_concurrent: usize,
}

pub struct Exchanger {
    store: Arc<TokenStore>,
    mondiapay: Arc<MondiaPayClient>,
    metrics: Arc<Metrics>,
    turns: Turns,
    tasks: TaskTracker,
    slots: Arc<Semaphore>,
    lease: Duration,
    credentials_refused: AtomicBool,
}

impl Exchanger {
    pub fn new(
        store: Arc<TokenStore>,
        mondiapay: Arc<MondiaPayClient>,
        metrics: Arc<Metrics>,
        limits: ExchangeLimits,
    ) -> Self {
        metrics.start_at_zero(
            Counted::Exchanges,
            ExchangeOutcome::ALL.iter().map(|outcome| outcome.as_str()),
        );
        Self {
            store,
            mondiapay,
            metrics,
            turns: Turns::default(),
            tasks: TaskTracker::new(),
            slots: Arc::new(Semaphore::new(limits.max_concurrent)),
            lease: limits.lease,
            credentials_refused: AtomicBool::new(false),
        }
    }

    /// Exchanges `code` for a token, or returns the outcome of its earlier exchange.
    ///
    /// The work runs as its own task: a caller that hangs up or times out does not cancel an
    /// exchange whose answer MondiaPay may already have sent, so the token is stored regardless
    /// and the next request for the code finds it.
    pub async fn exchange(
        self: &Arc<Self>,
        code: Code,
        owner: Owner,
    ) -> Result<TokenRecord, ExchangeError> {
        let hash = self.store.keys().hash_code(&code);
        match self.exchange_hashed(code, hash, owner, None).await {
            Ended::Exchanged(result) | Ended::Recorded(result, _) => {
                result.map(|(record, _)| record)
            }
            // Only a callback's exchange finds a callback's outcome standing.
            Ended::Replayed(_) => Err(ExchangeError::Aborted),
        }
    }

    /// [`Exchanger::exchange`], for a caller that has the code's keyed hash already, and, for a
    /// browser callback, the outcome it records should the exchange succeed (`callback`).
    async fn exchange_hashed(
        self: &Arc<Self>,
        code: Code,
        hash: CodeHash,
        owner: Owner,
        callback: Option<NewCallback>,
    ) -> Ended {
        let this = Arc::clone(self);
        let span = tracing::info_span!("exchange", code = hash.short());
        let ended = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => self
                .tasks
                .spawn(
                    async move {
                        let _slot = slot;
                        this.exchange_once(&code, &hash, &owner, callback.as_ref())
                            .await
                    }
                    .instrument(span),
                )
                .await
                .unwrap_or(Ended::Exchanged(Err(ExchangeError::Aborted))),
            Err(_) => {
                tracing::warn!("exchange refused: mondiapay.max_concurrent_exchanges reached");
                Ended::Exchanged(Err(ExchangeError::Busy))
            }
        };
        if let Ended::Exchanged(result) | Ended::Recorded(result, _) = &ended {
            self.metrics.exchange(outcome_label(result));
        }
        ended
    }

    /// Whether MondiaPay refused the merchant's credentials, and has issued no token since.
    pub fn credentials_refused(&self) -> bool {
        self.credentials_refused.load(Ordering::Relaxed)
    }

    /// Stops taking exchanges and waits, at most `grace`, for those under way to be stored.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }

    async fn exchange_once(
        &self,
        code: &Code,
        hash: &CodeHash,
        owner: &Owner,
        callback: Option<&NewCallback>,
    ) -> Ended {
        let _turn = self.turns.take(hash).await;
        let give_up = Instant::now() + self.lease + CLAIM_POLL;
        // The lease runs on the database's clock, the same for every replica.
        let lease_secs = i64::try_from(self.lease.as_secs()).unwrap_or(i64::MAX);
        loop {
            let row = match self.store.claim(hash, owner, lease_secs).await {
                // The token goes to the code's first claimer, who may not be this caller.
                Ok(Claim::Claimed { attempt, owner }) => {
                    return self
                        .call_mondiapay(code, hash, &owner, attempt, callback)
                        .await;
                }
                Ok(Claim::Taken(row)) => row,
                Err(error) => return Ended::Exchanged(Err(error.into())),
            };
            // A callback with the code had a final outcome: a replay (reload, double redirect,
            // prefetch) gets it back, read with the claim.
            if let (Some(_), Some(previous)) = (callback, row.callback)
                && previous.outcome.kind != OutcomeKind::Unavailable
            {
                tracing::info!("callback replayed: same answer as before");
                return Ended::Replayed(*previous);
            }
            match row.state {
                ExchangeState::Succeeded => {
                    tracing::info!("code seen before: returning its stored token");
                    let stored = self.stored_token(row.token_id.as_deref()).await;
                    let result = stored.and_then(|record| self.live(record));
                    return Ended::Exchanged(result.map(|record| (record, false)));
                }
                ExchangeState::Rejected => {
                    tracing::info!("code seen before: MondiaPay had rejected it");
                    return Ended::Exchanged(Err(ExchangeError::CodeRejected(
                        row.rejection.unwrap_or_else(UpstreamError::invalid_grant),
                    )));
                }
                // Another process holds the code, or it was released between our claim and read.
                ExchangeState::Pending | ExchangeState::Failed => {
                    if Instant::now() >= give_up {
                        return Ended::Exchanged(Err(ExchangeError::StillPending));
                    }
                    tokio::time::sleep(CLAIM_POLL).await;
                }
            }
        }
    }

    /// Sends the claimed code to MondiaPay and records its verdict, with the callback's outcome
    /// when there is a callback, in one write.
    async fn call_mondiapay(
        &self,
        code: &Code,
        hash: &CodeHash,
        owner: &Owner,
        attempt: i64,
        callback: Option<&NewCallback>,
    ) -> Ended {
        let started = std::time::Instant::now();
        let answer = self.mondiapay.exchange_code(code).await;
        self.metrics.mondiapay_call(started.elapsed());
        let (verdict, result) = match answer {
            Answer::Issued(token) => {
                self.credentials_refused.store(false, Ordering::Relaxed);
                let record = self.store.issued_record(&token, owner);
                (Verdict::Issued(record.clone()), Ok((record, true)))
            }
            // A verdict on a code says nothing about the credentials: only an issued token
            // shows they work again.
            Answer::CodeRejected(error) => {
                tracing::info!(mondiapay_error = %error.error, http_status = error.http_status, "MondiaPay rejected the code");
                (
                    Verdict::Rejected(error.clone()),
                    Err(ExchangeError::CodeRejected(error)),
                )
            }
            Answer::CredentialsRejected(error) => {
                self.credentials_refused.store(true, Ordering::Relaxed);
                tracing::error!(mondiapay_error = %error.error, http_status = error.http_status,
                    "MondiaPay refused the merchant's client credentials: check mondiapay.client_id and mondiapay.client_secret");
                (
                    Verdict::Released,
                    Err(ExchangeError::CredentialsRejected(error)),
                )
            }
            Answer::Unusable(reason) => {
                tracing::warn!(%reason, "no usable answer from MondiaPay; the code may be tried again");
                (Verdict::Released, Err(ExchangeError::NoAnswer(reason)))
            }
        };
        // Expired tokens (within the safety margin) are stored but never handed out.
        let result = result.and_then(|(record, fresh)| Ok((self.live(record)?, fresh)));
        let outcome = callback.and_then(|new| callback::outcome_of(new, &result));
        let settle = || self.store.settle(hash, attempt, &verdict, outcome.as_ref());
        let recorded = match &verdict {
            Verdict::Issued(_) => record_verdict("the issued token", settle).await,
            Verdict::Rejected(_) => record_verdict("the rejection", settle).await,
            // Without a verdict nothing was spent: the code may simply be tried again.
            Verdict::Released => settle().await,
        };
        match recorded {
            Err(error) => Ended::Exchanged(Err(error.into())),
            Ok(recorded) => {
                if let Verdict::Issued(record) = &verdict {
                    tracing::info!(token_id = %record.id, "code exchanged and token stored");
                }
                match recorded {
                    Some(recorded) => Ended::Recorded(result, recorded),
                    None => Ended::Exchanged(result),
                }
            }
        }
    }

    async fn stored_token(&self, id: Option<&str>) -> Result<TokenRecord, ExchangeError> {
        let Some(id) = id else {
            return Err(ExchangeError::TokenGone);
        };
        self.store
            .live_token(id)
            .await?
            .map(Arc::unwrap_or_clone)
            .ok_or(ExchangeError::TokenGone)
    }

    /// Expired tokens (within the safety margin) are never handed out, even fresh from MondiaPay.
    fn live(&self, record: TokenRecord) -> Result<TokenRecord, ExchangeError> {
        if self.store.is_live(&record) {
            Ok(record)
        } else {
            Err(ExchangeError::TokenGone)
        }
    }
}

/// Once MondiaPay has given a verdict, it must be recorded — a token above all, but a code's
/// rejection too, or the code would be sent again after its lease — so a passing write failure
/// (a busy or briefly full disk) is tried again for a few seconds.
async fn record_verdict<T, Write, Written>(
    what: &'static str,
    write: Write,
) -> Result<T, StoreError>
where
    Write: Fn() -> Written,
    Written: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut pause = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match write().await {
            Ok(written) => return Ok(written),
            Err(error) if attempt < STORE_ATTEMPTS => {
                tracing::warn!(attempt, %error, what, "MondiaPay's verdict could not be stored yet; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            Err(error) => {
                tracing::error!(%error, what, "MondiaPay's verdict could not be stored: what it spent (a code, a renewal) is lost");
                return Err(error);
            }
        }
    }
}

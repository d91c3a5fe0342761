//! Renewal of a user's token with `grant_type=user_credentials`, exactly once per need: one
//! turn per user in this process, a claim per uuid in the store before MondiaPay is asked, and
//! a stored outcome that requests which waited on the claim read instead of asking again.
//! Never while a live token exists: MondiaPay asks that a token be reused for its whole life,
//! so the claimer looks again once it holds the claim.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::turns::Turns;
use super::{CLAIM_POLL, record_verdict};
use crate::domain::{NoAnswer, Owner, RenewalState, TokenRecord, UpstreamError};
use crate::metrics::{Counted, Metrics, outcome_labels};
use crate::mondiapay::{Answer, Grant, MondiaPayClient};
use crate::store::{RenewalClaim, RenewalRow, StoreError, TokenStore};

#[derive(Debug, thiserror::Error)]
pub enum RenewalError {
    #[error("MondiaPay refused to renew the user's token ({})", .0.error)]
    Refused(UpstreamError),
    #[error("MondiaPay refused the merchant's client credentials ({})", .0.error)]
    CredentialsRejected(UpstreamError),
    #[error("no usable answer from MondiaPay: {0}")]
    NoAnswer(NoAnswer),
    #[error("another renewal of this user's token is still under way")]
    StillPending,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the renewal stopped unexpectedly")]
    Aborted,
}

outcome_labels! {
    /// How a renewal ended: the `outcome` label of `token_proxy_renewals_total`.
    pub enum RenewalOutcome {
        /// A token, from MondiaPay just now.
        Renewed = "renewed",
        /// A live token found, or another request's renewal.
        Reused = "reused",
        Refused = "refused",
        CredentialsRejected = "credentials_rejected",
        TimedOut = "timed_out",
        Unreachable = "unreachable",
        InvalidAnswer = "invalid_answer",
        StillPending = "still_pending",
        StoreUnavailable = "store_unavailable",
        Aborted = "aborted",
    }
}

/// How a renewal ended, for `token_proxy_renewals_total`.
fn outcome_label(result: &Result<(TokenRecord, Renewed), RenewalError>) -> &'static str {
    use RenewalOutcome as Label;
    match result {
        Ok((_, true)) => Label::Renewed,
        Ok((_, false)) => Label::Reused,
        Err(RenewalError::Refused(_)) => Label::Refused,
        Err(RenewalError::CredentialsRejected(_)) => Label::CredentialsRejected,
        Err(RenewalError::NoAnswer(NoAnswer::TimedOut)) => Label::TimedOut,
        Err(RenewalError::NoAnswer(NoAnswer::Unreachable)) => Label::Unreachable,
        Err(RenewalError::NoAnswer(NoAnswer::Invalid(_))) => Label::InvalidAnswer,
        Err(RenewalError::StillPending) => Label::StillPending,
        Err(RenewalError::Store(_)) => Label::StoreUnavailable,
        Err(RenewalError::Aborted) => Label::Aborted,
    }
    .as_str()
}

/// Whether MondiaPay issued the token for this request (rather than it being found live).
type Renewed = bool;

pub struct Renewer {
    store: Arc<TokenStore>,
    mondiapay: Arc<MondiaPayClient>,
    metrics: Arc<Metrics>,
    turns: Turns<String>,
    tasks: TaskTracker,
    lease: Duration,
    trusts_claimed_uuids: bool,
}

impl Renewer {
    /// `lease`: how long a claim on a user's renewal holds (`store.claim_lease_secs`).
    /// `trusts_claimed_uuids`: whether a uuid a redirect's query gave may be renewed for
    /// (`purchases.enforce = false`), or only one MondiaPay confirmed.
    pub fn new(
        store: Arc<TokenStore>,
        mondiapay: Arc<MondiaPayClient>,
        metrics: Arc<Metrics>,
        lease: Duration,
        trusts_claimed_uuids: bool,
    ) -> Self {
        metrics.start_at_zero(
            Counted::Renewals,
            RenewalOutcome::ALL.iter().map(|outcome| outcome.as_str()),
        );
        // Users queue per uuid, as codes do in the exchanger.
        Self {
            turns: Turns::default(),
            tasks: TaskTracker::new(),
            lease,
            trusts_claimed_uuids,
            store,
            mondiapay,
            metrics,
        }
    }

    /// Whether a token's uuid, as a redirect's query gave it, may be renewed for.
    pub fn trusts_claimed_uuids(&self) -> bool {
        self.trusts_claimed_uuids
    }

    /// The live token of the user `uuid`, or else a new one from MondiaPay, stored under `uuid`
    /// and `reference` and returned.
    ///
    /// The work runs as its own task: a caller that hangs up does not cancel a renewal whose
    /// token MondiaPay may already have issued, so it is stored regardless.
    pub async fn renew(
        self: &Arc<Self>,
        uuid: String,
        reference: Option<String>,
    ) -> Result<TokenRecord, RenewalError> {
        let this = Arc::clone(self);
        let span = tracing::info_span!("renewal");
        let owner = Owner {
            reference,
            uuid: Some(uuid),
        };
        let result = self
            .tasks
            .spawn(async move { this.renew_once(&owner).await }.instrument(span))
            .await
            .unwrap_or(Err(RenewalError::Aborted));
        self.metrics.renewal(outcome_label(&result));
        result.map(|(record, _)| record)
    }

    /// Stops taking renewals and waits, at most `grace`, for those under way to be stored.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }

    async fn renew_once(&self, owner: &Owner) -> Result<(TokenRecord, Renewed), RenewalError> {
        let uuid = owner.uuid.clone().unwrap_or_default();
        // The attempt this request knows of, read before it queues: one that finishes while it
        // waits is its answer too.
        let mut seen = self
            .store
            .renewal(&uuid)
            .await?
            .map_or(0, |row| row.attempt);
        let _turn = self.turns.take(&uuid).await;
        let give_up = Instant::now() + self.lease + CLAIM_POLL;
        let lease_secs = i64::try_from(self.lease.as_secs()).unwrap_or(i64::MAX);
        loop {
            let row = match self.store.claim_renewal(&uuid, seen, lease_secs).await? {
                RenewalClaim::Claimed { attempt } => {
                    return self.renew_claimed(owner, attempt).await;
                }
                RenewalClaim::Taken(row) => row,
            };
            match row {
                // Purged meanwhile: as if never renewed.
                None => seen = 0,
                Some(row) if row.state != RenewalState::Pending && row.attempt > seen => {
                    let attempt = row.attempt;
                    match self.outcome(row).await? {
                        Some(found) => return found.map(|record| (record, false)),
                        // Its token is gone already (retired, expired): renew again.
                        None => seen = attempt,
                    }
                }
                // Another request or replica renews, or the row changed between claim and read.
                Some(_) => {
                    if Instant::now() >= give_up {
                        return Err(RenewalError::StillPending);
                    }
                    tokio::time::sleep(CLAIM_POLL).await;
                }
            }
        }
    }

    /// The stored outcome of a finished renewal another request made: its token, MondiaPay's
    /// verdict, or `None` when its token is no longer live.
    async fn outcome(
        &self,
        row: RenewalRow,
    ) -> Result<Option<Result<TokenRecord, RenewalError>>, StoreError> {
        Ok(match row.state {
            RenewalState::Succeeded => match row.token_id {
                Some(id) => self
                    .store
                    .live_token(&id)
                    .await?
                    .map(|record| Ok(Arc::unwrap_or_clone(record))),
                None => None,
            },
            RenewalState::Refused => Some(Err(RenewalError::Refused(
                row.error.unwrap_or_else(UpstreamError::invalid_grant),
            ))),
            RenewalState::Failed => Some(Err(match row.error {
                Some(error) => RenewalError::CredentialsRejected(error),
                None => RenewalError::NoAnswer(NoAnswer::Invalid(
                    "the renewal this request waited for got no usable answer from MondiaPay"
                        .to_owned(),
                )),
            })),
            RenewalState::Pending => None,
        })
    }

    async fn renew_claimed(
        &self,
        owner: &Owner,
        attempt: i64,
    ) -> Result<(TokenRecord, Renewed), RenewalError> {
        let uuid = owner.uuid.as_deref().unwrap_or_default();
        // Checked again under the claim: a token stored since the caller looked is reused.
        if let Some(live) = self.live(owner).await? {
            tracing::info!(token_id = %live.id, "a live token exists: not renewed");
            self.store
                .finish_renewal(uuid, attempt, RenewalState::Succeeded, Some(&live.id), None)
                .await?;
            return Ok((live, false));
        }
        let started = std::time::Instant::now();
        let answer = self
            .mondiapay
            .token_call(Grant::UserCredentials { uuid })
            .await;
        self.metrics.mondiapay_call(started.elapsed());
        let (state, error, result) = match answer {
            Answer::Issued(token) => {
                let record = record_verdict("the renewed token", || {
                    self.store.store_renewed_token(owner, &token)
                })
                .await?;
                tracing::info!(token_id = %record.id, "user token renewed and stored");
                // The token is durable: requests waiting on the claim find it once the claim
                // says so, or, should that fail, once its lease has run out.
                if let Err(error) = self
                    .store
                    .finish_renewal(
                        uuid,
                        attempt,
                        RenewalState::Succeeded,
                        Some(&record.id),
                        None,
                    )
                    .await
                {
                    tracing::warn!(%error, "the renewal's claim could not be marked succeeded; it ends with its lease");
                }
                return Ok((record, true));
            }
            // A 2xx without a token: nothing was spent, and nothing to keep.
            Answer::CodeRejected(error) if error.is_no_token() => (
                RenewalState::Failed,
                None,
                RenewalError::NoAnswer(NoAnswer::Invalid(
                    "MondiaPay answered the renewal without a usable token".to_owned(),
                )),
            ),
            Answer::CodeRejected(error) => {
                tracing::info!(mondiapay_error = %error.error, http_status = error.http_status, "MondiaPay refused to renew the user's token");
                (
                    RenewalState::Refused,
                    Some(error.clone()),
                    RenewalError::Refused(error),
                )
            }
            Answer::CredentialsRejected(error) => {
                tracing::error!(mondiapay_error = %error.error, http_status = error.http_status,
                    "MondiaPay refused the merchant's client credentials: check mondiapay.client_id and mondiapay.client_secret");
                (
                    RenewalState::Failed,
                    Some(error.clone()),
                    RenewalError::CredentialsRejected(error),
                )
            }
            Answer::Unusable(reason) => {
                tracing::warn!(%reason, "no usable answer from MondiaPay to a renewal");
                (RenewalState::Failed, None, RenewalError::NoAnswer(reason))
            }
        };
        record_verdict("the renewal's outcome", || {
            self.store
                .finish_renewal(uuid, attempt, state, None, error.as_ref())
        })
        .await?;
        Err(result)
    }

    /// The user's live token. By uuid only: MondiaPay's rule (one token reused for its life)
    /// is per user, and a `ref`'s token may belong to another user.
    async fn live(&self, owner: &Owner) -> Result<Option<TokenRecord>, StoreError> {
        match &owner.uuid {
            Some(uuid) => self.store.first_for_uuid(uuid).await,
            None => Ok(None),
        }
    }
}

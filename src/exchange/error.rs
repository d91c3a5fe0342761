//! What can go wrong in an exchange, and what each error means, said once: the metric's label,
//! what a browser callback records, whether asking again in a moment may help. The HTTP edge
//! turns a meaning into statuses, once per medium (the API's problems, the browser's pages).

use crate::domain::{NoAnswer, UnavailableCause, UpstreamError};
use crate::metrics::outcome_labels;
use crate::store::StoreError;

outcome_labels! {
    /// How an exchange ended: the `outcome` label of `token_proxy_exchanges_total`.
    pub enum ExchangeOutcome {
        /// A token, from MondiaPay just now.
        Issued = "issued",
        /// The token of an earlier exchange of the same code.
        Replayed = "replayed",
        CodeRejected = "code_rejected",
        CredentialsRejected = "credentials_rejected",
        TimedOut = "timed_out",
        Unreachable = "unreachable",
        InvalidAnswer = "invalid_answer",
        TokenGone = "token_gone",
        StillPending = "still_pending",
        Busy = "busy",
        StoreUnavailable = "store_unavailable",
        StoreFault = "store_fault",
        Aborted = "aborted",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("MondiaPay rejected the code ({})", .0.error)]
    CodeRejected(UpstreamError),
    #[error("MondiaPay refused the merchant's client credentials ({})", .0.error)]
    CredentialsRejected(UpstreamError),
    #[error("no usable answer from MondiaPay: {0}")]
    NoAnswer(NoAnswer),
    #[error("the code was exchanged before and its token has expired or was deleted")]
    TokenGone,
    #[error("another exchange of this code is still under way")]
    StillPending,
    #[error("too many exchanges are under way; the code was not used")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the exchange stopped unexpectedly")]
    Aborted,
}

/// What an exchange error means, for everyone who reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meaning<'a> {
    /// The `outcome` label of `token_proxy_exchanges_total`.
    pub label: ExchangeOutcome,
    /// What a browser callback whose exchange ended so records.
    pub callback: CallbackEnd<'a>,
    /// This service was only briefly unable (too busy, or its store out of reach): the same
    /// request may well succeed in a moment.
    pub retry_soon: bool,
    /// A fault of this service's own (a bug, a stored value this version cannot read, an
    /// exchange task that stopped): asking again will not help, and it is logged as an error to
    /// look into. (A sealed token that cannot be opened is reported as the store's trouble:
    /// the store's keys, not its logic.)
    pub fault: bool,
}

/// What a browser callback records when its exchange ends in an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackEnd<'a> {
    /// The purchase stands: its code was exchanged before, and the token has gone since.
    Stands,
    /// MondiaPay rejected the code, for good, with this error code.
    CodeRejected(&'a str),
    /// No verdict on the code: a later callback with it may try again.
    Unavailable(UnavailableCause),
    /// Nothing can be recorded: the store failed.
    NotRecorded,
}

impl ExchangeError {
    /// The one place an error's meaning is decided.
    pub fn meaning(&self) -> Meaning<'_> {
        use ExchangeOutcome as Label;
        let meaning = |label, callback| Meaning {
            label,
            callback,
            retry_soon: false,
            fault: false,
        };
        let no_answer = CallbackEnd::Unavailable(UnavailableCause::NoAnswer);
        match self {
            Self::CodeRejected(rejection) => meaning(
                Label::CodeRejected,
                CallbackEnd::CodeRejected(&rejection.error),
            ),
            Self::CredentialsRejected(_) => meaning(Label::CredentialsRejected, no_answer),
            Self::NoAnswer(NoAnswer::TimedOut) => meaning(
                Label::TimedOut,
                CallbackEnd::Unavailable(UnavailableCause::TimedOut),
            ),
            Self::NoAnswer(NoAnswer::Unreachable) => meaning(Label::Unreachable, no_answer),
            Self::NoAnswer(NoAnswer::Invalid(_)) => meaning(Label::InvalidAnswer, no_answer),
            Self::TokenGone => meaning(Label::TokenGone, CallbackEnd::Stands),
            Self::StillPending => Meaning {
                retry_soon: true,
                ..meaning(Label::StillPending, no_answer)
            },
            Self::Busy => Meaning {
                retry_soon: true,
                ..meaning(Label::Busy, no_answer)
            },
            Self::Store(error) if error.is_fault() => Meaning {
                fault: true,
                ..meaning(Label::StoreFault, CallbackEnd::NotRecorded)
            },
            Self::Store(_) => Meaning {
                retry_soon: true,
                ..meaning(Label::StoreUnavailable, CallbackEnd::NotRecorded)
            },
            Self::Aborted => Meaning {
                fault: true,
                ..meaning(Label::Aborted, no_answer)
            },
        }
    }
}

//! Where a code's exchange stands, and what a browser callback ended in: the outcomes the store
//! keeps and the pages and the API report.

/// A stored state or outcome this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {text:?} in the store")]
pub struct UnknownState {
    what: &'static str,
    text: String,
}

impl UnknownState {
    fn new(what: &'static str, text: &str) -> Self {
        Self {
            what,
            text: text.to_owned(),
        }
    }
}

/// Where a code's exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeState {
    /// Claimed by an exchange under way until the lease ends.
    Pending,
    Succeeded,
    Rejected,
    /// Ended without a usable answer: may be claimed again.
    Failed,
}

impl ExchangeState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }

    /// A state this version does not know (a newer version's, or a damaged row) is an error,
    /// not a guess.
    pub(crate) fn parse(text: &str) -> Result<Self, UnknownState> {
        match text {
            "pending" => Ok(Self::Pending),
            "succeeded" => Ok(Self::Succeeded),
            "rejected" => Ok(Self::Rejected),
            "failed" => Ok(Self::Failed),
            _ => Err(UnknownState::new("exchange state", text)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Succeeded,
    /// MondiaPay's redirect said the purchase failed.
    PurchaseFailed,
    /// MondiaPay rejected the code.
    CodeRejected,
    /// MondiaPay gave no usable answer; a later callback with the same code may try again.
    Unavailable,
}

impl OutcomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::PurchaseFailed => "purchase_failed",
            Self::CodeRejected => "code_rejected",
            Self::Unavailable => "unavailable",
        }
    }

    /// An outcome this version does not know is an error, not a guess.
    pub(crate) fn parse(text: &str) -> Result<Self, UnknownState> {
        match text {
            "succeeded" => Ok(Self::Succeeded),
            "purchase_failed" => Ok(Self::PurchaseFailed),
            "code_rejected" => Ok(Self::CodeRejected),
            "unavailable" => Ok(Self::Unavailable),
            _ => Err(UnknownState::new("callback outcome", text)),
        }
    }
}

/// A callback's outcome, as about to be recorded.
#[derive(Debug, Clone)]
pub struct NewCallback {
    pub kind: OutcomeKind,
    /// The HTTP status of the result page.
    pub page_status: u16,
    pub request_id: String,
    pub reference: Option<String>,
    pub uuid: Option<String>,
    /// MondiaPay's `status` redirect parameter.
    pub status: Option<String>,
    /// MondiaPay's `error` redirect parameter, or its error code when it rejected the code.
    /// (Its free-text `message` is never stored: it may say anything.)
    pub error: Option<String>,
    pub token_id: Option<String>,
}

/// A recorded callback outcome; `id` names its result page.
#[derive(Debug, Clone)]
pub struct CallbackOutcome {
    pub id: String,
    pub created_at: i64,
    pub outcome: NewCallback,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_states_read_back_and_unknown_ones_are_errors() {
        for state in [
            ExchangeState::Pending,
            ExchangeState::Succeeded,
            ExchangeState::Rejected,
            ExchangeState::Failed,
        ] {
            assert_eq!(ExchangeState::parse(state.as_str()), Ok(state));
        }
        for kind in [
            OutcomeKind::Succeeded,
            OutcomeKind::PurchaseFailed,
            OutcomeKind::CodeRejected,
            OutcomeKind::Unavailable,
        ] {
            assert_eq!(OutcomeKind::parse(kind.as_str()), Ok(kind));
        }
        assert!(ExchangeState::parse("expired").is_err());
        assert!(ExchangeState::parse("").is_err());
        assert!(OutcomeKind::parse("Succeeded").is_err());
    }
}

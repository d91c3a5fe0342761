//! Where a code's exchange stands, and what a browser callback ended in: the outcomes the store
//! keeps and the pages and the API report.

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

    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "pending" => Self::Pending,
            "succeeded" => Self::Succeeded,
            "rejected" => Self::Rejected,
            _ => Self::Failed,
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

    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "succeeded" => Self::Succeeded,
            "purchase_failed" => Self::PurchaseFailed,
            "code_rejected" => Self::CodeRejected,
            _ => Self::Unavailable,
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

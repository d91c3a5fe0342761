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
    pub(crate) fn new(what: &'static str, text: &str) -> Self {
        Self {
            what,
            text: text.to_owned(),
        }
    }
}

/// A closed set of values, each spelled once: `as_str` gives its text and `ALL` every one (so a
/// list of them, such as the labels `/metrics` starts at 0, cannot leave a new one out).
macro_rules! closed_set {
    (
        $(#[$doc:meta])*
        pub enum $name:ident {
            $($(#[$variant_doc:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$variant_doc])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &[Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }
    };
}
pub(crate) use closed_set;

/// A closed set of values the store keeps as text (see `closed_set`): `parse` reads one back,
/// and a text this version does not know (a newer version's, or a damaged row) is an
/// [`UnknownState`], not a guess.
macro_rules! stored_as_text {
    ($(
        $(#[$doc:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$variant_doc:meta])* $variant:ident = $text:literal,)+
        }
    )+) => {$(
        $crate::domain::closed_set! {
            $(#[$doc])*
            pub enum $name {
                $($(#[$variant_doc])* $variant = $text,)+
            }
        }

        impl $name {
            pub(crate) fn parse(text: &str) -> Result<Self, UnknownState> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(UnknownState::new($what, text)),
                }
            }
        }
    )+};
}
pub(crate) use stored_as_text;

stored_as_text! {
    /// Where a code's exchange stands.
    pub enum ExchangeState ("exchange state") {
        /// Claimed by an exchange under way until the lease ends.
        Pending = "pending",
        Succeeded = "succeeded",
        Rejected = "rejected",
        /// Ended without a usable answer: may be claimed again.
        Failed = "failed",
    }

    /// Where a user's token renewal (`grant_type=user_credentials`) stands.
    pub enum RenewalState ("renewal state") {
        /// Claimed by a renewal under way until the lease ends.
        Pending = "pending",
        /// A token was stored, or a live one found: `token_id` names it.
        Succeeded = "succeeded",
        /// MondiaPay's verdict on the user (e.g. an unknown uuid).
        Refused = "refused",
        /// No usable answer, or the merchant's credentials refused.
        Failed = "failed",
    }

    /// What a browser callback ended in.
    pub enum OutcomeKind ("callback outcome") {
        Succeeded = "succeeded",
        /// MondiaPay's redirect said the purchase failed.
        PurchaseFailed = "purchase_failed",
        /// MondiaPay rejected the code.
        CodeRejected = "code_rejected",
        /// MondiaPay gave no usable answer; a later callback with the same code may try again.
        Unavailable = "unavailable",
    }

    /// Why a callback's outcome is `unavailable`: its exchange ended without a verdict on the code.
    pub enum UnavailableCause ("unavailable cause") {
        /// MondiaPay did not answer in time.
        TimedOut = "timed_out",
        /// No usable answer: MondiaPay unreachable or its answer unreadable, or the exchange
        /// could not be made now (the credentials refused, too many under way, another holding
        /// the code).
        NoAnswer = "no_answer",
    }
}

/// A callback's outcome, as about to be recorded.
#[derive(Debug, Clone)]
pub struct NewCallback {
    pub kind: OutcomeKind,
    /// Why an `unavailable` outcome is; `None` for every other outcome.
    pub cause: Option<UnavailableCause>,
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

    /// Every value reads back as itself; a text this version does not know is an error.
    fn reads_back<T: Copy + PartialEq + std::fmt::Debug>(
        all: &[T],
        as_str: fn(T) -> &'static str,
        parse: fn(&str) -> Result<T, UnknownState>,
    ) {
        for &value in all {
            assert_eq!(parse(as_str(value)), Ok(value));
        }
        for unknown in ["", "expired", "Succeeded", "unavailable "] {
            assert!(parse(unknown).is_err(), "{unknown:?}");
        }
    }

    #[test]
    fn stored_states_read_back_and_unknown_ones_are_errors() {
        reads_back(
            ExchangeState::ALL,
            ExchangeState::as_str,
            ExchangeState::parse,
        );
        reads_back(OutcomeKind::ALL, OutcomeKind::as_str, OutcomeKind::parse);
        reads_back(RenewalState::ALL, RenewalState::as_str, RenewalState::parse);
        reads_back(
            UnavailableCause::ALL,
            UnavailableCause::as_str,
            UnavailableCause::parse,
        );
        assert_eq!(ExchangeState::ALL.len(), 4);
        assert_eq!(OutcomeKind::ALL.len(), 4);
    }
}

//! The domain: the codes, labels, tokens and outcomes the service deals in, as plain values.
//! Nothing here does I/O or reads a clock; every other layer builds on these types.

mod code;
mod event;
mod label;
mod outcome;
mod purchase;
mod token;
pub mod wording;

pub use code::{Code, CodeError, MAX_CODE_BYTES, is_unreserved};
pub use event::{Notification, NotificationError, StoredEvent};
pub use label::{MAX_LABEL_CHARS, Owner, is_acceptable_label};
pub(crate) use outcome::closed_set;
pub use outcome::{
    CallbackOutcome, ExchangeState, NewCallback, OutcomeKind, RenewalState, UnavailableCause,
    UnknownState,
};
pub use purchase::{Admission, PURCHASE_ID_PREFIX, Purchase, PurchaseState};
pub use token::{
    NO_TOKEN_IN_ANSWER, NoAnswer, TokenRecord, UNRECOGNISED_ERROR, UpstreamError, UserToken,
    error_code,
};

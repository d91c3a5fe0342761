//! A purchase this service started (`POST /v1/purchases`): where it stands, and which callback
//! may end it. The purchase's id travels in MondiaPay's redirect, so the callback that carries it
//! belongs to it: its token and outcome take the purchase's `ref`, not the query's.

use super::outcome::{OutcomeKind, UnknownState, stored_as_text};

/// Every purchase id starts with this; 128 random bits follow (URL-safe base64).
pub const PURCHASE_ID_PREFIX: &str = "pur_";

stored_as_text! {
    /// Where a purchase stands.
    pub enum PurchaseState ("purchase state") {
        /// Claimed under an `Idempotency-Key` while Prepare Purchase is under way: not yet a
        /// purchase anyone is shown.
        Preparing = "preparing",
        /// Prepared; waiting for its callback until `expires_at`.
        Started = "started",
        Succeeded = "succeeded",
        PurchaseFailed = "purchase_failed",
        CodeRejected = "code_rejected",
        /// MondiaPay gave no usable answer for the code: a later callback with it may succeed.
        Unavailable = "unavailable",
        /// No callback came within `purchases.ttl_secs`.
        Expired = "expired",
    }
}

impl PurchaseState {
    /// The state a callback outcome leaves a purchase in.
    pub fn after(outcome: OutcomeKind) -> Self {
        match outcome {
            OutcomeKind::Succeeded => Self::Succeeded,
            OutcomeKind::PurchaseFailed => Self::PurchaseFailed,
            OutcomeKind::CodeRejected => Self::CodeRejected,
            OutcomeKind::Unavailable => Self::Unavailable,
        }
    }
}

/// A purchase record, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub id: String,
    pub reference: Option<String>,
    pub state: PurchaseState,
    pub subscription_type_id: i64,
    /// MondiaPay's `initiatePurchase` href, where the browser is sent.
    pub redirect_url: Option<String>,
    /// The keyed hash of the code that completed (or is completing) it.
    pub code_hash: Option<String>,
    pub token_id: Option<String>,
    pub uuid: Option<String>,
    pub uuid_confirmed: bool,
    pub subscription_id: Option<String>,
    pub mondiapay_error: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub updated_at: i64,
}

/// What a callback naming a purchase may do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The purchase is waiting for its callback: this one binds its code to it.
    Bind,
    /// This callback's code is the purchase's own (a reload, or a retry after MondiaPay gave no
    /// answer): handled as an ordinary replay of that code.
    Replay,
    /// Unknown, expired, or completed by another code: "this link is no longer valid".
    Refuse,
}

impl Purchase {
    /// Whether a callback with `code_hash` (none: a failure redirect without a code) may end this
    /// purchase at `now` (Unix seconds).
    pub fn admits(&self, code_hash: Option<&str>, now: i64) -> Admission {
        let waiting = self.state == PurchaseState::Started && self.expires_at > now;
        match (self.code_hash.as_deref(), code_hash) {
            (Some(bound), Some(code)) if bound == code => Admission::Replay,
            (Some(_), _) => Admission::Refuse,
            (None, _) if waiting => Admission::Bind,
            // A failure redirect without a code, reloaded: its outcome is found again.
            (None, None) if self.state == PurchaseState::PurchaseFailed => Admission::Replay,
            (None, _) => Admission::Refuse,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> Purchase {
        Purchase {
            id: "pur_x".to_owned(),
            reference: Some("ORDER-1".to_owned()),
            state: PurchaseState::Started,
            subscription_type_id: 1,
            redirect_url: Some("https://pay.example/i".to_owned()),
            code_hash: None,
            token_id: None,
            uuid: None,
            uuid_confirmed: false,
            subscription_id: None,
            mondiapay_error: None,
            created_at: 100,
            expires_at: 200,
            updated_at: 100,
        }
    }

    #[test]
    fn states_read_back_as_themselves() {
        for state in PurchaseState::ALL {
            assert_eq!(PurchaseState::parse(state.as_str()), Ok(*state));
        }
        assert!(PurchaseState::parse("paid").is_err());
    }

    #[test]
    fn a_started_purchase_admits_its_first_callback_until_it_expires() {
        let purchase = started();
        assert_eq!(purchase.admits(Some("h1"), 150), Admission::Bind);
        assert_eq!(purchase.admits(None, 150), Admission::Bind);
        assert_eq!(purchase.admits(Some("h1"), 200), Admission::Refuse);
    }

    #[test]
    fn a_bound_purchase_admits_only_its_own_code() {
        for state in [
            PurchaseState::Started,
            PurchaseState::Succeeded,
            PurchaseState::Unavailable,
            PurchaseState::CodeRejected,
        ] {
            let purchase = Purchase {
                state,
                code_hash: Some("h1".to_owned()),
                ..started()
            };
            assert_eq!(purchase.admits(Some("h1"), 150), Admission::Replay);
            assert_eq!(purchase.admits(Some("h2"), 150), Admission::Refuse);
            assert_eq!(purchase.admits(None, 150), Admission::Refuse);
        }
    }

    #[test]
    fn expired_and_codeless_failures_admit_no_new_code() {
        let expired = Purchase {
            state: PurchaseState::Expired,
            ..started()
        };
        assert_eq!(expired.admits(Some("h1"), 150), Admission::Refuse);
        let failed = Purchase {
            state: PurchaseState::PurchaseFailed,
            ..started()
        };
        assert_eq!(failed.admits(None, 150), Admission::Replay);
        assert_eq!(failed.admits(Some("h1"), 150), Admission::Refuse);
    }
}

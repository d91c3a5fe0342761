//! MondiaPay's error codes in fixed words, the one place they are worded. Pages and the API
//! show these sentences, never MondiaPay's own free text (`message`, `error_description`) nor
//! text from a query string: that text is not ours and may be an attacker's.

use super::outcome::OutcomeKind;
use super::token::NO_TOKEN_IN_ANSWER;

/// What the user or the merchant is told for an unknown error in the purchase redirect.
pub const PURCHASE_FAILED: &str = "The payment could not be completed.";
/// What is said for an unknown error from the token call.
pub const CODE_REJECTED: &str = "MondiaPay did not accept the confirmation of this purchase.";

/// The fixed sentence for a MondiaPay error code this service knows (compared ignoring case),
/// from the purchase redirect (`INSUFFICIENT_FUNDS`, …) or the token call (`invalid_grant`, …).
pub fn known(error: &str) -> Option<&'static str> {
    let error = error.to_ascii_uppercase();
    let sentence = match error.as_str() {
        // The purchase redirect's `error`.
        "INSUFFICIENT_FUNDS" => "Your mobile balance was too low to pay for this purchase.",
        "USER_DECLINED_PURCHASE_DURING_CONFIRMATION" | "USER_DECLINED_PURCHASE" => {
            "The purchase was cancelled during confirmation, so nothing was bought."
        }
        "USER_ALREADY_SUBSCRIBED" => "You already have this subscription.",
        "OPERATOR_NOT_SUPPORTED" | "CARRIER_NOT_SUPPORTED" => {
            "Your mobile operator does not support this kind of purchase."
        }
        "PURCHASE_EXPIRED" | "SESSION_EXPIRED" | "TOKEN_EXPIRED" => {
            "The purchase took too long and expired before it was confirmed."
        }
        "USER_BLOCKED" | "USER_BLACKLISTED" | "SPENDING_LIMIT_REACHED" => {
            "Your mobile operator did not allow this purchase on your line."
        }
        // The token call's error for the code.
        "INVALID_GRANT" | "TOKEN_NOT_FOUND" | "TOKEN_CONTEXT_IS_NOT_VALID" => {
            "The confirmation of this purchase had expired or had already been used."
        }
        "INVALID_PARAMETERS" | "INVALID_REQUEST" => {
            "MondiaPay found the confirmation of this purchase incomplete or malformed."
        }
        _ if error == NO_TOKEN_IN_ANSWER => {
            "MondiaPay accepted the confirmation of this purchase but its answer could not be used; the confirmation cannot be used again."
        }
        _ => return None,
    };
    Some(sentence)
}

/// Why a purchase failed, from the redirect's `error`.
pub fn purchase_failed(error: Option<&str>) -> &'static str {
    error.and_then(known).unwrap_or(PURCHASE_FAILED)
}

/// Why MondiaPay did not exchange a code, from the token call's error code.
pub fn code_rejected(error: Option<&str>) -> &'static str {
    error.and_then(known).unwrap_or(CODE_REJECTED)
}

/// What a recorded outcome's error code means, in fixed words: for a failed purchase or a
/// rejected code; a success or an unavailable MondiaPay has none.
pub fn outcome(kind: OutcomeKind, error: Option<&str>) -> Option<&'static str> {
    match kind {
        OutcomeKind::PurchaseFailed => Some(purchase_failed(error)),
        OutcomeKind::CodeRejected => Some(code_rejected(error)),
        OutcomeKind::Succeeded | OutcomeKind::Unavailable => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_errors_have_their_sentence_and_unknown_ones_a_generic_one() {
        assert_eq!(
            purchase_failed(Some("INSUFFICIENT_FUNDS")),
            "Your mobile balance was too low to pay for this purchase."
        );
        assert_eq!(
            purchase_failed(Some("insufficient_funds")),
            purchase_failed(Some("INSUFFICIENT_FUNDS"))
        );
        assert_eq!(purchase_failed(Some("SOMETHING_NEW")), PURCHASE_FAILED);
        assert_eq!(purchase_failed(None), PURCHASE_FAILED);
        assert!(code_rejected(Some("invalid_grant")).contains("already been used"));
        assert!(code_rejected(Some("TOKEN_NOT_FOUND")).contains("already been used"));
        assert!(code_rejected(Some(NO_TOKEN_IN_ANSWER)).contains("cannot be used again"));
        assert_eq!(code_rejected(Some("UNRECOGNISED_ERROR")), CODE_REJECTED);
        assert_eq!(code_rejected(None), CODE_REJECTED);
    }
}

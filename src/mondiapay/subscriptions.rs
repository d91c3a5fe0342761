//! Subscription Management with a user's token: `GET /v1/api/subscription` (the user's
//! subscriptions, of one type when given) and `DELETE /v1/api/subscription/{id}` (cancel).

use reqwest::Method;
use secrecy::SecretString;

use super::{ApiAnswer, ApiCall, CallName, MondiaPayClient};

impl MondiaPayClient {
    /// The user's subscriptions, as MondiaPay sends them (a list, or one object).
    pub async fn get_subscriptions(
        &self,
        user_token: &SecretString,
        subscription_type_id: Option<u64>,
    ) -> ApiAnswer {
        let type_id = subscription_type_id.map(|id| id.to_string());
        let query = match &type_id {
            Some(id) => vec![("subscriptionTypeId", id.as_str())],
            None => Vec::new(),
        };
        self.api_call(&ApiCall {
            name: CallName::GetSubscriptions.as_str(),
            method: Method::GET,
            path: "v1/api/subscription",
            query: &query,
            bearer: user_token,
            body: None,
        })
        .await
    }

    /// Cancels the subscription `id`: at once, or at the end of the paid period.
    pub async fn cancel_subscription(
        &self,
        user_token: &SecretString,
        id: &str,
        immediately: bool,
    ) -> ApiAnswer {
        let path = format!("v1/api/subscription/{}", path_segment(id));
        self.api_call(&ApiCall {
            name: CallName::CancelSubscription.as_str(),
            method: Method::DELETE,
            path: &path,
            query: &[("immediately", if immediately { "true" } else { "false" })],
            bearer: user_token,
            body: None,
        })
        .await
    }
}

/// `id` as one path segment: every byte but `A-Z a-z 0-9 - _ ~` percent-encoded, so a `/`,
/// `?` or `#` in it cannot reach another path or the query. (A segment of dots alone would
/// still be read as `.` or `..`: the caller refuses such ids.)
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::path_segment;

    #[test]
    fn a_subscription_id_stays_one_path_segment() {
        assert_eq!(path_segment("12345"), "12345");
        assert_eq!(path_segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(path_segment("é"), "%C3%A9");
    }
}

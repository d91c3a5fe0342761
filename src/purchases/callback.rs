//! A callback that names a purchase (`purchase=<id>`): admitted only while the purchase waits
//! for it, or as a replay of the code that ended it; its outcome then moves the purchase on.

use super::Purchases;
use crate::crypto::CodeHash;
use crate::domain::{Admission, NewCallback, Purchase};
use crate::store::{StoreError, now_unix};

impl Purchases {
    /// The purchase `id` if a callback with `code` (none: a failure redirect without one) may end
    /// it, its code bound to it from now on; `None`: "this link is no longer valid".
    pub async fn admit(
        &self,
        id: &str,
        code: Option<&CodeHash>,
    ) -> Result<Option<Purchase>, StoreError> {
        let code = code.map(CodeHash::as_str);
        // Twice at most: a bind lost to a concurrent callback is decided again on what it wrote.
        for _ in 0..2 {
            let Some(purchase) = self.store.purchase(id).await? else {
                return Ok(None);
            };
            let now = now_unix();
            match purchase.admits(code, now) {
                Admission::Refuse => return Ok(None),
                Admission::Replay => return Ok(Some(purchase)),
                Admission::Bind => {
                    if self.store.bind_purchase_code(id, code, now).await? {
                        return Ok(Some(purchase));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Moves the purchase on after its callback's outcome.
    pub async fn settle(
        &self,
        purchase: &Purchase,
        outcome: &NewCallback,
    ) -> Result<(), StoreError> {
        self.store.settle_purchase(&purchase.id, outcome).await
    }
}

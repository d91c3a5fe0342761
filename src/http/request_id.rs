//! New request ids: 96 bits from the operating system's random source (through
//! `crypto::random_bytes`' pool, so not a system call each), URL-safe base64 (16 characters).

use base64::Engine;

use crate::crypto::random_bytes;

/// A fresh request id.
pub fn new_request_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<12>())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_sixteen_url_safe_characters_and_do_not_repeat_across_refills_of_the_pool() {
        // More ids than one pool of random bytes holds.
        let count = 1000;
        let ids: HashSet<String> = (0..count).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), count);
        assert!(ids.iter().all(|id| {
            id.len() == 16
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }));
    }
}

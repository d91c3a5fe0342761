//! New request ids: 96 bits from the operating system's random source, URL-safe base64 (16
//! characters). Every request of both listeners gets one, so the random bytes are fetched in
//! batches: one `getrandom` call per batch instead of one system call per request.

use std::cell::RefCell;

use base64::Engine;

use crate::crypto::random_bytes;

/// The random bytes of one id.
const ID_BYTES: usize = 12;
/// Ids per batch: one system call fetches 3 KiB, about 50 µs of requests at full speed.
const BATCH_IDS: usize = 256;

/// Random bytes for the next ids, handed out from the end; refilled when used up.
struct Batch {
    bytes: Box<[u8; ID_BYTES * BATCH_IDS]>,
    left: usize,
}

impl Batch {
    fn next(&mut self) -> [u8; ID_BYTES] {
        if self.left == 0 {
            *self.bytes = random_bytes();
            self.left = BATCH_IDS;
        }
        self.left -= 1;
        let start = self.left * ID_BYTES;
        self.bytes[start..start + ID_BYTES]
            .try_into()
            .expect("one id's bytes")
    }
}

thread_local! {
    static BATCH: RefCell<Batch> = RefCell::new(Batch {
        bytes: Box::new([0; ID_BYTES * BATCH_IDS]),
        left: 0,
    });
}

/// A fresh request id.
pub fn new_request_id() -> String {
    let bytes = BATCH.with(|batch| batch.borrow_mut().next());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_sixteen_url_safe_characters_and_do_not_repeat_across_batches() {
        let ids: HashSet<String> = (0..BATCH_IDS * 3 + 7).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), BATCH_IDS * 3 + 7);
        assert!(ids.iter().all(|id| {
            id.len() == 16
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }));
    }
}

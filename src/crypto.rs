//! Encryption at rest and the keyed hash of codes, both derived from one 32-byte master key
//! (`store.encryption_key`).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::Code;

/// Sealed values start with this byte so that a later key or algorithm can live beside it.
const SEALED_V1: u8 = 1;
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
#[error(
    "a stored value could not be decrypted (wrong store.encryption_key, or the row was altered)"
)]
pub struct UnsealError;

/// Holds the keys derived from the master key. Never printed, never cloned out.
pub struct Keyring {
    cipher: Aes256Gcm,
    code_hash_key: [u8; 32],
}

impl Keyring {
    pub fn new(master_key: &[u8; 32]) -> Self {
        let encryption_key = derive(master_key, b"mondiapay-token-proxy/token-encryption/v1");
        Self {
            cipher: Aes256Gcm::new_from_slice(&encryption_key).expect("a 32-byte key fits AES-256"),
            code_hash_key: derive(master_key, b"mondiapay-token-proxy/code-hash/v1"),
        }
    }

    /// AES-256-GCM with a fresh random nonce. `context` (the row's id) is authenticated, so a
    /// sealed value copied into another row does not open there.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce = Nonce::from(random_bytes::<NONCE_LEN>());
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .expect("AES-GCM encryption of a small value cannot fail");
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(SEALED_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, UnsealError> {
        let (&version, rest) = sealed.split_first().ok_or(UnsealError)?;
        if version != SEALED_V1 || rest.len() < NONCE_LEN {
            return Err(UnsealError);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| UnsealError)?;
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| UnsealError)
    }

    /// The code as stored: HMAC-SHA256 under a key of ours, so a stolen database cannot be
    /// checked against guessed codes, yet the same code always finds its row again. Its first
    /// 128 bits (`CODE_HASH_BYTES`) are kept, as 32 hex digits.
    pub fn hash_code(&self, code: &Code) -> CodeHash {
        let mac = hmac(&self.code_hash_key, code.expose().as_bytes());
        CodeHash(hex(&mac[..CODE_HASH_BYTES]))
    }
}

/// How much of a code's HMAC is kept: 128 bits tell codes apart (a collision among even a
/// billion codes has a chance below 10^-20) and keep small the store's index that every new
/// code is written into at a random place: with all 256 bits (64 hex digits) its entries were
/// 71 bytes instead of 39, and more of its pages were written and synced (BENCHMARKS.md).
/// Migration 11 cut the hashes stored before to the same prefix.
pub const CODE_HASH_BYTES: usize = 16;

/// The keyed hash of a code: the replay-detection key in the store, and (shortened) the only
/// trace of a code in the logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodeHash(String);

impl CodeHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Enough to correlate log lines, far too little to test guesses against.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

/// `prefix` and 128 random bits, URL-safe: unguessable, so an id alone reveals nothing and
/// cannot be forged.
pub fn random_id(prefix: &str) -> String {
    use base64::Engine;
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<16>())
    )
}

/// `prefix`, the time in milliseconds and 128 random bits, in a URL-safe base64 whose alphabet is
/// in ASCII order: ids sort by the time they were made. Still unguessable; and rows keyed by them
/// are added at the end of their index, where one page takes a whole batch of writes, instead of
/// each on a random page of its own (every page a write touches is written to the WAL whole).
pub fn time_ordered_id(prefix: &str) -> String {
    use base64::Engine;
    const SORTED: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &match base64::alphabet::Alphabet::new(
            "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz",
        ) {
            Ok(alphabet) => alphabet,
            Err(_) => panic!("the alphabet has 64 distinct characters"),
        },
        base64::engine::general_purpose::NO_PAD,
    );
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    let mut bytes = [0u8; 6 + 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[10..]);
    bytes[6..].copy_from_slice(&random_bytes::<16>());
    format!("{prefix}{}", SORTED.encode(bytes))
}

/// Random bytes from the operating system, for keys, nonces and identifiers. Drawn from a
/// per-thread pool that one `getrandom` call fills 4 KiB at a time: a callback takes three ids
/// and a nonce, every request an id, and a system call for each was measurable. Each byte is
/// handed out once and zeroed in the pool as it is.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if N > POOL_BYTES {
        fill_from_os(&mut bytes);
    } else {
        POOL.with(|pool| pool.borrow_mut().take(&mut bytes));
    }
    bytes
}

const POOL_BYTES: usize = 4096;

/// The operating system's random bytes not handed out yet: `pool[used..]`.
struct RandomPool {
    pool: Box<[u8; POOL_BYTES]>,
    used: usize,
}

impl RandomPool {
    fn take(&mut self, out: &mut [u8]) {
        if POOL_BYTES - self.used < out.len() {
            fill_from_os(&mut self.pool[..]);
            self.used = 0;
        }
        let taken = &mut self.pool[self.used..self.used + out.len()];
        out.copy_from_slice(taken);
        taken.fill(0);
        self.used += out.len();
    }
}

thread_local! {
    static POOL: std::cell::RefCell<RandomPool> = std::cell::RefCell::new(RandomPool {
        pool: Box::new([0; POOL_BYTES]),
        used: POOL_BYTES,
    });
}

fn fill_from_os(bytes: &mut [u8]) {
    getrandom::fill(bytes).expect("the operating system's random source is available");
}

fn derive(master_key: &[u8; 32], purpose: &[u8]) -> [u8; 32] {
    hmac(master_key, purpose)
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::new(&[7u8; 32])
    }

    #[test]
    fn sealed_values_open_with_their_context_only() {
        let keys = keyring();
        let sealed = keys.seal(b"U12345", b"tok_a");
        assert!(!sealed.windows(6).any(|w| w == b"U12345"));
        assert_eq!(keys.open(&sealed, b"tok_a").unwrap(), b"U12345");
        assert!(keys.open(&sealed, b"tok_b").is_err());
        assert!(Keyring::new(&[8u8; 32]).open(&sealed, b"tok_a").is_err());
        assert!(keys.open(&sealed[..5], b"tok_a").is_err());
        assert!(keys.open(&[], b"tok_a").is_err());
    }

    #[test]
    fn random_bytes_are_handed_out_once_and_larger_draws_come_straight_from_the_os() {
        let count = 3 * POOL_BYTES / 16;
        let draws: std::collections::HashSet<[u8; 16]> =
            (0..count).map(|_| random_bytes::<16>()).collect();
        assert_eq!(
            draws.len(),
            count,
            "no draw repeats across refills of the pool"
        );
        POOL.with(|pool| {
            let pool = pool.borrow();
            assert!(pool.used > 0);
            assert!(
                pool.pool[..pool.used].iter().all(|&b| b == 0),
                "what was handed out is not kept"
            );
        });
        let large = random_bytes::<{ POOL_BYTES + 1 }>();
        assert!(large.iter().any(|&b| b != 0));
    }

    #[test]
    fn time_ordered_ids_are_unique_url_safe_and_sort_by_time() {
        let earlier = time_ordered_id("tok_");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let (a, b) = (time_ordered_id("tok_"), time_ordered_id("tok_"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 30);
        assert!(
            a[4..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        // Byte order, as SQLite and PostgreSQL's "C" collation compare them: a later millisecond
        // sorts after, whatever the random bits.
        assert!(earlier.as_bytes() < a.as_bytes() && earlier.as_bytes() < b.as_bytes());
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let keys = keyring();
        assert_ne!(keys.seal(b"same", b"id"), keys.seal(b"same", b"id"));
    }

    #[test]
    fn hex_writes_two_lowercase_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0xab, 0x0f, 0xf0, 0x9c]), "00ab0ff09c");
    }

    #[test]
    fn code_hash_is_keyed_and_stable() {
        let code = Code::parse("A123", "A").unwrap();
        let hash = keyring().hash_code(&code);
        assert_eq!(hash, keyring().hash_code(&code));
        assert_ne!(hash, Keyring::new(&[8u8; 32]).hash_code(&code));
        assert_eq!(hash.as_str().len(), 2 * CODE_HASH_BYTES);
        assert!(hash.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!hash.as_str().contains("A123"));
    }
}

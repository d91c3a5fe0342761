//! Decrypted token records kept in memory for lookups by id — only where this process sees
//! every write (SQLite: one instance). With PostgreSQL another replica may delete a token, so
//! there the store keeps no cache.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::domain::TokenRecord;

/// A few thousand records (under a kilobyte each) cover the live tokens of a busy merchant.
const CAPACITY: usize = 4096;

#[derive(Default)]
pub struct TokenCache {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Behind an `Arc` so that the table itself stays small: it keeps its capacity when cleared,
    /// and 8,192 slots of whole records held 1.5 MiB.
    records: HashMap<String, Arc<TokenRecord>>,
    /// Counts deletions: a record read from the database before a deletion must not be put
    /// back after it.
    deletions: u64,
}

impl TokenCache {
    /// The cached record if it is still valid at `valid_until`: shared, not copied (a lookup
    /// only serializes it).
    pub fn get(&self, id: &str, valid_until: i64) -> Option<Arc<TokenRecord>> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner
            .records
            .get(id)
            .filter(|r| r.expires_at > valid_until)
            .map(Arc::clone)
    }

    /// The deletion count to pass to `put` for a record about to be read from the database.
    pub fn generation(&self) -> u64 {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .deletions
    }

    /// Keeps `record` unless a deletion happened since `generation` was taken.
    pub fn put(&self, record: Arc<TokenRecord>, generation: u64) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if inner.deletions != generation {
            return;
        }
        if inner.records.len() >= CAPACITY {
            // Rare, and cheap to refill: simpler than tracking recency.
            inner.records.clear();
        }
        inner.records.insert(record.id.clone(), record);
    }

    pub fn remove(&self, id: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        inner.deletions += 1;
        inner.records.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    fn record(id: &str, expires_at: i64) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            access_token: "U1".into(),
            refresh_token: None,
            token_type: "bearer".into(),
            obtained_at: 0,
            expires_at,
            reference: None,
            uuid: None,
            extra: Map::new(),
        }
    }

    #[test]
    fn hits_only_while_valid_and_never_after_a_deletion() {
        let cache = TokenCache::default();
        let generation = cache.generation();
        cache.put(Arc::new(record("tok_a", 100)), generation);
        assert!(cache.get("tok_a", 50).is_some());
        assert!(cache.get("tok_a", 100).is_none(), "expired at the margin");
        let before_delete = cache.generation();
        cache.remove("tok_a");
        cache.put(Arc::new(record("tok_a", 100)), before_delete);
        assert!(
            cache.get("tok_a", 50).is_none(),
            "a read from before the deletion is not put back"
        );
    }
}

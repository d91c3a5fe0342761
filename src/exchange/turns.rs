//! One turn at a time per code (or per user, for a renewal) within this process: concurrent
//! requests for the same key queue here instead of racing to the database, and the map holds
//! only keys someone is waiting on.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::crypto::CodeHash;

pub struct Turns<K = CodeHash> {
    queues: Mutex<HashMap<K, Arc<AsyncMutex<()>>>>,
}

impl<K> Default for Turns<K> {
    fn default() -> Self {
        Self {
            queues: Mutex::default(),
        }
    }
}

/// Holding a turn means no other request of this process is working on the code.
pub struct Turn<'a, K: Eq + Hash + Clone = CodeHash> {
    turns: &'a Turns<K>,
    code: K,
    queue: Arc<AsyncMutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl<K: Eq + Hash + Clone> Turns<K> {
    pub async fn take(&self, code: &K) -> Turn<'_, K> {
        let queue = Arc::clone(self.lock().entry(code.clone()).or_default());
        let guard = Arc::clone(&queue).lock_owned().await;
        Turn {
            turns: self,
            code: code.clone(),
            queue,
            guard: Some(guard),
        }
    }

    /// How many codes have requests working or waiting.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<AsyncMutex<()>>>> {
        // A panic while holding this lock cannot leave the map inconsistent: take it anyway.
        self.queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<K: Eq + Hash + Clone> Drop for Turn<'_, K> {
    fn drop(&mut self) {
        self.guard.take();
        let mut queues = self.turns.lock();
        // Clones are only made under the map's lock, so two references (the map's and ours)
        // mean nobody else is waiting for this code.
        if Arc::strong_count(&self.queue) == 2 {
            queues.remove(&self.code);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::crypto::Keyring;
    use crate::domain::Code;

    fn hash(code: &str) -> CodeHash {
        Keyring::new(&[1; 32]).hash_code(&Code::parse(code, "").unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_turn_at_a_time_per_code_and_the_map_empties() {
        let turns = Arc::new(Turns::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (turns, inside, most) = (turns.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    let _turn = turns.take(&hash("A1")).await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(turns.is_empty());
    }

    #[tokio::test]
    async fn different_codes_do_not_wait_for_each_other() {
        let turns = Turns::default();
        let _a = turns.take(&hash("A1")).await;
        let _b = turns.take(&hash("A2")).await;
        assert_eq!(turns.len(), 2);
    }
}

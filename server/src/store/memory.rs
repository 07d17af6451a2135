//! The embedded store: the challenges of this one process, in TTL caches. The default,
//! so one binary needs nothing else; it cannot be shared by several instances.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use moka::sync::Cache;

use super::{Cas, NonceKey, Store, StoreError, Ttls};
use crate::challenge::{FrameEntry, Record, Score, Snapshot};

/// Bounds on what the caches hold, whatever the traffic.
const MAX_OPEN_CHALLENGES: u64 = 20_000;
const MAX_NONCES: u64 = 200_000;

/// Open and recently finished challenges, and used nonces, in this process.
pub struct MemoryStore {
    challenges: Cache<String, Arc<Mutex<Snapshot>>>,
    nonces: Cache<String, ()>,
}

impl MemoryStore {
    pub fn new(ttls: Ttls) -> Self {
        Self {
            challenges: Cache::builder()
                .max_capacity(MAX_OPEN_CHALLENGES)
                .time_to_live(ttls.challenge)
                .build(),
            nonces: Cache::builder()
                .max_capacity(MAX_NONCES)
                .time_to_live(ttls.nonce)
                .build(),
        }
    }

    /// Runs `f` on the challenge under its lock; `None` if unknown or expired.
    fn with<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Snapshot) -> T,
    ) -> Result<Option<T>, StoreError> {
        let Some(entry) = self.challenges.get(id) else {
            return Ok(None);
        };
        let mut c = entry
            .lock()
            .map_err(|_| StoreError::Corrupt("a challenge's lock is poisoned".into()))?;
        Ok(Some(f(&mut c)))
    }

    /// The two writes the trait makes atomic: `write` runs only if the challenge is
    /// not finished and its log still has `expected_len` entries (as Redis's scripts).
    fn compare_and_set(
        &self,
        id: &str,
        expected_len: usize,
        write: impl FnOnce(&mut Snapshot),
    ) -> Result<Cas, StoreError> {
        Ok(self
            .with(id, |c| {
                if c.finished {
                    Cas::Finished
                } else if c.frames.len() != expected_len {
                    Cas::Stale
                } else {
                    write(c);
                    Cas::Done(expected_len)
                }
            })?
            .unwrap_or(Cas::Gone))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn take_nonce(&self, key: &NonceKey) -> Result<bool, StoreError> {
        Ok(self
            .nonces
            .entry(key.as_str().to_owned())
            .or_insert(())
            .is_fresh())
    }

    async fn create(&self, id: &str, record: &Record) -> Result<bool, StoreError> {
        let fresh = Snapshot {
            record: record.clone(),
            frames: Vec::new(),
            finished: false,
        };
        Ok(self
            .challenges
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(fresh)))
            .is_fresh())
    }

    async fn load(&self, id: &str) -> Result<Option<Snapshot>, StoreError> {
        self.with(id, |c| c.clone())
    }

    async fn append_frame(
        &self,
        id: &str,
        expected_len: usize,
        at_ms: u64,
    ) -> Result<Cas, StoreError> {
        self.compare_and_set(id, expected_len, |c| {
            c.frames.push(FrameEntry {
                at_ms,
                score: Score::Pending,
            })
        })
    }

    async fn score_frame(&self, id: &str, index: usize, score: Score) -> Result<(), StoreError> {
        self.with(id, |c| {
            if let Some(f) = c.frames.get_mut(index) {
                f.score = score;
            }
        })?;
        Ok(())
    }

    async fn finish(&self, id: &str, expected_len: usize) -> Result<Cas, StoreError> {
        self.compare_and_set(id, expected_len, |c| c.finished = true)
    }
}

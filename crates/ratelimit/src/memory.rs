use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::{Decision, Quota, gcra};

const SHARDS: usize = 32;

/// Counts in this process's memory, in shards so that concurrent requests rarely wait on one lock. Keys are kept as
/// 64-bit keyed hashes (no allocation per request; a collision between two live keys is a 2^-64 event). Bounded:
/// when a shard holds too many keys, keys whose TAT has passed (they would start from scratch anyway) are dropped.
#[derive(Clone)]
pub struct Memory {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Vec<Mutex<HashMap<u64, u64>>>,
    hasher: RandomState,
    started: Instant,
    max_keys_per_shard: usize,
}

impl Memory {
    pub const DEFAULT_MAX_KEYS: usize = 1_000_000;

    pub fn new(max_keys: usize) -> Memory {
        Memory {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                hasher: RandomState::new(),
                started: Instant::now(),
                max_keys_per_shard: (max_keys / SHARDS).max(1),
            }),
        }
    }

    pub(crate) fn apply(&self, key: &str, quota: Quota, count: bool) -> Decision {
        let now = self.inner.started.elapsed().as_micros() as u64;
        let hash = self.inner.hasher.hash_one(key);
        let shard = &self.inner.shards[hash as usize % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (decision, new_tat) = gcra(map.get(&hash).copied(), now, quota);
        if count && decision.is_allowed() {
            if map.len() >= self.inner.max_keys_per_shard && !map.contains_key(&hash) {
                map.retain(|_, tat| *tat > now);
            }
            map.insert(hash, new_tat);
        }
        decision
    }

    pub(crate) fn reset(&self, key: &str) {
        let hash = self.inner.hasher.hash_one(key);
        let shard = &self.inner.shards[hash as usize % SHARDS];
        shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&hash);
    }
}

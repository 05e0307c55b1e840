//! What inventory says is left, cached for search and kept fresh by inventory's change feed.
//!
//! Search needs the counters of hundreds of buckets per query; asking inventory each time would make every search
//! a database query. Entries live in a bounded cache until inventory's change feed names their bucket (polled every
//! [`FEED_INTERVAL`]: a sold-out night leaves the results within about that long) or until [`MAX_AGE`] passes, a
//! backstop for a missed change. Buckets that do not exist are cached as absent the same way.
//!
//! A search looks up hundreds of buckets, so the cache and the answer are keyed by [`BucketKey`], a 128-bit hash
//! of the item id, rather than by the id itself: a lookup then compares 16 bytes held in the table instead of
//! following a pointer to a 30 to 45 byte string. The cache is split into [`SHARDS`] maps, each behind its own
//! lock, and a search takes each lock it needs once for all its keys in that shard: taken once per key, the locks'
//! cache lines bouncing between cores cost `phoenix bench search` a sixth of its time.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use phoenix_api::Principal;
use phoenix_inventory::Client;

use crate::Error;

pub const FEED_INTERVAL: Duration = Duration::from_millis(200);
pub const MAX_AGE: Duration = Duration::from_secs(30);
/// On PostgreSQL a transaction can commit after a later one, so the feed can show a gap that fills in later:
/// gaps are read again for this long (a rolled-back transaction leaves a gap that never fills).
const GAP_PATIENCE: Duration = Duration::from_secs(5);
const MAX_GAPS: usize = 10_000;
const CAPACITY: usize = 2_000_000;
/// Maps the cache is split into (a power of two).
const SHARDS: usize = 64;
const _: () = assert!(SHARDS.is_power_of_two());
/// Most buckets asked of inventory in one call.
const CHUNK: usize = 500;

/// A bucket's counters as search needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Capacity plus overbooking limit.
    pub limit: i64,
    /// Held plus sold.
    pub committed: i64,
    pub capacity: i64,
}

impl Counts {
    pub fn available(self) -> i64 {
        (self.limit - self.committed).max(0)
    }
}

/// An inventory item id as the cache knows it: XXH3-128 of the id under a seed drawn when the process starts.
///
/// The chance that any two of the 1.3 million buckets of the demo dataset share a key is about 2^-88 (2^-128 per
/// pair), and the seed keeps anyone from choosing item ids (flight numbers) that collide on purpose. A collision could only mislead a search or a quote: holds are taken by inventory on the item ids
/// themselves, so it could never oversell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketKey(u128);

static SEED: LazyLock<u64> = LazyLock::new(|| uuid::Uuid::new_v4().as_u64_pair().0);

impl BucketKey {
    pub fn of(item: &str) -> BucketKey {
        BucketKey(xxhash_rust::xxh3::xxh3_128_with_seed(item.as_bytes(), *SEED))
    }
}

/// The counters [`Availability::get`] found, by item id.
#[derive(Debug, Default)]
pub struct Counted(HashMap<BucketKey, Counts, quick_cache::DefaultHashBuilder>);

impl Counted {
    pub fn get(&self, item: &str) -> Option<Counts> {
        self.0.get(&BucketKey::of(item)).copied()
    }
}

#[derive(Clone, Copy)]
struct Entry {
    counts: Option<Counts>,
    at: Instant,
}

pub struct Availability {
    cache: Cache,
    inventory: Client,
    principal: Principal,
    feed: tokio::sync::Mutex<Feed>,
    /// Bumped whenever a cached bucket is forgotten, so results computed from it can tell they are stale.
    epoch: std::sync::atomic::AtomicU64,
}

/// Bucket counters by key, in [`SHARDS`] maps of at most `capacity / SHARDS` entries each.
struct Cache {
    shards: Box<[std::sync::RwLock<HashMap<BucketKey, Entry, quick_cache::DefaultHashBuilder>>]>,
    per_shard: usize,
}

impl Cache {
    fn new(capacity: usize) -> Cache {
        Cache {
            shards: (0..SHARDS).map(|_| Default::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// Calls `found(position, entry)` for every key, each shard's lock taken once.
    fn get_many(&self, keys: &[BucketKey], mut found: impl FnMut(usize, Option<Entry>)) {
        let mut order: Vec<(usize, usize)> = keys
            .iter()
            .enumerate()
            .map(|(position, key)| (shard_of(*key), position))
            .collect();
        order.sort_unstable();
        for run in order.chunk_by(|a, b| a.0 == b.0) {
            let shard = read(&self.shards[run[0].0]);
            for (_, position) in run {
                found(*position, shard.get(&keys[*position]).copied());
            }
        }
    }

    /// Keeps the entries, each shard's lock taken once; a full shard first drops what has outlived [`MAX_AGE`],
    /// and if that frees nothing, everything.
    fn insert_many(&self, mut entries: Vec<(BucketKey, Entry)>) {
        entries.sort_unstable_by_key(|(key, _)| shard_of(*key));
        for run in entries.chunk_by(|a, b| shard_of(a.0) == shard_of(b.0)) {
            let mut shard = write(&self.shards[shard_of(run[0].0)]);
            for (key, entry) in run {
                if shard.len() >= self.per_shard && !shard.contains_key(key) {
                    let now = Instant::now();
                    shard.retain(|_, e| now.saturating_duration_since(e.at) < MAX_AGE);
                    if shard.len() >= self.per_shard {
                        shard.clear();
                    }
                }
                shard.insert(*key, *entry);
            }
        }
    }

    fn remove(&self, key: BucketKey) {
        write(&self.shards[shard_of(key)]).remove(&key);
    }
}

/// The key is a hash already: its top bits pick the shard (the shard's map hashes it again for its own table).
fn shard_of(key: BucketKey) -> usize {
    (key.0 >> (128 - SHARDS.trailing_zeros())) as usize
}

/// A shard's lock; one poisoned by a panic elsewhere still holds a usable map (each change is one map operation).
fn read<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where the feed has been read to (negative: not yet; start where it ends, the cache being empty), and the
/// positions below that were missing when read.
struct Feed {
    position: i64,
    gaps: std::collections::BTreeMap<i64, Instant>,
}

impl Availability {
    pub fn new(inventory: Client, principal: Principal) -> Arc<Availability> {
        Arc::new(Availability {
            cache: Cache::new(CAPACITY),
            inventory,
            principal,
            feed: tokio::sync::Mutex::new(Feed {
                position: -1,
                gaps: std::collections::BTreeMap::new(),
            }),
            epoch: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn inventory(&self) -> &Client {
        &self.inventory
    }

    /// Counters of `items`; an item without a bucket is absent from the answer.
    pub async fn get(&self, items: &[String]) -> Result<Counted, Error> {
        let mut found = Counted(HashMap::with_capacity_and_hasher(items.len(), Default::default()));
        let keys: Vec<BucketKey> = items.iter().map(|item| BucketKey::of(item)).collect();
        let mut missing = Vec::new();
        let now = Instant::now();
        self.cache.get_many(&keys, |position, entry| match entry {
            Some(entry) if now.saturating_duration_since(entry.at) < MAX_AGE => {
                if let Some(counts) = entry.counts {
                    found.0.insert(keys[position], counts);
                }
            }
            _ => missing.push((items[position].as_str(), keys[position])),
        });
        missing.sort_unstable_by_key(|(_, key)| *key);
        missing.dedup_by_key(|(_, key)| *key);
        metrics::counter!("catalog_availability_lookups_total", "cache" => "hit")
            .increment((items.len() - missing.len()) as u64);
        metrics::counter!("catalog_availability_lookups_total", "cache" => "miss").increment(missing.len() as u64);
        for chunk in missing.chunks(CHUNK) {
            let ids: Vec<String> = chunk.iter().map(|(item, _)| (*item).to_owned()).collect();
            let buckets = self
                .inventory
                .availability(&self.principal, &ids)
                .await
                .map_err(Error::Upstream)?;
            let at = Instant::now();
            let mut present = HashMap::with_capacity(buckets.len());
            for bucket in buckets {
                let counts = Counts {
                    limit: bucket.capacity + bucket.overbooking_limit,
                    committed: bucket.held + bucket.sold,
                    capacity: bucket.capacity,
                };
                present.insert(BucketKey::of(bucket.item_id.as_str()), counts);
            }
            let fetched: Vec<(BucketKey, Entry)> = chunk
                .iter()
                .map(|(_, key)| {
                    (
                        *key,
                        Entry {
                            counts: present.get(key).copied(),
                            at,
                        },
                    )
                })
                .collect();
            for (key, entry) in &fetched {
                if let Some(counts) = entry.counts {
                    found.0.insert(*key, counts);
                }
            }
            self.cache.insert_many(fetched);
        }
        Ok(found)
    }

    /// Forgets items (this process changed their buckets).
    pub fn invalidate<'a>(&self, items: impl IntoIterator<Item = &'a str>) {
        // Any change counts, cached here or not: a search result may have been computed from an entry evicted since.
        let mut any = false;
        for item in items {
            self.cache.remove(BucketKey::of(item));
            any = true;
        }
        if any {
            self.epoch.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Changes whenever a bucket changed.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads inventory's change feed once and forgets every bucket it names; returns how many events it read.
    pub async fn follow_once(&self) -> Result<usize, Error> {
        let mut feed = self.feed.lock().await;
        if feed.position < 0 {
            feed.position = self
                .inventory
                .changes(-1)
                .await
                .map_err(Error::Upstream)?
                .last_seq
                .max(0);
            return Ok(0);
        }
        feed.gaps.retain(|_, seen| seen.elapsed() < GAP_PATIENCE);
        let from = feed
            .gaps
            .keys()
            .next()
            .map_or(feed.position, |first| (first - 1).min(feed.position));
        let changes = self.inventory.changes(from).await.map_err(Error::Upstream)?;
        let mut expected = feed.position + 1;
        let mut read = 0;
        for event in &changes.events {
            let fresh = event.seq > feed.position;
            if !fresh && feed.gaps.remove(&event.seq).is_none() {
                continue; // read before
            }
            if fresh {
                for missing in expected..event.seq {
                    if feed.gaps.len() < MAX_GAPS {
                        feed.gaps.insert(missing, Instant::now());
                    }
                }
                expected = event.seq + 1;
            }
            self.invalidate(event.item_ids.iter().map(String::as_str));
            read += 1;
        }
        feed.position = feed.position.max(changes.last_seq);
        Ok(read)
    }

    /// Follows the change feed until the last clone of the cache is dropped.
    pub fn spawn_follower(self: &Arc<Availability>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FEED_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(availability) = weak.upgrade() else { break };
                if let Err(error) = availability.follow_once().await {
                    tracing::warn!(error = %phoenix_api::ErrorChain(&error), "following inventory changes failed");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(limit: i64, at: Instant) -> Entry {
        Entry {
            counts: Some(Counts {
                limit,
                committed: 0,
                capacity: limit,
            }),
            at,
        }
    }

    fn lookup(cache: &Cache, keys: &[BucketKey]) -> Vec<Option<i64>> {
        let mut found = vec![None; keys.len()];
        cache.get_many(keys, |position, e| {
            found[position] = e.and_then(|e| e.counts).map(|c| c.limit);
        });
        found
    }

    #[test]
    fn answers_every_key_at_its_position() {
        let cache = Cache::new(10_000);
        let keys: Vec<BucketKey> = (0..500).map(|i| BucketKey::of(&format!("room:{i}"))).collect();
        cache.insert_many(
            keys.iter()
                .enumerate()
                .step_by(2)
                .map(|(i, k)| (*k, entry(i as i64, Instant::now())))
                .collect(),
        );
        let expected: Vec<Option<i64>> = (0..500).map(|i| (i % 2 == 0).then_some(i)).collect();
        assert_eq!(lookup(&cache, &keys), expected);
        cache.remove(keys[0]);
        assert_eq!(lookup(&cache, &keys[..1]), vec![None]);
    }

    #[test]
    fn a_full_shard_drops_stale_entries_first_and_stays_bounded() {
        let cache = Cache::new(SHARDS * 4);
        let now = Instant::now();
        let stale = now.checked_sub(MAX_AGE * 2).unwrap_or(now);
        // About 20 stale and 60 fresh keys a shard: every shard fills up again after the stale ones.
        let keys: Vec<BucketKey> = (0..SHARDS * 80).map(|i| BucketKey::of(&format!("fare:{i}"))).collect();
        let (old, new) = keys.split_at(SHARDS * 20);
        cache.insert_many(old.iter().map(|k| (*k, entry(1, stale))).collect());
        cache.insert_many(new.iter().map(|k| (*k, entry(2, now))).collect());
        for shard in cache.shards.iter() {
            let shard = read(shard);
            assert!(shard.len() <= 4, "a shard holds {}", shard.len());
            assert!(shard.values().all(|e| e.at == now), "stale entries outlived fresh ones");
        }
        // A key inserted into a full shard is kept.
        let probe = BucketKey::of("room:probe");
        cache.insert_many(vec![(probe, entry(3, now))]);
        assert_eq!(lookup(&cache, &[probe]), vec![Some(3)]);
    }

    #[test]
    fn keys_are_the_same_for_the_same_item_and_differ_otherwise() {
        assert_eq!(
            BucketKey::of("seat:PX1-2026-12-24:economy"),
            BucketKey::of("seat:PX1-2026-12-24:economy")
        );
        assert_ne!(
            BucketKey::of("seat:PX1-2026-12-24:economy"),
            BucketKey::of("seat:PX1-2026-12-25:economy")
        );
    }
}

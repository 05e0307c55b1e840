//! What inventory says is left, cached for search and kept fresh by inventory's change feed.
//!
//! Search needs the counters of hundreds of buckets per query; asking inventory each time would make every search
//! a database query. Entries live in a bounded cache until inventory's change feed names their bucket (polled every
//! [`FEED_INTERVAL`]: a sold-out night leaves the results within about that long) or until [`MAX_AGE`] passes, a
//! backstop for a missed change. Buckets that do not exist are cached as absent the same way.
//!
//! A search looks up hundreds of buckets, so the cache and the answer are keyed by [`BucketKey`], a 128-bit hash
//! of the item id, rather than by the id itself: a lookup then compares 16 bytes held in the table instead of
//! following a pointer to a 30 to 45 byte string (`phoenix bench search` spent a sixth of its time there).

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
/// Two of the 1.3 million buckets of the demo dataset sharing a key is about as likely as guessing a random UUID
/// twice in a row (2^-128 per pair), and the seed keeps anyone from choosing item ids (flight numbers) that collide
/// on purpose. A collision could only mislead a search or a quote: holds are taken by inventory on the item ids
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
    cache: quick_cache::sync::Cache<BucketKey, Entry>,
    inventory: Client,
    principal: Principal,
    feed: tokio::sync::Mutex<Feed>,
    /// Bumped whenever a cached bucket is forgotten, so results computed from it can tell they are stale.
    epoch: std::sync::atomic::AtomicU64,
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
            cache: quick_cache::sync::Cache::new(CAPACITY),
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
        let mut missing = Vec::new();
        for item in items {
            let key = BucketKey::of(item);
            match self.cache.get(&key) {
                Some(entry) if entry.at.elapsed() < MAX_AGE => {
                    if let Some(counts) = entry.counts {
                        found.0.insert(key, counts);
                    }
                }
                _ => missing.push((item.as_str(), key)),
            }
        }
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
            for (_, key) in chunk {
                let counts = present.get(key).copied();
                self.cache.insert(*key, Entry { counts, at });
                if let Some(counts) = counts {
                    found.0.insert(*key, counts);
                }
            }
        }
        Ok(found)
    }

    /// Forgets items (this process changed their buckets).
    pub fn invalidate<'a>(&self, items: impl IntoIterator<Item = &'a str>) {
        // Any change counts, cached here or not: a search result may have been computed from an entry evicted since.
        let mut any = false;
        for item in items {
            self.cache.remove(&BucketKey::of(item));
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

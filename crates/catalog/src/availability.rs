//! What inventory says is left, cached for search and kept fresh by inventory's change feed.
//!
//! Search needs the counters of hundreds of buckets per query; asking inventory each time would make every search
//! a database query. Entries live in a bounded cache until inventory's change feed names their bucket (polled every
//! [`FEED_INTERVAL`]: a sold-out night leaves the results within about that long) or until [`MAX_AGE`] passes, a
//! backstop for a missed change. Buckets that do not exist are cached as absent the same way.

use std::collections::HashMap;
use std::sync::Arc;
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

#[derive(Clone, Copy)]
struct Entry {
    counts: Option<Counts>,
    at: Instant,
}

pub struct Availability {
    cache: quick_cache::sync::Cache<String, Entry>,
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
    pub async fn get(&self, items: &[String]) -> Result<HashMap<String, Counts>, Error> {
        let mut found = HashMap::with_capacity(items.len());
        let mut missing = Vec::new();
        for item in items {
            match self.cache.get(item.as_str()) {
                Some(entry) if entry.at.elapsed() < MAX_AGE => {
                    if let Some(counts) = entry.counts {
                        found.insert(item.clone(), counts);
                    }
                }
                _ => missing.push(item.clone()),
            }
        }
        missing.sort_unstable();
        missing.dedup();
        metrics::counter!("catalog_availability_lookups_total", "cache" => "hit")
            .increment((items.len() - missing.len()) as u64);
        metrics::counter!("catalog_availability_lookups_total", "cache" => "miss").increment(missing.len() as u64);
        for chunk in missing.chunks(CHUNK) {
            let buckets = self
                .inventory
                .availability(&self.principal, chunk)
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
                present.insert(bucket.item_id.to_string(), counts);
            }
            for item in chunk {
                let counts = present.get(item).copied();
                self.cache.insert(item.clone(), Entry { counts, at });
                if let Some(counts) = counts {
                    found.insert(item.clone(), counts);
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
            self.cache.remove(item);
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

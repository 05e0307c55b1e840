//! Counting searches for analytics: the search path adds one to an atomic, and a background loop writes the
//! counts as one `catalog.searches_counted.v1` per `search_count_flush_secs` in which anyone searched.

use super::*;

pub const SEARCHES_COUNTED: &str = "catalog.searches_counted.v1";

/// What was searched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SearchKind {
    Hotel,
    Flight,
}

/// Searches since the window started; a flush takes them and starts the next window.
pub(super) struct Counts {
    hotel: AtomicU64,
    flight: AtomicU64,
    /// Held through a flush: one flush at a time.
    window_start: tokio::sync::Mutex<OffsetDateTime>,
}

impl Counts {
    pub(super) fn new(now: OffsetDateTime) -> Counts {
        Counts {
            hotel: AtomicU64::new(0),
            flight: AtomicU64::new(0),
            window_start: tokio::sync::Mutex::new(now),
        }
    }

    fn counter(&self, kind: SearchKind) -> &AtomicU64 {
        match kind {
            SearchKind::Hotel => &self.hotel,
            SearchKind::Flight => &self.flight,
        }
    }
}

#[derive(Serialize)]
struct SearchesCounted {
    #[serde(with = "time::serde::rfc3339")]
    window_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    window_end: OffsetDateTime,
    hotel_searches: u64,
    flight_searches: u64,
}

impl Catalog {
    /// Counts one search (cheap: one relaxed atomic add on the search path).
    pub(crate) fn count_search(&self, kind: SearchKind) {
        self.inner.searches.counter(kind).fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the searches counted since the last flush as one event, in a transaction of its own, and starts the
    /// next window; writes nothing when nobody searched. Returns the searches written. On failure the counts are
    /// kept for the next flush.
    pub async fn flush_search_counts(&self) -> Result<u64, Error> {
        let counts = &self.inner.searches;
        let mut window_start = counts.window_start.lock().await;
        let window_end = OffsetDateTime::now_utc();
        let hotel_searches = counts.hotel.swap(0, Ordering::Relaxed);
        let flight_searches = counts.flight.swap(0, Ordering::Relaxed);
        if hotel_searches + flight_searches == 0 {
            *window_start = window_end;
            return Ok(0);
        }
        let data = SearchesCounted {
            window_start: *window_start,
            window_end,
            hotel_searches,
            flight_searches,
        };
        let written: Result<(), Error> = async {
            let event = Event::new(SOURCE, SEARCHES_COUNTED, "searches", &data)?;
            self.inner.store.append_event(&event).await
        }
        .await;
        if let Err(error) = written {
            counts.hotel.fetch_add(hotel_searches, Ordering::Relaxed);
            counts.flight.fetch_add(flight_searches, Ordering::Relaxed);
            return Err(error);
        }
        *window_start = window_end;
        Ok(hotel_searches + flight_searches)
    }

    /// Flushes the search counts every `search_count_flush_secs` until the last clone of the catalog is dropped.
    pub(super) fn spawn_search_counter(&self) {
        let weak = Arc::downgrade(&self.inner);
        // `Options::validate` bounds it; a zero would make the interval panic.
        let period = std::time::Duration::from_secs(self.inner.options.search_count_flush_secs.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let catalog = Catalog { inner };
                if let Err(error) = catalog.flush_search_counts().await {
                    tracing::warn!(error = %phoenix_api::ErrorChain(&error), "writing the search counts failed");
                }
            }
        });
    }
}

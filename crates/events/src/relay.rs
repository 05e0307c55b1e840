//! The outbox relay: one per service database, publishing what the service's transactions wrote to its outbox.
//!
//! Each round reads the oldest unpublished events (in outbox order), publishes them as one batch and then marks
//! them published. A relay that dies between the two publishes the batch again when it (or another replica)
//! resumes: the bus drops duplicates by event id, and consumers' inboxes drop any that get through. Events of a
//! transaction that rolled back were never in the outbox, so they are never published.
//!
//! Only one relay publishes a database at a time (order per subject needs a single publisher): it holds a lease
//! row, renewed while it works; replicas wait and take over when a holder stops renewing.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use phoenix_db::{Pool, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Bus, CloudEvent, Error};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayOptions {
    /// Most events per published batch.
    pub batch_size: u32,
    /// How often an idle relay looks for new events.
    pub poll_interval_ms: u64,
    /// How long a relay's claim on its database lasts without renewal.
    pub lease_secs: u64,
    /// Fault injection for crash tests: abort the process after this many published batches, before marking the
    /// last one published. Never set in production.
    pub abort_after_publishes: Option<u32>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            batch_size: 500,
            poll_interval_ms: 50,
            lease_secs: 10,
            abort_after_publishes: None,
        }
    }
}

/// Publishes one service database's outbox to the bus.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    service: &'static str,
    pool: Pool,
    bus: Bus,
    options: RelayOptions,
    holder: Uuid,
    /// Unix microseconds until which this relay holds the lease (0: not held).
    lease_until: AtomicI64,
    published_batches: AtomicU32,
}

/// The running relay loop; dropping it stops the loop.
pub struct RelayTask(tokio::task::JoinHandle<()>);

impl Drop for RelayTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Relay {
    pub fn new(service: &'static str, pool: Pool, bus: Bus, options: RelayOptions) -> Relay {
        Relay {
            inner: Arc::new(Inner {
                service,
                pool,
                bus,
                options,
                holder: Uuid::new_v4(),
                lease_until: AtomicI64::new(0),
                published_batches: AtomicU32::new(0),
            }),
        }
    }

    /// One round: publishes up to a batch of unpublished events and marks them. Returns how many it published
    /// (0 when there were none, or another relay holds the lease).
    pub async fn run_once(&self) -> Result<usize, Error> {
        let inner = &self.inner;
        let records = inner.pool.unpublished_events(inner.options.batch_size.max(1)).await?;
        if records.is_empty() || !self.hold_lease().await? {
            return Ok(0);
        }
        let seqs: Vec<i64> = records.iter().map(|r| r.seq).collect();
        let events: Vec<CloudEvent> = records.into_iter().map(CloudEvent::from).collect();
        inner.bus.publish(&events).await?;
        let published = inner.published_batches.fetch_add(1, Ordering::SeqCst) + 1;
        if inner.options.abort_after_publishes.is_some_and(|n| published >= n) {
            tracing::error!(
                service = inner.service,
                "fault injection: aborting between publish and mark"
            );
            std::process::abort();
        }
        let now = Timestamp::now();
        inner.pool.mark_published(&seqs, now).await?;
        metrics::counter!("phoenix_events_published_total", "service" => inner.service, "bus" => inner.bus.kind())
            .increment(events.len() as u64);
        let lag = metrics::histogram!("phoenix_events_relay_lag_seconds", "service" => inner.service);
        for event in &events {
            lag.record((now.datetime() - event.time).as_seconds_f64().max(0.0));
        }
        Ok(events.len())
    }

    /// Takes or renews the lease when less than half of it is left. False when another relay holds it.
    async fn hold_lease(&self) -> Result<bool, Error> {
        let inner = &self.inner;
        let now = Timestamp::now();
        let lease = time::Duration::seconds(i64::try_from(inner.options.lease_secs.max(1)).unwrap_or(10));
        if inner.lease_until.load(Ordering::SeqCst) - now.unix_micros() > lease.whole_microseconds() as i64 / 2 {
            return Ok(true);
        }
        let until = now + lease;
        let taken = phoenix_db::dispatch!(&inner.pool, conn => {
            sqlx::query(
                "INSERT INTO relay_lease (id, holder, expires_at) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE relay_lease.holder = excluded.holder OR relay_lease.expires_at < $3",
            )
            .bind(inner.holder)
            .bind(until)
            .bind(now)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(phoenix_db::Error::from)?;
        let held = taken == 1;
        inner
            .lease_until
            .store(if held { until.unix_micros() } else { 0 }, Ordering::SeqCst);
        Ok(held)
    }

    /// Runs rounds until the returned task is dropped: at once while there is a backlog, every
    /// `poll_interval_ms` when idle, with growing pauses while the bus or the database fails.
    pub fn start(self) -> RelayTask {
        RelayTask(tokio::spawn(async move {
            let idle = Duration::from_millis(self.inner.options.poll_interval_ms.max(1));
            let mut failing = Duration::ZERO;
            loop {
                match self.run_once().await {
                    Ok(n) if n >= self.inner.options.batch_size as usize => failing = Duration::ZERO,
                    Ok(_) => {
                        failing = Duration::ZERO;
                        tokio::time::sleep(idle).await;
                    }
                    Err(e) => {
                        failing = (failing * 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
                        tracing::warn!(service = self.inner.service, error = %e, retry_in_ms = failing.as_millis() as u64,
                            "outbox relay could not publish; will retry");
                        tokio::time::sleep(failing).await;
                    }
                }
            }
        }))
    }
}

//! Keeping the event tables small: published outbox rows and consumers' inbox rows are deleted once they are old
//! enough to be of no further use. Unpublished events are never deleted.
//!
//! - A published outbox row is needed by nobody once the bus has it; it is kept `published_outbox_hours` for
//!   inspection and for followers of a service's change feed (`Pool::events_after`) that fell behind.
//! - An inbox row absorbs a redelivery of its event. Redeliveries come within the bus's retention (a NATS stream's
//!   `max_age_hours`), so `inbox_hours` must be longer than that; the configuration checks it.

use std::time::Duration;

use phoenix_db::{Pool, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{Consumer, Error};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionOptions {
    /// Hours a published outbox row is kept.
    pub published_outbox_hours: u32,
    /// Hours an inbox row is kept: longer than the bus keeps messages it may redeliver.
    pub inbox_hours: u32,
    /// Seconds between two passes.
    pub interval_secs: u64,
    /// Rows one statement deletes at most (a pass repeats until less is left), so no pass holds locks for long.
    pub batch: u32,
}

impl Default for RetentionOptions {
    fn default() -> Self {
        RetentionOptions {
            published_outbox_hours: 168,
            inbox_hours: 192,
            interval_secs: 3_600,
            batch: 5_000,
        }
    }
}

impl RetentionOptions {
    /// `bus_max_age_hours`: how long the bus keeps messages it may redeliver (none for the in-process bus).
    pub fn validate(&self, bus_max_age_hours: Option<u64>) -> Result<(), String> {
        if self.published_outbox_hours == 0 || self.inbox_hours == 0 {
            return Err("published_outbox_hours and inbox_hours must be at least 1".to_owned());
        }
        if let Some(max_age) = bus_max_age_hours
            && u64::from(self.inbox_hours) <= max_age
        {
            return Err(format!(
                "inbox_hours ({}) must be longer than the bus keeps messages (bus.max_age_hours = {max_age}), or a \
                 redelivered event would be applied twice",
                self.inbox_hours
            ));
        }
        if !(1..=86_400).contains(&self.interval_secs) {
            return Err("interval_secs must be 1 to 86400".to_owned());
        }
        if !(1..=100_000).contains(&self.batch) {
            return Err("batch must be 1 to 100000".to_owned());
        }
        Ok(())
    }
}

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub outbox: u64,
    pub inbox: u64,
}

/// Prunes the outboxes of `outboxes` and the inboxes of `consumers`.
#[derive(Clone)]
pub struct Retention {
    outboxes: Vec<Pool>,
    consumers: Vec<Consumer>,
    options: RetentionOptions,
}

/// The running retention loop; dropping it stops the loop.
pub struct RetentionTask(tokio::task::JoinHandle<()>);

impl Drop for RetentionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Retention {
    pub fn new(outboxes: Vec<Pool>, consumers: Vec<Consumer>, options: RetentionOptions) -> Retention {
        Retention {
            outboxes,
            consumers,
            options,
        }
    }

    /// One pass: deletes every published outbox row and every inbox row past its age, `batch` rows at a time.
    pub async fn run_once(&self) -> Result<Pruned, Error> {
        let hours = |h: u32| time::Duration::hours(i64::from(h));
        let outbox_before =
            Timestamp::from_datetime(time::OffsetDateTime::now_utc() - hours(self.options.published_outbox_hours));
        let batch = self.options.batch.max(1);
        let mut pruned = Pruned::default();
        for pool in &self.outboxes {
            loop {
                let n = pool.prune_published(outbox_before, batch).await?;
                pruned.outbox += n;
                if n < u64::from(batch) {
                    break;
                }
            }
        }
        for consumer in &self.consumers {
            loop {
                let n = consumer.prune_inbox(hours(self.options.inbox_hours), batch).await?;
                pruned.inbox += n;
                if n < u64::from(batch) {
                    break;
                }
            }
        }
        metrics::counter!("phoenix_events_pruned_total", "table" => "outbox").increment(pruned.outbox);
        metrics::counter!("phoenix_events_pruned_total", "table" => "inbox").increment(pruned.inbox);
        Ok(pruned)
    }

    /// Runs a pass every `interval_secs` (the first one after the first interval) until the task is dropped.
    pub fn start(self) -> RetentionTask {
        RetentionTask(tokio::spawn(async move {
            let interval = Duration::from_secs(self.options.interval_secs.max(1));
            loop {
                tokio::time::sleep(interval).await;
                match self.run_once().await {
                    Ok(pruned) if pruned != Pruned::default() => {
                        tracing::info!(outbox = pruned.outbox, inbox = pruned.inbox, "old event rows pruned");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pruning old event rows failed; will try again"),
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inbox_must_outlive_the_bus() {
        let options = RetentionOptions::default();
        assert_eq!(options.validate(None), Ok(()));
        assert_eq!(options.validate(Some(168)), Ok(()));
        let error = options
            .validate(Some(192))
            .expect_err("inbox no longer than the stream");
        assert!(error.contains("inbox_hours"), "{error}");
        for bad in [
            RetentionOptions {
                batch: 0,
                ..RetentionOptions::default()
            },
            RetentionOptions {
                inbox_hours: 0,
                ..RetentionOptions::default()
            },
            RetentionOptions {
                interval_secs: 0,
                ..RetentionOptions::default()
            },
        ] {
            assert!(bad.validate(None).is_err(), "{bad:?}");
        }
    }
}

//! Effectively-once consumers. A [`Handler`] applies an event's effect inside a transaction on the consuming
//! service's own database; [`Consumer`] records the event's id in that same transaction (`inbox`), so an event
//! delivered twice has one effect. An event the handler keeps refusing is retried a bounded number of times, then
//! kept whole as a dead letter (and recorded as handled, so it does not block the events behind it); admins list
//! dead letters and replay them once the cause is fixed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use phoenix_db::{Pool, Timestamp, Tx};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{CloudEvent, Error};

/// What a consuming service does with events.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The consumer's durable name (`audit`, `notification`): its position on the bus and its inbox rows.
    fn name(&self) -> &'static str;

    /// The domains whose events it reads (`booking`, `payment`, ...): one stream per domain on the bus.
    fn domains(&self) -> &'static [&'static str];

    /// Whether it wants events of this type; others are acknowledged without effect. All of its domains' by default.
    fn wants(&self, event_type: &str) -> bool {
        let _ = event_type;
        true
    }

    /// Applies `event` inside `tx`, the transaction that also records the event as handled. Must not commit.
    async fn apply(&self, tx: &mut Tx, event: &CloudEvent) -> Result<(), HandlerError>;

    /// Applies `events`, in order, inside one transaction: the same effect as [`Handler::apply`] on each in turn,
    /// which is what it does unless a handler can write a batch more cheaply (the audit log appends a whole batch
    /// to its chain with one move of the chain's head). An error rolls the whole batch back.
    async fn apply_batch(&self, tx: &mut Tx, events: &[&CloudEvent]) -> Result<(), HandlerError> {
        for event in events {
            self.apply(tx, event).await?;
        }
        Ok(())
    }
}

/// Why a handler could not apply an event. Retried up to [`ConsumerOptions::max_attempts`] times, then the event
/// becomes a dead letter.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl HandlerError {
    /// The event cannot be applied as it is (a field missing, a rule refusing it).
    pub fn rejected(reason: impl Into<String>) -> HandlerError {
        HandlerError(reason.into())
    }
}

impl From<phoenix_db::Error> for HandlerError {
    fn from(e: phoenix_db::Error) -> HandlerError {
        HandlerError(format!("storage: {e}"))
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> HandlerError {
        HandlerError(format!("storage: {e}"))
    }
}

impl From<serde_json::Error> for HandlerError {
    fn from(e: serde_json::Error) -> HandlerError {
        HandlerError(format!("payload: {e}"))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerOptions {
    /// Attempts at one event before it becomes a dead letter.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub retry_base_ms: u64,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            max_attempts: 5,
            retry_base_ms: 20,
        }
    }
}

/// A handler bound to its database: what the bus delivers to.
#[derive(Clone)]
pub struct Consumer {
    pool: Pool,
    handler: Arc<dyn Handler>,
    options: ConsumerOptions,
}

/// What [`Consumer::apply`] did with a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Events whose effect was applied now.
    pub applied: usize,
    /// Events already handled before (redeliveries).
    pub duplicates: usize,
    /// Events of types the handler does not want.
    pub ignored: usize,
    /// Events that failed every attempt and were kept as dead letters.
    pub dead_lettered: usize,
}

/// An event a consumer gave up on.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub id: Uuid,
    pub consumer: String,
    pub event_id: Uuid,
    pub event_type: String,
    /// The whole CloudEvent.
    pub event: serde_json::Value,
    /// The last attempt's error.
    pub error: String,
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub failed_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub replayed_at: Option<time::OffsetDateTime>,
}

/// What a replay of dead letters did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Replay {
    pub replayed: usize,
    pub still_failing: usize,
}

#[derive(sqlx::FromRow)]
struct DeadLetterRow {
    id: Uuid,
    consumer: String,
    event_id: Uuid,
    event_type: String,
    event: sqlx::types::Json<serde_json::Value>,
    error: String,
    attempts: i32,
    failed_at: Timestamp,
    replayed_at: Option<Timestamp>,
}

impl From<DeadLetterRow> for DeadLetter {
    fn from(row: DeadLetterRow) -> DeadLetter {
        DeadLetter {
            id: row.id,
            consumer: row.consumer,
            event_id: row.event_id,
            event_type: row.event_type,
            event: row.event.0,
            error: row.error,
            attempts: row.attempts,
            failed_at: row.failed_at.datetime(),
            replayed_at: row.replayed_at.map(Timestamp::datetime),
        }
    }
}

impl Consumer {
    pub fn new(pool: Pool, handler: Arc<dyn Handler>, options: ConsumerOptions) -> Consumer {
        Consumer { pool, handler, options }
    }

    pub fn name(&self) -> &'static str {
        self.handler.name()
    }

    pub fn domains(&self) -> &'static [&'static str] {
        self.handler.domains()
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Whether this consumer reads `event` at all (its domain is one of the handler's).
    pub fn reads(&self, event: &CloudEvent) -> bool {
        self.domains().contains(&event.domain())
    }

    /// Applies a batch in order, each event at most once. Returns when every event is applied, known as already
    /// applied, ignored or dead-lettered; an error means the consumer's database failed and nothing of the batch
    /// after the last commit is done: deliver it again.
    ///
    /// The whole batch is tried in one transaction first (one commit for many events); if the handler refuses any
    /// event, that transaction rolls back and the events go one transaction each, with retries.
    pub async fn apply(&self, events: &[CloudEvent]) -> Result<Applied, Error> {
        let wanted: Vec<&CloudEvent> = events.iter().filter(|e| self.handler.wants(&e.event_type)).collect();
        let mut outcome = Applied {
            ignored: events.len() - wanted.len(),
            ..Applied::default()
        };
        if wanted.is_empty() {
            return Ok(outcome);
        }
        match self.apply_together(&wanted).await? {
            Ok((applied, duplicates)) => {
                outcome.applied += applied;
                outcome.duplicates += duplicates;
            }
            Err(_) => {
                for event in wanted {
                    match self.apply_alone(event).await? {
                        Single::Applied => outcome.applied += 1,
                        Single::Duplicate => outcome.duplicates += 1,
                        Single::DeadLettered => outcome.dead_lettered += 1,
                    }
                }
            }
        }
        metrics::counter!("phoenix_events_consumed_total", "consumer" => self.name()).increment(outcome.applied as u64);
        if outcome.dead_lettered > 0 {
            metrics::counter!("phoenix_events_dead_lettered_total", "consumer" => self.name())
                .increment(outcome.dead_lettered as u64);
        }
        Ok(outcome)
    }

    /// All events in one transaction: the inbox rows in one statement per chunk, then the handler's effect for the
    /// events not handled before. `Ok(Err(_))` means the handler refused one of them (rolled back).
    async fn apply_together(&self, events: &[&CloudEvent]) -> Result<Result<(usize, usize), HandlerError>, Error> {
        let mut tx = self.pool.begin().await?;
        let fresh = record_all(&mut tx, self.name(), events).await?;
        if !fresh.is_empty()
            && let Err(e) = self.handler.apply_batch(&mut tx, &fresh).await
        {
            return Ok(Err(e));
        }
        tx.commit().await?;
        Ok(Ok((fresh.len(), events.len() - fresh.len())))
    }

    async fn apply_alone(&self, event: &CloudEvent) -> Result<Single, Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = self.pool.begin().await?;
            if !record(&mut tx, self.name(), event.id).await? {
                return Ok(Single::Duplicate);
            }
            let error = match self.handler.apply(&mut tx, event).await {
                Ok(()) => {
                    tx.commit().await?;
                    return Ok(Single::Applied);
                }
                Err(e) => e,
            };
            drop(tx);
            if attempt >= self.options.max_attempts.max(1) {
                tracing::warn!(consumer = self.name(), event_id = %event.id, event_type = %event.event_type,
                    attempts = attempt, error = %error, "event dead-lettered");
                self.dead_letter(event, &error, attempt).await?;
                return Ok(Single::DeadLettered);
            }
            let delay = self.options.retry_base_ms.saturating_mul(1 << (attempt - 1).min(10));
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }

    /// Keeps `event` as a dead letter and records it as handled, in one transaction.
    async fn dead_letter(&self, event: &CloudEvent, error: &HandlerError, attempts: u32) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        if !record(&mut tx, self.name(), event.id).await? {
            return Ok(());
        }
        let envelope = serde_json::to_value(event).map_err(|e| Error::Encode(e.to_string()))?;
        phoenix_db::dispatch!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO dead_letters (id, consumer, event_id, event_type, event, error, attempts, failed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(Uuid::now_v7())
            .bind(self.name())
            .bind(event.id)
            .bind(&event.event_type)
            .bind(sqlx::types::Json(&envelope))
            .bind(&error.0)
            .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
            .bind(Timestamp::now())
            .execute(conn)
            .await
            .map(|_| ())
        })
        .map_err(phoenix_db::Error::from)?;
        tx.commit().await?;
        Ok(())
    }

    /// This consumer's dead letters, oldest first; replayed ones too when `include_replayed`.
    pub async fn dead_letters(&self, include_replayed: bool, limit: u32) -> Result<Vec<DeadLetter>, Error> {
        dead_letters(&self.pool, self.name(), include_replayed, limit).await
    }

    /// Applies every open dead letter again (once the cause is fixed): each one that succeeds is marked replayed in
    /// the transaction of its effect; one that fails again stays open with its new error.
    pub async fn replay_dead_letters(&self) -> Result<Replay, Error> {
        let mut replay = Replay::default();
        for letter in self.dead_letters(false, 10_000).await? {
            let event: CloudEvent = match serde_json::from_value(letter.event.clone()) {
                Ok(event) => event,
                Err(e) => {
                    self.note_failure(letter.id, &format!("payload: {e}")).await?;
                    replay.still_failing += 1;
                    continue;
                }
            };
            let mut tx = self.pool.begin().await?;
            match self.handler.apply(&mut tx, &event).await {
                Ok(()) => {
                    phoenix_db::dispatch!(&mut tx, conn => {
                        sqlx::query("UPDATE dead_letters SET replayed_at = $1 WHERE id = $2 AND replayed_at IS NULL")
                            .bind(Timestamp::now())
                            .bind(letter.id)
                            .execute(conn)
                            .await
                            .map(|_| ())
                    })
                    .map_err(phoenix_db::Error::from)?;
                    tx.commit().await?;
                    replay.replayed += 1;
                }
                Err(e) => {
                    drop(tx);
                    self.note_failure(letter.id, &e.0).await?;
                    replay.still_failing += 1;
                }
            }
        }
        Ok(replay)
    }

    async fn note_failure(&self, id: Uuid, error: &str) -> Result<(), Error> {
        phoenix_db::dispatch!(&self.pool, conn => {
            sqlx::query("UPDATE dead_letters SET error = $1, attempts = attempts + 1 WHERE id = $2")
                .bind(error)
                .bind(id)
                .execute(conn)
                .await
                .map(|_| ())
        })
        .map_err(phoenix_db::Error::from)?;
        Ok(())
    }

    /// Forgets up to `limit` inbox rows older than `age`, oldest first, and returns how many. Redeliveries come
    /// within the bus's retention (a NATS stream's `max_age_hours`; in-process, only unpublished outbox rows are
    /// delivered again), so ids older than that only cost space.
    pub async fn prune_inbox(&self, age: time::Duration, limit: u32) -> Result<u64, Error> {
        let cutoff = Timestamp::from_datetime(time::OffsetDateTime::now_utc() - age);
        let removed = phoenix_db::dispatch!(&self.pool, conn => {
            sqlx::query(
                "DELETE FROM inbox WHERE consumer = $1 AND event_id IN (
                     SELECT event_id FROM inbox WHERE consumer = $1 AND applied_at < $2 ORDER BY applied_at LIMIT $3)",
            )
            .bind(self.name())
            .bind(cutoff)
            .bind(i64::from(limit))
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(phoenix_db::Error::from)?;
        Ok(removed)
    }
}

/// The dead letters of the consumer called `consumer` in the consuming service's database `pool`, oldest first;
/// replayed ones too when `include_replayed`. For a service's admin API, which has the pool but not the consumer.
pub async fn dead_letters(
    pool: &Pool,
    consumer: &str,
    include_replayed: bool,
    limit: u32,
) -> Result<Vec<DeadLetter>, Error> {
    let rows: Vec<DeadLetterRow> = phoenix_db::dispatch!(pool, conn => {
        sqlx::query_as(
            "SELECT id, consumer, event_id, event_type, event, error, attempts, failed_at, replayed_at
             FROM dead_letters WHERE consumer = $1 AND ($2 OR replayed_at IS NULL)
             ORDER BY failed_at, id LIMIT $3",
        )
        .bind(consumer)
        .bind(include_replayed)
        .bind(i64::from(limit))
        .fetch_all(conn)
        .await
    })
    .map_err(phoenix_db::Error::from)?;
    Ok(rows.into_iter().map(DeadLetter::from).collect())
}

enum Single {
    Applied,
    Duplicate,
    DeadLettered,
}

/// Inbox rows one statement writes: three parameters each, far below either engine's limit.
const RECORD_CHUNK: usize = 1_000;

/// Records that `consumer` handled each of `events`, and returns those it had not handled before, in order (an id
/// repeated within the batch counts once, at its first place).
async fn record_all<'e>(tx: &mut Tx, consumer: &str, events: &[&'e CloudEvent]) -> Result<Vec<&'e CloudEvent>, Error> {
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    let distinct: Vec<&CloudEvent> = events.iter().copied().filter(|e| seen.insert(e.id)).collect();
    let now = Timestamp::now();
    let mut inserted = std::collections::HashSet::with_capacity(distinct.len());
    for chunk in distinct.chunks(RECORD_CHUNK) {
        let ids: Vec<Uuid> = phoenix_db::dispatch!(&mut *tx, conn => {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO inbox (consumer, event_id, applied_at) ");
            q.push_values(chunk, |mut row, event| {
                row.push_bind(consumer).push_bind(event.id).push_bind(now);
            });
            q.push(" ON CONFLICT DO NOTHING RETURNING event_id");
            q.build_query_scalar().fetch_all(conn).await
        })
        .map_err(phoenix_db::Error::from)?;
        inserted.extend(ids);
    }
    Ok(distinct.into_iter().filter(|e| inserted.contains(&e.id)).collect())
}

/// Records that `consumer` handled `event_id`; false when it already had.
async fn record(tx: &mut Tx, consumer: &str, event_id: Uuid) -> Result<bool, Error> {
    let inserted = phoenix_db::dispatch!(tx, conn => {
        sqlx::query("INSERT INTO inbox (consumer, event_id, applied_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(consumer)
            .bind(event_id)
            .bind(Timestamp::now())
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
    })
    .map_err(phoenix_db::Error::from)?;
    Ok(inserted == 1)
}

use serde::Serialize;
use uuid::Uuid;

use crate::{Error, Pool, Timestamp, Tx};

/// A domain event, written to the outbox by the transaction that made the change (CloudEvents-shaped: `id`,
/// `source`, `type`, `subject`, `time`, `data`). The relay that publishes the outbox to the bus reads it back as an
/// [`OutboxRecord`].
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Uuid,
    /// The service that wrote it, for example `phoenix.identity`.
    pub source: &'static str,
    /// Versioned type, for example `identity.user_registered.v1`.
    pub event_type: &'static str,
    /// The entity the event is about; the bus keeps order per subject.
    pub subject: String,
    pub data: serde_json::Value,
    pub correlation_id: Option<String>,
    pub traceparent: Option<String>,
    pub occurred_at: Timestamp,
}

impl Event {
    pub fn new(
        source: &'static str,
        event_type: &'static str,
        subject: impl Into<String>,
        data: &impl Serialize,
    ) -> Result<Event, Error> {
        Ok(Event {
            id: Uuid::now_v7(),
            source,
            event_type,
            subject: subject.into(),
            data: serde_json::to_value(data).map_err(Error::EncodeEvent)?,
            correlation_id: None,
            traceparent: phoenix_api::trace::current(),
            occurred_at: Timestamp::now(),
        })
    }

    pub fn with_correlation_id(mut self, correlation_id: Option<String>) -> Event {
        self.correlation_id = correlation_id;
        self
    }
}

/// An event as stored in the outbox, in commit-sequence order.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRecord {
    pub seq: i64,
    pub id: Uuid,
    pub source: String,
    pub event_type: String,
    pub subject: String,
    pub data: sqlx::types::Json<serde_json::Value>,
    pub correlation_id: Option<String>,
    pub traceparent: Option<String>,
    pub occurred_at: Timestamp,
    pub published_at: Option<Timestamp>,
}

impl Tx {
    /// Writes `event` to the outbox as part of this transaction: it becomes visible exactly when the change does.
    pub async fn append_event(&mut self, event: &Event) -> Result<(), Error> {
        match self {
            Tx::Sqlite(tx) => {
                sqlx::query(
                    "INSERT INTO outbox (id, source, event_type, subject, data, correlation_id, traceparent, occurred_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(event.id)
                .bind(event.source)
                .bind(event.event_type)
                .bind(&event.subject)
                .bind(sqlx::types::Json(&event.data))
                .bind(&event.correlation_id)
                .bind(&event.traceparent)
                .bind(event.occurred_at)
                .execute(&mut **tx)
                .await?;
            }
            Tx::Postgres(tx) => append_chunk_pg(tx, std::slice::from_ref(event)).await?,
        }
        Ok(())
    }

    /// Writes many events as part of this transaction, in order: one statement on PostgreSQL (this is on the
    /// inventory engine's hot path), one prepared insert per event on SQLite (in-process, so just as cheap).
    pub async fn append_events(&mut self, events: &[Event]) -> Result<(), Error> {
        match self {
            Tx::Sqlite(_) => {
                for event in events {
                    self.append_event(event).await?;
                }
            }
            Tx::Postgres(tx) => {
                let size = |e: &Event| 110 + e.event_type.len() + e.subject.len() + e.data.to_string().len();
                for chunk in chunks_under(events, crate::MAX_MESSAGE_BYTES, size) {
                    append_chunk_pg(tx, chunk).await?;
                }
            }
        }
        Ok(())
    }
}

impl Pool {
    /// Up to `limit` events written after `seq`, in sequence order, published or not: a service's own change feed.
    /// The position of the newest event in the outbox (0 when it is empty): where a new follower starts.
    pub async fn last_event_seq(&self) -> Result<i64, Error> {
        let seq: Option<i64> =
            crate::dispatch!(self, conn => sqlx::query_scalar("SELECT MAX(seq) FROM outbox").fetch_one(conn).await)?;
        Ok(seq.unwrap_or(0))
    }

    pub async fn events_after(&self, seq: i64, limit: u32) -> Result<Vec<OutboxRecord>, Error> {
        let rows = crate::dispatch!(self, conn => {
            sqlx::query_as::<_, OutboxRecord>(
                "SELECT seq, id, source, event_type, subject, data, correlation_id, traceparent, occurred_at, published_at
                 FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await
        })?;
        Ok(rows)
    }

    /// Up to `limit` events not yet published, oldest first.
    pub async fn unpublished_events(&self, limit: u32) -> Result<Vec<OutboxRecord>, Error> {
        let rows = crate::dispatch!(self, conn => {
            sqlx::query_as::<_, OutboxRecord>(
                "SELECT seq, id, source, event_type, subject, data, correlation_id, traceparent, occurred_at, published_at
                 FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await
        })?;
        Ok(rows)
    }
}

impl Pool {
    /// Marks the events at positions `seqs` as published at `at` (the relay, once the bus has them).
    pub async fn mark_published(&self, seqs: &[i64], at: Timestamp) -> Result<(), Error> {
        match self {
            Pool::Postgres(pool) => {
                sqlx::query("UPDATE outbox SET published_at = $1 WHERE seq = ANY($2) AND published_at IS NULL")
                    .bind(at)
                    .bind(seqs)
                    .execute(pool)
                    .await?;
            }
            Pool::Sqlite(pool) => {
                let list = serde_json::to_string(seqs).map_err(Error::EncodeEvent)?;
                sqlx::query(
                    "UPDATE outbox SET published_at = $1
                     WHERE seq IN (SELECT value FROM json_each($2)) AND published_at IS NULL",
                )
                .bind(at)
                .bind(list)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Deletes up to `limit` events published before `before`, oldest first, and returns how many. Unpublished
    /// events are never deleted, however old.
    pub async fn prune_published(&self, before: Timestamp, limit: u32) -> Result<u64, Error> {
        let removed = crate::dispatch!(self, conn => {
            sqlx::query(
                "DELETE FROM outbox WHERE seq IN (
                     SELECT seq FROM outbox WHERE published_at IS NOT NULL AND published_at < $1 ORDER BY seq LIMIT $2)",
            )
            .bind(before)
            .bind(i64::from(limit))
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(removed)
    }

    /// How many events wait to be published, and when the oldest of them was written.
    pub async fn unpublished_backlog(&self) -> Result<(i64, Option<Timestamp>), Error> {
        let row: (i64, Option<Timestamp>) = crate::dispatch!(self, conn => {
            sqlx::query_as("SELECT COUNT(*), MIN(occurred_at) FROM outbox WHERE published_at IS NULL")
                .fetch_one(conn)
                .await
        })?;
        Ok(row)
    }
}

/// Splits `items` into runs whose estimated encoded size stays under `limit` bytes (a run has at least one item).
pub fn chunks_under<T>(items: &[T], limit: usize, size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let n = size(item);
        if i > start && bytes + n > limit {
            chunks.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < items.len() {
        chunks.push(&items[start..]);
    }
    chunks
}

/// A query on PostgreSQL, as [`bind_event_pg`] extends it.
pub type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// PostgreSQL: the outbox insert of one event as a `WITH` part of the statement that makes its change, so the
/// change and its event are one round trip and need no transaction around them. The part, named `event`, writes
/// the event once for each row `source` (an earlier part that returns one row when the change was made, none when
/// it was not) returns. Its values are parameters `$first` to `$first + 7`: bind them with [`bind_event_pg`]
/// after the parameters before `$first`.
pub fn event_part_pg(first: usize, source: &str) -> String {
    let p: Vec<String> = (first..first + 8).map(|n| format!("${n}")).collect();
    format!(
        "event AS (INSERT INTO outbox (id, source, event_type, subject, data, correlation_id, traceparent, occurred_at)
             SELECT {}, {}, {}, {}, {}::json, {}, {}, {} FROM {source})",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
    )
}

/// Binds `event`'s values in the order [`event_part_pg`] takes them.
pub fn bind_event_pg<'q>(query: PgQuery<'q>, event: &'q Event) -> PgQuery<'q> {
    query
        .bind(event.id)
        .bind(event.source)
        .bind(event.event_type)
        .bind(event.subject.as_str())
        .bind(event.data.to_string())
        .bind(event.correlation_id.as_deref())
        .bind(event.traceparent.as_deref())
        .bind(event.occurred_at)
}

async fn append_chunk_pg(tx: &mut sqlx::PgConnection, events: &[Event]) -> Result<(), Error> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let sources: Vec<&str> = events.iter().map(|e| e.source).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type).collect();
    let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    let data: Vec<String> = events.iter().map(|e| e.data.to_string()).collect();
    let correlation: Vec<Option<&str>> = events.iter().map(|e| e.correlation_id.as_deref()).collect();
    let trace: Vec<Option<&str>> = events.iter().map(|e| e.traceparent.as_deref()).collect();
    let at: Vec<Timestamp> = events.iter().map(|e| e.occurred_at).collect();
    sqlx::query(
        "INSERT INTO outbox (id, source, event_type, subject, data, correlation_id, traceparent, occurred_at)
         SELECT u.id, u.source, u.event_type, u.subject, u.data::json, u.correlation_id, u.traceparent, u.occurred_at
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::timestamptz[])
             AS u(id, source, event_type, subject, data, correlation_id, traceparent, occurred_at)",
    )
    .bind(ids)
    .bind(sources)
    .bind(types)
    .bind(subjects)
    .bind(data)
    .bind(correlation)
    .bind(trace)
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::chunks_under;

    #[test]
    fn chunks_stay_under_the_limit_and_keep_order() {
        let sizes = [10, 10, 10, 25, 5, 40, 1];
        let chunks = chunks_under(&sizes, 30, |n| *n);
        assert_eq!(chunks, vec![&[10, 10, 10][..], &[25, 5][..], &[40][..], &[1][..]]);
        assert!(chunks_under(&[] as &[usize], 30, |n| *n).is_empty());
    }

    #[tokio::test]
    async fn events_written_in_a_trace_scope_carry_its_traceparent() {
        use phoenix_api::trace;
        let outside = crate::Event::new("phoenix.test", "test.happened.v1", "s", &1).expect("event");
        assert_eq!(outside.traceparent, None);
        let traceparent = trace::child_of(None);
        let inside = trace::scope(traceparent.clone(), async {
            crate::Event::new("phoenix.test", "test.happened.v1", "s", &1).expect("event")
        })
        .await;
        assert_eq!(inside.traceparent, Some(traceparent));
    }
}

//! Stored responses of `Idempotency-Key` requests (Stripe's semantics): the first response for a (scope, key) is
//! saved in the same transaction as the change it reports and replayed to retries; a retry with a different body
//! is refused. The scope names the caller and the operation (`inventory.hold:<principal>`), so two callers' keys
//! never meet. Records older than a day are pruned.

use crate::{Error, Pool, Timestamp, Tx, dispatch};

/// How long a stored response is replayed.
pub const RETENTION: time::Duration = time::Duration::hours(24);

/// A stored first response.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Record {
    pub scope: String,
    pub key: String,
    pub request_hash: Vec<u8>,
    pub status_code: i32,
    pub response: sqlx::types::Json<serde_json::Value>,
    pub created_at: Timestamp,
}

impl Record {
    pub fn new(
        scope: String,
        key: String,
        request_hash: Vec<u8>,
        status_code: u16,
        response: serde_json::Value,
    ) -> Record {
        Record {
            scope,
            key,
            request_hash,
            status_code: i32::from(status_code),
            response: sqlx::types::Json(response),
            created_at: Timestamp::now(),
        }
    }
}

/// What a retry gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Never seen: do the work.
    New,
    /// Seen with the same request: answer this again.
    Same(Record),
    /// Seen with a different request under the same key.
    Mismatch,
}

const LOOKUP: &str = "SELECT scope, key, request_hash, status_code, response, created_at FROM idempotency_keys
    WHERE scope = $1 AND key = $2 AND created_at > $3";

impl Pool {
    /// Looks up a key; `request_hash` says whether a found record belongs to the same request.
    pub async fn idempotency_replay(&self, scope: &str, key: &str, request_hash: &[u8]) -> Result<Replay, Error> {
        let since = Timestamp::now() - RETENTION;
        let record: Option<Record> = dispatch!(self, conn => {
            sqlx::query_as(LOOKUP).bind(scope).bind(key).bind(since).fetch_optional(conn).await
        })?;
        Ok(match record {
            None => Replay::New,
            Some(record) if record.request_hash == request_hash => Replay::Same(record),
            Some(_) => Replay::Mismatch,
        })
    }

    /// Deletes records past retention; returns how many.
    pub async fn prune_idempotency(&self, now: Timestamp) -> Result<u64, Error> {
        let cutoff = now - RETENTION;
        let n = dispatch!(self, conn => {
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at <= $1")
                .bind(cutoff)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(n)
    }
}

impl Tx {
    /// The live stored response for a key, read inside this transaction.
    pub async fn idempotency_record(&mut self, scope: &str, key: &str) -> Result<Option<Record>, Error> {
        let since = Timestamp::now() - RETENTION;
        let record = dispatch!(self, conn => {
            sqlx::query_as(LOOKUP).bind(scope).bind(key).bind(since).fetch_optional(conn).await
        })?;
        Ok(record)
    }

    /// Saves a first response in this transaction. False when the key was taken meanwhile (another request with
    /// it committed first): the caller must not report its own work as done under that key.
    pub async fn save_idempotency(&mut self, record: &Record) -> Result<bool, Error> {
        // An expired record under the same key gives way to the new one.
        let cutoff = record.created_at - RETENTION;
        let inserted = dispatch!(self, conn => {
            sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND created_at <= $3")
                .bind(&record.scope)
                .bind(&record.key)
                .bind(cutoff)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope, key) DO NOTHING",
            )
            .bind(&record.scope)
            .bind(&record.key)
            .bind(&record.request_hash)
            .bind(record.status_code)
            .bind(&record.response)
            .bind(record.created_at)
            .execute(&mut *conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(inserted == 1)
    }
}

//! The saga service's SQL: one text per statement for both engines. Public for the contract suite, which races
//! instances for leases directly.

use phoenix_booking::orchestration::SagaKind;
use phoenix_db::{MAX_MESSAGE_BYTES, Pool, Timestamp, Tx, chunks_under, dispatch};
use sqlx::types::Json;
use uuid::Uuid;

use crate::Error;
use crate::saga::{Data, Saga, State, StepRecord};

#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

const COLUMNS: &str = "id, kind, booking_id, state, step, undo_step, attempts, data, last_error, deadline_at,
    next_run_at, lease_owner, lease_until, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    kind: String,
    booking_id: Uuid,
    state: String,
    step: i32,
    undo_step: i32,
    attempts: i32,
    data: Json<Data>,
    last_error: Option<String>,
    deadline_at: Option<Timestamp>,
    next_run_at: Timestamp,
    lease_owner: Option<Uuid>,
    lease_until: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl TryFrom<Row> for Saga {
    type Error = Error;

    fn try_from(row: Row) -> Result<Saga, Error> {
        let kind = match row.kind.as_str() {
            "booking" => SagaKind::Booking,
            "cancellation" => SagaKind::Cancellation,
            _ => return Err(Error::Corrupt { what: "saga kind" }),
        };
        Ok(Saga {
            id: row.id,
            kind,
            booking_id: row.booking_id,
            state: State::parse(&row.state).ok_or(Error::Corrupt { what: "saga state" })?,
            step: row.step as usize,
            undo_step: row.undo_step as usize,
            attempts: row.attempts as u32,
            data: row.data.0,
            last_error: row.last_error,
            deadline_at: row.deadline_at,
            next_run_at: row.next_run_at,
            lease_owner: row.lease_owner,
            lease_until: row.lease_until,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct StepRow {
    seq: i32,
    step: String,
    direction: String,
    attempt: i32,
    outcome: String,
    error: Option<String>,
    at: Timestamp,
}

impl Store {
    pub fn new(pool: Pool) -> Store {
        Store { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Creates the sagas that do not exist yet (one per booking and kind), leased to `owner`; returns the ids of
    /// those it created. Requests already turned into sagas are skipped: taking a request twice is harmless.
    pub async fn create(&self, sagas: &[Saga], owner: Uuid, lease_until: Timestamp) -> Result<Vec<Uuid>, Error> {
        let documents = sagas
            .iter()
            .map(|s| serde_json::to_string(&s.data))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| Error::Corrupt { what: "saga data" })?;
        let mut tx = self.pool.begin().await?;
        let mut created = Vec::new();
        match &mut tx {
            // One statement per message-sized chunk on PostgreSQL.
            Tx::Postgres(conn) => {
                let all: Vec<usize> = (0..sagas.len()).collect();
                for chunk in chunks_under(&all, MAX_MESSAGE_BYTES, |&i| documents[i].len() + 128) {
                    let these: Vec<&Saga> = chunk.iter().map(|&i| &sagas[i]).collect();
                    let ids: Vec<Uuid> = sqlx::query_scalar(
                        "INSERT INTO sagas (id, kind, booking_id, state, step, undo_step, attempts, data, deadline_at,
                                            next_run_at, lease_owner, lease_until, created_at, updated_at)
                         SELECT u.id, u.kind, u.booking_id, u.state, 0, 0, 0, u.data::json, u.deadline_at,
                                u.created_at, $7, $8, u.created_at, u.created_at
                         FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[],
                                     $9::timestamptz[])
                             AS u(id, kind, booking_id, state, data, deadline_at, created_at)
                         ON CONFLICT (booking_id, kind) DO NOTHING
                         RETURNING id",
                    )
                    .bind(these.iter().map(|s| s.id).collect::<Vec<_>>())
                    .bind(these.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>())
                    .bind(these.iter().map(|s| s.booking_id).collect::<Vec<_>>())
                    .bind(these.iter().map(|s| s.state.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|&i| documents[i].as_str()).collect::<Vec<_>>())
                    .bind(these.iter().map(|s| s.deadline_at).collect::<Vec<_>>())
                    .bind(owner)
                    .bind(lease_until)
                    .bind(these.iter().map(|s| s.created_at).collect::<Vec<_>>())
                    .fetch_all(&mut **conn)
                    .await?;
                    created.extend(ids);
                }
            }
            Tx::Sqlite(conn) => {
                for (saga, document) in sagas.iter().zip(&documents) {
                    let inserted = sqlx::query(
                        "INSERT INTO sagas (id, kind, booking_id, state, step, undo_step, attempts, data, deadline_at,
                                            next_run_at, lease_owner, lease_until, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, 0, 0, 0, $5, $6, $7, $8, $9, $7, $7)
                         ON CONFLICT (booking_id, kind) DO NOTHING",
                    )
                    .bind(saga.id)
                    .bind(saga.kind.as_str())
                    .bind(saga.booking_id)
                    .bind(saga.state.as_str())
                    .bind(document)
                    .bind(saga.deadline_at)
                    .bind(saga.created_at)
                    .bind(owner)
                    .bind(lease_until)
                    .execute(&mut **conn)
                    .await?
                    .rows_affected();
                    if inserted == 1 {
                        created.push(saga.id);
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(created)
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Saga>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM sagas WHERE id = $1");
        let row: Option<Row> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await
        })?;
        row.map(Saga::try_from).transpose()
    }

    /// The sagas of one booking, oldest first.
    pub async fn of_booking(&self, booking_id: Uuid) -> Result<Vec<Saga>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM sagas WHERE booking_id = $1 ORDER BY created_at, id");
        let rows: Vec<Row> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(booking_id).fetch_all(conn).await
        })?;
        rows.into_iter().map(Saga::try_from).collect()
    }

    pub async fn steps(&self, saga_id: Uuid) -> Result<Vec<StepRecord>, Error> {
        let rows: Vec<StepRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(
                "SELECT seq, step, direction, attempt, outcome, error, at FROM saga_steps
                 WHERE saga_id = $1 ORDER BY seq",
            )
            .bind(saga_id)
            .fetch_all(conn)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| StepRecord {
                seq: r.seq as u32,
                step: r.step,
                direction: r.direction,
                attempt: r.attempt as u32,
                outcome: r.outcome,
                error: r.error,
                at: r.at,
            })
            .collect())
    }

    /// Takes or renews the lease of one saga for `owner`: true when `owner` holds it now.
    pub async fn lease(&self, id: Uuid, owner: Uuid, now: Timestamp, until: Timestamp) -> Result<bool, Error> {
        let n = dispatch!(&self.pool, conn => {
            sqlx::query(
                "UPDATE sagas SET lease_owner = $2, lease_until = $4
                 WHERE id = $1 AND state IN ('running', 'compensating')
                   AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until < $3)",
            )
            .bind(id)
            .bind(owner)
            .bind(now)
            .bind(until)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Leases up to `limit` sagas that are due (their timer has fired) and not driven by a live owner. The lease
    /// condition is repeated on the row being updated, so two instances claiming at once never both win one saga
    /// (PostgreSQL re-checks it against the row's latest version; SQLite has one writer).
    pub async fn claim_due(
        &self,
        owner: Uuid,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Uuid>, Error> {
        let ids: Vec<Uuid> = dispatch!(&self.pool, conn => {
            sqlx::query_scalar(
                "UPDATE sagas SET lease_owner = $1, lease_until = $3
                 WHERE id IN (SELECT id FROM sagas
                              WHERE state IN ('running', 'compensating') AND next_run_at <= $2
                                AND (lease_owner IS NULL OR lease_until < $2)
                              ORDER BY next_run_at LIMIT $4)
                   AND (lease_owner IS NULL OR lease_until < $2)
                 RETURNING id",
            )
            .bind(owner)
            .bind(now)
            .bind(until)
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await
        })?;
        Ok(ids)
    }

    /// Saves a saga's progress and the attempt that made it, in one transaction, if `owner` still holds the lease,
    /// and renews the lease until `lease_until` (a finished saga gives it up). False when the lease was lost
    /// (another instance took over): the caller must stop driving the saga.
    pub async fn save(
        &self,
        saga: &Saga,
        owner: Uuid,
        lease_until: Timestamp,
        record: &StepRecord,
    ) -> Result<bool, Error> {
        let save = Save {
            saga: saga.clone(),
            owner,
            lease_until,
            record: record.clone(),
        };
        let saved = self.save_many(std::slice::from_ref(&save)).await?;
        Ok(saved.first().copied().unwrap_or(false))
    }

    /// `saves` in one transaction if it can, else one by one: if the batch fails as a whole (a deadlock, a dropped
    /// connection, one save the database refuses), each save is tried on its own, so one bad save cannot fail the
    /// others. One result per save, in order.
    pub async fn save_batch(&self, saves: &[Save]) -> Vec<Result<bool, Error>> {
        match self.save_many(saves).await {
            Ok(saved) => saved.into_iter().map(Ok).collect(),
            Err(error) if saves.len() > 1 => {
                tracing::warn!(saves = saves.len(), error = %phoenix_api::ErrorChain(&error),
                    "saving a batch of sagas failed; saving them one by one");
                let mut results = Vec::with_capacity(saves.len());
                for save in saves {
                    results.push(self.save(&save.saga, save.owner, save.lease_until, &save.record).await);
                }
                results
            }
            Err(error) => vec![Err(error)],
        }
    }

    /// [`save`](Self::save) for many sagas in one transaction (the orchestrator's group commit): one answer per
    /// save, in order. A save whose lease was lost writes nothing and does not stop the others. On PostgreSQL each
    /// table gets one statement per batch; a saga named twice is saved in order, in two rounds.
    pub async fn save_many(&self, saves: &[Save]) -> Result<Vec<bool>, Error> {
        let documents = saves
            .iter()
            .map(|s| serde_json::to_string(&s.saga.data))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| Error::Corrupt { what: "saga data" })?;
        let mut saved = vec![false; saves.len()];
        let mut tx = self.pool.begin().await?;
        for round in rounds(saves) {
            match &mut tx {
                Tx::Postgres(conn) => {
                    let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
                    let size = |&i: &usize| {
                        documents[i].len() + text(&saves[i].saga.last_error) + text(&saves[i].record.error) + 256
                    };
                    for chunk in chunks_under(&round, MAX_MESSAGE_BYTES, size) {
                        save_chunk_pg(conn, saves, &documents, chunk, &mut saved).await?;
                    }
                }
                Tx::Sqlite(_) => {
                    for &i in &round {
                        saved[i] = save_one(&mut tx, &saves[i], &documents[i]).await?;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(saved)
    }

    /// Gives up a lease so the durable timer (any instance's recovery loop) resumes the saga when it is due.
    pub async fn release_lease(&self, id: Uuid, owner: Uuid) -> Result<(), Error> {
        dispatch!(&self.pool, conn => {
            sqlx::query("UPDATE sagas SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
                .bind(id)
                .bind(owner)
                .execute(conn)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Counts sagas per state, for metrics and tests.
    pub async fn count_by_state(&self) -> Result<Vec<(String, i64)>, Error> {
        let rows: Vec<(String, i64)> = dispatch!(&self.pool, conn => {
            sqlx::query_as("SELECT state, COUNT(*) FROM sagas GROUP BY state ORDER BY state").fetch_all(conn).await
        })?;
        Ok(rows)
    }
}

/// One saga's progress to save: its state, the lease it renews, and the attempt that made it.
#[derive(Debug, Clone)]
pub struct Save {
    pub saga: Saga,
    pub owner: Uuid,
    pub lease_until: Timestamp,
    pub record: StepRecord,
}

/// The saves split into rounds in which each saga appears once (a step's number is counted from those already
/// written, so two steps of one saga must not be numbered by the same statement). Usually one round.
fn rounds(saves: &[Save]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut round_of: std::collections::HashMap<Uuid, usize> = std::collections::HashMap::new();
    for (i, save) in saves.iter().enumerate() {
        let round = round_of.entry(save.saga.id).and_modify(|r| *r += 1).or_insert(0);
        if *round == rounds.len() {
            rounds.push(Vec::new());
        }
        rounds[*round].push(i);
    }
    rounds
}

const UPDATE_ONE: &str = "UPDATE sagas SET state = $3, step = $4, undo_step = $5, attempts = $6, data = $7,
        last_error = $8, deadline_at = $9, next_run_at = $10, updated_at = $11,
        lease_owner = CASE WHEN $12 THEN NULL ELSE lease_owner END,
        lease_until = CASE WHEN $12 THEN NULL ELSE $13 END
    WHERE id = $1 AND lease_owner = $2";

const INSERT_STEP: &str = "INSERT INTO saga_steps (saga_id, seq, step, direction, attempt, outcome, error, at)
    VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM saga_steps WHERE saga_id = $1), $2, $3, $4, $5, $6, $7)";

/// One save, statement by statement (SQLite, where a statement costs microseconds and there are no arrays).
async fn save_one(tx: &mut Tx, save: &Save, document: &str) -> Result<bool, Error> {
    let Save {
        saga,
        owner,
        lease_until,
        record,
    } = save;
    let n = dispatch!(&mut *tx, conn => {
        sqlx::query(UPDATE_ONE)
            .bind(saga.id)
            .bind(owner)
            .bind(saga.state.as_str())
            .bind(saga.step as i32)
            .bind(saga.undo_step as i32)
            .bind(saga.attempts as i32)
            .bind(document)
            .bind(&saga.last_error)
            .bind(saga.deadline_at)
            .bind(saga.next_run_at)
            .bind(saga.updated_at)
            .bind(saga.state.is_final())
            .bind(lease_until)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
    })?;
    if n != 1 {
        return Ok(false);
    }
    dispatch!(&mut *tx, conn => {
        sqlx::query(INSERT_STEP)
            .bind(saga.id)
            .bind(&record.step)
            .bind(&record.direction)
            .bind(record.attempt as i32)
            .bind(&record.outcome)
            .bind(&record.error)
            .bind(record.at)
            .execute(conn)
            .await
            .map(|_| ())
    })?;
    Ok(true)
}

/// Saves of distinct sagas in two statements: every saga row whose lease is still the saver's, then a step
/// record for each saga that was saved.
async fn save_chunk_pg(
    conn: &mut sqlx::PgConnection,
    saves: &[Save],
    documents: &[String],
    chunk: &[usize],
    saved: &mut [bool],
) -> Result<(), Error> {
    let these: Vec<&Save> = chunk.iter().map(|&i| &saves[i]).collect();
    let ids: Vec<Uuid> = these.iter().map(|s| s.saga.id).collect();
    let updated: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE sagas s SET state = u.state, step = u.step, undo_step = u.undo_step, attempts = u.attempts,
             data = u.data::json, last_error = u.last_error, deadline_at = u.deadline_at,
             next_run_at = u.next_run_at, updated_at = u.updated_at,
             lease_owner = CASE WHEN u.finished THEN NULL ELSE s.lease_owner END,
             lease_until = CASE WHEN u.finished THEN NULL ELSE u.lease_until END
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int4[], $5::int4[], $6::int4[], $7::text[], $8::text[],
                     $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::bool[], $13::timestamptz[])
             AS u(id, owner, state, step, undo_step, attempts, data, last_error, deadline_at, next_run_at,
                  updated_at, finished, lease_until)
         WHERE s.id = u.id AND s.lease_owner = u.owner
         RETURNING s.id",
    )
    // Planned for each batch: a cached generic plan chosen while `sagas` was still small scans the whole table
    // (in a fresh database, until autovacuum's first analyze), and this statement runs for every step of every saga.
    .persistent(false)
    .bind(&ids)
    .bind(these.iter().map(|s| s.owner).collect::<Vec<_>>())
    .bind(these.iter().map(|s| s.saga.state.as_str()).collect::<Vec<_>>())
    .bind(these.iter().map(|s| s.saga.step as i32).collect::<Vec<_>>())
    .bind(these.iter().map(|s| s.saga.undo_step as i32).collect::<Vec<_>>())
    .bind(these.iter().map(|s| s.saga.attempts as i32).collect::<Vec<_>>())
    .bind(chunk.iter().map(|&i| documents[i].as_str()).collect::<Vec<_>>())
    .bind(these.iter().map(|s| s.saga.last_error.as_deref()).collect::<Vec<_>>())
    .bind(these.iter().map(|s| s.saga.deadline_at).collect::<Vec<_>>())
    .bind(these.iter().map(|s| s.saga.next_run_at).collect::<Vec<_>>())
    .bind(these.iter().map(|s| s.saga.updated_at).collect::<Vec<_>>())
    .bind(these.iter().map(|s| s.saga.state.is_final()).collect::<Vec<_>>())
    .bind(these.iter().map(|s| s.lease_until).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let kept: Vec<usize> = chunk
        .iter()
        .copied()
        .filter(|&i| updated.contains(&saves[i].saga.id))
        .collect();
    if kept.is_empty() {
        return Ok(());
    }
    let records: Vec<&StepRecord> = kept.iter().map(|&i| &saves[i].record).collect();
    sqlx::query(
        "INSERT INTO saga_steps (saga_id, seq, step, direction, attempt, outcome, error, at)
         SELECT u.saga_id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM saga_steps WHERE saga_id = u.saga_id),
                u.step, u.direction, u.attempt, u.outcome, u.error, u.at
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], $7::timestamptz[])
             AS u(saga_id, step, direction, attempt, outcome, error, at)",
    )
    .bind(kept.iter().map(|&i| saves[i].saga.id).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.step.as_str()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.direction.as_str()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.attempt as i32).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.at).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    for &i in &kept {
        saved[i] = true;
    }
    Ok(())
}

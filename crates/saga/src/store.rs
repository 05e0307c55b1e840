//! The saga service's SQL: one text per statement for both engines. Public for the contract suite, which races
//! instances for leases directly.

use phoenix_booking::orchestration::SagaKind;
use phoenix_db::{Pool, Timestamp, Tx, dispatch};
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
        let mut tx = self.pool.begin().await?;
        let mut created = Vec::new();
        for saga in sagas {
            let inserted = dispatch!(&mut tx, conn => {
                sqlx::query(
                    "INSERT INTO sagas (id, kind, booking_id, state, step, undo_step, attempts, data, deadline_at,
                                        next_run_at, lease_owner, lease_until, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, 0, 0, 0, $5, $6, $7, $8, $9, $7, $7)
                     ON CONFLICT (booking_id, kind) DO NOTHING",
                )
                .bind(saga.id)
                .bind(saga.kind.as_str())
                .bind(saga.booking_id)
                .bind(saga.state.as_str())
                .bind(Json(&saga.data))
                .bind(saga.deadline_at)
                .bind(saga.created_at)
                .bind(owner)
                .bind(lease_until)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
            })?;
            if inserted == 1 {
                created.push(saga.id);
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
        let mut tx = self.pool.begin().await?;
        let n = update(&mut tx, saga, owner, lease_until).await?;
        if n != 1 {
            return Ok(false);
        }
        dispatch!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO saga_steps (saga_id, seq, step, direction, attempt, outcome, error, at)
                 VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM saga_steps WHERE saga_id = $1),
                         $2, $3, $4, $5, $6, $7)",
            )
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
        tx.commit().await?;
        Ok(true)
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

async fn update(tx: &mut Tx, saga: &Saga, owner: Uuid, lease_until: Timestamp) -> Result<u64, Error> {
    let finished = saga.state.is_final();
    let n = dispatch!(tx, conn => {
        sqlx::query(
            "UPDATE sagas SET state = $3, step = $4, undo_step = $5, attempts = $6, data = $7, last_error = $8,
                 deadline_at = $9, next_run_at = $10, updated_at = $11,
                 lease_owner = CASE WHEN $12 THEN NULL ELSE lease_owner END,
                 lease_until = CASE WHEN $12 THEN NULL ELSE $13 END
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(saga.id)
        .bind(owner)
        .bind(saga.state.as_str())
        .bind(saga.step as i32)
        .bind(saga.undo_step as i32)
        .bind(saga.attempts as i32)
        .bind(Json(&saga.data))
        .bind(&saga.last_error)
        .bind(saga.deadline_at)
        .bind(saga.next_run_at)
        .bind(saga.updated_at)
        .bind(finished)
        .bind(lease_until)
        .execute(conn)
        .await
        .map(|done| done.rows_affected())
    })?;
    Ok(n)
}

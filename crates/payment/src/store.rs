//! Payment's SQL: one text for both engines, except the row locks PostgreSQL takes (`FOR UPDATE`) where SQLite's
//! `BEGIN IMMEDIATE` already serialises writers, and a new authorization, which PostgreSQL writes in one statement.
//!
//! Every change to a payment is written with its event, in one transaction (on PostgreSQL's hot path, one
//! statement), and only from the state it was decided in (`WHERE status = ...`): a change that finds the payment
//! moved on changes nothing. Finishing operations and repairs are in `finish.rs`.

use std::collections::HashSet;

use phoenix_db::{Backend, Pool, Timestamp, Tx, dispatch};
use uuid::Uuid;

use crate::Error;
use crate::operation::{Answer, Kind, Operation, Outcome};
use crate::payment::{Failure, Payment, Status};

mod finish;

/// Binds a new operation's fields after its id and payment id: kind, amount, reason, actor, key, request hash,
/// outcome, claim and creation time, in the order of [`OPERATION_INSERT_FIELDS`]. A macro: the query is either
/// engine's.
macro_rules! bind_operation_fields {
    ($query:expr, $operation:expr) => {
        $query
            .bind($operation.kind.as_str())
            .bind($operation.amount_minor)
            .bind(&$operation.reason)
            .bind($operation.actor_id)
            .bind(&$operation.idempotency_key)
            .bind(&$operation.request_hash)
            .bind($operation.outcome.as_str())
            .bind($operation.claimed_by)
            .bind($operation.claimed_until)
            .bind($operation.created_at)
    };
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

/// What a finished operation does to its payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Authorized { provider_reference: String },
    Failed(Failure),
    Captured { amount_minor: i64 },
    Refunded { amount_minor: i64 },
    Voided,
    Unchanged,
}

/// How an operation ended.
#[derive(Debug, Clone)]
pub struct Completion {
    pub outcome: Outcome,
    /// The decline or failure code.
    pub code: Option<String>,
    /// What the provider said, for a rejection.
    pub message: Option<String>,
    pub change: Change,
}

/// Captures, voids and refunds of a payment that are being worked on right now (their claim is live).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InFlight {
    pub capture_or_void: bool,
    pub refunding_minor: i64,
}

/// A payment's fields as reconciliation sets them from the provider's books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub status: Status,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    pub provider_reference: Option<String>,
}

#[derive(sqlx::FromRow)]
struct PaymentRow {
    id: Uuid,
    owner_id: Uuid,
    organization_id: Option<Uuid>,
    amount_minor: i64,
    currency: String,
    status: String,
    captured_minor: i64,
    refunded_minor: i64,
    provider: String,
    provider_reference: Option<String>,
    reference: Option<String>,
    failure_code: Option<String>,
    decline_code: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl PaymentRow {
    fn into_payment(self) -> Result<Payment, Error> {
        Ok(Payment {
            status: Status::parse(&self.status).ok_or(Error::Corrupt("payments.status"))?,
            id: self.id,
            owner_id: self.owner_id,
            organization_id: self.organization_id,
            amount_minor: self.amount_minor,
            currency: self.currency,
            captured_minor: self.captured_minor,
            refunded_minor: self.refunded_minor,
            provider: self.provider,
            provider_reference: self.provider_reference,
            reference: self.reference,
            failure_code: self.failure_code,
            decline_code: self.decline_code,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct OperationRow {
    id: Uuid,
    payment_id: Uuid,
    kind: String,
    amount_minor: i64,
    reason: Option<String>,
    actor_id: Uuid,
    idempotency_key: String,
    request_hash: Vec<u8>,
    outcome: String,
    code: Option<String>,
    answer: Option<String>,
    claimed_by: Option<Uuid>,
    claimed_until: Option<Timestamp>,
    created_at: Timestamp,
    completed_at: Option<Timestamp>,
}

impl OperationRow {
    fn into_operation(self) -> Result<Operation, Error> {
        let answer = self
            .answer
            .map(|json| serde_json::from_str::<Answer>(&json))
            .transpose()
            .map_err(|_| Error::Corrupt("payment_operations.answer"))?;
        Ok(Operation {
            kind: Kind::parse(&self.kind).ok_or(Error::Corrupt("payment_operations.kind"))?,
            outcome: Outcome::parse(&self.outcome).ok_or(Error::Corrupt("payment_operations.outcome"))?,
            id: self.id,
            payment_id: self.payment_id,
            amount_minor: self.amount_minor,
            reason: self.reason,
            actor_id: self.actor_id,
            idempotency_key: self.idempotency_key,
            request_hash: self.request_hash,
            code: self.code,
            answer,
            claimed_by: self.claimed_by,
            claimed_until: self.claimed_until,
            created_at: self.created_at,
            completed_at: self.completed_at,
        })
    }
}

const PAYMENT_FIELDS: &str = "id, owner_id, organization_id, amount_minor, currency, status, captured_minor,
    refunded_minor, provider, provider_reference, reference, failure_code, decline_code, created_at, updated_at";

const OPERATION_COLUMNS: &str = "SELECT id, payment_id, kind, amount_minor, reason, actor_id, idempotency_key,
    request_hash, outcome, code, answer, claimed_by, claimed_until, created_at, completed_at FROM payment_operations";

/// Most ids one read of [`Store::existing`] binds: far below either engine's parameter limit.
pub const EXISTING_CHUNK: usize = 500;

/// Most history rows [`Store::operations`] returns for one payment.
pub const MAX_OPERATIONS: i64 = 1_000;

fn for_update(tx: &Tx) -> &'static str {
    match tx.backend() {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    }
}

impl Store {
    pub fn new(pool: Pool) -> Store {
        Store { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub async fn payment(&self, id: Uuid) -> Result<Option<Payment>, Error> {
        let sql = format!("SELECT {PAYMENT_FIELDS} FROM payments WHERE id = $1");
        let row: Option<PaymentRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await
        })?;
        row.map(PaymentRow::into_payment).transpose()
    }

    /// Up to `limit` payments with ids after `after`, in id (creation) order: reconciliation's pages.
    pub async fn page(&self, after: Option<Uuid>, limit: i64) -> Result<Vec<Payment>, Error> {
        let sql = format!("SELECT {PAYMENT_FIELDS} FROM payments WHERE id > $1 ORDER BY id LIMIT $2");
        let rows: Vec<PaymentRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(after.unwrap_or(Uuid::nil()))
                .bind(limit)
                .fetch_all(conn)
                .await
        })?;
        rows.into_iter().map(PaymentRow::into_payment).collect()
    }

    /// Which of `ids` have a payment here: reconciliation's look-up of a provider page, in reads of at most
    /// [`EXISTING_CHUNK`] ids.
    pub async fn existing(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, Error> {
        let mut found = HashSet::with_capacity(ids.len());
        for chunk in ids.chunks(EXISTING_CHUNK) {
            let rows: Vec<Uuid> = dispatch!(&self.pool, conn => {
                let mut query = sqlx::QueryBuilder::new("SELECT id FROM payments WHERE id IN (");
                let mut list = query.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                query.push(")");
                query.build_query_scalar().fetch_all(conn).await
            })?;
            found.extend(rows);
        }
        Ok(found)
    }

    pub async fn operation_by_key(&self, actor_id: Uuid, key: &str) -> Result<Option<Operation>, Error> {
        let sql = format!("{OPERATION_COLUMNS} WHERE actor_id = $1 AND idempotency_key = $2");
        let row: Option<OperationRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(actor_id).bind(key).fetch_optional(conn).await
        })?;
        row.map(OperationRow::into_operation).transpose()
    }

    /// A payment's history, oldest first (at most [`MAX_OPERATIONS`]).
    pub async fn operations(&self, payment_id: Uuid) -> Result<Vec<Operation>, Error> {
        let sql = format!("{OPERATION_COLUMNS} WHERE payment_id = $1 ORDER BY created_at, id LIMIT $2");
        let rows: Vec<OperationRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(payment_id).bind(MAX_OPERATIONS).fetch_all(conn).await
        })?;
        rows.into_iter().map(OperationRow::into_operation).collect()
    }

    /// Writes a new payment, `pending`, with the authorize operation that will call the provider: the trace a crash
    /// mid-call leaves. A unique violation means another request took the idempotency key first.
    pub async fn insert_authorization(&self, payment: &Payment, operation: &Operation) -> Result<(), Error> {
        const INSERT_PAYMENT: &str = "INSERT INTO payments (id, owner_id, organization_id, amount_minor, currency,
                status, captured_minor, refunded_minor, provider, provider_reference, reference, failure_code,
                decline_code, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, NULL, $8, NULL, NULL, $9, $9)";
        macro_rules! bind_payment {
            ($query:expr) => {
                $query
                    .bind(payment.id)
                    .bind(payment.owner_id)
                    .bind(payment.organization_id)
                    .bind(payment.amount_minor)
                    .bind(&payment.currency)
                    .bind(payment.status.as_str())
                    .bind(&payment.provider)
                    .bind(&payment.reference)
                    .bind(payment.created_at)
            };
        }
        if let Pool::Postgres(pool) = &self.pool {
            // One statement is one transaction: a round trip instead of four (begin, two inserts, commit).
            let sql = format!(
                "WITH payment AS ({INSERT_PAYMENT} RETURNING id)
                 INSERT INTO payment_operations ({OPERATION_INSERT_FIELDS})
                 SELECT $10::uuid, payment.id, $11::text, $12::bigint, $13::text, $14::uuid, $15::text, $16::bytea,
                        $17::text, NULL, NULL, $18::uuid, $19::timestamptz, $20::timestamptz, NULL
                 FROM payment"
            );
            let query = bind_payment!(sqlx::query(sqlx::AssertSqlSafe(sql))).bind(operation.id);
            bind_operation_fields!(query, operation).execute(pool).await?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        dispatch!(&mut tx, conn => {
            bind_payment!(sqlx::query(INSERT_PAYMENT)).execute(conn).await.map(|done| done.rows_affected())
        })?;
        insert_operation(&mut tx, operation).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Locks a payment, lets `decide` check the move against it and what is in flight, and writes the operation
    /// `decide` returns, pending: two moves of one payment are decided one after the other, never together.
    pub async fn begin_move(
        &self,
        payment_id: Uuid,
        now: Timestamp,
        decide: impl FnOnce(&Payment, InFlight) -> Result<Operation, Error>,
    ) -> Result<(Payment, Operation), Error> {
        let mut tx = self.pool.begin().await?;
        let payment = locked_payment(&mut tx, payment_id).await?.ok_or(Error::NotFound)?;
        let live: Vec<(String, i64)> = dispatch!(&mut tx, conn => {
            sqlx::query_as(
                "SELECT kind, amount_minor FROM payment_operations
                 WHERE payment_id = $1 AND outcome = 'pending' AND kind <> 'authorize' AND claimed_until > $2",
            )
            .bind(payment_id)
            .bind(now)
            .fetch_all(conn)
            .await
        })?;
        let in_flight = InFlight {
            capture_or_void: live.iter().any(|(kind, _)| kind == "capture" || kind == "void"),
            refunding_minor: live.iter().filter(|(kind, _)| kind == "refund").map(|(_, a)| a).sum(),
        };
        let operation = decide(&payment, in_flight)?;
        insert_operation(&mut tx, &operation).await?;
        tx.commit().await?;
        Ok((payment, operation))
    }

    /// Claims a pending operation that nobody works on any more (its claim is ours, from a task that died, or has
    /// lapsed). False when it is finished or someone else's claim is live.
    pub async fn take_over(
        &self,
        operation_id: Uuid,
        me: Uuid,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let n = dispatch!(&self.pool, conn => {
            sqlx::query(
                "UPDATE payment_operations SET claimed_by = $1, claimed_until = $2
                 WHERE id = $3 AND outcome = 'pending' AND (claimed_by = $1 OR claimed_until <= $4)",
            )
            .bind(me)
            .bind(until)
            .bind(operation_id)
            .bind(now)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Gives up a claim, leaving the operation pending for a retry to take over at once.
    pub async fn release(&self, operation_id: Uuid, me: Uuid, now: Timestamp) -> Result<(), Error> {
        dispatch!(&self.pool, conn => {
            sqlx::query(
                "UPDATE payment_operations SET claimed_until = $1
                 WHERE id = $2 AND outcome = 'pending' AND claimed_by = $3",
            )
            .bind(now)
            .bind(operation_id)
            .bind(me)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// The pending operations of `payment_id` whose claim has lapsed (at most a few: one per idempotency key).
    pub async fn stale_operations(&self, payment_id: Uuid, now: Timestamp) -> Result<Vec<Operation>, Error> {
        let sql = format!(
            "{OPERATION_COLUMNS} WHERE payment_id = $1 AND outcome = 'pending' AND claimed_until <= $2
             ORDER BY created_at LIMIT 100"
        );
        let rows: Vec<OperationRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(payment_id).bind(now).fetch_all(conn).await
        })?;
        rows.into_iter().map(OperationRow::into_operation).collect()
    }
}

const OPERATION_INSERT_FIELDS: &str = "id, payment_id, kind, amount_minor, reason, actor_id, idempotency_key,
    request_hash, outcome, code, answer, claimed_by, claimed_until, created_at, completed_at";

async fn insert_operation(tx: &mut Tx, operation: &Operation) -> Result<(), Error> {
    let sql = format!(
        "INSERT INTO payment_operations ({OPERATION_INSERT_FIELDS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, $10, $11, $12, NULL)"
    );
    dispatch!(&mut *tx, conn => {
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(operation.id).bind(operation.payment_id);
        bind_operation_fields!(query, operation).execute(conn).await.map(|done| done.rows_affected())
    })?;
    Ok(())
}

async fn locked_payment(tx: &mut Tx, id: Uuid) -> Result<Option<Payment>, Error> {
    let sql = format!("SELECT {PAYMENT_FIELDS} FROM payments WHERE id = $1{}", for_update(tx));
    let row: Option<PaymentRow> = dispatch!(&mut *tx, conn => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await
    })?;
    row.map(PaymentRow::into_payment).transpose()
}

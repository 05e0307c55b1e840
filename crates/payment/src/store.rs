//! Payment's SQL: one text for both engines, except the row locks PostgreSQL takes (`FOR UPDATE`) where SQLite's
//! `BEGIN IMMEDIATE` already serialises writers, and a new authorization, which PostgreSQL writes in one statement.
//!
//! Every change to a payment is written with its event, in one transaction, and only from the state it was decided
//! in (`WHERE status = ...`): a change that finds the payment moved on changes nothing.

use phoenix_db::{Backend, Event, Pool, Timestamp, Tx, dispatch};
use uuid::Uuid;

use crate::Error;
use crate::http::PaymentView;
use crate::operation::{Answer, Kind, Operation, Outcome};
use crate::payment::{Failure, Payment, Status};

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

    /// Finishes a pending operation: its outcome and stored answer, the payment's change and its event, in one
    /// transaction; returns the stored answer. `None` when the operation was finished already (another process
    /// resumed it too); the caller answers with that one's answer.
    ///
    /// The payment is changed first (its row locked, as every move of a payment locks it first), then the
    /// operation is marked finished with its answer only if it is still pending; if it is not, the transaction rolls
    /// back and the payment's change with it.
    pub async fn complete(&self, operation: &Operation, completion: &Completion) -> Result<Option<Answer>, Error> {
        let now = Timestamp::now();
        let mut tx = self.pool.begin().await?;
        let (applied, payment) = match apply(&mut tx, operation.payment_id, &completion.change, now).await? {
            Applied::Changed(payment) => (true, *payment),
            other => {
                let payment = locked_payment(&mut tx, operation.payment_id).await?;
                (matches!(other, Applied::Nothing), payment.ok_or(Error::NotFound)?)
            }
        };
        let answer = answer(&payment, completion);
        let json = serde_json::to_string(&answer).map_err(|_| Error::Corrupt("an answer does not serialise"))?;
        // An event says the change happened: none when the payment had moved on and this one did not apply.
        let event = if applied {
            event(&completion.change, &payment, Some(operation))?
        } else {
            None
        };
        const FINISH: &str = "UPDATE payment_operations SET outcome = $1, code = $2, completed_at = $3,
                 claimed_until = NULL, answer = $4
             WHERE id = $5 AND outcome = 'pending'";
        macro_rules! bind_finish {
            ($query:expr) => {
                $query
                    .bind(completion.outcome.as_str())
                    .bind(completion.code.as_deref())
                    .bind(now)
                    .bind(json.as_str())
                    .bind(operation.id)
            };
        }
        let n = match (&mut tx, &event) {
            // The operation's end and its event in one statement: the event only if the operation was still open.
            (Tx::Postgres(conn), Some(event)) => {
                let sql = format!(
                    "WITH finished AS ({FINISH} RETURNING id), {} SELECT count(*) FROM finished",
                    phoenix_db::event_part_pg(6, "finished")
                );
                let finished: i64 =
                    phoenix_db::bind_event_pg(bind_finish!(sqlx::query(sqlx::AssertSqlSafe(sql))), event)
                        .map(|row: sqlx::postgres::PgRow| sqlx::Row::get(&row, 0))
                        .fetch_one(&mut **conn)
                        .await
                        .map_err(phoenix_db::Error::from)?;
                finished as u64
            }
            _ => dispatch!(&mut tx, conn => {
                bind_finish!(sqlx::query(FINISH)).execute(conn).await.map(|done| done.rows_affected())
            })?,
        };
        if n == 0 {
            return Ok(None);
        }
        if !applied {
            tracing::warn!(payment_id = %operation.payment_id, operation = operation.kind.as_str(),
                "the payment moved on before its operation finished; reconciliation will compare it");
        }
        if let (Tx::Sqlite(_), Some(event)) = (&tx, &event) {
            tx.append_event(event).await?;
        }
        tx.commit().await?;
        Ok(Some(answer))
    }

    /// PostgreSQL's path for the common case of [`complete`](Self::complete): when the payment is still as `before`
    /// (the caller decided the operation on it), the operation's end, the payment's change and its event are one
    /// statement and no transaction. It locks the payment only if it is still as `before`, finishes the operation
    /// only if it is still pending and the payment was locked, and changes the payment and writes the event only if
    /// the operation was finished, so it does all or nothing. `None` when it did nothing (SQLite, a change it does
    /// not predict, the payment or the operation moved on): then [`complete`](Self::complete) decides.
    pub async fn complete_from(
        &self,
        before: &Payment,
        operation: &Operation,
        completion: &Completion,
    ) -> Result<Option<Answer>, Error> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(None);
        };
        let now = Timestamp::now();
        let Some(after) = predict(before, &completion.change, now) else {
            return Ok(None);
        };
        let Some(event) = event(&completion.change, &after, Some(operation))? else {
            return Ok(None);
        };
        let answer = answer(&after, completion);
        let json = serde_json::to_string(&answer).map_err(|_| Error::Corrupt("an answer does not serialise"))?;
        let sql = format!(
            "WITH locked AS (
                 SELECT id FROM payments
                 WHERE id = $1 AND status = $2 AND captured_minor = $3 AND refunded_minor = $4 FOR UPDATE),
             finished AS (
                 UPDATE payment_operations SET outcome = $5, code = $6, completed_at = $7, claimed_until = NULL,
                     answer = $8
                 WHERE id = $9 AND outcome = 'pending' AND EXISTS (SELECT 1 FROM locked)
                 RETURNING id),
             payment AS (
                 UPDATE payments SET status = $10, captured_minor = $11, refunded_minor = $12,
                     provider_reference = $13, updated_at = $7
                 WHERE id = $1 AND EXISTS (SELECT 1 FROM finished)),
             {}
             SELECT count(*) FROM finished",
            phoenix_db::event_part_pg(14, "finished")
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(before.id)
            .bind(before.status.as_str())
            .bind(before.captured_minor)
            .bind(before.refunded_minor)
            .bind(completion.outcome.as_str())
            .bind(completion.code.as_deref())
            .bind(now)
            .bind(json.as_str())
            .bind(operation.id)
            .bind(after.status.as_str())
            .bind(after.captured_minor)
            .bind(after.refunded_minor)
            .bind(after.provider_reference.as_deref());
        let finished: i64 = phoenix_db::bind_event_pg(query, &event)
            .map(|row: sqlx::postgres::PgRow| sqlx::Row::get(&row, 0))
            .fetch_one(pool)
            .await
            .map_err(phoenix_db::Error::from)?;
        Ok((finished == 1).then_some(answer))
    }

    /// Sets a payment's status and amounts to what the provider's books say, if it is still as `seen`, with the
    /// event of the change. False when it moved on meanwhile.
    pub async fn repair(&self, seen: &Payment, repair: &Repair, change: &Change) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await?;
        let n = dispatch!(&mut tx, conn => {
            sqlx::query(
                "UPDATE payments SET status = $1, captured_minor = $2, refunded_minor = $3,
                     provider_reference = COALESCE($4, provider_reference), updated_at = $5
                 WHERE id = $6 AND status = $7 AND captured_minor = $8 AND refunded_minor = $9",
            )
            .bind(repair.status.as_str())
            .bind(repair.captured_minor)
            .bind(repair.refunded_minor)
            .bind(&repair.provider_reference)
            .bind(Timestamp::now())
            .bind(seen.id)
            .bind(seen.status.as_str())
            .bind(seen.captured_minor)
            .bind(seen.refunded_minor)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        if n == 0 {
            return Ok(false);
        }
        let payment = locked_payment(&mut tx, seen.id).await?.ok_or(Error::NotFound)?;
        if let Some(event) = event(change, &payment, None)? {
            tx.append_event(&reconciled(event)).await?;
        }
        tx.commit().await?;
        Ok(true)
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

/// Applies a finished operation to its payment, from the state the operation was decided in: the payment as the
/// change left it, [`Applied::Stale`] when the payment was no longer in that state, [`Applied::Nothing`] for
/// `Change::Unchanged`.
async fn apply(tx: &mut Tx, payment_id: Uuid, change: &Change, now: Timestamp) -> Result<Applied, Error> {
    let row: Option<PaymentRow> = match change {
        Change::Unchanged => return Ok(Applied::Nothing),
        Change::Authorized { provider_reference } => dispatch!(&mut *tx, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(returning(
                "UPDATE payments SET status = 'authorized', provider_reference = $1, updated_at = $2
                 WHERE id = $3 AND status = 'pending'",
            )))
            .bind(provider_reference)
            .bind(now)
            .bind(payment_id)
            .fetch_optional(conn)
            .await
        })?,
        Change::Failed(failure) => dispatch!(&mut *tx, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(returning(
                "UPDATE payments SET status = 'failed', failure_code = $1, decline_code = $2, updated_at = $3
                 WHERE id = $4 AND status = 'pending'",
            )))
            .bind(failure.failure_code)
            .bind(&failure.decline_code)
            .bind(now)
            .bind(payment_id)
            .fetch_optional(conn)
            .await
        })?,
        Change::Captured { amount_minor } | Change::Refunded { amount_minor } => {
            let sql = if matches!(change, Change::Captured { .. }) {
                "UPDATE payments SET status = 'captured', captured_minor = captured_minor + $1, updated_at = $2
                 WHERE id = $3 AND status = 'authorized' AND captured_minor + $1 <= amount_minor"
            } else {
                "UPDATE payments SET refunded_minor = refunded_minor + $1,
                     status = CASE WHEN refunded_minor + $1 >= captured_minor THEN 'refunded'
                                   ELSE 'partially_refunded' END,
                     updated_at = $2
                 WHERE id = $3 AND status IN ('captured', 'partially_refunded')
                   AND refunded_minor + $1 <= captured_minor"
            };
            dispatch!(&mut *tx, conn => {
                sqlx::query_as(sqlx::AssertSqlSafe(returning(sql)))
                    .bind(amount_minor)
                    .bind(now)
                    .bind(payment_id)
                    .fetch_optional(conn)
                    .await
            })?
        }
        Change::Voided => dispatch!(&mut *tx, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(returning(
                "UPDATE payments SET status = 'voided', updated_at = $1 WHERE id = $2 AND status = 'authorized'",
            )))
                .bind(now)
                .bind(payment_id)
                .fetch_optional(conn)
                .await
        })?,
    };
    match row {
        Some(row) => Ok(Applied::Changed(Box::new(row.into_payment()?))),
        None => Ok(Applied::Stale),
    }
}

/// `sql`, an update of one payment, answering the payment as the update left it.
fn returning(sql: &str) -> String {
    format!("{sql} RETURNING {PAYMENT_FIELDS}")
}

/// The payment as `change` leaves it at `now`, for the changes [`Store::complete_from`] writes (`apply`'s SQL is
/// the rule it follows); `None` for the others, or when `change` does not follow from `before`.
fn predict(before: &Payment, change: &Change, now: Timestamp) -> Option<Payment> {
    let mut after = before.clone();
    match change {
        Change::Authorized { provider_reference } if before.status == Status::Pending => {
            after.status = Status::Authorized;
            after.provider_reference = Some(provider_reference.clone());
        }
        Change::Captured { amount_minor }
            if before.status == Status::Authorized && before.captured_minor + amount_minor <= before.amount_minor =>
        {
            after.status = Status::Captured;
            after.captured_minor += amount_minor;
        }
        _ => return None,
    }
    after.updated_at = now;
    Some(after)
}

/// What [`apply`] did.
enum Applied {
    /// The payment as the change left it.
    Changed(Box<Payment>),
    /// Nothing to change.
    Nothing,
    /// The payment had moved on from the state the operation was decided in: not applied.
    Stale,
}

/// The answer an operation gives, from the payment as it finished.
fn answer(payment: &Payment, completion: &Completion) -> Answer {
    match completion.outcome {
        Outcome::Succeeded | Outcome::Pending => Answer::Payment {
            payment: Box::new(PaymentView::from(payment)),
        },
        Outcome::Declined => Answer::Declined {
            payment_id: payment.id,
            decline_code: completion.code.clone().unwrap_or_default(),
        },
        Outcome::Rejected => Answer::Rejected {
            payment_id: payment.id,
            message: completion.message.clone().unwrap_or_default(),
        },
        Outcome::Failed => Answer::Unavailable { payment_id: payment.id },
    }
}

/// The event of a change (none for an operation that changed nothing). No card data, no token.
fn event(change: &Change, payment: &Payment, operation: Option<&Operation>) -> Result<Option<Event>, Error> {
    let event_type = match change {
        Change::Authorized { .. } => "payment.authorized.v1",
        Change::Failed(_) => "payment.failed.v1",
        Change::Captured { .. } => "payment.captured.v1",
        Change::Refunded { .. } => "payment.refunded.v1",
        Change::Voided => "payment.voided.v1",
        Change::Unchanged => return Ok(None),
    };
    let data = serde_json::json!({
        "payment_id": payment.id,
        "owner_id": payment.owner_id,
        "organization_id": payment.organization_id,
        "status": payment.status,
        "amount_minor": payment.amount_minor,
        "currency": payment.currency,
        "captured_minor": payment.captured_minor,
        "refunded_minor": payment.refunded_minor,
        "provider": payment.provider,
        "reference": payment.reference,
        "failure_code": payment.failure_code,
        "decline_code": payment.decline_code,
        "operation": operation.map(|o| serde_json::json!({
            "id": o.id,
            "kind": o.kind,
            "amount_minor": o.amount_minor,
            "reason": o.reason,
            "actor_id": o.actor_id,
        })),
    });
    let event = Event::new(crate::SOURCE, event_type, payment.id.to_string(), &data)?;
    Ok(Some(event.with_correlation_id(booking_id(payment))))
}

/// The booking a payment is for, as the booking flow's correlation id: the saga sets `reference` to the booking
/// id. Any other reference is a caller's free text and correlates nothing.
fn booking_id(payment: &Payment) -> Option<String> {
    let reference = payment.reference.as_deref()?;
    Uuid::parse_str(reference).ok().map(|id| id.to_string())
}

/// Events written by reconciliation say so, for whoever reads them.
fn reconciled(mut event: Event) -> Event {
    if let Some(data) = event.data.as_object_mut() {
        data.insert("reconciled".to_owned(), true.into());
    }
    event
}

#[cfg(test)]
mod tests {
    use phoenix_db::testing::TestDatabase;

    use super::*;

    fn payment(now: Timestamp) -> Payment {
        Payment {
            id: Uuid::now_v7(),
            owner_id: Uuid::now_v7(),
            organization_id: None,
            amount_minor: 10_000,
            currency: "EUR".to_owned(),
            status: Status::Pending,
            captured_minor: 0,
            refunded_minor: 0,
            provider: "simulated".to_owned(),
            provider_reference: None,
            reference: None,
            failure_code: None,
            decline_code: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn operation(kind: Kind, payment: &Payment, key: &str, now: Timestamp) -> Operation {
        Operation {
            id: Uuid::now_v7(),
            payment_id: payment.id,
            kind,
            amount_minor: payment.amount_minor,
            reason: None,
            actor_id: payment.owner_id,
            idempotency_key: key.to_owned(),
            request_hash: vec![1, 2, 3],
            outcome: Outcome::Pending,
            code: None,
            answer: None,
            claimed_by: Some(Uuid::now_v7()),
            claimed_until: Some(now + time::Duration::minutes(1)),
            created_at: now,
            completed_at: None,
        }
    }

    fn succeeded(change: Change) -> Completion {
        Completion {
            outcome: Outcome::Succeeded,
            code: None,
            message: None,
            change,
        }
    }

    async fn events(pool: &Pool, event_type: &str) -> i64 {
        dispatch!(pool, conn => {
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE event_type = $1")
                .bind(event_type)
                .fetch_one(conn)
                .await
        })
        .expect("count events")
    }

    /// Two processes finishing the same operation (the second resumed it): the payment moves once, one event is
    /// written, and the second learns it came too late instead of applying the change again.
    async fn an_operation_finished_twice_moves_the_payment_once(pool: Pool) {
        let store = Store::new(pool.clone());
        let now = Timestamp::now();
        let payment = payment(now);
        let authorize = operation(Kind::Authorize, &payment, "pay-1", now);
        store.insert_authorization(&payment, &authorize).await.unwrap();
        let authorized = succeeded(Change::Authorized {
            provider_reference: "pi_1".to_owned(),
        });
        assert!(store.complete(&authorize, &authorized).await.unwrap().is_some());
        assert!(store.complete(&authorize, &authorized).await.unwrap().is_none());

        let capture = operation(Kind::Capture, &payment, "capture-1", now);
        let (locked, _) = store
            .begin_move(payment.id, now, |_, _| Ok(capture.clone()))
            .await
            .unwrap();
        assert_eq!(locked.provider_reference.as_deref(), Some("pi_1"));
        let captured = succeeded(Change::Captured {
            amount_minor: capture.amount_minor,
        });
        let first = store.complete(&capture, &captured).await.unwrap();
        assert!(matches!(first, Some(Answer::Payment { .. })), "{first:?}");
        assert!(store.complete(&capture, &captured).await.unwrap().is_none());

        let stored = store.payment(payment.id).await.unwrap().unwrap();
        assert_eq!((stored.status, stored.captured_minor), (Status::Captured, 10_000));
        assert_eq!(events(&pool, "payment.authorized.v1").await, 1);
        assert_eq!(events(&pool, "payment.captured.v1").await, 1);
        let operations = store.operations(payment.id).await.unwrap();
        assert!(
            operations
                .iter()
                .all(|o| o.outcome == Outcome::Succeeded && o.answer.is_some())
        );
    }

    /// The one-statement finish on PostgreSQL does everything or nothing: nothing when the payment is no longer as
    /// the caller saw it, nothing when the operation is already finished. On SQLite it never applies.
    async fn the_one_statement_finish_does_all_or_nothing(pool: Pool) {
        let on_postgres = pool.backend() == Backend::Postgres;
        let store = Store::new(pool.clone());
        let now = Timestamp::now();
        let payment = payment(now);
        let authorize = operation(Kind::Authorize, &payment, "pay-1", now);
        store.insert_authorization(&payment, &authorize).await.unwrap();
        let authorized = succeeded(Change::Authorized {
            provider_reference: "pi_1".to_owned(),
        });
        let first = store.complete_from(&payment, &authorize, &authorized).await.unwrap();
        assert_eq!(first.is_some(), on_postgres, "{first:?}");
        if !on_postgres {
            assert!(store.complete(&authorize, &authorized).await.unwrap().is_some());
        }
        assert!(
            store
                .complete_from(&payment, &authorize, &authorized)
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.complete(&authorize, &authorized).await.unwrap().is_none());

        let capture = operation(Kind::Capture, &payment, "capture-1", now);
        let (locked, _) = store
            .begin_move(payment.id, now, |_, _| Ok(capture.clone()))
            .await
            .unwrap();
        let captured = succeeded(Change::Captured {
            amount_minor: capture.amount_minor,
        });
        // Seen with a refund that is not there: the payment moved on since, as far as the statement can tell.
        let mut stale = locked.clone();
        stale.refunded_minor = 5;
        assert!(
            store
                .complete_from(&stale, &capture, &captured)
                .await
                .unwrap()
                .is_none()
        );
        let untouched = store.payment(payment.id).await.unwrap().unwrap();
        assert_eq!((untouched.status, untouched.captured_minor), (Status::Authorized, 0));
        assert_eq!(events(&pool, "payment.captured.v1").await, 0);
        assert!(
            store
                .operations(payment.id)
                .await
                .unwrap()
                .iter()
                .any(|o| o.kind == Kind::Capture && o.outcome == Outcome::Pending)
        );

        let answer = store.complete_from(&locked, &capture, &captured).await.unwrap();
        assert_eq!(answer.is_some(), on_postgres);
        if let Some(Answer::Payment { payment: view }) = &answer {
            let stored = store.payment(payment.id).await.unwrap().unwrap();
            assert_eq!(
                **view,
                PaymentView::from(&stored),
                "the answer is the payment as stored"
            );
        }
        if !on_postgres {
            assert!(store.complete(&capture, &captured).await.unwrap().is_some());
        }
        assert!(
            store
                .complete_from(&locked, &capture, &captured)
                .await
                .unwrap()
                .is_none()
        );
        let stored = store.payment(payment.id).await.unwrap().unwrap();
        assert_eq!((stored.status, stored.captured_minor), (Status::Captured, 10_000));
        assert_eq!(events(&pool, "payment.authorized.v1").await, 1);
        assert_eq!(events(&pool, "payment.captured.v1").await, 1);
    }

    #[tokio::test]
    async fn the_one_statement_finish_does_all_or_nothing_on_sqlite() {
        let db = TestDatabase::sqlite(crate::migrations()).await;
        the_one_statement_finish_does_all_or_nothing(db.pool()).await;
    }

    #[tokio::test]
    async fn the_one_statement_finish_does_all_or_nothing_on_postgres() {
        let db = TestDatabase::postgres(crate::migrations()).await;
        the_one_statement_finish_does_all_or_nothing(db.pool()).await;
    }

    #[tokio::test]
    async fn an_operation_finished_twice_moves_the_payment_once_on_sqlite() {
        let db = TestDatabase::sqlite(crate::migrations()).await;
        an_operation_finished_twice_moves_the_payment_once(db.pool()).await;
    }

    #[tokio::test]
    async fn an_operation_finished_twice_moves_the_payment_once_on_postgres() {
        let db = TestDatabase::postgres(crate::migrations()).await;
        an_operation_finished_twice_moves_the_payment_once(db.pool()).await;
    }
}

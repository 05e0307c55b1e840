//! Finishing an operation: its outcome and stored answer, the payment's change and the event, all or nothing; and
//! reconciliation's repairs. The rules for what a change does to a payment live here (`apply`'s SQL, `predict`).

use phoenix_db::{Event, Pool, Timestamp, Tx, dispatch};
use uuid::Uuid;

use super::{Change, Completion, PAYMENT_FIELDS, PaymentRow, Repair, Store, locked_payment};
use crate::Error;
use crate::http::PaymentView;
use crate::operation::{Answer, Operation, Outcome};
use crate::payment::{Payment, Status};

impl Store {
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
    use phoenix_db::Backend;

    use super::*;
    use crate::operation::Kind;

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

    /// A payment written pending with its authorization, and the provider's yes to it.
    async fn pending_authorization(store: &Store, now: Timestamp) -> (Payment, Operation, Completion) {
        let payment = payment(now);
        let authorize = operation(Kind::Authorize, &payment, "pay-1", now);
        store.insert_authorization(&payment, &authorize).await.unwrap();
        let authorized = succeeded(Change::Authorized {
            provider_reference: "pi_1".to_owned(),
        });
        (payment, authorize, authorized)
    }

    /// A capture of all of `payment` (authorized) begun: the payment as locked, the operation, and its success.
    async fn pending_capture(store: &Store, payment: &Payment, now: Timestamp) -> (Payment, Operation, Completion) {
        let capture = operation(Kind::Capture, payment, "capture-1", now);
        let (locked, _) = store
            .begin_move(payment.id, now, |_, _| Ok(capture.clone()))
            .await
            .unwrap();
        let captured = succeeded(Change::Captured {
            amount_minor: capture.amount_minor,
        });
        (locked, capture, captured)
    }

    /// Two processes finishing the same operation (the second resumed it): the payment moves once, one event is
    /// written, and the second learns it came too late instead of applying the change again.
    async fn an_operation_finished_twice_moves_the_payment_once(pool: Pool) {
        let store = Store::new(pool.clone());
        let now = Timestamp::now();
        let (payment, authorize, authorized) = pending_authorization(&store, now).await;
        assert!(store.complete(&authorize, &authorized).await.unwrap().is_some());
        assert!(store.complete(&authorize, &authorized).await.unwrap().is_none());

        let (locked, capture, captured) = pending_capture(&store, &payment, now).await;
        assert_eq!(locked.provider_reference.as_deref(), Some("pi_1"));
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
        let (payment, authorize, authorized) = pending_authorization(&store, now).await;
        // Whether the one-statement finish wrote anything.
        let wrote = async |seen: &Payment, operation: &Operation, completion: &Completion| {
            store
                .complete_from(seen, operation, completion)
                .await
                .unwrap()
                .is_some()
        };
        let first = store.complete_from(&payment, &authorize, &authorized).await.unwrap();
        assert_eq!(first.is_some(), on_postgres, "{first:?}");
        if !on_postgres {
            assert!(store.complete(&authorize, &authorized).await.unwrap().is_some());
        }
        assert!(!wrote(&payment, &authorize, &authorized).await);
        assert!(store.complete(&authorize, &authorized).await.unwrap().is_none());

        let (locked, capture, captured) = pending_capture(&store, &payment, now).await;
        // Seen with a refund that is not there: the payment moved on since, as far as the statement can tell.
        let mut stale = locked.clone();
        stale.refunded_minor = 5;
        assert!(!wrote(&stale, &capture, &captured).await);
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
        assert!(!wrote(&locked, &capture, &captured).await);
        let stored = store.payment(payment.id).await.unwrap().unwrap();
        assert_eq!((stored.status, stored.captured_minor), (Status::Captured, 10_000));
        assert_eq!(events(&pool, "payment.authorized.v1").await, 1);
        assert_eq!(events(&pool, "payment.captured.v1").await, 1);
    }

    phoenix_db::contract_suite!(
        crate::migrations(),
        [
            an_operation_finished_twice_moves_the_payment_once,
            the_one_statement_finish_does_all_or_nothing,
        ]
    );
}

//! Booking's writes. Each one changes the row, appends its status to the history and writes its event to the outbox
//! in one transaction; on PostgreSQL a new booking and a status change are each one statement (`WITH` parts), as
//! every statement there is a round trip.

use phoenix_api::Principal;
use phoenix_db::{Event, Pool, Timestamp, Tx, bind_event_pg, dispatch, event_part_pg};
use uuid::Uuid;

use super::Store;
use crate::Error;
use crate::booking::{Booking, HistoryEntry, normalize_name};
use crate::locator::Locator;
use crate::orchestration::SagaKind;
use crate::policy::Status;

/// Locators tried before giving up. With a billion locators a second collision in a row means something is wrong.
const LOCATOR_ATTEMPTS: u32 = 8;

/// A pending booking to insert, with what only the database keeps.
pub struct NewBooking {
    /// Status pending, one history entry; its locator is replaced if taken.
    pub booking: Booking,
    pub actor: Principal,
    /// Never logged: `Debug` is not derived for this type.
    pub payment_token: String,
    pub idempotency_scope: String,
    pub idempotency_key: String,
    pub request_hash: Vec<u8>,
    /// An expired booking holds the key (the look-up before found it): it gives the key up in the insert's
    /// transaction.
    pub key_expired: bool,
}

/// How an insert went.
#[derive(Debug)]
pub enum Inserted {
    Created(Box<Booking>),
    /// Another request under the same idempotency key committed first.
    KeyTaken,
}

/// What a status change does to the saga request column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaUpdate {
    Keep,
    /// Ask the saga service for a saga of this kind.
    Request(SagaKind),
    /// The saga of this kind has ended: a request of this kind not acknowledged yet is no longer needed.
    Done(SagaKind),
}

/// A guarded status change: applied only if the booking is still in `from`.
pub struct Transition<'a> {
    pub from: Status,
    /// The booking as it is after the change, the new history entry last.
    pub booking: &'a Booking,
    pub saga: SagaUpdate,
    pub event: Event,
}

const INSERT: &str = "INSERT INTO bookings (id, locator, customer_id, organization_id, created_by, actor, status,
        currency, total_minor, refunded_minor, items, travellers, contact, lead_last_name, ends_at, saga_request,
        saga_requested_at, payment_token, idempotency_scope, idempotency_key, request_hash, created_at, updated_at,
        saga_traceparent)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $12, $13, $14, 'booking', $15, $16, $17, $18, $19, $15,
        $15, $20)
    ON CONFLICT (locator) DO NOTHING";

const UPDATE: &str = "UPDATE bookings SET status = $2, hold_id = $3, payment_id = $4, failure_code = $5,
        failure_detail = $6, cancellation = $7,
        refunded_minor = CASE WHEN $8 > refunded_minor THEN $8 ELSE refunded_minor END, updated_at = $9,
        saga_request = CASE WHEN $10 = 'request' THEN $11
                            WHEN $10 = 'done' AND saga_request = $11 THEN NULL
                            ELSE saga_request END,
        saga_requested_at = CASE WHEN $10 = 'request' THEN $9
                                 WHEN $10 = 'done' AND saga_request = $11 THEN NULL
                                 ELSE saga_requested_at END,
        payment_token = CASE WHEN $10 = 'done' AND $11 = 'booking' THEN NULL ELSE payment_token END,
        saga_traceparent = CASE WHEN $10 = 'request' THEN $13
                                WHEN $10 = 'done' AND saga_request = $11 THEN NULL
                                ELSE saga_traceparent END
    WHERE id = $1 AND status = $12";

fn to_json(value: &impl serde::Serialize) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|source| Error::Corrupt {
        what: "booking document",
        source: Some(source),
    })
}

impl Store {
    /// Inserts a pending booking with its saga request, first history entry and `booking.created.v1` event.
    pub async fn insert(
        &self,
        mut new: NewBooking,
        event: impl Fn(&Booking) -> Result<Event, Error>,
    ) -> Result<Inserted, Error> {
        let documents = Documents::of(&new)?;
        if let Pool::Postgres(pool) = &self.pool
            && !new.key_expired
        {
            for _ in 0..LOCATOR_ATTEMPTS {
                match insert_pg(pool, &new, &documents, &event(&new.booking)?).await {
                    Ok(true) => return Ok(Inserted::Created(Box::new(new.booking))),
                    Ok(false) => new.booking.locator = Locator::generate(),
                    Err(Error::Db(error)) if error.is_unique_violation() => return Ok(Inserted::KeyTaken),
                    Err(error) => return Err(error),
                }
            }
            return Err(Error::LocatorsExhausted {
                attempts: LOCATOR_ATTEMPTS,
            });
        }
        let mut tx = self.pool.begin().await?;
        if new.key_expired {
            release_expired_key(&mut tx, &new).await?;
        }
        for _ in 0..LOCATOR_ATTEMPTS {
            match insert_row(&mut tx, &new, &documents).await {
                Ok(true) => {}
                Ok(false) => {
                    new.booking.locator = Locator::generate();
                    continue;
                }
                Err(Error::Db(error)) if error.is_unique_violation() => return Ok(Inserted::KeyTaken),
                Err(error) => return Err(error),
            }
            let booking = &new.booking;
            for entry in &booking.history {
                insert_history(&mut tx, booking.id, entry).await?;
            }
            tx.append_event(&event(booking)?).await?;
            return match tx.commit().await {
                Ok(()) => Ok(Inserted::Created(Box::new(new.booking))),
                Err(error) if error.is_unique_violation() => Ok(Inserted::KeyTaken),
                Err(error) => Err(error.into()),
            };
        }
        Err(Error::LocatorsExhausted {
            attempts: LOCATOR_ATTEMPTS,
        })
    }

    /// Applies a status change if the booking is still in `from`; false when it is not (another writer moved it).
    pub async fn transition(&self, change: Transition<'_>) -> Result<bool, Error> {
        let booking = change.booking;
        let entry = booking
            .history
            .last()
            .ok_or_else(|| Error::corrupt("a status change without its history entry"))?;
        let (saga_action, saga_kind) = match change.saga {
            SagaUpdate::Keep => ("keep", None),
            SagaUpdate::Request(kind) => ("request", Some(kind.as_str())),
            SagaUpdate::Done(kind) => ("done", Some(kind.as_str())),
        };
        let cancellation = booking.cancellation.as_ref().map(to_json).transpose()?;
        let failure = booking.failure.as_ref();
        macro_rules! bind_update {
            ($query:expr) => {
                $query
                    .bind(booking.id)
                    .bind(booking.status.as_str())
                    .bind(booking.hold_id)
                    .bind(booking.payment_id)
                    .bind(failure.map(|f| f.code.as_str()))
                    .bind(failure.map(|f| f.detail.as_str()))
                    .bind(cancellation.as_deref())
                    .bind(booking.refunded_minor)
                    .bind(Timestamp::from(booking.updated_at))
                    .bind(saga_action)
                    .bind(saga_kind)
                    .bind(change.from.as_str())
                    .bind(phoenix_api::trace::current())
            };
        }
        if let Pool::Postgres(pool) = &self.pool {
            // The update ($1 to $13), then its history entry ($14 to $17) and event ($18 on) if it was made.
            let sql = format!(
                "WITH booking AS ({UPDATE} RETURNING id),
                 history AS (INSERT INTO booking_status_history (booking_id, seq, status, actor_id, reason, at)
                     SELECT id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM booking_status_history WHERE booking_id = $1),
                         $14, $15, $16, $17
                     FROM booking),
                 {}
                 SELECT count(*) FROM booking",
                event_part_pg(18, "booking")
            );
            let query = bind_update!(sqlx::query(sqlx::AssertSqlSafe(sql)))
                .bind(entry.status.as_str())
                .bind(entry.actor_id)
                .bind(entry.reason.as_deref())
                .bind(Timestamp::from(entry.at));
            let updated: i64 = bind_event_pg(query, &change.event)
                .map(|row: sqlx::postgres::PgRow| sqlx::Row::get(&row, 0))
                .fetch_one(pool)
                .await?;
            return Ok(updated == 1);
        }
        let mut tx = self.pool.begin().await?;
        let updated = dispatch!(&mut tx, conn => {
            bind_update!(sqlx::query(UPDATE))
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        if updated == 0 {
            return Ok(false);
        }
        insert_history(&mut tx, booking.id, entry).await?;
        tx.append_event(&change.event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Marks saga requests as taken, forgetting the payment token of a taken booking request. Requests that were
    /// taken already are skipped.
    pub async fn acknowledge(&self, taken: &[(Uuid, SagaKind)]) -> Result<u64, Error> {
        const ACKNOWLEDGE: &str =
            "UPDATE bookings SET saga_request = NULL, saga_requested_at = NULL, payment_token = NULL,
                saga_traceparent = NULL
            WHERE saga_request = $1 AND id";
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for kind in [SagaKind::Booking, SagaKind::Cancellation] {
            let ids: Vec<Uuid> = taken.iter().filter(|(_, k)| *k == kind).map(|(id, _)| *id).collect();
            if ids.is_empty() {
                continue;
            }
            n += match &mut tx {
                // One statement per kind on PostgreSQL, where every statement is a round trip.
                Tx::Postgres(conn) => sqlx::query(sqlx::AssertSqlSafe(format!("{ACKNOWLEDGE} = ANY($2)")))
                    .bind(kind.as_str())
                    .bind(&ids)
                    .execute(&mut **conn)
                    .await?
                    .rows_affected(),
                Tx::Sqlite(conn) => {
                    let one = format!("{ACKNOWLEDGE} = $2");
                    let mut rows = 0;
                    for id in ids {
                        rows += sqlx::query(sqlx::AssertSqlSafe(one.as_str()))
                            .bind(kind.as_str())
                            .bind(id)
                            .execute(&mut **conn)
                            .await?
                            .rows_affected();
                    }
                    rows
                }
            };
        }
        tx.commit().await?;
        Ok(n)
    }
}

/// The row's JSON documents, encoded once for every locator attempt.
struct Documents {
    items: String,
    travellers: String,
    contact: String,
    actor: String,
}

impl Documents {
    fn of(new: &NewBooking) -> Result<Documents, Error> {
        Ok(Documents {
            items: to_json(&new.booking.items)?,
            travellers: to_json(&new.booking.travellers)?,
            contact: to_json(&new.booking.contact)?,
            actor: to_json(&new.actor)?,
        })
    }
}

/// An idempotency key answers for 24 hours (`phoenix_db::idempotency::RETENTION`), then may be used again: a booking
/// older than that gives its key up (renamed `<key>:expired:<new booking id>`, so the old booking keeps a record of
/// it) in the transaction that inserts the new booking under it.
async fn release_expired_key(tx: &mut Tx, new: &NewBooking) -> Result<(), Error> {
    let cutoff = Timestamp::now() - phoenix_db::idempotency::RETENTION;
    dispatch!(tx, conn => {
        sqlx::query(
            "UPDATE bookings SET idempotency_key = idempotency_key || $4
             WHERE idempotency_scope = $1 AND idempotency_key = $2 AND created_at < $3",
        )
        .bind(&new.idempotency_scope)
        .bind(&new.idempotency_key)
        .bind(cutoff)
        .bind(format!(":expired:{}", new.booking.id))
        .execute(conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Binds a new booking's row in the order of [`INSERT`]'s parameters.
macro_rules! bind_insert {
    ($query:expr, $new:expr, $documents:expr) => {{
        let (new, documents): (&NewBooking, &Documents) = ($new, $documents);
        let booking = &new.booking;
        let lead_last_name = booking
            .travellers
            .first()
            .map(|t| normalize_name(&t.last_name))
            .unwrap_or_default();
        $query
            .bind(booking.id)
            .bind(booking.locator.as_str())
            .bind(booking.customer_id)
            .bind(booking.organization_id)
            .bind(booking.created_by)
            .bind(documents.actor.as_str())
            .bind(booking.status.as_str())
            .bind(booking.currency.as_str())
            .bind(booking.total_minor)
            .bind(documents.items.as_str())
            .bind(documents.travellers.as_str())
            .bind(documents.contact.as_str())
            .bind(lead_last_name)
            .bind(Timestamp::from(booking.ends_at()))
            .bind(Timestamp::from(booking.created_at))
            .bind(new.payment_token.as_str())
            .bind(new.idempotency_scope.as_str())
            .bind(new.idempotency_key.as_str())
            .bind(new.request_hash.as_slice())
            .bind(phoenix_api::trace::current())
    }};
}

/// Inserts the row; false when the locator is taken.
async fn insert_row(tx: &mut Tx, new: &NewBooking, documents: &Documents) -> Result<bool, Error> {
    let inserted = dispatch!(tx, conn => {
        bind_insert!(sqlx::query(INSERT), new, documents)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
    })?;
    Ok(inserted == 1)
}

/// PostgreSQL: the row, its first history entry and its event in one statement; false when the locator is taken
/// (then nothing is written). A key taken meanwhile is a unique violation, as in a transaction.
async fn insert_pg(pool: &sqlx::PgPool, new: &NewBooking, documents: &Documents, event: &Event) -> Result<bool, Error> {
    let [entry] = new.booking.history.as_slice() else {
        return Err(Error::corrupt("a new booking without exactly one history entry"));
    };
    // The row ($1 to $20), then its history entry ($21 to $24) and event ($25 on) if it was inserted.
    let sql = format!(
        "WITH booking AS ({INSERT} RETURNING id),
         history AS (INSERT INTO booking_status_history (booking_id, seq, status, actor_id, reason, at)
             SELECT id, 1, $21, $22, $23, $24 FROM booking),
         {}
         SELECT count(*) FROM booking",
        event_part_pg(25, "booking")
    );
    let query = bind_insert!(sqlx::query(sqlx::AssertSqlSafe(sql)), new, documents)
        .bind(entry.status.as_str())
        .bind(entry.actor_id)
        .bind(entry.reason.as_deref())
        .bind(Timestamp::from(entry.at));
    let inserted: i64 = bind_event_pg(query, event)
        .map(|row: sqlx::postgres::PgRow| sqlx::Row::get(&row, 0))
        .fetch_one(pool)
        .await
        .map_err(phoenix_db::Error::from)?;
    Ok(inserted == 1)
}

async fn insert_history(tx: &mut Tx, booking_id: Uuid, entry: &HistoryEntry) -> Result<(), Error> {
    dispatch!(tx, conn => {
        sqlx::query(
            "INSERT INTO booking_status_history (booking_id, seq, status, actor_id, reason, at)
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM booking_status_history WHERE booking_id = $1),
                     $2, $3, $4, $5)",
        )
        .bind(booking_id)
        .bind(entry.status.as_str())
        .bind(entry.actor_id)
        .bind(entry.reason.as_deref())
        .bind(Timestamp::from(entry.at))
        .execute(conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

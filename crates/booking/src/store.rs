//! Booking's SQL, one text for both engines. Writes are in `store/write.rs`; this file reads.
//!
//! A status change is a guarded `UPDATE ... WHERE status = <the status it was read in>`: two writers racing for one
//! booking cannot both move it, and the loser re-reads and decides again. No `SELECT ... FOR UPDATE`, which
//! SQLite does not have.

use phoenix_api::Principal;
use phoenix_db::{Pool, Timestamp, dispatch};
use uuid::Uuid;

use crate::Error;
use crate::booking::{Booking, Cancellation, Contact, Failure, HistoryEntry};
use crate::locator::Locator;
use crate::orchestration::SagaKind;
use crate::policy::Status;

mod write;

pub use write::{Inserted, NewBooking, SagaUpdate, Transition};

#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

/// The columns of a [`Row`].
const FIELDS: &str = "id, locator, customer_id, organization_id, created_by, status, currency, total_minor,
    refunded_minor, items, travellers, contact, hold_id, payment_id, failure_code, failure_detail, cancellation,
    created_at, updated_at";

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: Uuid,
    locator: String,
    customer_id: Uuid,
    organization_id: Option<Uuid>,
    created_by: Uuid,
    status: String,
    currency: String,
    total_minor: i64,
    refunded_minor: i64,
    items: String,
    travellers: String,
    contact: String,
    hold_id: Option<Uuid>,
    payment_id: Option<Uuid>,
    failure_code: Option<String>,
    failure_detail: Option<String>,
    cancellation: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// What an idempotency key names.
pub enum KeyUse {
    /// The booking made under it, and the hash of the request that made it.
    Live(Box<Booking>, Vec<u8>),
    /// A booking older than the key's retention, which gives the key up to the next booking made under it.
    Expired,
    Unused,
}

/// A row with the hash of the request that made it.
#[derive(sqlx::FromRow)]
struct Keyed {
    #[sqlx(flatten)]
    row: Row,
    request_hash: Vec<u8>,
}

/// A row with its pending saga request. No `Debug`: it holds the payment token.
#[derive(sqlx::FromRow)]
struct Requested {
    #[sqlx(flatten)]
    row: Row,
    saga_request: String,
    actor: String,
    payment_token: Option<String>,
    saga_traceparent: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct HistoryRow {
    booking_id: Uuid,
    status: String,
    actor_id: Option<Uuid>,
    reason: Option<String>,
    at: Timestamp,
}

/// Which bookings a list may show: those [`Booking::visible_to`] shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Support and admin.
    All,
    /// Agents and partners: their organization's, and as [`Scope::Own`] shows.
    Organization { organization_id: Uuid, user_id: Uuid },
    /// Everyone else: booked for them, or made by them for no organization (one made for an organization is that
    /// organization's, not its maker's).
    Own { user_id: Uuid },
}

/// A list's filters and page.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub status: Option<Status>,
    pub customer_id: Option<Uuid>,
    /// Only bookings older than this one (ids are time-ordered).
    pub before: Option<Uuid>,
    pub limit: u32,
}

/// A saga request as stored: the booking (without its history, which no saga needs), what it needs, and for whom.
/// No `Debug`: it holds the payment token.
pub struct PendingRequest {
    pub booking: Booking,
    pub kind: SagaKind,
    pub actor: Principal,
    pub payment_token: Option<String>,
    /// The trace context of the request that asked for the saga.
    pub traceparent: Option<String>,
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &'static str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|source| Error::Corrupt {
        what,
        source: Some(source),
    })
}

impl Row {
    fn into_booking(self, history: Vec<HistoryEntry>) -> Result<Booking, Error> {
        let failure = match (self.failure_code, self.failure_detail) {
            (Some(code), detail) => Some(Failure {
                code,
                detail: detail.unwrap_or_default(),
            }),
            (None, _) => None,
        };
        let cancellation: Option<Cancellation> = self
            .cancellation
            .as_deref()
            .map(|text| json(text, "bookings.cancellation"))
            .transpose()?;
        let contact: Contact = json(&self.contact, "bookings.contact")?;
        Ok(Booking {
            id: self.id,
            locator: Locator::parse(&self.locator).ok_or_else(|| Error::corrupt("bookings.locator"))?,
            status: Status::parse(&self.status).ok_or_else(|| Error::corrupt("bookings.status"))?,
            customer_id: self.customer_id,
            organization_id: self.organization_id,
            created_by: self.created_by,
            currency: self.currency,
            total_minor: self.total_minor,
            refunded_minor: self.refunded_minor,
            items: json(&self.items, "bookings.items")?,
            travellers: json(&self.travellers, "bookings.travellers")?,
            contact,
            hold_id: self.hold_id,
            payment_id: self.payment_id,
            failure,
            cancellation,
            history,
            created_at: self.created_at.datetime(),
            updated_at: self.updated_at.datetime(),
        })
    }
}

impl HistoryRow {
    fn into_entry(self) -> Result<HistoryEntry, Error> {
        Ok(HistoryEntry {
            status: Status::parse(&self.status).ok_or_else(|| Error::corrupt("booking_status_history.status"))?,
            at: self.at.datetime(),
            actor_id: self.actor_id,
            reason: self.reason,
        })
    }
}

impl Store {
    pub fn new(pool: Pool) -> Store {
        Store { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub async fn booking(&self, id: Uuid) -> Result<Option<Booking>, Error> {
        let sql = format!("SELECT {FIELDS} FROM bookings WHERE id = $1");
        let row: Option<Row> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await
        })?;
        self.with_history(row).await
    }

    pub async fn by_locator(&self, locator: &Locator) -> Result<Option<Booking>, Error> {
        let sql = format!("SELECT {FIELDS} FROM bookings WHERE locator = $1");
        let row: Option<Row> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(locator.as_str()).fetch_optional(conn).await
        })?;
        self.with_history(row).await
    }

    /// The booking made under an idempotency key, with the hash of the request that made it.
    /// The booking made under `key` in `scope`, if any: answering (`Live`) while younger than
    /// `phoenix_db::idempotency::RETENTION`, `Expired` after that.
    pub async fn by_idempotency_key(&self, scope: &str, key: &str) -> Result<KeyUse, Error> {
        let sql = format!(
            "SELECT {FIELDS}, request_hash FROM bookings WHERE idempotency_scope = $1 AND idempotency_key = $2"
        );
        let keyed: Option<Keyed> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(scope).bind(key).fetch_optional(conn).await
        })?;
        let Some(Keyed { row, request_hash }) = keyed else {
            return Ok(KeyUse::Unused);
        };
        if row.created_at < Timestamp::now() - phoenix_db::idempotency::RETENTION {
            return Ok(KeyUse::Expired);
        }
        Ok(match self.with_history(Some(row)).await? {
            Some(booking) => KeyUse::Live(Box::new(booking), request_hash),
            None => KeyUse::Unused,
        })
    }

    async fn with_history(&self, row: Option<Row>) -> Result<Option<Booking>, Error> {
        let Some(row) = row else { return Ok(None) };
        let rows: Vec<HistoryRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(
                "SELECT booking_id, status, actor_id, reason, at FROM booking_status_history
                 WHERE booking_id = $1 ORDER BY seq",
            )
            .bind(row.id)
            .fetch_all(conn)
            .await
        })?;
        let history = rows.into_iter().map(HistoryRow::into_entry).collect::<Result<_, _>>()?;
        row.into_booking(history).map(Some)
    }

    /// A page of the bookings `scope` shows, newest first.
    pub async fn list(&self, scope: Scope, query: &ListQuery) -> Result<Vec<Booking>, Error> {
        // The visibility clause is one of three fixed texts; every value is a parameter.
        let (visible, user, organization) = match scope {
            Scope::All => ("TRUE", None, None),
            Scope::Organization {
                organization_id,
                user_id,
            } => (
                "(organization_id = $6 OR customer_id = $5 OR (created_by = $5 AND organization_id IS NULL))",
                Some(user_id),
                Some(organization_id),
            ),
            Scope::Own { user_id } => (
                "(customer_id = $5 OR (created_by = $5 AND organization_id IS NULL))",
                Some(user_id),
                None,
            ),
        };
        let filter = format!(
            "WHERE {visible} AND ($1 IS NULL OR status = $1) AND ($2 IS NULL OR customer_id = $2)
               AND ($3 IS NULL OR id < $3)"
        );
        let page = format!("SELECT {FIELDS} FROM bookings {filter} ORDER BY id DESC LIMIT $4");
        let history = format!(
            "SELECT booking_id, status, actor_id, reason, at FROM booking_status_history
             WHERE booking_id IN (SELECT id FROM bookings {filter} ORDER BY id DESC LIMIT $4)
             ORDER BY booking_id, seq"
        );
        let status = query.status.map(Status::as_str);
        let limit = i64::from(query.limit);
        // Only the scope's own parameters are bound: PostgreSQL refuses parameters a statement does not use.
        let scoped: Vec<Uuid> = [user, organization].into_iter().flatten().collect();
        let (rows, histories): (Vec<Row>, Vec<HistoryRow>) = dispatch!(&self.pool, conn => {
            let mut rows = sqlx::query_as(sqlx::AssertSqlSafe(page))
                .bind(status).bind(query.customer_id).bind(query.before).bind(limit);
            let mut histories = sqlx::query_as(sqlx::AssertSqlSafe(history))
                .bind(status).bind(query.customer_id).bind(query.before).bind(limit);
            for id in &scoped {
                rows = rows.bind(*id);
                histories = histories.bind(*id);
            }
            match rows.fetch_all(conn).await {
                Ok(rows) => histories.fetch_all(conn).await.map(|histories| (rows, histories)),
                Err(error) => Err(error),
            }
        })?;
        let mut by_booking: std::collections::HashMap<Uuid, Vec<HistoryEntry>> = std::collections::HashMap::new();
        for row in histories {
            by_booking.entry(row.booking_id).or_default().push(row.into_entry()?);
        }
        rows.into_iter()
            .map(|row| {
                let history = by_booking.remove(&row.id).unwrap_or_default();
                row.into_booking(history)
            })
            .collect()
    }

    /// Saga requests not taken yet, oldest first, in one read.
    pub async fn saga_requests(&self, limit: u32) -> Result<Vec<PendingRequest>, Error> {
        let sql = format!(
            "SELECT {FIELDS}, saga_request, actor, payment_token, saga_traceparent FROM bookings
             WHERE saga_request IS NOT NULL
             ORDER BY saga_requested_at, id LIMIT $1"
        );
        let rows: Vec<Requested> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(i64::from(limit)).fetch_all(conn).await
        })?;
        rows.into_iter()
            .map(|requested| {
                let kind = match requested.saga_request.as_str() {
                    "booking" => SagaKind::Booking,
                    "cancellation" => SagaKind::Cancellation,
                    _ => return Err(Error::corrupt("bookings.saga_request")),
                };
                Ok(PendingRequest {
                    booking: requested.row.into_booking(Vec::new())?,
                    kind,
                    actor: json(&requested.actor, "bookings.actor")?,
                    payment_token: requested.payment_token,
                    traceparent: requested.saga_traceparent,
                })
            })
            .collect()
    }

    /// Confirmed bookings whose last item ended by `now`, at most `limit`.
    pub async fn ended(&self, now: Timestamp, limit: u32) -> Result<Vec<Uuid>, Error> {
        let ids = dispatch!(&self.pool, conn => {
            sqlx::query_scalar(
                "SELECT id FROM bookings WHERE status = 'confirmed' AND ends_at <= $1 ORDER BY ends_at LIMIT $2",
            )
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await
        })?;
        Ok(ids)
    }
}

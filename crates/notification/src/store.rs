//! The notification service's SQL, written once for both engines. Public for the contract suite.

use phoenix_db::{Pool, Sealer, Timestamp, Tx, dispatch};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

use crate::Error;

mod endpoints;
mod settings;

pub use endpoints::{Disabled, Endpoint, MAX_ENDPOINTS_PER_ORGANIZATION, Subscription, why_unavailable};
pub use settings::{StoredPreferences, StoredTemplate};

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        [Channel::Email, Channel::Sms, Channel::Webhook]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for its time (a reminder, a retry) or for the worker.
    Pending,
    /// The server took it (SMTP accepted, provider or endpoint answered 2xx).
    Delivered,
    /// No transport is configured for it: written to the log only (email without SMTP).
    Logged,
    /// Failed every attempt, or for good: replayable.
    Dead,
    /// No longer wanted (a reminder of a cancelled booking).
    Cancelled,
    /// Not sent on purpose (opted out after it was scheduled, endpoint deleted).
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Logged => "logged",
            Status::Dead => "dead",
            Status::Cancelled => "cancelled",
            Status::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::Delivered,
            Status::Logged,
            Status::Dead,
            Status::Cancelled,
            Status::Skipped,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// One message to send, and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// `confirmed`, `cancelled`, `failed`, `refunded`, `reminder`, `password_reset`, or `webhook`.
    pub kind: String,
    pub channel: Channel,
    pub recipient: String,
    pub endpoint_id: Option<Uuid>,
    pub booking_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub locale: String,
    pub payload: serde_json::Value,
    pub status: Status,
    pub attempts: u32,
    pub replays: u32,
    pub last_error: Option<String>,
    pub response_code: Option<u16>,
    pub give_up_at: Timestamp,
    pub next_attempt_at: Timestamp,
    pub last_attempt_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// One attempt to send a delivery, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    pub delivery_id: Uuid,
    /// The replay round (0 before any replay) and the attempt within it, from 1.
    pub replay: u32,
    pub attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    /// `delivered`, `logged` or `failed`.
    pub outcome: String,
    pub response_code: Option<u16>,
    pub error: Option<String>,
}

type AttemptRow = (Uuid, i32, i32, Timestamp, String, Option<i32>, Option<String>);

fn attempt_of(row: AttemptRow) -> Attempt {
    let (delivery_id, replay, attempt, at, outcome, response_code, error) = row;
    Attempt {
        delivery_id,
        replay: u32::try_from(replay).unwrap_or_default(),
        attempt: u32::try_from(attempt).unwrap_or_default(),
        at: at.datetime(),
        outcome,
        response_code: response_code.and_then(|code| u16::try_from(code).ok()),
        error,
    }
}

/// A delivery to write (status `pending`).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub event_id: Uuid,
    pub event_type: String,
    pub kind: String,
    pub channel: Channel,
    pub recipient: String,
    pub endpoint_id: Option<Uuid>,
    pub booking_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub locale: String,
    pub payload: serde_json::Value,
    pub due_at: Timestamp,
    pub give_up_at: Timestamp,
}

/// A delivery's columns, as [`Row`] reads them.
macro_rules! delivery_fields {
    () => {
        "id, event_id, event_type, kind, channel, recipient, endpoint_id, booking_id, customer_id, organization_id,
        locale, payload, status, attempts, replays, last_error, response_code, give_up_at, next_attempt_at,
        last_attempt_at, delivered_at, created_at"
    };
}

const COLUMNS: &str = concat!("SELECT ", delivery_fields!(), " FROM deliveries");

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    event_id: Uuid,
    event_type: String,
    kind: String,
    channel: String,
    recipient: String,
    endpoint_id: Option<Uuid>,
    booking_id: Option<Uuid>,
    customer_id: Option<Uuid>,
    organization_id: Option<Uuid>,
    locale: String,
    payload: Json<serde_json::Value>,
    status: String,
    attempts: i32,
    replays: i32,
    last_error: Option<String>,
    response_code: Option<i32>,
    give_up_at: Timestamp,
    next_attempt_at: Timestamp,
    last_attempt_at: Option<Timestamp>,
    delivered_at: Option<Timestamp>,
    created_at: Timestamp,
}

impl TryFrom<Row> for Delivery {
    type Error = Error;

    fn try_from(row: Row) -> Result<Delivery, Error> {
        Ok(Delivery {
            id: row.id,
            event_id: row.event_id,
            event_type: row.event_type,
            kind: row.kind,
            channel: Channel::parse(&row.channel).ok_or(Error::Corrupt {
                what: "delivery channel",
            })?,
            recipient: row.recipient,
            endpoint_id: row.endpoint_id,
            booking_id: row.booking_id,
            customer_id: row.customer_id,
            organization_id: row.organization_id,
            locale: row.locale,
            payload: row.payload.0,
            status: Status::parse(&row.status).ok_or(Error::Corrupt {
                what: "delivery status",
            })?,
            attempts: row.attempts.max(0) as u32,
            replays: row.replays.max(0) as u32,
            last_error: row.last_error,
            response_code: row.response_code.and_then(|c| u16::try_from(c).ok()),
            give_up_at: row.give_up_at,
            next_attempt_at: row.next_attempt_at,
            last_attempt_at: row.last_attempt_at,
            delivered_at: row.delivered_at,
            created_at: row.created_at,
        })
    }
}

/// What the service keeps of a booking (from booking's events).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BookingRecord {
    pub booking_id: Uuid,
    pub locator: String,
    pub customer_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub contact_email: String,
    pub contact_phone: Option<String>,
    pub summary: Json<serde_json::Value>,
}

/// What identity seals a user's password-reset token for (`phoenix_identity::reset_token_context`): the same text
/// on both sides, as the two services share no code, only the key.
pub fn reset_token_context(user_id: Uuid) -> String {
    format!("identity.password_reset:{user_id}")
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    sealer: Sealer,
}

impl Store {
    pub fn new(pool: Pool, sealer: Sealer) -> Store {
        Store { pool, sealer }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    // --- password-reset tokens: sealed by identity, opened here only to render the email ---

    /// Whether `text` is in the sealed form ([`phoenix_db::seal`]: `pxs1.<key id>.<sealed>`). A reset token that is
    /// not is never kept: [`phoenix_db::Sealer::open_text`] would hand it back as it is.
    pub fn is_sealed_text(text: &str) -> bool {
        text.starts_with("pxs1.")
    }

    /// The reset token of `user_id`'s reset email, which identity sealed with the shared secrets key under
    /// [`reset_token_context`]. Fails if it is not sealed, was sealed for another user, or with a key this process
    /// was not given (identity and notification must share `secrets_key`).
    pub fn open_reset_token(&self, user_id: Uuid, sealed: &str) -> Result<String, phoenix_db::SealError> {
        if !Store::is_sealed_text(sealed) {
            return Err(phoenix_db::SealError::Tampered);
        }
        Ok(self.sealer.open_text(&reset_token_context(user_id), sealed)?.value)
    }

    // --- written by the event handler, in the event's transaction ---

    /// Records (or refreshes) what is known of a booking.
    /// Keeps what booking events said of each booking (one row per booking in `bookings`; callers pass each once).
    /// Multi-row statements under [`phoenix_db::MAX_MESSAGE_BYTES`].
    pub async fn upsert_bookings(tx: &mut Tx, bookings: &[&BookingRecord], now: Timestamp) -> Result<(), Error> {
        let size = |b: &&BookingRecord| 160 + b.contact_email.len() + b.summary.0.to_string().len();
        for chunk in phoenix_db::chunks_under(bookings, phoenix_db::MAX_MESSAGE_BYTES, size) {
            dispatch!(&mut *tx, conn => {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO bookings (booking_id, locator, customer_id, organization_id, contact_email,
                         contact_phone, summary, updated_at) ",
                );
                q.push_values(chunk, |mut row, b| {
                    row.push_bind(b.booking_id).push_bind(&b.locator).push_bind(b.customer_id)
                        .push_bind(b.organization_id).push_bind(&b.contact_email).push_bind(&b.contact_phone)
                        .push_bind(&b.summary).push_bind(now);
                });
                q.push(
                    " ON CONFLICT (booking_id) DO UPDATE SET locator = excluded.locator,
                         customer_id = excluded.customer_id, organization_id = excluded.organization_id,
                         contact_email = excluded.contact_email, contact_phone = excluded.contact_phone,
                         summary = excluded.summary, updated_at = excluded.updated_at",
                );
                q.build().execute(conn).await.map(|_| ())
            })?;
        }
        Ok(())
    }

    pub async fn booking_in(tx: &mut Tx, booking_id: Uuid) -> Result<Option<BookingRecord>, Error> {
        Ok(dispatch!(tx, conn => {
            sqlx::query_as(
                "SELECT booking_id, locator, customer_id, organization_id, contact_email, contact_phone, summary
                 FROM bookings WHERE booking_id = $1",
            )
            .bind(booking_id)
            .fetch_optional(conn)
            .await
        })?)
    }

    /// Writes `deliveries` as pending, skipping any already written (same event, kind, channel and recipient: a
    /// redelivered event). Multi-row statements under [`phoenix_db::MAX_MESSAGE_BYTES`].
    pub async fn insert_deliveries(tx: &mut Tx, deliveries: &[NewDelivery], now: Timestamp) -> Result<(), Error> {
        let size = |d: &NewDelivery| 200 + d.recipient.len() + d.payload.to_string().len();
        for chunk in phoenix_db::chunks_under(deliveries, phoenix_db::MAX_MESSAGE_BYTES, size) {
            dispatch!(&mut *tx, conn => {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO deliveries (id, event_id, event_type, kind, channel, recipient, endpoint_id,
                         booking_id, customer_id, organization_id, locale, payload, status, attempts, replays,
                         give_up_at, next_attempt_at, created_at, updated_at) ",
                );
                q.push_values(chunk, |mut row, d| {
                    row.push_bind(Uuid::now_v7()).push_bind(d.event_id).push_bind(&d.event_type)
                        .push_bind(&d.kind).push_bind(d.channel.as_str()).push_bind(&d.recipient)
                        .push_bind(d.endpoint_id).push_bind(d.booking_id).push_bind(d.customer_id)
                        .push_bind(d.organization_id).push_bind(&d.locale).push_bind(Json(&d.payload))
                        .push_bind("pending").push_bind(0_i32).push_bind(0_i32).push_bind(d.give_up_at)
                        .push_bind(d.due_at).push_bind(now).push_bind(now);
                });
                q.push(" ON CONFLICT (event_id, kind, channel, recipient) DO NOTHING");
                q.build().execute(conn).await.map(|_| ())
            })?;
        }
        Ok(())
    }

    /// Cancels the pending reminders of a booking; returns how many.
    pub async fn cancel_reminders(tx: &mut Tx, booking_id: Uuid, now: Timestamp) -> Result<u64, Error> {
        Ok(dispatch!(tx, conn => {
            sqlx::query(
                "UPDATE deliveries SET status = 'cancelled', updated_at = $2, claimed_by = NULL, claimed_until = NULL
                 WHERE booking_id = $1 AND kind = 'reminder' AND status = 'pending'",
            )
            .bind(booking_id)
            .bind(now)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?)
    }

    // --- the delivery worker ---

    /// Claims up to `limit` due deliveries for `owner` until `until`. The claim condition is repeated on the row
    /// being updated, so two replicas claiming at once never both win one (PostgreSQL re-checks it against the
    /// row's latest version; SQLite has one writer).
    pub async fn claim_due(
        &self,
        owner: Uuid,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>, Error> {
        let sql = concat!(
            "UPDATE deliveries SET claimed_by = $1, claimed_until = $3
             WHERE id IN (SELECT id FROM deliveries
                          WHERE status = 'pending' AND next_attempt_at <= $2
                            AND (claimed_until IS NULL OR claimed_until < $2)
                          ORDER BY next_attempt_at LIMIT $4)
               AND status = 'pending' AND next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until < $2)
             RETURNING ",
            delivery_fields!()
        );
        let rows: Vec<Row> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sql)
                .bind(owner)
                .bind(now)
                .bind(until)
                .bind(i64::from(limit))
                .fetch_all(conn)
                .await
        })?;
        let mut claimed = rows
            .into_iter()
            .map(Delivery::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        // RETURNING keeps no order: the longest due first, as they were chosen.
        claimed.sort_by_key(|delivery| (delivery.next_attempt_at, delivery.id));
        Ok(claimed)
    }

    /// Records an attempt of a delivery `owner` claimed: its new status (`pending` with `next_attempt_at` for a
    /// retry), the error and the response code. False when the claim was lost meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_attempt(
        &self,
        id: Uuid,
        owner: Uuid,
        status: Status,
        next_attempt_at: Option<Timestamp>,
        error: Option<&str>,
        response_code: Option<u16>,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let done = matches!(status, Status::Delivered | Status::Logged);
        let outcome = if done { status.as_str() } else { "failed" };
        const UPDATE: &str = "UPDATE deliveries SET status = $3, attempts = attempts + 1, last_error = $4,
                 response_code = $5, last_attempt_at = $6, updated_at = $6,
                 next_attempt_at = COALESCE($7, next_attempt_at),
                 delivered_at = CASE WHEN $8 THEN $6 ELSE delivered_at END,
                 claimed_by = NULL, claimed_until = NULL
             WHERE id = $1 AND claimed_by = $2 AND status = 'pending'
             RETURNING id, replays, attempts";
        const INSERT: &str = "INSERT INTO delivery_attempts (delivery_id, replay, attempt, at, outcome, response_code,
             error)";
        macro_rules! bind_update {
            ($query:expr) => {
                $query
                    .bind(id)
                    .bind(owner)
                    .bind(status.as_str())
                    .bind(error)
                    .bind(response_code.map(i32::from))
                    .bind(now)
                    .bind(next_attempt_at)
                    .bind(done)
            };
        }
        // The delivery and its attempt's record together: one statement on PostgreSQL, a transaction on SQLite.
        let recorded = match &self.pool {
            Pool::Postgres(pool) => {
                let sql = format!("WITH d AS ({UPDATE}) {INSERT} SELECT id, replays, attempts, $6, $9, $5, $4 FROM d");
                bind_update!(sqlx::query(sqlx::AssertSqlSafe(sql)))
                    .bind(outcome)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
            Pool::Sqlite(pool) => {
                // Writes first, but as every write transaction here: holding the write lock from the start.
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let updated: Option<(Uuid, i32, i32)> =
                    bind_update!(sqlx::query_as(UPDATE)).fetch_optional(&mut *tx).await?;
                let Some((id, replay, attempt)) = updated else {
                    return Ok(false);
                };
                let sql = format!("{INSERT} VALUES ($1, $2, $3, $4, $5, $6, $7)");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .bind(replay)
                    .bind(attempt)
                    .bind(now)
                    .bind(outcome)
                    .bind(response_code.map(i32::from))
                    .bind(error)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                1
            }
        };
        Ok(recorded == 1)
    }

    /// Marks a claimed delivery skipped (not an attempt: nothing was sent).
    pub async fn skip(&self, id: Uuid, owner: Uuid, reason: &str, now: Timestamp) -> Result<(), Error> {
        dispatch!(&self.pool, conn => {
            sqlx::query(
                "UPDATE deliveries SET status = 'skipped', last_error = $3, updated_at = $4,
                     claimed_by = NULL, claimed_until = NULL
                 WHERE id = $1 AND claimed_by = $2 AND status = 'pending'",
            )
            .bind(id)
            .bind(owner)
            .bind(reason)
            .bind(now)
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Puts a finished delivery back in the queue, due now, with a fresh round of attempts. False when it is
    /// pending or cancelled (nothing to replay).
    pub async fn replay(&self, id: Uuid, now: Timestamp, give_up_at: Timestamp) -> Result<bool, Error> {
        let n = dispatch!(&self.pool, conn => {
            sqlx::query(
                "UPDATE deliveries SET status = 'pending', attempts = 0, replays = replays + 1, next_attempt_at = $2,
                     give_up_at = $3, updated_at = $2, claimed_by = NULL, claimed_until = NULL
                 WHERE id = $1 AND status IN ('dead', 'delivered', 'logged', 'skipped')",
            )
            .bind(id)
            .bind(now)
            .bind(give_up_at)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(n == 1)
    }

    pub async fn delivery(&self, id: Uuid) -> Result<Option<Delivery>, Error> {
        let sql = format!("{COLUMNS} WHERE id = $1");
        let row: Option<Row> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await
        })?;
        row.map(Delivery::try_from).transpose()
    }

    /// The attempts of a booking's deliveries, in order per delivery (at most 5,000).
    pub async fn attempts_of_booking(&self, booking_id: Uuid) -> Result<Vec<Attempt>, Error> {
        self.attempts_where(
            "delivery_id IN (SELECT id FROM deliveries WHERE booking_id = $1)",
            booking_id,
        )
        .await
    }

    /// The attempts of one delivery, in order (at most 5,000).
    pub async fn attempts(&self, delivery_id: Uuid) -> Result<Vec<Attempt>, Error> {
        self.attempts_where("delivery_id = $1", delivery_id).await
    }

    async fn attempts_where(&self, filter: &str, id: Uuid) -> Result<Vec<Attempt>, Error> {
        let sql = format!(
            "SELECT delivery_id, replay, attempt, at, outcome, response_code, error FROM delivery_attempts
             WHERE {filter} ORDER BY delivery_id, replay, attempt LIMIT 5000"
        );
        let rows: Vec<AttemptRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_all(conn).await
        })?;
        Ok(rows.into_iter().map(attempt_of).collect())
    }

    /// Dead deliveries, newest first: of `channel` if given, after the delivery `before` in that order (the last of
    /// the previous page), at most `limit`; with their attempts.
    pub async fn dead_deliveries(
        &self,
        channel: Option<Channel>,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<(Vec<Delivery>, Vec<Attempt>), Error> {
        let sql = format!(
            "{COLUMNS} WHERE status = 'dead' AND ($1 IS NULL OR channel = $1) AND ($2 IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3"
        );
        let rows: Vec<Row> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(channel.map(Channel::as_str))
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(conn)
                .await
        })?;
        let deliveries = rows
            .into_iter()
            .map(Delivery::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let (Some(newest), Some(oldest)) = (deliveries.first(), deliveries.last()) else {
            return Ok((deliveries, Vec::new()));
        };
        // The page's attempts: those of dead deliveries in its range of ids (a delivery that died meanwhile in that
        // range only adds attempts no item of the page shows).
        let rows: Vec<AttemptRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(
                "SELECT delivery_id, replay, attempt, at, outcome, response_code, error FROM delivery_attempts
                 WHERE delivery_id >= $1 AND delivery_id <= $2
                   AND delivery_id IN (SELECT id FROM deliveries WHERE status = 'dead' AND id >= $1 AND id <= $2)
                 ORDER BY delivery_id, replay, attempt LIMIT 20000",
            )
            .bind(oldest.id)
            .bind(newest.id)
            .fetch_all(conn)
            .await
        })?;
        Ok((deliveries, rows.into_iter().map(attempt_of).collect()))
    }

    /// A booking's deliveries, oldest first (at most 500: a booking makes a handful).
    pub async fn deliveries_of_booking(&self, booking_id: Uuid) -> Result<Vec<Delivery>, Error> {
        let sql = format!("{COLUMNS} WHERE booking_id = $1 ORDER BY created_at, id LIMIT 500");
        let rows: Vec<Row> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(booking_id).fetch_all(conn).await
        })?;
        rows.into_iter().map(Delivery::try_from).collect()
    }

    pub async fn booking(&self, booking_id: Uuid) -> Result<Option<BookingRecord>, Error> {
        Ok(dispatch!(&self.pool, conn => {
            sqlx::query_as(
                "SELECT booking_id, locator, customer_id, organization_id, contact_email, contact_phone, summary
                 FROM bookings WHERE booking_id = $1",
            )
            .bind(booking_id)
            .fetch_optional(conn)
            .await
        })?)
    }
}

//! All SQL of the audit service: appending to the chain, reading it, and keeping and reading the projections.
//! Written once for both engines (`$n` parameters, `ON CONFLICT`, `RETURNING`).

use std::collections::BTreeMap;

use phoenix_db::{Pool, Timestamp, Tx, dispatch};
use time::Date;
use uuid::Uuid;

use crate::Error;
use crate::analytics::{BookingsRow, CancellationsRow, ConversionRow, Days, Effect, Item, LoadRow, day_text};
use crate::audit::{Filter, NewEntry};
use crate::chain::Entry;

const ENTRY_COLUMNS: &str = "SELECT position, event_id, actor, action, subject, source, occurred_at, recorded_at, \
                             correlation_id, payload, prev_hash, hash FROM audit_entries";

#[derive(sqlx::FromRow)]
struct EntryRow {
    position: i64,
    event_id: Uuid,
    actor: String,
    action: String,
    subject: String,
    source: String,
    occurred_at: Timestamp,
    recorded_at: Timestamp,
    correlation_id: Option<String>,
    payload: String,
    prev_hash: String,
    hash: String,
}

impl From<EntryRow> for Entry {
    fn from(row: EntryRow) -> Entry {
        Entry {
            position: row.position,
            event_id: row.event_id,
            actor: row.actor,
            action: row.action,
            subject: row.subject,
            source: row.source,
            occurred_at: row.occurred_at,
            recorded_at: row.recorded_at,
            correlation_id: row.correlation_id,
            payload: row.payload,
            prev_hash: row.prev_hash,
            hash: row.hash,
        }
    }
}

/// Entries one insert statement writes: twelve parameters each, far below either engine's limit.
const APPEND_CHUNK: usize = 400;

/// Appends `entries`, in order, at the end of the chain, and returns them as stored. Moving the head first (by the
/// whole batch) locks its row until the transaction ends (on PostgreSQL a row lock; SQLite's transactions hold the
/// write lock from the start), so concurrent appends take positions one after the other, each linking to the hash
/// its predecessor committed. The batch's hashes are chained in memory, then written with multi-row inserts and one
/// update of the head's hash: a few statements per batch, whatever its size.
pub(crate) async fn append(tx: &mut Tx, entries: &[NewEntry]) -> Result<Vec<Entry>, phoenix_db::Error> {
    let count = i64::try_from(entries.len()).unwrap_or(i64::MAX);
    if count == 0 {
        return Ok(Vec::new());
    }
    let (last, mut prev_hash): (i64, String) = dispatch!(&mut *tx, conn => {
        sqlx::query_as("UPDATE audit_head SET position = position + $1 WHERE id = 1 RETURNING position, hash")
            .bind(count)
            .fetch_one(conn)
            .await
    })?;
    let mut chained = Vec::with_capacity(entries.len());
    for (position, new) in (last - count + 1..).zip(entries) {
        let mut entry = Entry {
            position,
            event_id: new.event_id,
            actor: new.actor.clone(),
            action: new.action.clone(),
            subject: new.subject.clone(),
            source: new.source.clone(),
            occurred_at: new.occurred_at,
            recorded_at: new.recorded_at,
            correlation_id: new.correlation_id.clone(),
            payload: new.payload.clone(),
            prev_hash,
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        prev_hash = entry.hash.clone();
        chained.push(entry);
    }
    for chunk in chained.chunks(APPEND_CHUNK) {
        dispatch!(&mut *tx, conn => {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO audit_entries (position, event_id, actor, action, subject, source, occurred_at,
                     recorded_at, correlation_id, payload, prev_hash, hash) ",
            );
            q.push_values(chunk, |mut row, e| {
                row.push_bind(e.position).push_bind(e.event_id).push_bind(&e.actor).push_bind(&e.action)
                    .push_bind(&e.subject).push_bind(&e.source).push_bind(e.occurred_at).push_bind(e.recorded_at)
                    .push_bind(&e.correlation_id).push_bind(&e.payload).push_bind(&e.prev_hash).push_bind(&e.hash);
            });
            q.build().execute(conn).await.map(|_| ())
        })?;
    }
    dispatch!(&mut *tx, conn => {
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&prev_hash)
            .execute(conn)
            .await
            .map(|_| ())
    })?;
    Ok(chained)
}

/// The additive part of a batch's effects, summed in memory and written once per key by [`Sums::write`]: a batch
/// of a thousand confirmed bookings on one day is one upsert per table, not three thousand statements. Additions
/// commute with each other and with the effects [`project`] applies at once (capacities and room types touch other
/// columns), so summing them changes no result.
#[derive(Debug, Default)]
pub(crate) struct Sums {
    /// (day, currency) -> confirmed (count, total), cancelled (count, refunded), refunds (count, amount).
    money: BTreeMap<(String, String), [i64; 6]>,
    /// day -> hotel searches, flight searches, bookings created, bookings confirmed.
    conversion: BTreeMap<String, [i64; 4]>,
    /// item id -> (the item, units sold less units given back).
    sold: BTreeMap<String, (Item, i64)>,
}

fn add<const N: usize>(into: &mut [i64; N], add: [i64; N]) {
    for (total, more) in into.iter_mut().zip(add) {
        *total = total.saturating_add(more);
    }
}

impl Sums {
    fn money(&mut self, day: Date, currency: &str, more: [i64; 6]) {
        add(
            self.money.entry((day_text(day), currency.to_owned())).or_default(),
            more,
        );
    }

    fn conversion(&mut self, day: Date, more: [i64; 4]) {
        add(self.conversion.entry(day_text(day)).or_default(), more);
    }

    /// Writes the sums, one upsert per key, in key order (so concurrent writers lock rows in one order).
    pub(crate) async fn write(self, tx: &mut Tx) -> Result<(), phoenix_db::Error> {
        for ((day, currency), more) in &self.money {
            money(tx, day, currency, *more).await?;
        }
        for (day, more) in &self.conversion {
            conversion(tx, day, *more).await?;
        }
        // Also when the batch's sales cancel out: the row makes the bucket known, as one event at a time would.
        let sold: Vec<&(Item, i64)> = self.sold.values().collect();
        add_sold(tx, &sold).await
    }
}

/// Adds one event's effect to the projections: additions to `sums` (written by [`Sums::write`] before the
/// transaction commits), everything else at once.
pub(crate) async fn project(tx: &mut Tx, effect: &Effect, sums: &mut Sums) -> Result<(), phoenix_db::Error> {
    match effect {
        Effect::Nothing => {}
        Effect::BookingCreated { day } => sums.conversion(*day, [0, 0, 1, 0]),
        Effect::BookingConfirmed {
            day,
            currency,
            total_minor,
        } => {
            sums.money(*day, currency, [1, *total_minor, 0, 0, 0, 0]);
            sums.conversion(*day, [0, 0, 0, 1]);
        }
        Effect::BookingCancelled {
            day,
            currency,
            refunded_minor,
        } => sums.money(*day, currency, [0, 0, 1, *refunded_minor, 0, 0]),
        Effect::PaymentRefunded {
            day,
            currency,
            payment_id,
            refunded_minor,
        } => {
            let known = refunded_so_far(tx, payment_id).await?;
            let added = refunded_minor.saturating_sub(known);
            if added > 0 {
                dispatch!(&mut *tx, conn => {
                    sqlx::query("UPDATE payment_refunds SET refunded_minor = $1 WHERE payment_id = $2")
                        .bind(refunded_minor)
                        .bind(payment_id)
                        .execute(conn)
                        .await
                        .map(|_| ())
                })?;
                sums.money(*day, currency, [0, 0, 0, 0, 1, added]);
            }
        }
        Effect::SearchesCounted {
            day,
            hotel_searches,
            flight_searches,
        } => sums.conversion(*day, [*hotel_searches, *flight_searches, 0, 0]),
        Effect::RoomType { room_type_id, hotel_id } => dispatch!(&mut *tx, conn => {
            sqlx::query(
                "INSERT INTO room_types (room_type_id, hotel_id) VALUES ($1, $2)
                 ON CONFLICT (room_type_id) DO UPDATE SET hotel_id = excluded.hotel_id",
            )
            .bind(room_type_id)
            .bind(hotel_id)
            .execute(conn)
            .await
            .map(|_| ())
        })?,
        Effect::Capacity { at, items } => set_capacities(tx, items, *at).await?,
        Effect::Sold { lines } => {
            for (item, quantity) in lines {
                let entry = sums
                    .sold
                    .entry(item.item_id.clone())
                    .or_insert_with(|| (item.clone(), 0));
                entry.1 = entry.1.saturating_add(*quantity);
            }
        }
    }
    Ok(())
}

/// Adds to a day's money in one currency: confirmed (count, total), cancelled (count, refunded), refunds (count,
/// amount).
async fn money(tx: &mut Tx, day: &str, currency: &str, add: [i64; 6]) -> Result<(), phoenix_db::Error> {
    dispatch!(&mut *tx, conn => {
        sqlx::query(
            "INSERT INTO money_daily (day, currency, n_confirmed, confirmed_minor, n_cancelled,
                 cancelled_refunded_minor, n_refunds, refunds_minor)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (day, currency) DO UPDATE SET
                 n_confirmed = money_daily.n_confirmed + excluded.n_confirmed,
                 confirmed_minor = money_daily.confirmed_minor + excluded.confirmed_minor,
                 n_cancelled = money_daily.n_cancelled + excluded.n_cancelled,
                 cancelled_refunded_minor = money_daily.cancelled_refunded_minor + excluded.cancelled_refunded_minor,
                 n_refunds = money_daily.n_refunds + excluded.n_refunds,
                 refunds_minor = money_daily.refunds_minor + excluded.refunds_minor",
        )
        .bind(day)
        .bind(currency)
        .bind(add[0])
        .bind(add[1])
        .bind(add[2])
        .bind(add[3])
        .bind(add[4])
        .bind(add[5])
        .execute(conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Adds to a day's searches (hotel, flight) and bookings (created, confirmed).
async fn conversion(tx: &mut Tx, day: &str, add: [i64; 4]) -> Result<(), phoenix_db::Error> {
    dispatch!(&mut *tx, conn => {
        sqlx::query(
            "INSERT INTO conversion_daily (day, hotel_searches, flight_searches, n_created, n_confirmed)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (day) DO UPDATE SET
                 hotel_searches = conversion_daily.hotel_searches + excluded.hotel_searches,
                 flight_searches = conversion_daily.flight_searches + excluded.flight_searches,
                 n_created = conversion_daily.n_created + excluded.n_created,
                 n_confirmed = conversion_daily.n_confirmed + excluded.n_confirmed",
        )
        .bind(day)
        .bind(add[0])
        .bind(add[1])
        .bind(add[2])
        .bind(add[3])
        .execute(conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// The refunded total recorded for a payment, with its row locked until the transaction ends (refunds of one
/// payment applied at once by two consumers must not both count the same growth).
async fn refunded_so_far(tx: &mut Tx, payment_id: &str) -> Result<i64, phoenix_db::Error> {
    let known: i64 = dispatch!(&mut *tx, conn => {
        sqlx::query(
            "INSERT INTO payment_refunds (payment_id, refunded_minor) VALUES ($1, 0) ON CONFLICT (payment_id) DO NOTHING",
        )
        .bind(payment_id)
        .execute(&mut *conn)
        .await?;
        sqlx::query_scalar(
            "UPDATE payment_refunds SET refunded_minor = refunded_minor WHERE payment_id = $1 RETURNING refunded_minor",
        )
        .bind(payment_id)
        .fetch_one(conn)
        .await
    })?;
    Ok(known)
}

fn day_of(item: &Item) -> Option<String> {
    item.day.map(day_text)
}

/// Sets buckets' capacities where `at` is not older than the capacity they have (`None`: only makes the bucket
/// known). Multi-row statements kept under [`phoenix_db::MAX_MESSAGE_BYTES`]: a catalog change can name tens of
/// thousands of buckets in one event.
async fn set_capacities(tx: &mut Tx, items: &[(Item, Option<i64>)], at: Timestamp) -> Result<(), phoenix_db::Error> {
    // One row per bucket in a statement (an upsert may not touch a row twice); the last mention wins, as it would
    // one statement at a time.
    let mut latest: BTreeMap<&str, &(Item, Option<i64>)> = BTreeMap::new();
    for entry in items {
        latest.insert(entry.0.item_id.as_str(), entry);
    }
    let rows: Vec<&(Item, Option<i64>)> = latest.into_values().collect();
    let size = |(item, _): &&(Item, Option<i64>)| 64 + item.item_id.len() + item.unit.len();
    for chunk in phoenix_db::chunks_under(&rows, phoenix_db::MAX_MESSAGE_BYTES, size) {
        dispatch!(&mut *tx, conn => {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO inventory_items (item_id, kind, unit, day, capacity, capacity_at, sold) ",
            );
            q.push_values(chunk, |mut row, (item, capacity)| {
                row.push_bind(&item.item_id).push_bind(item.kind.as_str()).push_bind(&item.unit)
                    .push_bind(day_of(item)).push_bind(*capacity).push_bind(capacity.map(|_| at)).push_bind(0_i64);
            });
            q.push(
                " ON CONFLICT (item_id) DO UPDATE SET capacity = excluded.capacity, capacity_at = excluded.capacity_at
                  WHERE excluded.capacity_at IS NOT NULL
                    AND (inventory_items.capacity_at IS NULL OR inventory_items.capacity_at <= excluded.capacity_at)",
            );
            q.build().execute(conn).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Adds units sold to buckets (one row per bucket, in key order), in multi-row statements kept under
/// [`phoenix_db::MAX_MESSAGE_BYTES`].
async fn add_sold(tx: &mut Tx, sold: &[&(Item, i64)]) -> Result<(), phoenix_db::Error> {
    let size = |(item, _): &&(Item, i64)| 64 + item.item_id.len() + item.unit.len();
    for chunk in phoenix_db::chunks_under(sold, phoenix_db::MAX_MESSAGE_BYTES, size) {
        dispatch!(&mut *tx, conn => {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO inventory_items (item_id, kind, unit, day, capacity, capacity_at, sold) ",
            );
            q.push_values(chunk, |mut row, (item, quantity)| {
                row.push_bind(&item.item_id).push_bind(item.kind.as_str()).push_bind(&item.unit)
                    .push_bind(day_of(item)).push_bind(None::<i64>).push_bind(None::<Timestamp>)
                    .push_bind(*quantity);
            });
            q.push(" ON CONFLICT (item_id) DO UPDATE SET sold = inventory_items.sold + excluded.sold");
            q.build().execute(conn).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Reads of the audit database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    pub fn new(pool: Pool) -> Store {
        Store { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The head: the last position and its hash.
    pub async fn head(&self) -> Result<(i64, String), Error> {
        Ok(dispatch!(&self.pool, conn => {
            sqlx::query_as("SELECT position, hash FROM audit_head WHERE id = 1").fetch_one(conn).await
        })?)
    }

    /// Entries after `after` up to `up_to`, in position order, at most `limit`.
    pub async fn page(&self, after: i64, up_to: i64, limit: u32) -> Result<Vec<Entry>, Error> {
        let sql = format!("{ENTRY_COLUMNS} WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3");
        let rows: Vec<EntryRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(after)
                .bind(up_to)
                .bind(i64::from(limit))
                .fetch_all(conn)
                .await
        })?;
        Ok(rows.into_iter().map(Entry::from).collect())
    }

    /// Entries matching `filter`, newest first. The statement names only the filters given, so each query can use
    /// the index of its most selective filter.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Entry>, Error> {
        let mut sql = format!("{ENTRY_COLUMNS} WHERE TRUE");
        let mut n = 0;
        let mut condition = |sql: &mut String, column: &str, op: &str| {
            n += 1;
            sql.push_str(&format!(" AND {column} {op} ${n}"));
        };
        let given = [
            ("actor", "=", filter.actor.is_some()),
            ("action", "=", filter.action.is_some()),
            ("subject", "=", filter.subject.is_some()),
            ("occurred_at", ">=", filter.from.is_some()),
            ("occurred_at", "<", filter.to.is_some()),
            ("position", "<", filter.before.is_some()),
        ];
        for (column, op, present) in given {
            if present {
                condition(&mut sql, column, op);
            }
        }
        sql.push_str(&format!(" ORDER BY position DESC LIMIT ${}", n + 1));
        let rows: Vec<EntryRow> = dispatch!(&self.pool, conn => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
            if let Some(actor) = &filter.actor {
                query = query.bind(actor);
            }
            if let Some(action) = &filter.action {
                query = query.bind(action);
            }
            if let Some(subject) = &filter.subject {
                query = query.bind(subject);
            }
            if let Some(from) = filter.from {
                query = query.bind(from);
            }
            if let Some(to) = filter.to {
                query = query.bind(to);
            }
            if let Some(before) = filter.before {
                query = query.bind(before);
            }
            query.bind(i64::from(filter.limit)).fetch_all(conn).await
        })?;
        Ok(rows.into_iter().map(Entry::from).collect())
    }

    pub async fn bookings(&self, days: Days, currency: Option<&str>) -> Result<Vec<BookingsRow>, Error> {
        let rows: Vec<(String, String, i64, i64)> = dispatch!(&self.pool, conn => {
            sqlx::query_as(
                "SELECT day, currency, n_confirmed, confirmed_minor FROM money_daily
                 WHERE day >= $1 AND day <= $2 AND ($3 IS NULL OR currency = $3) AND n_confirmed > 0
                 ORDER BY day, currency",
            )
            .bind(day_text(days.from))
            .bind(day_text(days.to))
            .bind(currency)
            .fetch_all(conn)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(day, currency, n_confirmed, total_minor)| BookingsRow {
                day,
                currency,
                n_confirmed,
                total_minor,
            })
            .collect())
    }

    pub async fn cancellations(&self, days: Days, currency: Option<&str>) -> Result<Vec<CancellationsRow>, Error> {
        let rows: Vec<(String, String, i64, i64, i64, i64)> = dispatch!(&self.pool, conn => {
            sqlx::query_as(
                "SELECT day, currency, n_cancelled, cancelled_refunded_minor, n_refunds, refunds_minor
                 FROM money_daily
                 WHERE day >= $1 AND day <= $2 AND ($3 IS NULL OR currency = $3)
                   AND (n_cancelled > 0 OR n_refunds > 0)
                 ORDER BY day, currency",
            )
            .bind(day_text(days.from))
            .bind(day_text(days.to))
            .bind(currency)
            .fetch_all(conn)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| CancellationsRow {
                day: r.0,
                currency: r.1,
                n_cancelled: r.2,
                cancelled_refunded_minor: r.3,
                n_refunds: r.4,
                refunds_minor: r.5,
            })
            .collect())
    }

    pub async fn conversion(&self, days: Days) -> Result<Vec<ConversionRow>, Error> {
        let rows: Vec<(String, i64, i64, i64, i64)> = dispatch!(&self.pool, conn => {
            sqlx::query_as(
                "SELECT day, hotel_searches, flight_searches, n_created, n_confirmed FROM conversion_daily
                 WHERE day >= $1 AND day <= $2 ORDER BY day",
            )
            .bind(day_text(days.from))
            .bind(day_text(days.to))
            .fetch_all(conn)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| ConversionRow {
                day: r.0,
                hotel_searches: r.1,
                flight_searches: r.2,
                n_created: r.3,
                n_confirmed: r.4,
            })
            .collect())
    }

    /// Seats per departure: one departure, or those departing in `days`, after the departure id `after`.
    pub async fn load_factor(
        &self,
        departure_id: Option<&str>,
        days: Option<Days>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<LoadRow>, Error> {
        let rows: Vec<(String, Option<String>, i64, i64, i64)> = dispatch!(&self.pool, conn => {
            sqlx::query_as(
                "SELECT unit, MIN(day), CAST(SUM(COALESCE(capacity, 0)) AS BIGINT), CAST(SUM(sold) AS BIGINT),
                     CAST(SUM(CASE WHEN capacity IS NULL THEN 1 ELSE 0 END) AS BIGINT)
                 FROM inventory_items
                 WHERE kind = 'seat' AND ($1 IS NULL OR unit = $1) AND ($2 IS NULL OR day >= $2)
                   AND ($3 IS NULL OR day <= $3) AND ($4 IS NULL OR unit > $4)
                 GROUP BY unit ORDER BY unit LIMIT $5",
            )
            .bind(departure_id)
            .bind(days.map(|d| day_text(d.from)))
            .bind(days.map(|d| day_text(d.to)))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await
        })?;
        Ok(rows.into_iter().map(load_row).collect())
    }

    /// Room-nights per hotel and night in `days` (one hotel, or all), after the (hotel id, night) `after`.
    pub async fn occupancy(
        &self,
        hotel_id: Option<Uuid>,
        days: Days,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<LoadRow>, Error> {
        let rows: Vec<(String, Option<String>, i64, i64, i64)> = dispatch!(&self.pool, conn => {
            sqlx::query_as(
                "SELECT r.hotel_id, i.day, CAST(SUM(COALESCE(i.capacity, 0)) AS BIGINT), CAST(SUM(i.sold) AS BIGINT),
                     CAST(SUM(CASE WHEN i.capacity IS NULL THEN 1 ELSE 0 END) AS BIGINT)
                 FROM inventory_items i JOIN room_types r ON r.room_type_id = i.unit
                 WHERE i.kind = 'room' AND i.day >= $1 AND i.day <= $2 AND ($3 IS NULL OR r.hotel_id = $3)
                   AND ($4 IS NULL OR r.hotel_id > $4 OR (r.hotel_id = $4 AND i.day > $5))
                 GROUP BY r.hotel_id, i.day ORDER BY r.hotel_id, i.day LIMIT $6",
            )
            .bind(day_text(days.from))
            .bind(day_text(days.to))
            .bind(hotel_id.map(|id| id.to_string()))
            .bind(after.map(|a| a.0))
            .bind(after.map(|a| a.1))
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await
        })?;
        Ok(rows.into_iter().map(load_row).collect())
    }
}

fn load_row((key, day, capacity, sold, n_unknown_capacity): (String, Option<String>, i64, i64, i64)) -> LoadRow {
    LoadRow {
        key,
        day,
        capacity,
        sold,
        n_unknown_capacity,
    }
}

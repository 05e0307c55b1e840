//! Inventory's SQL. Reads and single-row statements are one text for both engines. The writer's batch statements
//! are per engine: PostgreSQL gets one statement per table per batch (arrays through `UNNEST`, since every round
//! trip costs), SQLite gets a prepared single-row statement per row (in-process, so a row costs microseconds).
//!
//! Lock order, for every writer in every process: buckets (sorted by item id), then holders (sorted), then holds.
//! A hold's status only changes in a transaction that holds the locks of all its buckets.

use std::collections::{BTreeMap, HashMap};

use phoenix_db::idempotency::{self, Record};
use phoenix_db::{Event, Pool, Timestamp, Tx, chunks_under, dispatch};
use sqlx::Row;
use uuid::Uuid;

use crate::Error;
use crate::hold::{Hold, Line, Status};
use crate::item::{Bucket, ItemId};
use crate::ledger::Change;

#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

/// Everything a batch writes, applied in one transaction by [`Store::write`].
#[derive(Debug, Default)]
pub struct Writes {
    /// Holds leaving `prior` for `status`, with when.
    pub closed: Vec<Closed>,
    pub buckets: Vec<Change>,
    pub new_holds: Vec<Hold>,
    pub holders: BTreeMap<Uuid, i64>,
    pub idempotency: Vec<Record>,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Copy)]
pub struct Closed {
    pub hold_id: Uuid,
    pub prior: Status,
    pub status: Status,
}

/// A batch write found the database not as the batch read it (another writer got there first, or an idempotency
/// key was taken meanwhile): roll back and run the batch again.
#[derive(Debug)]
pub struct Conflict;

/// Rows per statement when creating buckets in bulk: SQLite binds at most 32 766 parameters; PostgreSQL takes
/// arrays, so only memory bounds a statement.
const CREATE_CHUNK_SQLITE: usize = 1_000;
const CREATE_CHUNK_PG: usize = 20_000;

/// A bucket to create, empty.
#[derive(Debug, Clone)]
pub struct NewBucket {
    pub item_id: ItemId,
    pub organization_id: Option<Uuid>,
    pub capacity: i64,
    pub overbooking_limit: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct BucketRow {
    item_id: String,
    organization_id: Option<Uuid>,
    capacity: i64,
    overbooking_limit: i64,
    held: i64,
    sold: i64,
    asked_capacity: Option<i64>,
}

impl BucketRow {
    fn into_bucket(self) -> Result<Bucket, Error> {
        Ok(Bucket {
            item_id: ItemId::parse(&self.item_id).map_err(|_| corrupt("buckets.item_id"))?,
            organization_id: self.organization_id,
            capacity: self.capacity,
            overbooking_limit: self.overbooking_limit,
            held: self.held,
            sold: self.sold,
            asked_capacity: self.asked_capacity,
        })
    }
}

fn corrupt(what: &'static str) -> Error {
    Error::Broken(crate::ledger::Broken {
        item_id: String::new(),
        what,
    })
}

/// Bucket columns with `held` net of lines whose hold has lapsed but is not yet marked expired: availability never
/// waits for the sweeper.
const EFFECTIVE_BUCKET: &str = "SELECT b.item_id, b.organization_id, b.capacity, b.overbooking_limit,
        b.held - CAST(COALESCE((SELECT SUM(l.quantity) FROM hold_lines l
                           WHERE l.item_id = b.item_id AND l.active = TRUE AND l.expires_at <= $1), 0) AS BIGINT)
            AS held,
        b.sold, b.asked_capacity
    FROM buckets b";

const HOLD_COLUMNS: &str =
    "SELECT id, holder_id, organization_id, reference, status, created_at, expires_at, closed_at,
    managed FROM holds";

impl Store {
    pub fn new(pool: Pool) -> Store {
        Store { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    // Reads outside the writer

    pub async fn bucket(&self, item_id: &ItemId, now: Timestamp) -> Result<Option<Bucket>, Error> {
        let sql = format!("{EFFECTIVE_BUCKET} WHERE b.item_id = $2");
        let row: Option<BucketRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).bind(item_id.as_str()).fetch_optional(conn).await
        })?;
        row.map(BucketRow::into_bucket).transpose()
    }

    /// The buckets that exist among `item_ids`, in item order.
    pub async fn buckets(&self, item_ids: &[ItemId], now: Timestamp) -> Result<Vec<Bucket>, Error> {
        let ids: Vec<&str> = item_ids.iter().map(ItemId::as_str).collect();
        let rows: Vec<BucketRow> = match &self.pool {
            Pool::Postgres(pool) => {
                let sql = format!("{EFFECTIVE_BUCKET} WHERE b.item_id = ANY($2) ORDER BY b.item_id");
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(now)
                    .bind(ids)
                    .fetch_all(pool)
                    .await?
            }
            Pool::Sqlite(pool) => {
                let sql = format!(
                    "{EFFECTIVE_BUCKET} WHERE b.item_id IN (SELECT value FROM json_each($2)) ORDER BY b.item_id"
                );
                let json = serde_json::to_string(&ids).map_err(|_| corrupt("item ids"))?;
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(now)
                    .bind(json)
                    .fetch_all(pool)
                    .await?
            }
        };
        rows.into_iter().map(BucketRow::into_bucket).collect()
    }

    /// Creates the buckets among `buckets` that do not exist yet (existing ones are left as they are: resizing goes
    /// through the writer) with an `inventory.items_created.v1` event per chunk naming the created ones, all in one
    /// transaction. Returns how many were created. For loading a catalog's buckets in bulk.
    pub async fn create_buckets(&self, buckets: &[NewBucket], now: Timestamp) -> Result<u64, Error> {
        let mut tx = self.pool.begin().await?;
        let mut created = 0;
        let mut events = Vec::new();
        let chunk_rows = match tx {
            Tx::Postgres(_) => CREATE_CHUNK_PG,
            Tx::Sqlite(_) => CREATE_CHUNK_SQLITE,
        };
        for chunk in buckets.chunks(chunk_rows) {
            let ids: Vec<String> = match &mut tx {
                // Arrays: one statement of any size, and few of them (each large message can wait on a delayed ACK).
                Tx::Postgres(c) => {
                    sqlx::query_scalar(
                        "INSERT INTO buckets (item_id, organization_id, capacity, overbooking_limit, held, sold, updated_at)
                         SELECT u.item_id, u.organization_id, u.capacity, u.overbooking_limit, 0, 0, $5
                         FROM UNNEST($1::text[], $2::uuid[], $3::bigint[], $4::bigint[])
                             AS u(item_id, organization_id, capacity, overbooking_limit)
                         ON CONFLICT (item_id) DO NOTHING RETURNING item_id",
                    )
                    .bind(chunk.iter().map(|b| b.item_id.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|b| b.organization_id).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|b| b.capacity).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|b| b.overbooking_limit).collect::<Vec<_>>())
                    .bind(now)
                    .fetch_all(&mut **c)
                    .await?
                }
                Tx::Sqlite(c) => {
                    let mut query = sqlx::QueryBuilder::new(
                        "INSERT INTO buckets (item_id, organization_id, capacity, overbooking_limit, held, sold, updated_at) ",
                    );
                    query.push_values(chunk, |mut row, b| {
                        row.push_bind(b.item_id.as_str())
                            .push_bind(b.organization_id)
                            .push_bind(b.capacity)
                            .push_bind(b.overbooking_limit)
                            .push("0, 0")
                            .push_bind(now);
                    });
                    query.push(" ON CONFLICT (item_id) DO NOTHING RETURNING item_id");
                    query.build_query_scalar().fetch_all(&mut **c).await?
                }
            };
            created += ids.len() as u64;
            // The row a duplicate id in one chunk inserted is its first one.
            let by_id: HashMap<&str, &NewBucket> = chunk.iter().rev().map(|b| (b.item_id.as_str(), b)).collect();
            let new: Vec<&NewBucket> = ids.iter().filter_map(|id| by_id.get(id.as_str()).copied()).collect();
            for named in chunks_under(&new, phoenix_db::MAX_MESSAGE_BYTES / 2, |b| {
                2 * b.item_id.as_str().len() + 70
            }) {
                events.push(items_created(named)?);
            }
        }
        tx.append_events(&events).await?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn hold(&self, id: Uuid) -> Result<Option<Hold>, Error> {
        let mut holds = self.holds_on(HoldsSource::Pool(&self.pool), &[id]).await?;
        Ok(holds.pop())
    }

    /// Holds and their lines, by id (missing ids are skipped).
    async fn holds_on(&self, source: HoldsSource<'_>, ids: &[Uuid]) -> Result<Vec<Hold>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (rows, lines) = match source {
            HoldsSource::Pool(Pool::Postgres(pool)) => load_holds_pg(&mut *pool.acquire().await?, ids).await?,
            HoldsSource::Pool(Pool::Sqlite(pool)) => load_holds_sqlite(&mut *pool.acquire().await?, ids).await?,
            HoldsSource::Tx(Tx::Postgres(tx)) => load_holds_pg(tx, ids).await?,
            HoldsSource::Tx(Tx::Sqlite(tx)) => load_holds_sqlite(tx, ids).await?,
        };
        let mut lines_by_hold: HashMap<Uuid, Vec<Line>> = HashMap::new();
        for (hold_id, item_id, quantity) in lines {
            let item_id = ItemId::parse(&item_id).map_err(|_| corrupt("hold_lines.item_id"))?;
            lines_by_hold
                .entry(hold_id)
                .or_default()
                .push(Line { item_id, quantity });
        }
        rows.into_iter()
            .map(|row| {
                let status = Status::parse(&row.status).ok_or_else(|| corrupt("holds.status"))?;
                let mut lines = lines_by_hold.remove(&row.id).unwrap_or_default();
                lines.sort_by(|a, b| a.item_id.cmp(&b.item_id));
                Ok(Hold {
                    id: row.id,
                    holder_id: row.holder_id,
                    organization_id: row.organization_id,
                    reference: row.reference,
                    status,
                    lines,
                    created_at: row.created_at,
                    expires_at: row.expires_at,
                    closed_at: row.closed_at,
                    managed: row.managed,
                })
            })
            .collect()
    }

    /// Holds a holder has open now (held and not lapsed).
    pub async fn open_holds(&self, holder_id: Uuid, now: Timestamp) -> Result<i64, Error> {
        let n: i64 = dispatch!(&self.pool, conn => {
            sqlx::query_scalar(
                "SELECT count(*) FROM holds WHERE holder_id = $1 AND status = 'held' AND expires_at > $2",
            )
            .bind(holder_id)
            .bind(now)
            .fetch_one(conn)
            .await
        })?;
        Ok(n)
    }

    // The writer's transaction

    pub async fn begin(&self) -> Result<Tx, Error> {
        Ok(self.pool.begin_indexed().await?)
    }

    pub async fn holds_in(&self, tx: &mut Tx, ids: &[Uuid]) -> Result<Vec<Hold>, Error> {
        self.holds_on(HoldsSource::Tx(tx), ids).await
    }

    /// Ids of holds that lapsed by `now` and have a line on one of `item_ids` (bounded).
    pub async fn lapsed_touching(
        &self,
        tx: &mut Tx,
        item_ids: &[&ItemId],
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<Uuid>, Error> {
        if item_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = item_ids.iter().map(|i| i.as_str()).collect();
        let found: Vec<Uuid> = match tx {
            // No DISTINCT: with it, a plan cached while the table was small walks the primary key in hold order
            // and filters every line (measured at milliseconds per batch); without it, the partial index answers.
            Tx::Postgres(tx) => {
                let mut found: Vec<Uuid> = sqlx::query_scalar(
                    "SELECT hold_id FROM hold_lines
                     WHERE item_id = ANY($1) AND active = TRUE AND expires_at <= $2 LIMIT $3",
                )
                .bind(ids)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut **tx)
                .await?;
                found.sort_unstable();
                found.dedup();
                found
            }
            Tx::Sqlite(tx) => {
                let mut found = Vec::new();
                for id in ids {
                    let some: Vec<Uuid> = sqlx::query_scalar(
                        "SELECT hold_id FROM hold_lines WHERE item_id = $1 AND active = TRUE AND expires_at <= $2
                         LIMIT $3",
                    )
                    .bind(id)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut **tx)
                    .await?;
                    found.extend(some);
                }
                found.sort_unstable();
                found.dedup();
                found.truncate(limit as usize);
                found
            }
        };
        Ok(found)
    }

    /// Ids of the longest-lapsed holds, for the sweeper (bounded).
    pub async fn lapsed(&self, tx: &mut Tx, now: Timestamp, limit: i64) -> Result<Vec<Uuid>, Error> {
        let ids = dispatch!(tx, conn => {
            sqlx::query_scalar("SELECT id FROM holds WHERE status = 'held' AND expires_at <= $1 ORDER BY expires_at LIMIT $2")
                .bind(now)
                .bind(limit)
                .fetch_all(conn)
                .await
        })?;
        Ok(ids)
    }

    /// Reads and locks the raw counters of `item_ids` (sorted) and the open-hold counts of `holder_ids` (sorted),
    /// buckets first. Holders without a row have no open holds. One round trip on PostgreSQL.
    pub async fn lock(
        &self,
        tx: &mut Tx,
        item_ids: &[&ItemId],
        holder_ids: &[Uuid],
    ) -> Result<(Vec<Bucket>, HashMap<Uuid, i64>), Error> {
        let ids: Vec<&str> = item_ids.iter().map(|i| i.as_str()).collect();
        match tx {
            Tx::Postgres(tx) => {
                // UNION ALL runs its branches in order, so every bucket is locked before any holder.
                let rows = sqlx::query(
                    "WITH b AS (SELECT item_id, organization_id, capacity, overbooking_limit, held, sold, asked_capacity
                                FROM buckets WHERE item_id = ANY($1) ORDER BY item_id FOR UPDATE),
                          h AS (SELECT holder_id, active_holds FROM holders
                                WHERE holder_id = ANY($2) ORDER BY holder_id FOR UPDATE)
                     SELECT item_id, organization_id, capacity, overbooking_limit, held, sold, asked_capacity,
                         NULL::uuid AS holder_id
                     FROM b
                     UNION ALL
                     SELECT NULL, NULL, NULL, NULL, active_holds, NULL, NULL, holder_id FROM h",
                )
                .bind(&ids)
                .bind(holder_ids)
                .fetch_all(&mut **tx)
                .await?;
                let mut buckets = Vec::new();
                let mut open = HashMap::new();
                for row in rows {
                    match row.try_get::<Option<Uuid>, _>("holder_id")? {
                        Some(holder_id) => {
                            open.insert(holder_id, row.try_get::<i64, _>("held")?);
                        }
                        None => buckets.push(
                            BucketRow {
                                item_id: row.try_get("item_id")?,
                                organization_id: row.try_get("organization_id")?,
                                capacity: row.try_get("capacity")?,
                                overbooking_limit: row.try_get("overbooking_limit")?,
                                held: row.try_get("held")?,
                                sold: row.try_get("sold")?,
                                asked_capacity: row.try_get("asked_capacity")?,
                            }
                            .into_bucket()?,
                        ),
                    }
                }
                Ok((buckets, open))
            }
            // The transaction began IMMEDIATE: it already holds the database's write lock.
            Tx::Sqlite(tx) => {
                let json = serde_json::to_string(&ids).map_err(|_| corrupt("item ids"))?;
                let rows: Vec<BucketRow> = sqlx::query_as(
                    "SELECT item_id, organization_id, capacity, overbooking_limit, held, sold, asked_capacity
                     FROM buckets WHERE item_id IN (SELECT value FROM json_each($1)) ORDER BY item_id",
                )
                .bind(json)
                .fetch_all(&mut **tx)
                .await?;
                let buckets = rows
                    .into_iter()
                    .map(BucketRow::into_bucket)
                    .collect::<Result<Vec<_>, _>>()?;
                let mut open = HashMap::new();
                for id in holder_ids {
                    let row: Option<(Uuid, i64)> =
                        sqlx::query_as("SELECT holder_id, active_holds FROM holders WHERE holder_id = $1")
                            .bind(id)
                            .fetch_optional(&mut **tx)
                            .await?;
                    open.extend(row);
                }
                Ok((buckets, open))
            }
        }
    }

    /// Writes a batch. `Err(Ok(Conflict))` means the database was not as read: roll back and retry.
    pub async fn write(&self, tx: &mut Tx, writes: &Writes, now: Timestamp) -> Result<Result<(), Conflict>, Error> {
        let outcome = match tx {
            Tx::Postgres(pg) => write_pg(pg, writes, now).await?,
            Tx::Sqlite(lite) => write_sqlite(lite, writes, now).await?,
        };
        if outcome.is_err() {
            return Ok(outcome);
        }
        tx.append_events(&writes.events).await?;
        Ok(Ok(()))
    }
}

enum HoldsSource<'a> {
    Pool(&'a Pool),
    Tx(&'a mut Tx),
}

#[derive(sqlx::FromRow)]
struct HoldRow {
    id: Uuid,
    holder_id: Uuid,
    organization_id: Option<Uuid>,
    reference: Option<String>,
    status: String,
    created_at: Timestamp,
    expires_at: Timestamp,
    closed_at: Option<Timestamp>,
    managed: bool,
}

type LineRow = (Uuid, String, i64);

/// `inventory.items_created.v1` for buckets just created: their ids (`item_ids`, as the first version had them) and
/// their capacities.
fn items_created(buckets: &[&NewBucket]) -> Result<Event, Error> {
    let item_ids: Vec<&str> = buckets.iter().map(|b| b.item_id.as_str()).collect();
    let items: Vec<serde_json::Value> = buckets
        .iter()
        .map(|b| {
            serde_json::json!({
                "item_id": b.item_id.as_str(), "capacity": b.capacity, "overbooking_limit": b.overbooking_limit,
            })
        })
        .collect();
    let subject = item_ids.first().map(|id| (*id).to_owned()).unwrap_or_default();
    let data = serde_json::json!({ "item_ids": item_ids, "items": items });
    Ok(Event::new(crate::SOURCE, "inventory.items_created.v1", subject, &data)?)
}

/// Holds and their lines in one statement (a round trip fewer for every hold confirmed or released).
async fn load_holds_pg(conn: &mut sqlx::PgConnection, ids: &[Uuid]) -> Result<(Vec<HoldRow>, Vec<LineRow>), Error> {
    #[derive(sqlx::FromRow)]
    struct WithLines {
        #[sqlx(flatten)]
        hold: HoldRow,
        line_items: Vec<String>,
        line_quantities: Vec<i64>,
    }
    let found: Vec<WithLines> = sqlx::query_as(
        "SELECT h.id, h.holder_id, h.organization_id, h.reference, h.status, h.created_at, h.expires_at,
             h.closed_at, h.managed, COALESCE(l.items, '{}') AS line_items, COALESCE(l.quantities, '{}') AS line_quantities
         FROM holds h
         LEFT JOIN LATERAL (
             SELECT array_agg(item_id ORDER BY item_id) AS items, array_agg(quantity ORDER BY item_id) AS quantities
             FROM hold_lines WHERE hold_id = h.id
         ) l ON TRUE
         WHERE h.id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut rows = Vec::with_capacity(found.len());
    let mut lines = Vec::with_capacity(found.len());
    for WithLines {
        hold,
        line_items,
        line_quantities,
    } in found
    {
        if line_items.len() != line_quantities.len() {
            return Err(corrupt("hold_lines"));
        }
        lines.extend(
            line_items
                .into_iter()
                .zip(line_quantities)
                .map(|(item, quantity)| (hold.id, item, quantity)),
        );
        rows.push(hold);
    }
    Ok((rows, lines))
}

async fn load_holds_sqlite(
    conn: &mut sqlx::SqliteConnection,
    ids: &[Uuid],
) -> Result<(Vec<HoldRow>, Vec<LineRow>), Error> {
    let sql = format!("{HOLD_COLUMNS} WHERE id = $1");
    let mut rows = Vec::with_capacity(ids.len());
    let mut lines = Vec::new();
    for id in ids {
        let row: Option<HoldRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        rows.extend(row);
        let some: Vec<LineRow> = sqlx::query_as("SELECT hold_id, item_id, quantity FROM hold_lines WHERE hold_id = $1")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
        lines.extend(some);
    }
    Ok((rows, lines))
}

fn conflict_unless(expected: usize, affected: u64) -> Result<(), Conflict> {
    if affected as usize == expected {
        Ok(())
    } else {
        Err(Conflict)
    }
}

async fn write_pg(tx: &mut sqlx::PgConnection, w: &Writes, now: Timestamp) -> Result<Result<(), Conflict>, Error> {
    if !w.closed.is_empty() {
        let ids: Vec<Uuid> = w.closed.iter().map(|c| c.hold_id).collect();
        let statuses: Vec<&str> = w.closed.iter().map(|c| c.status.as_str()).collect();
        let priors: Vec<&str> = w.closed.iter().map(|c| c.prior.as_str()).collect();
        let n = sqlx::query(
            "UPDATE holds h SET status = u.status, closed_at = $4
             FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS u(id, status, prior)
             WHERE h.id = u.id AND h.status = u.prior",
        )
        .bind(&ids)
        .bind(statuses)
        .bind(priors)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if let Err(conflict) = conflict_unless(ids.len(), n) {
            return Ok(Err(conflict));
        }
        sqlx::query("UPDATE hold_lines SET active = FALSE WHERE hold_id = ANY($1) AND active = TRUE")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
    }
    let created: Vec<&Bucket> = w
        .buckets
        .iter()
        .filter_map(|c| match c {
            Change::Created { bucket } => Some(bucket),
            Change::Updated { .. } => None,
        })
        .collect();
    if !created.is_empty() {
        sqlx::query(
            "INSERT INTO buckets (item_id, organization_id, capacity, overbooking_limit, held, sold, updated_at)
             SELECT u.*, $7 FROM UNNEST($1::text[], $2::uuid[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
                 AS u",
        )
        .bind(created.iter().map(|b| b.item_id.as_str()).collect::<Vec<_>>())
        .bind(created.iter().map(|b| b.organization_id).collect::<Vec<_>>())
        .bind(created.iter().map(|b| b.capacity).collect::<Vec<_>>())
        .bind(created.iter().map(|b| b.overbooking_limit).collect::<Vec<_>>())
        .bind(created.iter().map(|b| b.held).collect::<Vec<_>>())
        .bind(created.iter().map(|b| b.sold).collect::<Vec<_>>())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    /// A bucket's [`Change::Updated`], as the batched UPDATE binds it.
    struct Update<'a> {
        item_id: &'a ItemId,
        size: Option<crate::item::Size>,
        held_delta: i64,
        sold_delta: i64,
        asked: Option<i64>,
    }
    let updated: Vec<Update<'_>> = w
        .buckets
        .iter()
        .filter_map(|c| match c {
            Change::Updated {
                item_id,
                size,
                held_delta,
                sold_delta,
                asked,
            } => Some(Update {
                item_id,
                size: *size,
                held_delta: *held_delta,
                sold_delta: *sold_delta,
                asked: *asked,
            }),
            Change::Created { .. } => None,
        })
        .collect();
    if !updated.is_empty() {
        // The guard: whatever this writer believes, no bucket ends above its limit.
        let n = sqlx::query(
            "UPDATE buckets b SET held = b.held + u.dh, sold = b.sold + u.ds,
                 capacity = COALESCE(u.capacity, b.capacity),
                 overbooking_limit = COALESCE(u.overbooking_limit, b.overbooking_limit), asked_capacity = u.asked,
                 updated_at = $6
             FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $7::bigint[])
                 AS u(item_id, dh, ds, capacity, overbooking_limit, asked)
             WHERE b.item_id = u.item_id
               AND b.held + u.dh + b.sold + u.ds
                   <= COALESCE(u.capacity, b.capacity) + COALESCE(u.overbooking_limit, b.overbooking_limit)",
        )
        .bind(updated.iter().map(|u| u.item_id.as_str()).collect::<Vec<_>>())
        .bind(updated.iter().map(|u| u.held_delta).collect::<Vec<_>>())
        .bind(updated.iter().map(|u| u.sold_delta).collect::<Vec<_>>())
        .bind(updated.iter().map(|u| u.size.map(|s| s.capacity)).collect::<Vec<_>>())
        .bind(
            updated
                .iter()
                .map(|u| u.size.map(|s| s.overbooking_limit))
                .collect::<Vec<_>>(),
        )
        .bind(now)
        .bind(updated.iter().map(|u| u.asked).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if let Err(conflict) = conflict_unless(updated.len(), n) {
            return Ok(Err(conflict));
        }
    }
    // Statements are kept under one TCP segment's worth (see `phoenix_db::MAX_MESSAGE_BYTES`).
    let limit = phoenix_db::MAX_MESSAGE_BYTES;
    // Estimated bytes per row in PostgreSQL's binary array encoding (4-byte length per element, 16-byte uuids,
    // 8-byte timestamps), with a margin.
    for h in chunks_under(&w.new_holds, limit, |h| {
        100 + h.reference.as_ref().map_or(0, String::len)
    }) {
        sqlx::query(
            "INSERT INTO holds (id, holder_id, organization_id, reference, status, created_at, expires_at, managed)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[],
                                  $7::timestamptz[], $8::bool[])",
        )
        .bind(h.iter().map(|h| h.id).collect::<Vec<_>>())
        .bind(h.iter().map(|h| h.holder_id).collect::<Vec<_>>())
        .bind(h.iter().map(|h| h.organization_id).collect::<Vec<_>>())
        .bind(h.iter().map(|h| h.reference.as_deref()).collect::<Vec<_>>())
        .bind(h.iter().map(|h| h.status.as_str()).collect::<Vec<_>>())
        .bind(h.iter().map(|h| h.created_at).collect::<Vec<_>>())
        .bind(h.iter().map(|h| h.expires_at).collect::<Vec<_>>())
        .bind(h.iter().map(|h| h.managed).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    let lines: Vec<(&Hold, &Line)> = w
        .new_holds
        .iter()
        .flat_map(|h| h.lines.iter().map(move |l| (h, l)))
        .collect();
    for lines in chunks_under(&lines, limit, |(_, l)| 60 + l.item_id.as_str().len()) {
        sqlx::query(
            "INSERT INTO hold_lines (hold_id, item_id, quantity, active, expires_at)
             SELECT u.hold_id, u.item_id, u.quantity, TRUE, u.expires_at
             FROM UNNEST($1::uuid[], $2::text[], $3::bigint[], $4::timestamptz[]) AS u(hold_id, item_id, quantity, expires_at)",
        )
        .bind(lines.iter().map(|(h, _)| h.id).collect::<Vec<_>>())
        .bind(lines.iter().map(|(_, l)| l.item_id.as_str()).collect::<Vec<_>>())
        .bind(lines.iter().map(|(_, l)| l.quantity).collect::<Vec<_>>())
        .bind(lines.iter().map(|(h, _)| h.expires_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    // New holds add to (and may create) a holder's row; closed holds only subtract from an existing one. Kept
    // apart because the CHECK applies to an upsert's proposed row before it becomes an update.
    type Deltas = Vec<(Uuid, i64)>;
    let (adds, subtracts): (Deltas, Deltas) = w
        .holders
        .iter()
        .filter(|(_, d)| **d != 0)
        .map(|(h, d)| (*h, *d))
        .partition(|(_, d)| *d > 0);
    if !adds.is_empty() {
        sqlx::query(
            "INSERT INTO holders (holder_id, active_holds) SELECT * FROM UNNEST($1::uuid[], $2::bigint[])
             ON CONFLICT (holder_id) DO UPDATE SET active_holds = holders.active_holds + excluded.active_holds",
        )
        .bind(adds.iter().map(|(h, _)| *h).collect::<Vec<_>>())
        .bind(adds.iter().map(|(_, d)| *d).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !subtracts.is_empty() {
        sqlx::query(
            "UPDATE holders SET active_holds = holders.active_holds + u.delta
             FROM UNNEST($1::uuid[], $2::bigint[]) AS u(holder_id, delta) WHERE holders.holder_id = u.holder_id",
        )
        .bind(subtracts.iter().map(|(h, _)| *h).collect::<Vec<_>>())
        .bind(subtracts.iter().map(|(_, d)| *d).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    let mut saved = 0;
    for r in chunks_under(&w.idempotency, limit, |r| {
        200 + r.key.len() + r.response.0.to_string().len()
    }) {
        saved += sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response, created_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::int[], $5::jsonb[], $6::timestamptz[])
             ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash,
                 status_code = excluded.status_code, response = excluded.response, created_at = excluded.created_at
             WHERE idempotency_keys.created_at <= $7",
        )
        .bind(r.iter().map(|r| r.scope.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.key.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.request_hash.as_slice()).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.status_code).collect::<Vec<_>>())
        .bind(r.iter().map(|r| &r.response).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(now - idempotency::RETENTION)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    if let Err(conflict) = conflict_unless(w.idempotency.len(), saved) {
        return Ok(Err(conflict));
    }
    Ok(Ok(()))
}

async fn write_sqlite(
    tx: &mut sqlx::SqliteConnection,
    w: &Writes,
    now: Timestamp,
) -> Result<Result<(), Conflict>, Error> {
    for closed in &w.closed {
        let n = sqlx::query("UPDATE holds SET status = $1, closed_at = $2 WHERE id = $3 AND status = $4")
            .bind(closed.status.as_str())
            .bind(now)
            .bind(closed.hold_id)
            .bind(closed.prior.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if let Err(conflict) = conflict_unless(1, n) {
            return Ok(Err(conflict));
        }
        sqlx::query("UPDATE hold_lines SET active = FALSE WHERE hold_id = $1 AND active = TRUE")
            .bind(closed.hold_id)
            .execute(&mut *tx)
            .await?;
    }
    for change in &w.buckets {
        match change {
            Change::Created { bucket } => {
                sqlx::query(
                    "INSERT INTO buckets (item_id, organization_id, capacity, overbooking_limit, held, sold, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(bucket.item_id.as_str())
                .bind(bucket.organization_id)
                .bind(bucket.capacity)
                .bind(bucket.overbooking_limit)
                .bind(bucket.held)
                .bind(bucket.sold)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            Change::Updated {
                item_id,
                size,
                held_delta,
                sold_delta,
                asked,
            } => {
                let n = sqlx::query(
                    "UPDATE buckets SET held = held + $1, sold = sold + $2,
                         capacity = COALESCE($3, capacity), overbooking_limit = COALESCE($4, overbooking_limit),
                         updated_at = $5, asked_capacity = $7
                     WHERE item_id = $6
                       AND held + $1 + sold + $2 <= COALESCE($3, capacity) + COALESCE($4, overbooking_limit)",
                )
                .bind(held_delta)
                .bind(sold_delta)
                .bind(size.map(|s| s.capacity))
                .bind(size.map(|s| s.overbooking_limit))
                .bind(now)
                .bind(item_id.as_str())
                .bind(asked)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if let Err(conflict) = conflict_unless(1, n) {
                    return Ok(Err(conflict));
                }
            }
        }
    }
    for hold in &w.new_holds {
        sqlx::query(
            "INSERT INTO holds (id, holder_id, organization_id, reference, status, created_at, expires_at, managed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(hold.id)
        .bind(hold.holder_id)
        .bind(hold.organization_id)
        .bind(&hold.reference)
        .bind(hold.status.as_str())
        .bind(hold.created_at)
        .bind(hold.expires_at)
        .bind(hold.managed)
        .execute(&mut *tx)
        .await?;
        for line in &hold.lines {
            sqlx::query(
                "INSERT INTO hold_lines (hold_id, item_id, quantity, active, expires_at) VALUES ($1, $2, $3, TRUE, $4)",
            )
            .bind(hold.id)
            .bind(line.item_id.as_str())
            .bind(line.quantity)
            .bind(hold.expires_at)
            .execute(&mut *tx)
            .await?;
        }
    }
    for (holder_id, delta) in w.holders.iter().filter(|(_, d)| **d != 0) {
        let sql = if *delta > 0 {
            "INSERT INTO holders (holder_id, active_holds) VALUES ($1, $2)
             ON CONFLICT (holder_id) DO UPDATE SET active_holds = holders.active_holds + excluded.active_holds"
        } else {
            "UPDATE holders SET active_holds = active_holds + $2 WHERE holder_id = $1"
        };
        sqlx::query(sql).bind(holder_id).bind(delta).execute(&mut *tx).await?;
    }
    for record in &w.idempotency {
        let n = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash,
                 status_code = excluded.status_code, response = excluded.response, created_at = excluded.created_at
             WHERE idempotency_keys.created_at <= $7",
        )
        .bind(&record.scope)
        .bind(&record.key)
        .bind(&record.request_hash)
        .bind(record.status_code)
        .bind(&record.response)
        .bind(record.created_at)
        .bind(now - idempotency::RETENTION)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if let Err(conflict) = conflict_unless(1, n) {
            return Ok(Err(conflict));
        }
    }
    Ok(Ok(()))
}

//! The batching writer: every change to inventory goes through one writer task per shard. A writer takes whatever
//! requests are queued (up to `max_batch`), applies them to a [`Ledger`] of the buckets they touch (read under
//! lock), writes the result in one transaction and answers every request after that one commit: holds cost a
//! fraction of a commit each instead of a commit each.
//!
//! Each batch also expires the lapsed holds on the buckets it touches, so an expired hold never blocks a new one;
//! the sweeper sends a batch every so often to expire the rest and write their events.
//!
//! A batch that finds the database not as it read it (another process's writer got there first; an idempotency
//! key taken meanwhile) is rolled back and run again, up to [`MAX_ATTEMPTS`] times.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

use phoenix_api::ErrorChain;
use phoenix_db::idempotency::Record;
use phoenix_db::{Event, Timestamp};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::clock::Clock;
use crate::hold::{Hold, NewHold, Status, lines_json};
use crate::item::{Bucket, ItemId, Size};
use crate::ledger::{Ledger, Refusal};
use crate::store::{Closed, Conflict, Store, Writes};
use crate::{Error, SOURCE};

pub const MAX_ATTEMPTS: u32 = 5;
/// A writer lingers for more requests only after a batch at least this big (a sign of load).
const LINGER_AFTER: usize = 16;
/// Lapsed holds expired per batch (the rest wait for the next batch or the sweeper).
const LAPSED_PER_BATCH: i64 = 1_000;

/// Who may resize a bucket.
#[derive(Debug, Clone, Copy)]
pub enum Authority {
    Admin,
    Organization(Uuid),
}

/// An idempotency key with what it guards.
#[derive(Debug, Clone)]
pub struct Keyed {
    pub scope: String,
    pub key: String,
    pub fingerprint: Vec<u8>,
}

pub enum Command {
    Hold {
        hold: NewHold,
        keyed: Option<Keyed>,
        /// The caller's trace context: the events the command makes carry it, as if written in its request.
        traceparent: Option<String>,
        reply: oneshot::Sender<Result<Hold, Error>>,
    },
    Confirm {
        hold_id: Uuid,
        traceparent: Option<String>,
        reply: oneshot::Sender<Result<Hold, Error>>,
    },
    Release {
        hold_id: Uuid,
        traceparent: Option<String>,
        reply: oneshot::Sender<Result<Hold, Error>>,
    },
    Resize {
        item_id: ItemId,
        size: Size,
        /// Never below what is held and sold: the capacity becomes that instead of refusing.
        keep_committed: bool,
        organization_id: Option<Uuid>,
        authority: Authority,
        /// Who asked (the operator or admin, also when the catalog acts for them): named in the event.
        actor_id: Uuid,
        traceparent: Option<String>,
        reply: oneshot::Sender<Result<(Bucket, bool), Error>>,
    },
    Sweep {
        /// The sweep pass's trace context: the expiries it writes carry it.
        traceparent: Option<String>,
        reply: oneshot::Sender<Result<usize, Error>>,
    },
}

impl Command {
    fn traceparent(&self) -> Option<&String> {
        match self {
            Command::Hold { traceparent, .. }
            | Command::Confirm { traceparent, .. }
            | Command::Release { traceparent, .. }
            | Command::Resize { traceparent, .. }
            | Command::Sweep { traceparent, .. } => traceparent.as_ref(),
        }
    }
}

/// A command's answer, decided in memory and sent only after the commit.
enum Outcome {
    Hold(Result<Hold, Error>),
    Bucket(Result<(Bucket, bool), Error>),
    Swept(usize),
}

/// What a writer needs.
#[derive(Clone)]
pub struct Writer {
    pub store: Store,
    pub clock: Clock,
    pub max_batch: usize,
    /// How long a writer under load waits for a fuller batch.
    pub linger: std::time::Duration,
    pub max_open_holds: i64,
    pub response: fn(&Hold) -> serde_json::Value,
}

/// Queues to the writers, one per shard. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shards: Vec<mpsc::Sender<Command>>,
}

impl Engine {
    /// Starts `shards` writer tasks.
    pub fn start(writer: Writer, shards: usize, queue_depth: usize) -> Engine {
        let shards = (0..shards.max(1))
            .map(|shard| {
                let (tx, rx) = mpsc::channel(queue_depth.max(1));
                let writer = writer.clone();
                tokio::spawn(async move { writer.run(shard, rx).await });
                tx
            })
            .collect();
        Engine { shards }
    }

    /// The shard that writes for `item_id`.
    pub fn shard_of(&self, item_id: &ItemId) -> usize {
        let mut hasher = DefaultHasher::new();
        item_id.hash(&mut hasher);
        (hasher.finish() % self.shards.len() as u64) as usize
    }

    /// Queues a command without waiting for room: a full queue is [`Error::Busy`], never an unbounded backlog.
    pub fn submit(&self, shard: usize, command: Command) -> Result<(), Error> {
        let queue = &self.shards[shard % self.shards.len()];
        queue.try_send(command).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => {
                metrics::counter!("inventory_queue_full_total").increment(1);
                Error::Busy
            }
            mpsc::error::TrySendError::Closed(_) => Error::Stopped,
        })
    }
}

impl Writer {
    async fn run(self, shard: usize, mut queue: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut last_len = 0;
        while queue.recv_many(&mut batch, self.max_batch).await > 0 {
            // Under load, the clients just answered are about to ask again: waiting a moment for them fills the
            // batch, and a fuller batch spreads the commit over more requests. A lone request never waits.
            if last_len >= LINGER_AFTER && !self.linger.is_zero() {
                let deadline = tokio::time::Instant::now() + self.linger;
                while batch.len() < self.max_batch {
                    let room = self.max_batch - batch.len();
                    match tokio::time::timeout_at(deadline, queue.recv_many(&mut batch, room)).await {
                        Ok(n) if n > 0 => {}
                        _ => break,
                    }
                }
            }
            last_len = batch.len();
            self.process(shard, &mut batch).await;
            batch.clear();
        }
        tracing::debug!(shard, "inventory writer stopped");
    }

    async fn process(&self, shard: usize, batch: &mut Vec<Command>) {
        let started = Instant::now();
        let mut check_keys = false;
        // Lapsed holds are expired up front only when the batch needs it: for a sweep, or after a first try found a
        // shortage that lapsed holds might explain. The common batch does not pay for the lookup.
        let mut expire_lapsed = batch.iter().any(|c| matches!(c, Command::Sweep { .. }));
        for attempt in 1..=MAX_ATTEMPTS {
            match self.attempt(batch, check_keys, expire_lapsed).await {
                Ok(Attempt::Done(outcomes)) => {
                    metrics::histogram!("inventory_batch_size").record(batch.len() as f64);
                    metrics::histogram!("inventory_batch_seconds").record(started.elapsed().as_secs_f64());
                    reply(batch, outcomes);
                    return;
                }
                Ok(Attempt::ExpireFirst) => expire_lapsed = true,
                Ok(Attempt::Conflict) => {
                    metrics::counter!("inventory_batch_retries_total").increment(1);
                    tracing::debug!(shard, attempt, "inventory batch met a concurrent change, retrying");
                    check_keys = true;
                }
                Err(error) if attempt < MAX_ATTEMPTS && is_transient(&error) => {
                    metrics::counter!("inventory_batch_retries_total").increment(1);
                    tracing::debug!(shard, attempt, error = %ErrorChain(&error), "inventory batch failed, retrying");
                }
                Err(error) => {
                    tracing::error!(shard, size = batch.len(), error = %ErrorChain(&error), "inventory batch failed");
                    fail(batch, &error);
                    return;
                }
            }
        }
        tracing::error!(shard, "inventory batch kept conflicting");
        fail(batch, &Error::Busy);
    }

    /// One try at a batch, in one transaction. Nothing is answered until it has committed.
    async fn attempt(&self, batch: &[Command], check_keys: bool, expire_lapsed: bool) -> Result<Attempt, Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;

        // Which holds, buckets and holders the batch touches.
        let referenced: Vec<Uuid> = batch
            .iter()
            .filter_map(|c| match c {
                Command::Confirm { hold_id, .. } | Command::Release { hold_id, .. } => Some(*hold_id),
                _ => None,
            })
            .collect();
        let mut items: BTreeSet<ItemId> = BTreeSet::new();
        let mut holder_ids: BTreeSet<Uuid> = BTreeSet::new();
        for command in batch {
            match command {
                Command::Hold { hold, .. } => {
                    items.extend(hold.lines.iter().map(|l| l.item_id.clone()));
                    holder_ids.insert(hold.holder_id);
                }
                Command::Resize { item_id, .. } => {
                    items.insert(item_id.clone());
                }
                _ => {}
            }
        }
        let mut ids = referenced.clone();
        let mut lapsed = Vec::new();
        if expire_lapsed {
            let item_refs: Vec<&ItemId> = items.iter().collect();
            lapsed = self
                .store
                .lapsed_touching(&mut tx, &item_refs, now, LAPSED_PER_BATCH)
                .await?;
            if batch.iter().any(|c| matches!(c, Command::Sweep { .. })) {
                lapsed.extend(self.store.lapsed(&mut tx, now, LAPSED_PER_BATCH).await?);
            }
            ids.extend(&lapsed);
        }
        ids.sort_unstable();
        ids.dedup();
        for hold in self.store.holds_in(&mut tx, &ids).await? {
            items.extend(hold.lines.iter().map(|l| l.item_id.clone()));
            holder_ids.insert(hold.holder_id);
        }

        // Lock buckets and holders, then read the holds again: their statuses are now stable (only a writer
        // holding all of a hold's bucket locks changes its status).
        let item_refs: Vec<&ItemId> = items.iter().collect();
        let holder_ids: Vec<Uuid> = holder_ids.into_iter().collect();
        let (buckets, open) = self.store.lock(&mut tx, &item_refs, &holder_ids).await?;
        let mut holds: HashMap<Uuid, Hold> = self
            .store
            .holds_in(&mut tx, &ids)
            .await?
            .into_iter()
            .map(|h| (h.id, h))
            .collect();

        let mut apply = Apply {
            now,
            ledger: Ledger::new(buckets),
            writes: Writes::default(),
            open,
            max_open_holds: self.max_open_holds,
            response: self.response,
            keys_in_batch: HashSet::new(),
            // Lapsed holds expire under a sweep's trace when the batch has one; met in an ordinary batch's shortage,
            // they belong to no caller's request, so they start a trace of their own, as a sweep pass does: what
            // their expiry sets off (a saga's compensation) can still be followed.
            traceparent: batch
                .iter()
                .find(|c| matches!(c, Command::Sweep { .. }))
                .and_then(Command::traceparent)
                .cloned()
                .or_else(|| (!lapsed.is_empty()).then(|| phoenix_api::trace::child_of(None))),
        };
        let mut swept = 0;
        for id in &lapsed {
            if let Some(hold) = holds.get_mut(id)
                && hold.is_lapsed(now)
            {
                apply.close(hold, Status::Expired)?;
                swept += 1;
            }
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for command in batch {
            apply.traceparent = command.traceparent().cloned();
            let outcome = match command {
                Command::Confirm { hold_id, .. } => Outcome::Hold(apply.confirm(holds.get_mut(hold_id))?),
                Command::Release { hold_id, .. } => Outcome::Hold(apply.release(holds.get_mut(hold_id))?),
                Command::Resize {
                    item_id,
                    size,
                    keep_committed,
                    organization_id,
                    authority,
                    actor_id,
                    ..
                } => Outcome::Bucket(apply.resize(
                    item_id,
                    (*size, *keep_committed),
                    *organization_id,
                    *authority,
                    *actor_id,
                )),
                Command::Sweep { .. } => Outcome::Swept(swept),
                Command::Hold { hold, keyed, .. } => {
                    let replay = match keyed {
                        Some(keyed) if check_keys => tx.idempotency_record(&keyed.scope, &keyed.key).await?,
                        _ => None,
                    };
                    Outcome::Hold(apply.hold(hold, keyed.as_ref(), replay))
                }
            };
            outcomes.push(outcome);
        }
        if !expire_lapsed {
            let short: Vec<&ItemId> = outcomes.iter().flat_map(Outcome::short_items).collect();
            if !short.is_empty() && !self.store.lapsed_touching(&mut tx, &short, now, 1).await?.is_empty() {
                return Ok(Attempt::ExpireFirst);
            }
        }
        apply.writes.buckets = apply.ledger.changes();
        if let Err(Conflict) = self.store.write(&mut tx, &apply.writes, now).await? {
            return Ok(Attempt::Conflict);
        }
        tx.commit().await?;
        Ok(Attempt::Done(outcomes))
    }
}

/// How one try at a batch ended.
enum Attempt {
    Done(Vec<Outcome>),
    /// The database was not as read: try again.
    Conflict,
    /// Something was short where lapsed holds still count: try again, expiring them first.
    ExpireFirst,
}

impl Outcome {
    /// Items a refusal says were short (a hold, or a resize below what is committed).
    fn short_items(&self) -> Vec<&ItemId> {
        match self {
            Outcome::Hold(Err(Error::Insufficient(short))) => short.iter().map(|s| &s.item_id).collect(),
            Outcome::Bucket(Err(Error::BelowCommitted { item_id, .. })) => vec![item_id],
            _ => Vec::new(),
        }
    }
}

/// The in-memory half of a batch: decisions, and the writes and events they imply.
struct Apply {
    now: Timestamp,
    ledger: Ledger,
    writes: Writes,
    open: HashMap<Uuid, i64>,
    max_open_holds: i64,
    response: fn(&Hold) -> serde_json::Value,
    keys_in_batch: HashSet<(String, String)>,
    /// The trace context of the command being applied (none for lapsed holds the batch expires).
    traceparent: Option<String>,
}

impl Apply {
    /// Moves a held hold to `status` (confirmed, released or expired), or a confirmed one to released.
    fn close(&mut self, hold: &mut Hold, status: Status) -> Result<(), Error> {
        let prior = hold.status;
        match (prior, status) {
            (Status::Held, Status::Confirmed) => self.ledger.confirm(&hold.lines)?,
            (Status::Held, _) => self.ledger.release_held(&hold.lines)?,
            (Status::Confirmed, Status::Released) => self.ledger.release_sold(&hold.lines)?,
            _ => return Ok(()),
        }
        if prior == Status::Held {
            *self.open.entry(hold.holder_id).or_default() -= 1;
            *self.writes.holders.entry(hold.holder_id).or_default() -= 1;
        }
        self.writes.closed.push(Closed {
            hold_id: hold.id,
            prior,
            status,
        });
        hold.status = status;
        hold.closed_at = Some(self.now);
        let event_type = match status {
            Status::Confirmed => "inventory.hold_confirmed.v1",
            Status::Released => "inventory.hold_released.v1",
            _ => "inventory.hold_expired.v1",
        };
        let data = serde_json::json!({
            "hold_id": hold.id, "holder_id": hold.holder_id, "lines": lines_json(&hold.lines),
            "from": prior, "reference": hold.reference,
        });
        self.push(hold.event(event_type, &data)?);
        Ok(())
    }

    fn event(&mut self, event_type: &'static str, subject: String, data: &serde_json::Value) -> Result<(), Error> {
        self.push(Event::new(SOURCE, event_type, subject, data)?);
        Ok(())
    }

    /// Events take the batch's time: the time of the transaction that writes them.
    fn push(&mut self, mut event: Event) {
        event.occurred_at = self.now;
        event.traceparent = self.traceparent.clone();
        self.writes.events.push(event);
    }

    fn confirm(&mut self, hold: Option<&mut Hold>) -> Result<Result<Hold, Error>, Error> {
        let Some(hold) = hold else {
            return Ok(Err(Error::HoldNotFound));
        };
        match hold.status {
            Status::Held if hold.is_lapsed(self.now) => {
                self.close(hold, Status::Expired)?;
                Ok(Err(Error::HoldExpired))
            }
            Status::Held => {
                self.close(hold, Status::Confirmed)?;
                Ok(Ok(hold.clone()))
            }
            Status::Confirmed => Ok(Ok(hold.clone())),
            Status::Released => Ok(Err(Error::HoldReleased)),
            Status::Expired => Ok(Err(Error::HoldExpired)),
        }
    }

    fn release(&mut self, hold: Option<&mut Hold>) -> Result<Result<Hold, Error>, Error> {
        let Some(hold) = hold else {
            return Ok(Err(Error::HoldNotFound));
        };
        match hold.status {
            // Lapsed: it expires now, which frees its units; releasing it is then done.
            Status::Held if hold.is_lapsed(self.now) => {
                self.close(hold, Status::Expired)?;
                Ok(Ok(hold.clone()))
            }
            Status::Held | Status::Confirmed => {
                self.close(hold, Status::Released)?;
                Ok(Ok(hold.clone()))
            }
            Status::Released | Status::Expired => Ok(Ok(hold.clone())),
        }
    }

    fn resize(
        &mut self,
        item_id: &ItemId,
        (size, keep_committed): (Size, bool),
        organization_id: Option<Uuid>,
        authority: Authority,
        actor_id: Uuid,
    ) -> Result<(Bucket, bool), Error> {
        let existing = self.ledger.bucket(item_id);
        if let (Some(bucket), Authority::Organization(org)) = (&existing, authority)
            && bucket.organization_id != Some(org)
        {
            return Err(Error::NotOwner);
        }
        self.ledger
            .resize(item_id, size, organization_id, keep_committed)
            .map_err(|committed| Error::BelowCommitted {
                item_id: item_id.clone(),
                committed,
            })?;
        let bucket = self.ledger.bucket(item_id).ok_or(Error::ItemNotFound)?;
        let created = existing.is_none();
        self.event(
            "inventory.item_updated.v1",
            item_id.to_string(),
            &serde_json::json!({
                "item_id": item_id, "capacity": bucket.capacity, "overbooking_limit": bucket.overbooking_limit,
                "organization_id": bucket.organization_id, "created": created, "actor_id": actor_id,
            }),
        )?;
        Ok((bucket, created))
    }

    fn hold(&mut self, request: &NewHold, keyed: Option<&Keyed>, replay: Option<Record>) -> Result<Hold, Error> {
        if let Some(keyed) = keyed {
            if let Some(record) = replay {
                if record.request_hash != keyed.fingerprint {
                    return Err(Error::IdempotencyKeyReused);
                }
                return crate::http::hold_from_json(record.response.0);
            }
            if !self.keys_in_batch.insert((keyed.scope.clone(), keyed.key.clone())) {
                return Err(Error::IdempotencyKeyInUse);
            }
        }
        let open = self.open.get(&request.holder_id).copied().unwrap_or(0);
        if open >= self.max_open_holds {
            return Err(Error::TooManyHolds {
                limit: self.max_open_holds,
            });
        }
        self.ledger.reserve(&request.lines).map_err(|refusal| match refusal {
            Refusal::UnknownItems(items) => Error::UnknownItems(items),
            Refusal::Insufficient(short) => Error::Insufficient(short),
        })?;
        let hold = Hold {
            id: Uuid::now_v7(),
            holder_id: request.holder_id,
            organization_id: request.organization_id,
            reference: request.reference.clone(),
            status: Status::Held,
            lines: request.lines.clone(),
            created_at: self.now,
            expires_at: self.now + time::Duration::seconds(request.ttl_secs as i64),
            closed_at: None,
            managed: request.managed,
        };
        *self.open.entry(hold.holder_id).or_default() += 1;
        *self.writes.holders.entry(hold.holder_id).or_default() += 1;
        self.push(hold.created_event()?);
        if let Some(keyed) = keyed {
            let mut record = Record::new(
                keyed.scope.clone(),
                keyed.key.clone(),
                keyed.fingerprint.clone(),
                201,
                (self.response)(&hold),
            );
            record.created_at = self.now;
            self.writes.idempotency.push(record);
        }
        self.writes.new_holds.push(hold.clone());
        Ok(hold)
    }
}

fn is_transient(error: &Error) -> bool {
    let Error::Db(phoenix_db::Error::Sql(sqlx::Error::Database(db))) = error else {
        return false;
    };
    // PostgreSQL: serialization failure, deadlock, unique violation (a bucket created by another writer
    // meanwhile). SQLite: busy.
    matches!(db.code().as_deref(), Some("40001" | "40P01" | "23505" | "5" | "517"))
}

fn reply(batch: &mut Vec<Command>, outcomes: Vec<Outcome>) {
    for (command, outcome) in batch.drain(..).zip(outcomes) {
        match (command, outcome) {
            (Command::Hold { reply, .. }, Outcome::Hold(result))
            | (Command::Confirm { reply, .. }, Outcome::Hold(result))
            | (Command::Release { reply, .. }, Outcome::Hold(result)) => {
                let _ = reply.send(result);
            }
            (Command::Resize { reply, .. }, Outcome::Bucket(result)) => {
                let _ = reply.send(result);
            }
            (Command::Sweep { reply, .. }, Outcome::Swept(n)) => {
                let _ = reply.send(Ok(n));
            }
            _ => tracing::error!("inventory batch outcome does not match its command"),
        }
    }
}

/// Answers every command of a failed batch; the cause was logged once by the caller.
fn fail(batch: &mut Vec<Command>, error: &Error) {
    let failure = || match error {
        Error::Busy => Error::Busy,
        Error::Stopped => Error::Stopped,
        _ => Error::Unavailable,
    };
    for command in batch.drain(..) {
        match command {
            Command::Hold { reply, .. } | Command::Confirm { reply, .. } | Command::Release { reply, .. } => {
                let _ = reply.send(Err(failure()));
            }
            Command::Resize { reply, .. } => {
                let _ = reply.send(Err(failure()));
            }
            Command::Sweep { reply, .. } => {
                let _ = reply.send(Err(failure()));
            }
        }
    }
}

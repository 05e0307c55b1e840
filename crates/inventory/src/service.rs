use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phoenix_api::{Principal, Role};
use phoenix_db::Pool;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::clock::Clock;
use crate::engine::{Authority, Command, Engine, Keyed, Writer};
use crate::hold::{Hold, Limits, NewHold};
use crate::item::{Bucket, ItemId, Size};
use crate::store::Store;
use crate::{Error, http};

/// Inventory's settings, with the defaults the platform ships.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Writer tasks on PostgreSQL (SQLite always has one); requests for a bucket always go to the same one.
    pub shards: usize,
    /// Most commands one writer applies in one transaction.
    pub max_batch: usize,
    /// Microseconds a writer under load waits for more requests before it writes (0: never waits).
    pub linger_us: u64,
    /// Commands waiting per writer before new ones are refused with 503.
    pub queue_depth: usize,
    /// Open (held, unexpired) holds one holder may have at once.
    pub max_open_holds_per_holder: i64,
    /// How often lapsed holds are expired and their events written.
    pub sweep_interval_ms: u64,
    /// Most items one availability request may ask about.
    pub max_availability_items: usize,
    pub holds: Limits,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            shards: 2,
            max_batch: 512,
            linger_us: 1_000,
            queue_depth: 8_192,
            max_open_holds_per_holder: 50,
            sweep_interval_ms: 1_000,
            max_availability_items: 500,
            holds: Limits::default(),
        }
    }
}

impl Options {
    /// Checks the settings, naming the one at fault.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (
                (1..=64).contains(&self.shards),
                "inventory.shards must be between 1 and 64",
            ),
            (
                (1..=10_000).contains(&self.max_batch),
                "inventory.max_batch must be between 1 and 10000",
            ),
            (
                (1..=1_000_000).contains(&self.queue_depth),
                "inventory.queue_depth must be between 1 and 1000000",
            ),
            (
                self.max_open_holds_per_holder >= 1,
                "inventory.max_open_holds_per_holder must be at least 1",
            ),
            (
                (10..=60_000).contains(&self.sweep_interval_ms),
                "inventory.sweep_interval_ms must be between 10 and 60000",
            ),
            (
                (1..=10_000).contains(&self.max_availability_items),
                "inventory.max_availability_items must be between 1 and 10000",
            ),
            (
                (1..=100).contains(&self.holds.max_lines),
                "inventory.holds.max_lines must be between 1 and 100",
            ),
            (
                (1..=Size::MAX).contains(&self.holds.max_quantity),
                "inventory.holds.max_quantity must be between 1 and 1000000000",
            ),
            (
                self.holds.min_ttl_secs >= 1
                    && self.holds.min_ttl_secs <= self.holds.default_ttl_secs
                    && self.holds.default_ttl_secs <= self.holds.max_ttl_secs
                    && self.holds.max_ttl_secs <= 86_400,
                "inventory.holds: need 1 <= min_ttl_secs <= default_ttl_secs <= max_ttl_secs <= 86400",
            ),
        ];
        match checks.into_iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(message.to_owned()),
            None => Ok(()),
        }
    }
}

/// The inventory service: cheap to clone, one per process. Dropping every clone stops its writers (after their
/// current batch) and its sweeper.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    options: Options,
    engine: Engine,
    clock: Clock,
    /// Idempotency keys of requests queued or being written in this process.
    in_flight: Mutex<HashSet<(String, String)>>,
    /// Holds created by this process and not yet confirmed or released here: what confirming or releasing one
    /// needs before its writer (who may see it, which shard), known without reading it. These never change for a
    /// hold, so the copy cannot be stale; the writer checks the hold's status as always.
    placed: Mutex<HashMap<Uuid, Placed>>,
}

/// Most holds [`Inner::placed`] keeps; when it is full, lapsed holds go, and if none has lapsed a new hold is not
/// kept (its confirmation reads it, as another process's would).
const MAX_PLACED: usize = 100_000;

/// A hold's owner and shard.
#[derive(Debug, Clone, Copy)]
struct Placed {
    holder_id: Uuid,
    organization_id: Option<Uuid>,
    shard: usize,
    expires_at: phoenix_db::Timestamp,
}

/// Most buckets one [`Service::create_items`] call creates.
pub const MAX_CREATE_ITEMS: usize = 100_000;

/// A bucket to create, as [`Service::create_items`] takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewItem {
    pub item_id: String,
    pub capacity: i64,
    #[serde(default)]
    pub overbooking_limit: i64,
    #[serde(default)]
    pub organization_id: Option<Uuid>,
}

/// A request for a hold, as a client sends it.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    pub lines: Vec<(String, i64)>,
    pub ttl_secs: Option<u64>,
    pub reference: Option<String>,
}

impl Service {
    pub async fn new(pool: Pool, options: Options, clock: Clock) -> Result<Service, Error> {
        let store = Store::new(pool.clone());
        let engine = Engine::start(
            Writer {
                store: store.clone(),
                clock: clock.clone(),
                max_batch: options.max_batch,
                linger: Duration::from_micros(options.linger_us),
                max_open_holds: options.max_open_holds_per_holder,
                response: http::hold_json,
            },
            // One SQLite file has one writer at a time: a second shard would only wait for the first's lock.
            if pool.backend() == phoenix_db::Backend::Sqlite {
                1
            } else {
                options.shards
            },
            options.queue_depth,
        );
        let service = Service {
            inner: Arc::new(Inner {
                store,
                options,
                engine,
                clock,
                in_flight: Mutex::new(HashSet::new()),
                placed: Mutex::new(HashMap::new()),
            }),
        };
        service.spawn_sweeper();
        Ok(service)
    }

    fn spawn_sweeper(&self) {
        let weak = Arc::downgrade(&self.inner);
        let interval = Duration::from_millis(self.inner.options.sweep_interval_ms);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0u64;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let service = Service { inner };
                // Each pass is a trace of its own: the expiries it writes, and what they set off, carry it.
                let pass = phoenix_api::trace::scope(phoenix_api::trace::child_of(None), service.sweep());
                if let Err(error) = pass.await {
                    tracing::warn!(error = %phoenix_api::ErrorChain(&error), "inventory sweep failed");
                }
                n += 1;
                if n.is_multiple_of(600)
                    && let Err(error) = service.inner.store.pool().prune_idempotency(service.now()).await
                {
                    tracing::warn!(error = %phoenix_api::ErrorChain(&error), "pruning idempotency keys failed");
                }
            }
        });
    }

    pub fn pool(&self) -> &Pool {
        self.inner.store.pool()
    }

    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    fn now(&self) -> phoenix_db::Timestamp {
        self.inner.clock.now()
    }

    async fn ask<T>(
        &self,
        shard: usize,
        command: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Command,
    ) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        self.inner.engine.submit(shard, command(reply))?;
        answer.await.map_err(|_| Error::Stopped)?
    }

    /// Creates or resizes a bucket. Operators manage their organization's buckets; admins any (and may give a new
    /// bucket to an organization). Below what is held and sold is refused.
    pub async fn put_item(
        &self,
        actor: &Principal,
        item_id: &str,
        capacity: i64,
        overbooking_limit: i64,
        organization_id: Option<Uuid>,
    ) -> Result<(Bucket, bool), Error> {
        let size = (capacity, overbooking_limit, false);
        self.resize_item(actor, item_id, size, organization_id).await
    }

    /// [`Service::put_item`], but never below what is held and sold: the capacity becomes that instead (a hotel
    /// closing out a night it already sold rooms of). The answer says what the capacity became.
    pub async fn put_item_keeping_committed(
        &self,
        actor: &Principal,
        item_id: &str,
        capacity: i64,
        overbooking_limit: i64,
        organization_id: Option<Uuid>,
    ) -> Result<(Bucket, bool), Error> {
        let size = (capacity, overbooking_limit, true);
        self.resize_item(actor, item_id, size, organization_id).await
    }

    async fn resize_item(
        &self,
        actor: &Principal,
        item_id: &str,
        (capacity, overbooking_limit, keep_committed): (i64, i64, bool),
        organization_id: Option<Uuid>,
    ) -> Result<(Bucket, bool), Error> {
        let mut errors = Vec::new();
        let item = ItemId::parse(item_id)
            .map_err(|e| errors.push(invalid("item_id", e.to_string())))
            .ok();
        let size = Size::parse(capacity, overbooking_limit)
            .map_err(|(f, m)| errors.push(invalid(f, m.to_owned())))
            .ok();
        let (Some(item), Some(size)) = (item, size) else {
            return Err(Error::Invalid(errors));
        };
        let (authority, owner) = if actor.has(Role::Admin) {
            (Authority::Admin, organization_id)
        } else {
            let Some(org) = actor.organization_id.filter(|_| actor.has(Role::Operator)) else {
                return Err(Error::NotOwner);
            };
            if organization_id.is_some_and(|o| o != org) {
                return Err(Error::NotOwner);
            }
            (Authority::Organization(org), Some(org))
        };
        let shard = self.inner.engine.shard_of(&item);
        self.ask(shard, |reply| Command::Resize {
            item_id: item,
            size,
            keep_committed,
            organization_id: owner,
            authority,
            actor_id: actor.user_id,
            traceparent: phoenix_api::trace::current(),
            reply,
        })
        .await
    }

    /// Creates many empty buckets at once, skipping those that exist (use [`Service::put_item`] to resize). Admins
    /// may give them to any organization; operators create their own organization's. Every item is checked before
    /// anything is written.
    pub async fn create_items(&self, actor: &Principal, items: &[NewItem]) -> Result<u64, Error> {
        if items.len() > MAX_CREATE_ITEMS {
            return Err(Error::Invalid(vec![invalid(
                "items",
                format!("at most {MAX_CREATE_ITEMS} items"),
            )]));
        }
        let mut errors = Vec::new();
        let mut buckets = Vec::with_capacity(items.len());
        for (i, new) in items.iter().enumerate() {
            let item = ItemId::parse(&new.item_id)
                .map_err(|e| errors.push(invalid(&format!("items[{i}].item_id"), e.to_string())));
            let size = Size::parse(new.capacity, new.overbooking_limit)
                .map_err(|(f, m)| errors.push(invalid(&format!("items[{i}].{f}"), m.to_owned())));
            let owner = if actor.has(Role::Admin) {
                new.organization_id
            } else {
                match actor.organization_id.filter(|_| actor.has(Role::Operator)) {
                    Some(org) if new.organization_id.is_none_or(|o| o == org) => Some(org),
                    _ => return Err(Error::NotOwner),
                }
            };
            if let (Ok(item_id), Ok(_)) = (item, size) {
                buckets.push(crate::store::NewBucket {
                    item_id,
                    organization_id: owner,
                    capacity: new.capacity,
                    overbooking_limit: new.overbooking_limit,
                });
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        self.inner.store.create_buckets(&buckets, self.now()).await
    }

    pub async fn item(&self, item_id: &str) -> Result<Bucket, Error> {
        let item = ItemId::parse(item_id).map_err(|_| Error::ItemNotFound)?;
        self.inner
            .store
            .bucket(&item, self.now())
            .await?
            .ok_or(Error::ItemNotFound)
    }

    /// Many buckets at once (unknown ids are left out), bounded by `max_availability_items`.
    pub async fn availability(&self, item_ids: &[String]) -> Result<Vec<Bucket>, Error> {
        let max = self.inner.options.max_availability_items;
        if item_ids.is_empty() || item_ids.len() > max {
            return Err(Error::Invalid(vec![invalid("item_ids", format!("1 to {max} items"))]));
        }
        let mut ids = Vec::with_capacity(item_ids.len());
        let mut errors = Vec::new();
        for (i, raw) in item_ids.iter().enumerate() {
            match ItemId::parse(raw) {
                Ok(id) => ids.push(id),
                Err(e) => errors.push(invalid(&format!("item_ids[{i}]"), e.to_string())),
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        ids.sort();
        ids.dedup();
        self.inner.store.buckets(&ids, self.now()).await
    }

    /// Holds every line or none, for `holder` (the principal, or the customer a service acts for). With an
    /// idempotency key, a retry gets the first answer; a different request under the key is refused.
    pub async fn create_hold(
        &self,
        holder: &Principal,
        request: HoldRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Hold, Error> {
        self.create_hold_as(holder, request, idempotency_key, false).await
    }

    /// [`Service::create_hold`] for a service acting for `holder` (the booking saga): the hold is
    /// [managed](Hold::managed), confirmed and released only through that service.
    pub async fn create_managed_hold(
        &self,
        holder: &Principal,
        request: HoldRequest,
        idempotency_key: &str,
    ) -> Result<Hold, Error> {
        self.create_hold_as(holder, request, Some(idempotency_key), true).await
    }

    /// Refuses (403 `catalog_item`) to let anyone but an admin create or resize a bucket the catalog names over the
    /// public API: the catalog does, through the hotel's rooms or the flight's schedule
    /// ([`crate::item::CATALOG_PREFIXES`]).
    pub fn refuse_catalogs(&self, actor: &Principal, item_id: &str) -> Result<(), Error> {
        match ItemId::parse(item_id) {
            Ok(item) if item.is_catalogs() && !actor.has(Role::Admin) => Err(Error::CatalogItem),
            _ => Ok(()),
        }
    }

    /// Refuses (409 `hold_managed`) to let `actor` confirm or release a [managed](Hold::managed) hold over the
    /// public API: it belongs to a booking, which confirms or releases it.
    pub async fn refuse_managed(&self, actor: &Principal, hold_id: Uuid) -> Result<(), Error> {
        if self.hold(actor, hold_id).await?.managed {
            return Err(Error::HoldManaged);
        }
        Ok(())
    }

    async fn create_hold_as(
        &self,
        holder: &Principal,
        request: HoldRequest,
        idempotency_key: Option<&str>,
        managed: bool,
    ) -> Result<Hold, Error> {
        let mut hold = NewHold::parse(
            &request.lines,
            request.ttl_secs,
            request.reference,
            holder.user_id,
            holder.organization_id,
            &self.inner.options.holds,
        )
        .map_err(|errors| Error::Invalid(errors.into_iter().map(|e| invalid(&e.field, e.message)).collect()))?;
        hold.managed = managed;
        let keyed = idempotency_key.map(|key| Keyed {
            scope: format!("inventory.hold:{}", holder.user_id),
            key: key.to_owned(),
            fingerprint: hold.fingerprint(),
        });
        let _in_flight = match &keyed {
            None => None,
            Some(keyed) => {
                match self
                    .pool()
                    .idempotency_replay(&keyed.scope, &keyed.key, &keyed.fingerprint)
                    .await?
                {
                    phoenix_db::idempotency::Replay::Same(record) => return http::hold_from_json(record.response.0),
                    phoenix_db::idempotency::Replay::Mismatch => return Err(Error::IdempotencyKeyReused),
                    phoenix_db::idempotency::Replay::New => Some(self.claim(keyed)?),
                }
            }
        };
        let shard = self.inner.engine.shard_of(&hold.lines[0].item_id);
        let created = self
            .ask(shard, |reply| Command::Hold {
                hold,
                keyed,
                traceparent: phoenix_api::trace::current(),
                reply,
            })
            .await?;
        let mut placed = self.inner.placed.lock().unwrap_or_else(|p| p.into_inner());
        if placed.len() >= MAX_PLACED {
            let now = self.now();
            placed.retain(|_, p| p.expires_at > now);
        }
        if placed.len() < MAX_PLACED {
            placed.insert(
                created.id,
                Placed {
                    holder_id: created.holder_id,
                    organization_id: created.organization_id,
                    shard,
                    expires_at: created.expires_at,
                },
            );
        }
        drop(placed);
        Ok(created)
    }

    /// The shard of a hold `actor` may see, from [`Inner::placed`] (taking it out) or else read.
    async fn shard_of_hold(&self, actor: &Principal, hold_id: Uuid) -> Result<usize, Error> {
        let placed = self
            .inner
            .placed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&hold_id);
        match placed {
            Some(p) if may_see(actor, p.holder_id, p.organization_id) => Ok(p.shard),
            Some(_) => Err(Error::HoldNotFound),
            None => {
                let hold = self.hold(actor, hold_id).await?;
                Ok(self.inner.engine.shard_of(&hold.lines[0].item_id))
            }
        }
    }

    /// Marks an idempotency key as in flight in this process until the guard drops.
    fn claim(&self, keyed: &Keyed) -> Result<InFlight, Error> {
        let entry = (keyed.scope.clone(), keyed.key.clone());
        let mut in_flight = self.inner.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if !in_flight.insert(entry.clone()) {
            return Err(Error::IdempotencyKeyInUse);
        }
        Ok(InFlight {
            inner: self.inner.clone(),
            entry,
        })
    }

    /// A hold as `viewer` may see it: their own, their organization's (agents, partners, operators), or any for
    /// support and admin. Anything else is "not found".
    pub async fn hold(&self, viewer: &Principal, hold_id: Uuid) -> Result<Hold, Error> {
        let hold = self.inner.store.hold(hold_id).await?.ok_or(Error::HoldNotFound)?;
        if !may_see(viewer, hold.holder_id, hold.organization_id) {
            return Err(Error::HoldNotFound);
        }
        Ok(present(hold, self.now()))
    }

    pub async fn confirm(&self, actor: &Principal, hold_id: Uuid) -> Result<Hold, Error> {
        let shard = self.shard_of_hold(actor, hold_id).await?;
        self.ask(shard, |reply| Command::Confirm {
            hold_id,
            traceparent: phoenix_api::trace::current(),
            reply,
        })
        .await
    }

    pub async fn release(&self, actor: &Principal, hold_id: Uuid) -> Result<Hold, Error> {
        let shard = self.shard_of_hold(actor, hold_id).await?;
        self.ask(shard, |reply| Command::Release {
            hold_id,
            traceparent: phoenix_api::trace::current(),
            reply,
        })
        .await
    }

    /// Expires lapsed holds now (the sweeper does this every `sweep_interval_ms`); returns how many.
    pub async fn sweep(&self) -> Result<usize, Error> {
        let traceparent = phoenix_api::trace::current();
        self.ask(0, |reply| Command::Sweep { traceparent, reply }).await
    }

    /// Items whose buckets changed after position `after` of inventory's change feed (its outbox), at most
    /// `limit` events' worth, with the position to continue from. Caches elsewhere (search) use it to drop what is
    /// stale.
    ///
    /// A negative `after` asks where the feed ends now: no events, and the position to follow from.
    pub async fn changes(&self, after: i64, limit: u32) -> Result<crate::client::Changes, Error> {
        if after < 0 {
            return Ok(crate::client::Changes {
                events: Vec::new(),
                last_seq: self.pool().last_event_seq().await?,
            });
        }
        let events = self.pool().events_after(after, limit).await?;
        let mut changes = crate::client::Changes {
            events: Vec::with_capacity(events.len()),
            last_seq: after,
        };
        for event in events {
            changes.last_seq = event.seq;
            let data = &event.data.0;
            let mut item_ids: Vec<String> = data
                .get("item_id")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .into_iter()
                .collect();
            if let Some(ids) = data.get("item_ids").and_then(|v| v.as_array()) {
                item_ids.extend(ids.iter().filter_map(|v| v.as_str().map(str::to_owned)));
            }
            if let Some(lines) = data.get("lines").and_then(|v| v.as_array()) {
                item_ids.extend(
                    lines
                        .iter()
                        .filter_map(|l| l.get("item_id").and_then(|v| v.as_str()).map(str::to_owned)),
                );
            }
            changes.events.push(crate::client::Change {
                seq: event.seq,
                item_ids,
            });
        }
        Ok(changes)
    }

    pub async fn ready(&self) -> bool {
        self.pool().ping().await
    }
}

/// A lapsed hold is reported as expired even before the sweeper marks it.
fn present(mut hold: Hold, now: phoenix_db::Timestamp) -> Hold {
    if hold.is_lapsed(now) {
        hold.status = crate::hold::Status::Expired;
        hold.closed_at = Some(hold.expires_at);
    }
    hold
}

/// Whether `viewer` may see (and so act on) a hold: any for support and admin; an organization's for its agents,
/// partners and operators, and for its holder while still a member (a customer who belongs to an organization holds
/// for their own bookings as themselves); one of no organization for its holder. A holder moved to another
/// organization no longer sees what they held for the first.
fn may_see(viewer: &Principal, holder_id: Uuid, organization_id: Option<Uuid>) -> bool {
    viewer.sees_everything()
        || match organization_id {
            Some(organization_id) => {
                viewer.organization_id == Some(organization_id)
                    && (viewer.user_id == holder_id || viewer.has_any(&[Role::Agent, Role::Partner, Role::Operator]))
            }
            None => viewer.user_id == holder_id,
        }
}

fn invalid(field: &str, message: String) -> phoenix_api::FieldError {
    phoenix_api::FieldError {
        field: field.to_owned(),
        message,
    }
}

struct InFlight {
    inner: Arc<Inner>,
    entry: (String, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.entry);
    }
}

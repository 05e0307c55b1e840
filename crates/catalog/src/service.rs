//! The catalog service: management of hotels and flights with organization checks, and the in-memory snapshot and
//! availability cache that search reads.
//!
//! Every write goes to the database first (with its outbox event, in one transaction), then to inventory (buckets
//! for new nights and departures), then into this process's snapshot. Writes are serialized per process; the
//! database is the truth, and the snapshot is rebuilt from it at start.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use phoenix_api::{Credential, Principal, Role};
use phoenix_db::{Event, Pool};
use phoenix_inventory::NewItem;
use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime, Time};
use uuid::Uuid;

use crate::Error;
use crate::availability::Availability;
use crate::flight::{self, Departure, Schedule};
use crate::hotel::{self, Hotel, RatePlan, RoomType};
use crate::model::{
    AirlineInput, AirportInput, CalendarChange, CapacityInput, Check, FxRateView, HotelDetails, HotelInput, HotelView,
    PricesInput, RatePlanInput, RatePlanView, RoomTypeInput, RoomTypeView, ScheduleInput, ScheduleView, check_span,
};
use crate::money::{Currency, Rate};
use crate::offer::{Offer, OfferSigner};
use crate::pricing::{DynamicPricing, FeeLine, TravellerPricing};
use crate::snapshot::{HotelEntry, Snapshot};
use crate::store::{Airline, AirportRow, Store};

pub const SOURCE: &str = "phoenix.catalog";
/// How often a catalog reads its own outbox for other processes' changes.
pub const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// How often a catalog reloads everything regardless.
pub const RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// How the catalog prices and quotes. Read from the `[catalog]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Taxes and fees added to every stay or itinerary they apply to.
    pub fees: Vec<FeeLine>,
    pub traveller_pricing: TravellerPricing,
    pub dynamic_pricing: DynamicPricing,
    /// How long a quoted offer can be booked at its price.
    pub offer_ttl_secs: u64,
    /// Search results kept for repeated queries (dropped whenever inventory or the catalog changes).
    pub result_cache_entries: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            fees: vec![
                FeeLine {
                    code: "vat".into(),
                    name: "VAT".into(),
                    kind: crate::pricing::FeeKind::PercentBp(1_000),
                    applies_to: crate::pricing::Applies::Hotel,
                },
                FeeLine {
                    code: "city_tax".into(),
                    name: "City tax".into(),
                    kind: crate::pricing::FeeKind::PerNight(250),
                    applies_to: crate::pricing::Applies::Hotel,
                },
                FeeLine {
                    code: "airport_charges".into(),
                    name: "Airport charges".into(),
                    kind: crate::pricing::FeeKind::PerTraveller(1_500),
                    applies_to: crate::pricing::Applies::Flight,
                },
            ],
            traveller_pricing: TravellerPricing::default(),
            dynamic_pricing: DynamicPricing::default(),
            offer_ttl_secs: 900,
            result_cache_entries: 10_000,
        }
    }
}

impl Options {
    pub fn validate(&self) -> Result<(), String> {
        self.dynamic_pricing
            .validate()
            .map_err(|e| format!("catalog.dynamic_pricing: {e}"))?;
        self.traveller_pricing
            .validate()
            .map_err(|e| format!("catalog.traveller_pricing: {e}"))?;
        crate::pricing::stay_total(&[1], 1, 1, &self.fees).map_err(|e| format!("catalog.fees: {e}"))?;
        if !(30..=86_400).contains(&self.offer_ttl_secs) {
            return Err("catalog.offer_ttl_secs must be between 30 and 86400".into());
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Management writes of this process, one at a time.
    writing: tokio::sync::Mutex<()>,
    availability: Arc<Availability>,
    /// Where organizations' kinds are checked: hotels belong to hotel chains, airlines to airlines.
    identity: phoenix_identity::Client,
    signer: OfferSigner,
    options: Options,
    results: quick_cache::sync::Cache<String, (u64, std::time::Instant, axum::body::Bytes)>,
    /// Bumped by every catalog write; inventory changes bump the availability cache's own epoch.
    epoch: AtomicU64,
    /// Ids of the events this process wrote and its follower has not read back yet.
    mine: std::sync::Mutex<std::collections::HashSet<Uuid>>,
}

/// Who the catalog is when it reads inventory for search: authenticated, with no powers.
fn reader() -> Principal {
    Principal {
        user_id: Uuid::nil(),
        roles: [Role::Support].into(),
        organization_id: None,
        credential: Credential::AccessToken { token_id: Uuid::nil() },
    }
}

impl Catalog {
    /// Loads the catalog from `pool` (seeding the reference airports on first start) and starts following
    /// inventory's changes.
    pub async fn new(
        pool: Pool,
        inventory: phoenix_inventory::Client,
        identity: phoenix_identity::Client,
        options: Options,
        signer: OfferSigner,
    ) -> Result<Catalog, Error> {
        let store = Store::new(pool);
        store.seed_airports(crate::geo::airports()).await?;
        let position = store.pool().last_event_seq().await?;
        let snapshot = Snapshot::build(store.load().await?);
        let availability = Availability::new(inventory, reader());
        availability.spawn_follower();
        let catalog = Catalog {
            inner: Arc::new(Inner {
                store,
                snapshot: RwLock::new(Arc::new(snapshot)),
                writing: tokio::sync::Mutex::new(()),
                availability,
                identity,
                signer,
                results: quick_cache::sync::Cache::new(options.result_cache_entries.max(1)),
                options,
                epoch: AtomicU64::new(0),
                mine: std::sync::Mutex::new(std::collections::HashSet::new()),
            }),
        };
        catalog.spawn_follower(position);
        Ok(catalog)
    }

    pub fn pool(&self) -> &Pool {
        self.inner.store.pool()
    }

    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The catalog as search sees it now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.inner.snapshot.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn availability(&self) -> &Availability {
        &self.inner.availability
    }

    pub(crate) fn signer(&self) -> &OfferSigner {
        &self.inner.signer
    }

    /// Reloads everything from the database (after a bulk load, or to pick up another process's writes).
    pub async fn reload(&self) -> Result<(), Error> {
        let _writing = self.inner.writing.lock().await;
        let snapshot = Snapshot::build(self.inner.store.load().await?);
        self.replace(|current| *current = snapshot);
        Ok(())
    }

    fn replace(&self, change: impl FnOnce(&mut Snapshot)) {
        let mut guard = match self.inner.snapshot.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(Arc::make_mut(&mut guard));
        self.inner.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// A value that changes whenever a cached search result may have become stale.
    pub(crate) fn generation(&self) -> u64 {
        self.inner
            .epoch
            .load(Ordering::Relaxed)
            .wrapping_add(self.inner.availability.epoch())
    }

    /// A result computed since the last change, at most `max_age` ago.
    pub(crate) fn cached_result(&self, key: &str, max_age: std::time::Duration) -> Option<axum::body::Bytes> {
        let (generation, at, value) = self.inner.results.get(key)?;
        (generation == self.generation() && at.elapsed() < max_age).then_some(value)
    }

    /// Keeps a result computed from the state of `generation` (read before computing it).
    pub(crate) fn cache_result(&self, key: String, generation: u64, value: axum::body::Bytes) {
        self.inner
            .results
            .insert(key, (generation, std::time::Instant::now(), value));
    }

    /// Checks an offer id a client presents: signed by this catalog and not expired.
    pub fn verify_offer(&self, offer_id: &str) -> Result<Offer, Error> {
        Ok(self
            .inner
            .signer
            .verify(offer_id, OffsetDateTime::now_utc().unix_timestamp())?)
    }

    /// Reads inventory's change feed once now (the follower does it on its own every 200 ms).
    pub async fn follow_inventory(&self) -> Result<usize, Error> {
        self.inner.availability.follow_once().await
    }

    /// Reads this catalog's outbox after `position` once: when another process (a replica) changed the catalog,
    /// reloads the snapshot. Returns the position read to.
    pub async fn follow_catalog(&self, position: i64) -> Result<i64, Error> {
        let events = self.inner.store.pool().events_after(position, 1_000).await?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(position);
        };
        let foreign = {
            let mut mine = match self.inner.mine.lock() {
                Ok(mine) => mine,
                Err(poisoned) => poisoned.into_inner(),
            };
            // `|` rather than `||`: every id of this process's must be struck off.
            events.iter().fold(false, |foreign, e| !mine.remove(&e.id) | foreign)
        };
        if foreign {
            tracing::info!(position = last, "the catalog changed in another process: reloading");
            self.reload().await?;
        }
        Ok(last)
    }

    /// Follows this catalog's outbox every [`FOLLOW_INTERVAL`] until the last clone of the catalog is dropped, and
    /// reloads everything every [`RELOAD_INTERVAL`] as a backstop (an event committed out of order on PostgreSQL).
    fn spawn_follower(&self, mut position: i64) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FOLLOW_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_reload = std::time::Instant::now();
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let catalog = Catalog { inner };
                match catalog.follow_catalog(position).await {
                    Ok(next) => position = next,
                    Err(error) => {
                        tracing::warn!(error = %phoenix_api::ErrorChain(&error), "following the catalog failed")
                    }
                }
                if last_reload.elapsed() >= RELOAD_INTERVAL {
                    last_reload = std::time::Instant::now();
                    if let Err(error) = catalog.reload().await {
                        tracing::warn!(error = %phoenix_api::ErrorChain(&error), "reloading the catalog failed");
                    }
                }
            }
        });
    }

    // Organization checks

    /// The organization a new object belongs to: an operator's own, or the one an admin names.
    fn owner_for_new(actor: &Principal, named: Option<Uuid>) -> Result<Uuid, Error> {
        if actor.has(Role::Admin) {
            return named.ok_or_else(|| Error::invalid("organization_id", "admins must name the organization"));
        }
        match actor.organization_id.filter(|_| actor.has(Role::Operator)) {
            Some(org) if named.is_none_or(|n| n == org) => Ok(org),
            _ => Err(Error::Forbidden),
        }
    }

    /// Checks that `organization_id` is an organization of `kind`. A wrong one is the caller's own (403) or one an
    /// admin named (422 on `organization_id`).
    async fn require_kind(
        &self,
        actor: &Principal,
        organization_id: Uuid,
        kind: phoenix_identity::OrganizationKind,
        label: &str,
    ) -> Result<(), Error> {
        let found = self
            .inner
            .identity
            .organization_kind(organization_id)
            .await
            .map_err(Error::Upstream)?;
        if found == Some(kind) {
            return Ok(());
        }
        if actor.organization_id == Some(organization_id) && !actor.has(Role::Admin) {
            return Err(Error::Forbidden);
        }
        match found {
            None => Err(Error::invalid("organization_id", "no such organization")),
            Some(_) => Err(Error::invalid("organization_id", format!("must be {label}"))),
        }
    }

    fn may_manage(actor: &Principal, organization_id: Uuid) -> bool {
        actor.has(Role::Admin) || (actor.has(Role::Operator) && actor.organization_id == Some(organization_id))
    }

    /// A hotel the actor reads to change it: someone else's is as good as absent (404).
    fn hotel_for_read(&self, actor: &Principal, id: Uuid) -> Result<Arc<HotelEntry>, Error> {
        let entry = self
            .snapshot()
            .hotels
            .get(&id)
            .cloned()
            .ok_or(Error::NotFound("hotel"))?;
        if Self::may_manage(actor, entry.hotel.organization_id) {
            Ok(entry)
        } else {
            Err(Error::NotFound("hotel"))
        }
    }

    /// A hotel the actor changes: someone else's is forbidden (403).
    fn hotel_for_write(&self, actor: &Principal, id: Uuid) -> Result<Arc<HotelEntry>, Error> {
        let entry = self
            .snapshot()
            .hotels
            .get(&id)
            .cloned()
            .ok_or(Error::NotFound("hotel"))?;
        if Self::may_manage(actor, entry.hotel.organization_id) {
            Ok(entry)
        } else {
            Err(Error::Forbidden)
        }
    }

    /// An event of this catalog, remembered so the follower can tell this process's writes from another's.
    fn event(
        &self,
        event_type: &'static str,
        subject: impl Into<String>,
        data: serde_json::Value,
    ) -> Result<Event, Error> {
        let event = Event::new(SOURCE, event_type, subject, &data)?;
        match self.inner.mine.lock() {
            Ok(mut mine) => mine.insert(event.id),
            Err(poisoned) => poisoned.into_inner().insert(event.id),
        };
        Ok(event)
    }

    // Hotels

    pub async fn create_hotel(&self, actor: &Principal, input: HotelInput) -> Result<HotelView, Error> {
        let mut check = Check::default();
        input.check(&mut check);
        check.finish()?;
        let organization_id = Self::owner_for_new(actor, input.organization_id)?;
        self.require_kind(
            actor,
            organization_id,
            phoenix_identity::OrganizationKind::HotelChain,
            "a hotel chain",
        )
        .await?;
        let hotel = Hotel {
            id: Uuid::now_v7(),
            organization_id,
            name: input.name.trim().to_owned(),
            description: input.description,
            address: input.address,
            city: input.city.trim().to_owned(),
            country: input.country,
            latitude: input.latitude,
            longitude: input.longitude,
            stars: input.stars,
            amenities: input.amenities,
            time_zone: input.time_zone,
            active: true,
        };
        let _writing = self.inner.writing.lock().await;
        self.save_hotel(hotel, Vec::new(), Vec::new(), "catalog.hotel_created.v1")
            .await
    }

    pub fn hotel_for_manager(&self, actor: &Principal, id: Uuid) -> Result<HotelDetails, Error> {
        let entry = self.hotel_for_read(actor, id)?;
        Ok(details(&entry))
    }

    pub async fn update_hotel(&self, actor: &Principal, id: Uuid, input: HotelInput) -> Result<HotelView, Error> {
        let mut check = Check::default();
        input.check(&mut check);
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, id)?;
        if input.organization_id.is_some_and(|o| o != entry.hotel.organization_id) {
            check.fail("organization_id", "a hotel cannot move to another organization");
        }
        check.finish()?;
        let hotel = Hotel {
            name: input.name.trim().to_owned(),
            description: input.description,
            address: input.address,
            city: input.city.trim().to_owned(),
            country: input.country,
            latitude: input.latitude,
            longitude: input.longitude,
            stars: input.stars,
            amenities: input.amenities,
            time_zone: input.time_zone,
            ..entry.hotel.clone()
        };
        self.save_hotel(
            hotel,
            entry.room_types.clone(),
            entry.rate_plans.clone(),
            "catalog.hotel_updated.v1",
        )
        .await
    }

    /// Takes a hotel off sale (search stops showing it; its data stays for existing bookings).
    pub async fn deactivate_hotel(&self, actor: &Principal, id: Uuid) -> Result<HotelView, Error> {
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, id)?;
        let hotel = Hotel {
            active: false,
            ..entry.hotel.clone()
        };
        self.save_hotel(
            hotel,
            entry.room_types.clone(),
            entry.rate_plans.clone(),
            "catalog.hotel_deactivated.v1",
        )
        .await
    }

    async fn save_hotel(
        &self,
        hotel: Hotel,
        room_types: Vec<RoomType>,
        rate_plans: Vec<RatePlan>,
        event_type: &'static str,
    ) -> Result<HotelView, Error> {
        let event = self.event(
            event_type,
            hotel.id.to_string(),
            serde_json::json!({ "hotel_id": hotel.id }),
        )?;
        self.inner.store.save_hotel(&hotel, &event).await?;
        let view = hotel.clone();
        self.replace(|s| {
            s.put_hotel(HotelEntry {
                hotel,
                room_types,
                rate_plans,
            })
        });
        Ok(view)
    }

    pub async fn create_room_type(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        input: RoomTypeInput,
    ) -> Result<RoomTypeView, Error> {
        let mut check = Check::default();
        input.check(&mut check);
        check.finish()?;
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        let room = RoomType {
            id: Uuid::now_v7(),
            hotel_id,
            name: input.name.trim().to_owned(),
            max_occupancy: input.max_occupancy,
            beds: input.beds,
            rooms: input.rooms,
            active: true,
        };
        self.save_room_type(actor, &entry, room, "catalog.room_type_created.v1")
            .await
    }

    /// Changes a room type. A new number of rooms resizes every night from today that has a price (per-night
    /// allotments set before are replaced); inventory refuses to go below what is already held and sold.
    pub async fn update_room_type(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        id: Uuid,
        input: RoomTypeInput,
    ) -> Result<RoomTypeView, Error> {
        let mut check = Check::default();
        input.check(&mut check);
        check.finish()?;
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        let old = entry.room_type(id)?;
        let room = RoomType {
            name: input.name.trim().to_owned(),
            max_occupancy: input.max_occupancy,
            beds: input.beds,
            rooms: input.rooms,
            ..old.clone()
        };
        if room.rooms != old.rooms {
            let today = OffsetDateTime::now_utc().date();
            let nights = priced_nights(&entry, id).into_iter().filter(|n| *n >= today);
            self.resize_nights(actor, entry.hotel.organization_id, id, nights, room.rooms)
                .await?;
        }
        self.save_room_type(actor, &entry, room, "catalog.room_type_updated.v1")
            .await
    }

    pub async fn deactivate_room_type(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        id: Uuid,
    ) -> Result<RoomTypeView, Error> {
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        let old = entry.room_type(id)?;
        let room = RoomType {
            active: false,
            ..old.clone()
        };
        self.save_room_type(actor, &entry, room, "catalog.room_type_deactivated.v1")
            .await
    }

    async fn save_room_type(
        &self,
        actor: &Principal,
        entry: &HotelEntry,
        room: RoomType,
        event_type: &'static str,
    ) -> Result<RoomTypeView, Error> {
        let event = self.event(
            event_type,
            room.hotel_id.to_string(),
            serde_json::json!({ "hotel_id": room.hotel_id, "room_type_id": room.id }),
        )?;
        self.inner.store.save_room_type(&room, &event).await?;
        // Nights already priced by another plan of this room type get their buckets now.
        let nights = priced_nights(entry, room.id);
        self.create_buckets(actor, entry.hotel.organization_id, room.id, room.rooms, nights)
            .await?;
        let view = room.clone();
        let mut updated = entry.clone();
        match updated.room_types.iter_mut().find(|r| r.id == room.id) {
            Some(existing) => *existing = room,
            None => updated.room_types.push(room),
        }
        self.replace(|s| s.put_hotel(updated));
        Ok(view)
    }

    /// Sets the rooms on sale for a range of nights (an allotment, or 0 to close out).
    pub async fn set_capacity(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        room_type_id: Uuid,
        input: CapacityInput,
    ) -> Result<CalendarChange, Error> {
        let mut check = Check::default();
        check_span(&mut check, input.from, input.to);
        check.range("rooms", input.rooms, 0, 10_000);
        check.finish()?;
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        entry.room_type(room_type_id)?;
        let nights = hotel::nights(input.from.0, input.to.0 + Duration::days(1));
        let n = nights.len();
        self.resize_nights(
            actor,
            entry.hotel.organization_id,
            room_type_id,
            nights.into_iter(),
            input.rooms,
        )
        .await?;
        self.inner.epoch.fetch_add(1, Ordering::Relaxed);
        Ok(CalendarChange { nights: n })
    }

    async fn resize_nights(
        &self,
        actor: &Principal,
        organization_id: Uuid,
        room_type_id: Uuid,
        nights: impl Iterator<Item = Date>,
        rooms: i64,
    ) -> Result<(), Error> {
        let inventory = self.inner.availability.inventory();
        let mut items = Vec::new();
        for night in nights {
            let item = hotel::room_item(room_type_id, night);
            inventory
                .put_item(actor, &item, rooms, 0, Some(organization_id))
                .await
                .map_err(Error::Upstream)?;
            items.push(item);
        }
        self.inner.availability.invalidate(items.iter().map(String::as_str));
        Ok(())
    }

    async fn create_buckets(
        &self,
        actor: &Principal,
        organization_id: Uuid,
        room_type_id: Uuid,
        rooms: i64,
        nights: Vec<Date>,
    ) -> Result<(), Error> {
        let items: Vec<NewItem> = nights
            .into_iter()
            .map(|night| NewItem {
                item_id: hotel::room_item(room_type_id, night),
                capacity: rooms,
                overbooking_limit: 0,
                organization_id: Some(organization_id),
            })
            .collect();
        self.create_items(actor, items).await
    }

    async fn create_items(&self, actor: &Principal, items: Vec<NewItem>) -> Result<(), Error> {
        for chunk in items.chunks(10_000) {
            self.inner
                .availability
                .inventory()
                .create_items(actor, chunk)
                .await
                .map_err(Error::Upstream)?;
            self.inner
                .availability
                .invalidate(chunk.iter().map(|i| i.item_id.as_str()));
        }
        Ok(())
    }

    pub async fn create_rate_plan(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        input: RatePlanInput,
    ) -> Result<RatePlanView, Error> {
        let mut check = Check::default();
        input.check(&mut check);
        check.finish()?;
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        if !entry.room_types.iter().any(|r| r.id == input.room_type_id) {
            return Err(Error::invalid("room_type_id", "no such room type in this hotel"));
        }
        let plan = RatePlan {
            id: Uuid::now_v7(),
            hotel_id,
            room_type_id: input.room_type_id,
            name: input.name.trim().to_owned(),
            meal_plan: input.meal_plan,
            refundable: input.refundable,
            free_cancellation_hours: input.free_cancellation_hours,
            currency: input.currency,
            prices: BTreeMap::new(),
            active: true,
        };
        self.save_rate_plan(&entry, plan, "catalog.rate_plan_created.v1").await
    }

    /// Changes a rate plan's terms; its room type and currency are fixed once created (its prices are in it).
    pub async fn update_rate_plan(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        id: Uuid,
        input: RatePlanInput,
    ) -> Result<RatePlanView, Error> {
        let mut check = Check::default();
        input.check(&mut check);
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        let old = entry.rate_plan(id)?;
        if input.room_type_id != old.room_type_id {
            check.fail("room_type_id", "a rate plan's room type cannot change");
        }
        if input.currency != old.currency {
            check.fail("currency", "a rate plan's currency cannot change");
        }
        check.finish()?;
        let plan = RatePlan {
            name: input.name.trim().to_owned(),
            meal_plan: input.meal_plan,
            refundable: input.refundable,
            free_cancellation_hours: input.free_cancellation_hours,
            ..old.clone()
        };
        self.save_rate_plan(&entry, plan, "catalog.rate_plan_updated.v1").await
    }

    pub async fn deactivate_rate_plan(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        id: Uuid,
    ) -> Result<RatePlanView, Error> {
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        let old = entry.rate_plan(id)?;
        let plan = RatePlan {
            active: false,
            prices: BTreeMap::new(),
            ..old.clone()
        };
        let mut view = self
            .save_rate_plan(&entry, plan, "catalog.rate_plan_deactivated.v1")
            .await?;
        view.priced_nights = old.prices.len();
        Ok(view)
    }

    /// Prices every night of a range; nights without a bucket for the plan's room type get one.
    pub async fn set_prices(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        plan_id: Uuid,
        input: PricesInput,
    ) -> Result<CalendarChange, Error> {
        let mut check = Check::default();
        check_span(&mut check, input.from, input.to);
        check.range("amount_minor", input.amount_minor, 1, 1_000_000_000);
        check.finish()?;
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        let old = entry.rate_plan(plan_id)?;
        let room = entry.room_type(old.room_type_id)?.clone();
        let nights = hotel::nights(input.from.0, input.to.0 + Duration::days(1));
        let mut delta = old.clone();
        delta.prices = nights.iter().map(|n| (*n, input.amount_minor)).collect();
        let event = self.event(
            "catalog.rates_changed.v1",
            hotel_id.to_string(),
            serde_json::json!({ "hotel_id": hotel_id, "rate_plan_id": plan_id, "from": input.from,
                                "to": input.to, "amount_minor": input.amount_minor }),
        )?;
        self.inner.store.save_rate_plan(&delta, &event).await?;
        self.create_buckets(actor, entry.hotel.organization_id, room.id, room.rooms, nights.clone())
            .await?;
        let mut plan = old.clone();
        plan.prices.extend(delta.prices);
        let mut updated = (*entry).clone();
        if let Some(existing) = updated.rate_plans.iter_mut().find(|p| p.id == plan_id) {
            *existing = plan;
        }
        self.replace(|s| s.put_hotel(updated));
        Ok(CalendarChange { nights: nights.len() })
    }

    async fn save_rate_plan(
        &self,
        entry: &HotelEntry,
        plan: RatePlan,
        event_type: &'static str,
    ) -> Result<RatePlanView, Error> {
        let event = self.event(
            event_type,
            plan.hotel_id.to_string(),
            serde_json::json!({ "hotel_id": plan.hotel_id, "rate_plan_id": plan.id }),
        )?;
        // Terms only: prices are saved by `set_prices`.
        let terms = RatePlan {
            prices: BTreeMap::new(),
            ..plan.clone()
        };
        self.inner.store.save_rate_plan(&terms, &event).await?;
        let mut kept = plan;
        if let Some(old) = entry.rate_plans.iter().find(|p| p.id == kept.id)
            && kept.active
        {
            kept.prices = old.prices.clone();
        }
        let view = RatePlanView::from(&kept);
        let mut updated = entry.clone();
        match updated.rate_plans.iter_mut().find(|p| p.id == kept.id) {
            Some(existing) => *existing = kept,
            None => updated.rate_plans.push(kept),
        }
        self.replace(|s| s.put_hotel(updated));
        Ok(view)
    }

    // Airports, airlines, exchange rates (admins)

    pub async fn put_airport(&self, actor: &Principal, code: &str, input: AirportInput) -> Result<(), Error> {
        if !actor.has(Role::Admin) {
            return Err(Error::Forbidden);
        }
        let mut check = Check::default();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            check.fail("code", "must be three uppercase letters");
        }
        check.text("name", &input.name, 1, 200);
        check.text("city", &input.city, 1, 100);
        if input.country.len() != 2 || !input.country.bytes().all(|b| b.is_ascii_uppercase()) {
            check.fail("country", "must be an ISO 3166-1 alpha-2 code");
        }
        if crate::geo::time_zone(&input.time_zone).is_none() {
            check.fail("time_zone", "must be an IANA time zone");
        }
        if !(-90.0..=90.0).contains(&input.latitude) {
            check.fail("latitude", "must be between -90 and 90");
        }
        if !(-180.0..=180.0).contains(&input.longitude) {
            check.fail("longitude", "must be between -180 and 180");
        }
        check.finish()?;
        let _writing = self.inner.writing.lock().await;
        if let Some(existing) = self.snapshot().airports.get(code)
            && existing.time_zone != input.time_zone
            && self
                .snapshot()
                .schedules
                .values()
                .any(|s| s.origin == code || s.destination == code)
        {
            return Err(Error::Conflict(
                "airport_in_use",
                "flights are scheduled at this airport: its time zone cannot change".into(),
            ));
        }
        let row = AirportRow {
            code: code.to_owned(),
            name: input.name,
            city: input.city,
            country: input.country,
            time_zone: input.time_zone,
            latitude: input.latitude,
            longitude: input.longitude,
            active: input.active,
        };
        let event = self.event("catalog.airport_changed.v1", code, serde_json::json!({ "code": code }))?;
        self.inner.store.save_airport(&row, &event).await?;
        self.replace(|s| s.put_airport(row));
        Ok(())
    }

    pub async fn create_airline(&self, actor: &Principal, input: AirlineInput) -> Result<AirlineInput, Error> {
        if !actor.has(Role::Admin) {
            return Err(Error::Forbidden);
        }
        let mut check = Check::default();
        if input.code.len() != 2 || !input.code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            check.fail("code", "must be two uppercase letters or digits");
        }
        check.text("name", &input.name, 1, 200);
        check.finish()?;
        self.require_kind(
            actor,
            input.organization_id,
            phoenix_identity::OrganizationKind::Airline,
            "an airline",
        )
        .await?;
        let airline = Airline {
            code: input.code,
            name: input.name,
            organization_id: input.organization_id,
        };
        let _writing = self.inner.writing.lock().await;
        let event = self.event(
            "catalog.airline_created.v1",
            airline.code.clone(),
            serde_json::json!({ "code": airline.code, "organization_id": airline.organization_id }),
        )?;
        if !self.inner.store.insert_airline(&airline, &event).await? {
            return Err(Error::Conflict(
                "airline_exists",
                format!("airline {} exists", airline.code),
            ));
        }
        let view = AirlineInput::from(&airline);
        self.replace(|s| {
            s.airlines.insert(airline.code.clone(), airline);
        });
        Ok(view)
    }

    pub async fn set_fx_rate(
        &self,
        actor: &Principal,
        base: &str,
        quote: &str,
        rate: &str,
    ) -> Result<FxRateView, Error> {
        if !actor.has(Role::Admin) {
            return Err(Error::Forbidden);
        }
        let mut check = Check::default();
        let base = check_currency(&mut check, "base", base);
        let quote = check_currency(&mut check, "quote", quote);
        let rate = Rate::parse(rate).map_err(|e| check.fail("rate", e.to_string())).ok();
        if base.is_some() && base == quote {
            check.fail("quote", "must differ from base");
        }
        check.finish()?;
        let (Some(base), Some(quote), Some(rate)) = (base, quote, rate) else {
            return Err(Error::invalid("rate", "invalid"));
        };
        let text = rate.get().to_string();
        let _writing = self.inner.writing.lock().await;
        let event = self.event(
            "catalog.fx_rate_changed.v1",
            format!("{}/{}", base.code(), quote.code()),
            serde_json::json!({ "base": base.code(), "quote": quote.code(), "rate": text }),
        )?;
        self.inner
            .store
            .set_fx_rate(base.code(), quote.code(), &text, &event)
            .await?;
        self.replace(|s| {
            s.fx.insert((base.code().to_owned(), quote.code().to_owned()), rate.get());
        });
        Ok(FxRateView {
            base: base.code().to_owned(),
            quote: quote.code().to_owned(),
            rate: text,
        })
    }

    // Schedules

    fn schedule_from(&self, id: Uuid, input: &ScheduleInput, check: &mut Check) -> Option<Schedule> {
        let departure_time = parse_hhmm(&input.departure_time);
        if departure_time.is_none() {
            check.fail("departure_time", "must be a local time as HH:MM");
        }
        let mut days = [false; 7];
        for (i, day) in input.days.iter().enumerate() {
            match usize::from(*day).checked_sub(1).filter(|d| *d < 7) {
                Some(d) => days[d] = true,
                None => check.fail(&format!("days[{i}]"), "ISO weekdays are 1 (Monday) to 7 (Sunday)"),
            }
        }
        if !input.flight_number.starts_with(&input.airline)
            || !(3..=7).contains(&input.flight_number.len())
            || !input.flight_number[input.airline.len().min(input.flight_number.len())..]
                .bytes()
                .all(|b| b.is_ascii_digit())
        {
            check.fail("flight_number", "must be the airline's code followed by 1 to 4 digits");
        }
        if Currency::parse(&input.currency).is_err() {
            check.fail("currency", "must be an ISO 4217 code");
        }
        let schedule = Schedule {
            id,
            airline: input.airline.clone(),
            flight_number: input.flight_number.clone(),
            origin: input.origin.clone(),
            destination: input.destination.clone(),
            departure_time: departure_time.unwrap_or(Time::MIDNIGHT),
            duration_minutes: input.duration_minutes,
            days,
            effective_from: input.effective_from.0,
            effective_to: input.effective_to.0,
            currency: input.currency.clone(),
            cabins: input.cabins.clone(),
        };
        let snapshot = self.snapshot();
        let zones = |code: &str| snapshot.zone(code);
        match schedule.validate_in(&zones) {
            Ok(()) => {}
            Err(flight::ScheduleError::UnknownAirport(code)) => {
                let field = if code == input.origin { "origin" } else { "destination" };
                check.fail(field, format!("unknown airport {code}"));
            }
            Err(flight::ScheduleError::Invalid(message)) => {
                let field = schedule_field(message);
                check.fail(field, message);
            }
        }
        Some(schedule)
    }

    fn airline_for_write(&self, actor: &Principal, code: &str) -> Result<Airline, Error> {
        let airline = self
            .snapshot()
            .airlines
            .get(code)
            .cloned()
            .ok_or_else(|| Error::invalid("airline", "no such airline"))?;
        if Self::may_manage(actor, airline.organization_id) {
            Ok(airline)
        } else {
            Err(Error::Forbidden)
        }
    }

    pub async fn create_schedule(&self, actor: &Principal, input: ScheduleInput) -> Result<ScheduleView, Error> {
        let mut check = Check::default();
        let schedule = self.schedule_from(Uuid::now_v7(), &input, &mut check);
        check.finish()?;
        let Some(schedule) = schedule else {
            return Err(Error::invalid("schedule", "invalid"));
        };
        let _writing = self.inner.writing.lock().await;
        let airline = self.airline_for_write(actor, &schedule.airline)?;
        self.save_schedule(actor, &airline, schedule, "catalog.schedule_created.v1")
            .await
    }

    pub fn schedule_for_manager(&self, actor: &Principal, id: Uuid) -> Result<ScheduleView, Error> {
        let snapshot = self.snapshot();
        let schedule = snapshot.schedules.get(&id).ok_or(Error::NotFound("schedule"))?;
        let owner = snapshot.airlines.get(&schedule.airline).map(|a| a.organization_id);
        if !owner.is_some_and(|o| Self::may_manage(actor, o)) {
            return Err(Error::NotFound("schedule"));
        }
        let n = snapshot.departures_of(id);
        Ok(ScheduleView::new(schedule, n))
    }

    /// Replaces a schedule: departures are materialized again, new ones get buckets, existing ones are resized to
    /// the new cabins (inventory refuses to go below what is sold).
    pub async fn update_schedule(
        &self,
        actor: &Principal,
        id: Uuid,
        input: ScheduleInput,
    ) -> Result<ScheduleView, Error> {
        let _writing = self.inner.writing.lock().await;
        let old = self
            .snapshot()
            .schedules
            .get(&id)
            .cloned()
            .ok_or(Error::NotFound("schedule"))?;
        self.airline_for_write(actor, &old.airline)?;
        let mut check = Check::default();
        let schedule = self.schedule_from(id, &input, &mut check);
        if input.airline != old.airline || input.flight_number != old.flight_number {
            check.fail("flight_number", "a schedule's airline and flight number cannot change");
        }
        check.finish()?;
        let Some(schedule) = schedule else {
            return Err(Error::invalid("schedule", "invalid"));
        };
        let airline = self.airline_for_write(actor, &schedule.airline)?;
        self.save_schedule(actor, &airline, schedule, "catalog.schedule_updated.v1")
            .await
    }

    pub async fn deactivate_schedule(&self, actor: &Principal, id: Uuid) -> Result<ScheduleView, Error> {
        let _writing = self.inner.writing.lock().await;
        let old = self
            .snapshot()
            .schedules
            .get(&id)
            .cloned()
            .ok_or(Error::NotFound("schedule"))?;
        self.airline_for_write(actor, &old.airline)?;
        let event = self.event(
            "catalog.schedule_deactivated.v1",
            id.to_string(),
            serde_json::json!({ "schedule_id": id }),
        )?;
        self.inner.store.deactivate_schedule(id, &event).await?;
        self.replace(|s| s.remove_schedule(id));
        Ok(ScheduleView::new(&old, 0))
    }

    async fn save_schedule(
        &self,
        actor: &Principal,
        airline: &Airline,
        schedule: Schedule,
        event_type: &'static str,
    ) -> Result<ScheduleView, Error> {
        let snapshot = self.snapshot();
        let zones = |code: &str| snapshot.zone(code);
        let departures = schedule
            .departures_in(&zones)
            .map_err(|e| Error::invalid("schedule", e.to_string()))?;
        let ids: Vec<String> = departures.iter().map(|d| d.id.clone()).collect();
        if self
            .inner
            .store
            .departure_taken(schedule.id, &schedule.flight_number, &ids)
            .await?
        {
            return Err(Error::Conflict(
                "flight_exists",
                format!(
                    "another schedule already flies {} on one of these dates",
                    schedule.flight_number
                ),
            ));
        }
        let existing: Vec<String> = snapshot
            .departures
            .values()
            .filter(|d| d.schedule.id == schedule.id)
            .map(|d| d.departure.id.clone())
            .collect();
        let event = self.event(
            event_type,
            schedule.id.to_string(),
            serde_json::json!({ "schedule_id": schedule.id, "flight_number": schedule.flight_number,
                                "departures": departures.len() }),
        )?;
        self.inner.store.save_schedule(&schedule, &departures, &event).await?;
        // New departures get fresh buckets; those that existed are resized to the (possibly new) cabins.
        let org = Some(airline.organization_id);
        let (kept, fresh): (Vec<&Departure>, Vec<&Departure>) =
            departures.iter().partition(|d| existing.contains(&d.id));
        self.create_items(actor, departure_items(&schedule, fresh.iter().copied(), org))
            .await?;
        let inventory = self.inner.availability.inventory();
        for item in departure_items(&schedule, kept.iter().copied(), org) {
            inventory
                .put_item(actor, &item.item_id, item.capacity, item.overbooking_limit, org)
                .await
                .map_err(Error::Upstream)?;
            self.inner.availability.invalidate([item.item_id.as_str()]);
        }
        let view = ScheduleView::new(&schedule, departures.len());
        self.replace(|s| s.put_schedule(schedule, departures));
        Ok(view)
    }

    /// Creates the buckets of many schedules' departures at once and stores them, for seeding: one transaction
    /// per call, no per-schedule events beyond one summary event.
    pub async fn load_schedules(&self, actor: &Principal, schedules: Vec<Schedule>) -> Result<usize, Error> {
        let _writing = self.inner.writing.lock().await;
        let snapshot = self.snapshot();
        let zones = |code: &str| snapshot.zone(code);
        let mut all = Vec::with_capacity(schedules.len());
        let mut items = Vec::new();
        for schedule in schedules {
            let org = snapshot
                .airlines
                .get(&schedule.airline)
                .map(|a| a.organization_id)
                .ok_or_else(|| Error::invalid("airline", format!("no such airline {}", schedule.airline)))?;
            let departures = schedule
                .departures_in(&zones)
                .map_err(|e| Error::invalid("schedule", e.to_string()))?;
            items.extend(departure_items(&schedule, departures.iter(), Some(org)));
            all.push((schedule, departures));
        }
        let event = self.event(
            "catalog.schedules_loaded.v1",
            "schedules",
            serde_json::json!({ "schedules": all.len() }),
        )?;
        self.inner.store.save_schedules(&all, &event).await?;
        drop(snapshot);
        self.create_items(actor, items).await?;
        let n: usize = all.iter().map(|(_, d)| d.len()).sum();
        self.replace(|s| {
            for (schedule, departures) in all {
                s.put_schedule(schedule, departures);
            }
        });
        Ok(n)
    }

    /// Stores many hotels with their room types and priced rate plans and creates their buckets, for seeding.
    pub async fn load_hotels(&self, actor: &Principal, hotels: Vec<HotelEntry>) -> Result<usize, Error> {
        let _writing = self.inner.writing.lock().await;
        let event = self.event(
            "catalog.hotels_loaded.v1",
            "hotels",
            serde_json::json!({ "hotels": hotels.len() }),
        )?;
        self.inner.store.save_hotels(&hotels, &event).await?;
        let mut items = Vec::new();
        for entry in &hotels {
            for room in &entry.room_types {
                for night in priced_nights(entry, room.id) {
                    items.push(NewItem {
                        item_id: hotel::room_item(room.id, night),
                        capacity: room.rooms,
                        overbooking_limit: 0,
                        organization_id: Some(entry.hotel.organization_id),
                    });
                }
            }
        }
        self.create_items(actor, items).await?;
        let n = hotels.len();
        self.replace(|s| {
            for entry in hotels {
                s.put_hotel(entry);
            }
        });
        Ok(n)
    }
}

fn check_currency(check: &mut Check, field: &str, code: &str) -> Option<Currency> {
    Currency::parse(code).map_err(|e| check.fail(field, e.to_string())).ok()
}

/// Which input field a schedule validation message is about.
fn schedule_field(message: &str) -> &'static str {
    if message.starts_with("origin") {
        "destination"
    } else if message.starts_with("duration") {
        "duration_minutes"
    } else if message.starts_with("effective") {
        "effective_to"
    } else if message.contains("day of the week") {
        "days"
    } else {
        "cabins"
    }
}

fn parse_hhmm(s: &str) -> Option<Time> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    Time::from_hms(h.parse().ok()?, m.parse().ok()?, 0).ok()
}

/// Nights that some active plan of the room type has a price for.
fn priced_nights(entry: &HotelEntry, room_type_id: Uuid) -> Vec<Date> {
    let mut nights: Vec<Date> = entry
        .rate_plans
        .iter()
        .filter(|p| p.room_type_id == room_type_id && p.active)
        .flat_map(|p| p.prices.keys().copied())
        .collect();
    nights.sort_unstable();
    nights.dedup();
    nights
}

/// The buckets of departures: one per cabin (seats plus overbooking) and one per fare class (its booking limit).
fn departure_items<'a>(
    schedule: &Schedule,
    departures: impl Iterator<Item = &'a Departure>,
    organization_id: Option<Uuid>,
) -> Vec<NewItem> {
    let mut items = Vec::new();
    for departure in departures {
        for cabin in &schedule.cabins {
            items.push(NewItem {
                item_id: departure.seat_item(cabin.cabin),
                capacity: cabin.seats,
                overbooking_limit: cabin.overbooking_limit,
                organization_id,
            });
            for fare in &cabin.fares {
                items.push(NewItem {
                    item_id: departure.fare_item(&fare.code),
                    capacity: fare.booking_limit,
                    overbooking_limit: 0,
                    organization_id,
                });
            }
        }
    }
    items
}

pub(crate) fn details(entry: &HotelEntry) -> HotelDetails {
    HotelDetails {
        hotel: entry.hotel.clone(),
        room_types: entry.room_types.clone(),
        rate_plans: entry.rate_plans.iter().map(RatePlanView::from).collect(),
    }
}

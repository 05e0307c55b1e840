//! The catalog service: its handle, the in-memory snapshot and caches search reads, followers, and the organization
//! checks every management operation uses (`service/hotels.rs`, `service/flights.rs`, `service/reference.rs`). The
//! availability cache is in `availability.rs`.
//!
//! Every write goes to the database first (with its outbox event, in one transaction), then to inventory (buckets
//! for new nights and departures), then into this process's snapshot. Writes are serialized per process; the
//! database is the truth, and the snapshot is rebuilt from it at start.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use phoenix_api::{Credential, Principal, Problem, Role};
use phoenix_db::{Event, Pool};
use phoenix_inventory::{Bucket, NewItem};
use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime, Time};
use uuid::Uuid;

mod flights;
mod hotels;
mod reference;
mod searches;

pub(crate) use hotels::details;
pub use searches::SEARCHES_COUNTED;
pub(crate) use searches::SearchKind;

use crate::Error;
use crate::availability::Availability;
use crate::flight::{self, Departure, Schedule};
use crate::hotel::{self, Hotel, RatePlan, RoomType};
use crate::model::{
    AirlineInput, AirportInput, CalendarChange, CapacityInput, Check, Day, FxRateView, HotelDetails, HotelInput,
    HotelView, KeptNight, PricesInput, RatePlanInput, RatePlanView, RoomTypeInput, RoomTypeView, ScheduleInput,
    ScheduleView, check_span,
};
use crate::money::{Currency, Rate};
use crate::offer::{Offer, OfferSigner};
use crate::pricing::{DynamicPricing, FeeLine, TravellerPricing};
use crate::search::OfferDetails;
use crate::snapshot::{HotelEntry, Snapshot};
use crate::store::{Airline, AirportRow, Store};

pub const SOURCE: &str = "phoenix.catalog";

/// Resizes [`Catalog::resize_items`] keeps in flight at once.
const RESIZING: usize = 64;

/// How often a catalog reads its own outbox for other processes' changes.
pub const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// How often a catalog reloads everything regardless.
pub const RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// How the catalog prices and quotes. Read from the `[catalog]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Taxes and fees added to every stay or itinerary they apply to. A fixed amount is in its line's currency and
    /// converted at the catalog's exchange rates into the currency of each product priced in another.
    pub fees: Vec<FeeLine>,
    pub traveller_pricing: TravellerPricing,
    pub dynamic_pricing: DynamicPricing,
    /// How long a quoted offer can be booked at its price.
    pub offer_ttl_secs: u64,
    /// What cancelling a refundable itinerary after its free cancellation ends keeps: this share of its price, in
    /// basis points (2000 = 20 %).
    pub flight_cancellation_fee_bp: u32,
    /// Search results kept for repeated queries (dropped whenever inventory or the catalog changes).
    pub result_cache_entries: usize,
    /// How often the searches counted are written as `catalog.searches_counted.v1` (when there were any).
    pub search_count_flush_secs: u64,
    /// The currency prices are compared in when a search asks for no display currency: results priced in
    /// different currencies are ordered (and the cheapest rate plan chosen) after converting at the catalog's
    /// exchange rates, not by their numbers.
    pub sort_currency: Currency,
}

impl Default for Options {
    /// VAT 10 % on stays, city tax 2.50 EUR a room-night, airport charges 15.00 EUR a traveller.
    fn default() -> Options {
        let eur = Currency::parse("EUR").expect("EUR is in the currency table");
        Options {
            fees: vec![
                FeeLine {
                    code: "vat".into(),
                    name: "VAT".into(),
                    kind: crate::pricing::FeeKind::PercentBp(1_000),
                    currency: None,
                    applies_to: crate::pricing::Applies::Hotel,
                },
                FeeLine {
                    code: "city_tax".into(),
                    name: "City tax".into(),
                    kind: crate::pricing::FeeKind::PerNight(250),
                    currency: Some(eur),
                    applies_to: crate::pricing::Applies::Hotel,
                },
                FeeLine {
                    code: "airport_charges".into(),
                    name: "Airport charges".into(),
                    kind: crate::pricing::FeeKind::PerTraveller(1_500),
                    currency: Some(eur),
                    applies_to: crate::pricing::Applies::Flight,
                },
            ],
            traveller_pricing: TravellerPricing::default(),
            dynamic_pricing: DynamicPricing::default(),
            offer_ttl_secs: 900,
            flight_cancellation_fee_bp: 2_000,
            result_cache_entries: 10_000,
            search_count_flush_secs: 60,
            sort_currency: eur,
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
        crate::pricing::validate_fees(&self.fees).map_err(|e| format!("catalog.fees: {e}"))?;
        if !(30..=86_400).contains(&self.offer_ttl_secs) {
            return Err("catalog.offer_ttl_secs must be between 30 and 86400".into());
        }
        if self.flight_cancellation_fee_bp > 10_000 {
            return Err("catalog.flight_cancellation_fee_bp must be between 0 and 10000".into());
        }
        if !(1..=3_600).contains(&self.search_count_flush_secs) {
            return Err("catalog.search_count_flush_secs must be between 1 and 3600".into());
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
    /// Searches since the last `catalog.searches_counted.v1`.
    searches: searches::Counts,
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
                searches: searches::Counts::new(OffsetDateTime::now_utc()),
            }),
        };
        catalog.spawn_follower(position);
        catalog.spawn_search_counter();
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

    /// Checks an offer id a client presents: signed by this catalog and not expired; the details as JSON.
    pub fn verify_offer(&self, offer_id: &str) -> Result<Offer, Error> {
        let offer = self.open_offer(offer_id)?;
        Ok(Offer {
            id: offer.id,
            expires_at_unix: offer.expires_at_unix,
            total: offer.total,
            details: offer.details.to_json(),
        })
    }

    /// [`Catalog::verify_offer`], with the details as search sealed them.
    pub(crate) fn open_offer(&self, offer_id: &str) -> Result<Offer<OfferDetails>, Error> {
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
            // `|` rather than `||`: every id of this process's must be struck off. Search counts change nothing.
            events.iter().fold(false, |foreign, e| {
                (!mine.remove(&e.id) & (e.event_type != SEARCHES_COUNTED)) | foreign
            })
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

    /// An event of this catalog about a change `actor` made, remembered so the follower can tell this process's
    /// writes from another's. `data` (an object) gets the acting user as `actor_id`: null for the platform itself
    /// (seeding acts as a principal with the nil id).
    fn event(
        &self,
        actor: &Principal,
        event_type: &'static str,
        subject: impl Into<String>,
        mut data: serde_json::Value,
    ) -> Result<Event, Error> {
        if let Some(fields) = data.as_object_mut() {
            let actor_id = Some(actor.user_id).filter(|id| !id.is_nil());
            fields.insert("actor_id".to_owned(), serde_json::json!(actor_id));
        }
        let event = Event::new(SOURCE, event_type, subject, &data)?;
        match self.inner.mine.lock() {
            Ok(mut mine) => mine.insert(event.id),
            Err(poisoned) => poisoned.into_inner().insert(event.id),
        };
        Ok(event)
    }

    /// Resizes buckets of `organization_id` in inventory (item, capacity, overbooking), [`RESIZING`] calls at a
    /// time: inventory's writer commits the resizes of a shard that arrive together in one transaction, so a year
    /// of departures or nights takes a few transactions instead of one per bucket. With `keep_committed` none goes
    /// below what is held and sold (it stays at that). Every resize is tried; the answers come in the order they
    /// finish.
    async fn resize_items(
        &self,
        actor: &Principal,
        organization_id: Uuid,
        items: Vec<(String, i64, i64)>,
        keep_committed: bool,
    ) -> Vec<(String, Result<Bucket, Problem>)> {
        let inventory = self.inner.availability.inventory();
        futures::stream::iter(items)
            .map(|(item, capacity, overbooking)| async move {
                let org = Some(organization_id);
                let result = if keep_committed {
                    inventory
                        .put_item_keeping_committed(actor, &item, capacity, overbooking, org)
                        .await
                } else {
                    inventory.put_item(actor, &item, capacity, overbooking, org).await
                };
                (item, result)
            })
            .buffer_unordered(RESIZING)
            .collect()
            .await
    }

    /// Creates the buckets among `items` that do not exist yet, in inventory, and forgets any cached absence.
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
}

#[cfg(test)]
mod tests {
    use super::Options;

    /// Options with the fee lines of `fees`, read as configuration is.
    fn with_fees(fees: serde_json::Value) -> Options {
        serde_json::from_value(serde_json::json!({ "fees": fees })).unwrap()
    }

    #[test]
    fn a_fixed_fee_without_a_currency_is_refused_at_startup() {
        assert_eq!(Options::default().validate(), Ok(()));
        let cases = [
            (
                serde_json::json!([{"code": "city_tax", "name": "City tax", "kind": {"per_night": 250},
                                    "applies_to": "hotel"}]),
                Some("catalog.fees: fee \"city_tax\" is invalid: a fixed amount needs a currency"),
            ),
            (
                serde_json::json!([{"code": "vat", "name": "VAT", "kind": {"percent_bp": 1000}, "currency": "EUR",
                                    "applies_to": "hotel"}]),
                Some("catalog.fees: fee \"vat\" is invalid: a percentage takes no currency"),
            ),
            (
                serde_json::json!([{"code": "vat", "name": "VAT", "kind": {"percent_bp": 1000}, "applies_to": "hotel"},
                                   {"code": "levy", "name": "Levy", "kind": {"per_booking": 500}, "currency": "JPY",
                                    "applies_to": "both"}]),
                None,
            ),
        ];
        for (fees, refused) in cases {
            let options = with_fees(fees.clone());
            let expected = match refused {
                Some(message) => Err(message.to_owned()),
                None => Ok(()),
            };
            assert_eq!(options.validate(), expected, "{fees}");
        }
    }
}

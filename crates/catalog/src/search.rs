//! Search: hotels for a stay, flights for a trip, recommendations and airport autocomplete.
//!
//! Every search reads one snapshot of the catalog (memory) and the counters of the buckets it needs from the
//! availability cache (memory, refreshed from inventory's change feed), so a search costs no database round trip
//! once the cache is warm. Prices are computed per request from the nightly or fare price, the bucket's load factor
//! (dynamic pricing), the traveller mix and the configured fees; each option carries a signed offer id.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::availability::Counts;
use crate::flight::{Cabin, FareClass};
use crate::hotel::{self, MealPlan};
use crate::model::{AirportView, Check, Day};
use crate::money::{Currency, Money, convert};
use crate::offer::{Offer, Quote};
use crate::pricing::{self, PriceBreakdown, TravellerType};
use crate::snapshot::{DepartureEntry, HotelEntry, Snapshot};
use crate::{Catalog, Error};

/// Longest stay one search prices.
pub const MAX_NIGHTS: i64 = 30;
/// Furthest ahead a search looks.
pub const MAX_DAYS_AHEAD: i64 = 550;
pub const MAX_RADIUS_KM: f64 = 100.0;
pub const DEFAULT_RADIUS_KM: f64 = 10.0;
pub const MAX_PAGE: u32 = 50;
pub const DEFAULT_PAGE: u32 = 20;
/// Cheapest options shown per hotel.
const OPTIONS_PER_HOTEL: usize = 3;
/// Connection window at the same airport.
pub const MIN_CONNECTION: Duration = Duration::minutes(45);
pub const MAX_CONNECTION: Duration = Duration::hours(6);
/// A cached result is not served after this long, whatever happened (its offers must stay well within their life).
const RESULT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum HotelSort {
    #[default]
    Price,
    Distance,
    Stars,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HotelSearch {
    /// City name, case-insensitive (or give `latitude`, `longitude` and `radius_km`).
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// 0.1 to 100 km around the point (default 10).
    pub radius_km: Option<f64>,
    #[param(value_type = String, format = Date)]
    pub check_in: Option<Day>,
    #[param(value_type = String, format = Date)]
    pub check_out: Option<Day>,
    /// Guests in all (default 2).
    pub guests: Option<u32>,
    /// Rooms, 1 to 9 (default 1).
    pub rooms: Option<u32>,
    /// Stay total bounds, minor units of the display currency (or of the hotel's when none is asked).
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    /// Star ratings accepted, comma-separated (`4,5`).
    pub stars: Option<String>,
    /// Amenities all required, comma-separated (`pool,free_wifi`).
    pub amenities: Option<String>,
    /// Only refundable rate plans.
    pub refundable: Option<bool>,
    pub sort: Option<HotelSort>,
    /// Display currency (ISO 4217); charges stay in the hotel's currency.
    pub currency: Option<String>,
    /// Results per page, 1 to 50 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A validated hotel search.
struct Stay {
    check_in: time::Date,
    check_out: time::Date,
    nights: Vec<time::Date>,
    guests: u32,
    rooms: u32,
    point: Option<(f64, f64, f64)>,
    stars: Option<Vec<u8>>,
    amenities: Vec<String>,
    display: Option<Currency>,
    offset: usize,
    limit: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HotelSearchResponse {
    pub check_in: Day,
    pub check_out: Day,
    pub nights: usize,
    pub rooms: u32,
    pub guests: u32,
    /// Hotels matching, over all pages.
    pub total: usize,
    pub results: Vec<HotelResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HotelSummary {
    pub id: Uuid,
    pub name: String,
    pub address: String,
    pub city: String,
    pub country: String,
    pub latitude: f64,
    pub longitude: f64,
    pub stars: u8,
    pub amenities: Vec<String>,
}

impl From<&crate::hotel::Hotel> for HotelSummary {
    fn from(h: &crate::hotel::Hotel) -> HotelSummary {
        HotelSummary {
            id: h.id,
            name: h.name.clone(),
            address: h.address.clone(),
            city: h.city.clone(),
            country: h.country.clone(),
            latitude: h.latitude,
            longitude: h.longitude,
            stars: h.stars,
            amenities: h.amenities.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HotelResult {
    pub hotel: HotelSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<f64>,
    /// The cheapest available options, cheapest first.
    pub options: Vec<StayOption>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StayOption {
    pub room_type_id: Uuid,
    pub room_type: String,
    pub rate_plan_id: Uuid,
    pub rate_plan: String,
    pub meal_plan: MealPlan,
    pub refundable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_cancellation_hours: Option<u32>,
    /// Fewest rooms of this type left over the stay's nights.
    pub rooms_left: i64,
    /// Price of one room each night, after dynamic pricing.
    pub nightly_minor: Vec<i64>,
    /// ISO 4217 currency charged.
    pub currency: String,
    #[schema(value_type = Object)]
    pub price: PriceBreakdown,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_total: Option<DisplayAmount>,
    /// Signed and short-lived: a booking presents it to prove this price.
    pub offer_id: String,
}

/// An amount converted for display only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DisplayAmount {
    pub amount_minor: i64,
    pub currency: String,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl HotelSearch {
    fn validate(&self, today: time::Date) -> Result<Stay, Error> {
        let mut check = Check::default();
        let check_in = self.check_in.map(|d| d.0);
        let check_out = self.check_out.map(|d| d.0);
        match check_in {
            None => check.fail("check_in", "required"),
            Some(d) if d < today => check.fail("check_in", "must not be in the past"),
            Some(d) if (d - today).whole_days() > MAX_DAYS_AHEAD => {
                check.fail("check_in", format!("at most {MAX_DAYS_AHEAD} days ahead"))
            }
            Some(_) => {}
        }
        match (check_in, check_out) {
            (_, None) => check.fail("check_out", "required"),
            (Some(i), Some(o)) if o <= i => check.fail("check_out", "must be after check_in"),
            (Some(i), Some(o)) if (o - i).whole_days() > MAX_NIGHTS => {
                check.fail("check_out", format!("a stay has at most {MAX_NIGHTS} nights"))
            }
            _ => {}
        }
        let guests = self.guests.unwrap_or(2);
        let rooms = self.rooms.unwrap_or(1);
        check.range("rooms", rooms, 1, pricing::MAX_ROOMS);
        check.range("guests", guests, 1, pricing::MAX_GUESTS);
        if rooms > guests {
            check.fail("rooms", "at least one guest per room");
        }
        let point = match (self.latitude, self.longitude, non_empty(&self.city)) {
            (Some(lat), Some(lon), _) => {
                let radius = self.radius_km.unwrap_or(DEFAULT_RADIUS_KM);
                if !(-90.0..=90.0).contains(&lat) {
                    check.fail("latitude", "must be between -90 and 90");
                }
                if !(-180.0..=180.0).contains(&lon) {
                    check.fail("longitude", "must be between -180 and 180");
                }
                if !(0.1..=MAX_RADIUS_KM).contains(&radius) {
                    check.fail("radius_km", format!("must be between 0.1 and {MAX_RADIUS_KM}"));
                }
                Some((lat, lon, radius))
            }
            (None, None, Some(city)) => {
                if city.chars().count() > 100 {
                    check.fail("city", "at most 100 characters");
                }
                if self.radius_km.is_some() {
                    check.fail("radius_km", "needs latitude and longitude");
                }
                None
            }
            (Some(_), None, _) => {
                check.fail("longitude", "required with latitude");
                None
            }
            (None, Some(_), _) => {
                check.fail("latitude", "required with longitude");
                None
            }
            (None, None, None) => {
                check.fail("city", "give a city, or latitude and longitude");
                None
            }
        };
        if self.sort == Some(HotelSort::Distance) && point.is_none() {
            check.fail("sort", "sorting by distance needs latitude and longitude");
        }
        if let (Some(min), Some(max)) = (self.min_price, self.max_price)
            && min > max
        {
            check.fail("max_price", "must not be below min_price");
        }
        let stars = non_empty(&self.stars).map(|list| {
            list.split(',')
                .filter_map(|s| match s.trim().parse::<u8>() {
                    Ok(n) if (1..=5).contains(&n) => Some(n),
                    _ => {
                        check.fail("stars", "a comma-separated list of 1 to 5");
                        None
                    }
                })
                .collect::<Vec<u8>>()
        });
        let amenities: Vec<String> = non_empty(&self.amenities)
            .map(|list| {
                list.split(',')
                    .map(|a| a.trim().to_owned())
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if amenities.len() > 20 {
            check.fail("amenities", "at most 20 amenities");
        }
        let display = display_currency(&mut check, &self.currency);
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        check.range("limit", limit, 1, MAX_PAGE);
        let offset = cursor_offset(&mut check, &self.cursor);
        check.finish()?;
        let (Some(check_in), Some(check_out)) = (check_in, check_out) else {
            return Err(Error::invalid("check_in", "required"));
        };
        Ok(Stay {
            check_in,
            check_out,
            nights: hotel::nights(check_in, check_out),
            guests,
            rooms,
            point,
            stars,
            amenities,
            display,
            offset,
            limit: limit as usize,
        })
    }
}

fn display_currency(check: &mut Check, currency: &Option<String>) -> Option<Currency> {
    non_empty(currency).and_then(|c| {
        Currency::parse(c)
            .map_err(|e| check.fail("currency", e.to_string()))
            .ok()
    })
}

/// Cursors are opaque to clients; here, the offset of the next page.
fn cursor_offset(check: &mut Check, cursor: &Option<String>) -> usize {
    match non_empty(cursor) {
        None => 0,
        Some(c) => match c.parse::<usize>() {
            Ok(n) if n <= 10_000 => n,
            _ => {
                check.fail("cursor", "not a cursor this search returned");
                0
            }
        },
    }
}

/// An amount in the display currency, when one is asked and a rate is known (direct, or the inverse of the
/// opposite rate).
fn display_amount(snapshot: &Snapshot, amount: Money, to: Option<Currency>) -> Option<DisplayAmount> {
    let to = to?;
    let converted = if to == amount.currency {
        Some(amount)
    } else {
        let key = (amount.currency.code().to_owned(), to.code().to_owned());
        let rate = match snapshot.fx.get(&key) {
            Some(rate) => Some(*rate),
            None => snapshot
                .fx
                .get(&(key.1, key.0))
                .and_then(|r| Decimal::ONE.checked_div(*r))
                .map(|r| r.round_dp(12)),
        };
        rate.and_then(|r| convert(amount, to, r).ok())
    };
    converted.map(|m| DisplayAmount {
        amount_minor: m.amount_minor,
        currency: m.currency.code().to_owned(),
    })
}

struct HotelCandidate {
    entry: Arc<HotelEntry>,
    distance_km: Option<f64>,
}

struct Ranked {
    candidate: HotelCandidate,
    options: Vec<(StayOption, OfferDraft)>,
    /// Cheapest total in the filter's currency.
    sort_price: i64,
}

/// What an offer will say, kept plain until the option is on the page and gets signed.
struct OfferDraft {
    total: Money,
    details: OfferDetails,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum OfferDetails {
    Hotel {
        hotel_id: Uuid,
        room_type_id: Uuid,
        rate_plan_id: Uuid,
        check_in: Day,
        check_out: Day,
        rooms: u32,
        guests: u32,
        refundable: bool,
        free_cancellation_hours: Option<u32>,
    },
    Flight {
        departure_ids: Vec<String>,
        cabin: Cabin,
        fare_codes: Vec<String>,
        passengers: Passengers,
        refundable: bool,
    },
}

impl Catalog {
    /// Hotels with every night of the stay available for the rooms asked, each with its cheapest options.
    pub async fn search_hotels(&self, query: &HotelSearch) -> Result<Bytes, Error> {
        let stay = query.validate(OffsetDateTime::now_utc().date())?;
        let key = format!("hotels:{}", serde_json::to_string(query).unwrap_or_default());
        if let Some(hit) = self.cached_result(&key, RESULT_MAX_AGE) {
            metrics::counter!("catalog_search_results_total", "kind" => "hotels", "cache" => "hit").increment(1);
            return Ok(hit);
        }
        let generation = self.generation();
        let snapshot = self.snapshot();
        let candidates = hotel_candidates(&snapshot, &stay, query);
        let mut items = Vec::new();
        for c in &candidates {
            for room in c.entry.room_types.iter().filter(|r| room_fits(r, &stay)) {
                items.extend(stay.nights.iter().map(|n| hotel::room_item(room.id, *n)));
            }
        }
        let counts = self.availability().get(&items).await?;
        let options = self.options();
        let mut ranked = Vec::new();
        for candidate in candidates {
            let mut found = stay_options(
                &candidate.entry,
                &stay,
                &counts,
                query.refundable == Some(true),
                options,
            )?;
            if found.is_empty() {
                continue;
            }
            found.sort_by_key(|(o, _)| o.price.total_minor);
            found.truncate(OPTIONS_PER_HOTEL);
            for (option, _) in &mut found {
                let money = Money::new(
                    option.price.total_minor,
                    Currency::parse(&option.currency).map_err(bad_money)?,
                );
                option.display_total = display_amount(&snapshot, money, stay.display);
            }
            let cheapest = &found[0].0;
            let bounded = query.min_price.is_some() || query.max_price.is_some();
            let sort_price = match (&cheapest.display_total, stay.display) {
                (Some(d), _) => d.amount_minor,
                // Bounds in a display currency this hotel's price cannot be converted to cannot be met.
                (None, Some(_)) if bounded => continue,
                _ => cheapest.price.total_minor,
            };
            if query.min_price.is_some_and(|m| sort_price < m) || query.max_price.is_some_and(|m| sort_price > m) {
                continue;
            }
            ranked.push(Ranked {
                candidate,
                options: found,
                sort_price,
            });
        }
        match query.sort.unwrap_or_default() {
            HotelSort::Price => ranked.sort_by(|a, b| {
                a.sort_price
                    .cmp(&b.sort_price)
                    .then_with(|| a.candidate.entry.hotel.id.cmp(&b.candidate.entry.hotel.id))
            }),
            HotelSort::Distance => ranked.sort_by(|a, b| {
                a.candidate
                    .distance_km
                    .unwrap_or(0.0)
                    .total_cmp(&b.candidate.distance_km.unwrap_or(0.0))
                    .then_with(|| a.sort_price.cmp(&b.sort_price))
            }),
            HotelSort::Stars => ranked.sort_by(|a, b| {
                b.candidate
                    .entry
                    .hotel
                    .stars
                    .cmp(&a.candidate.entry.hotel.stars)
                    .then_with(|| a.sort_price.cmp(&b.sort_price))
            }),
        }
        let total = ranked.len();
        let expires = self.offer_expiry();
        let results: Vec<HotelResult> = ranked
            .into_iter()
            .skip(stay.offset)
            .take(stay.limit)
            .map(|r| HotelResult {
                hotel: HotelSummary::from(&r.candidate.entry.hotel),
                distance_km: r.candidate.distance_km.map(|d| (d * 100.0).round() / 100.0),
                options: r
                    .options
                    .into_iter()
                    .map(|(mut option, draft)| {
                        option.offer_id = self.sign(draft, expires);
                        option
                    })
                    .collect(),
            })
            .collect();
        let next = stay.offset + results.len();
        let response = HotelSearchResponse {
            check_in: Day(stay.check_in),
            check_out: Day(stay.check_out),
            nights: stay.nights.len(),
            rooms: stay.rooms,
            guests: stay.guests,
            total,
            results,
            next_cursor: (next < total).then(|| next.to_string()),
        };
        let value = Bytes::from(serde_json::to_vec(&response).map_err(|_| Error::Corrupt { what: "search result" })?);
        metrics::counter!("catalog_search_results_total", "kind" => "hotels", "cache" => "miss").increment(1);
        self.cache_result(key, generation, value.clone());
        Ok(value)
    }

    fn offer_expiry(&self) -> i64 {
        OffsetDateTime::now_utc().unix_timestamp() + self.options().offer_ttl_secs as i64
    }

    fn sign(&self, draft: OfferDraft, expires_at_unix: i64) -> String {
        self.signer().sign(&Offer {
            id: Uuid::new_v4(),
            expires_at_unix,
            total: Quote {
                amount_minor: draft.total.amount_minor,
                currency: draft.total.currency.code().to_owned(),
            },
            details: serde_json::to_value(&draft.details).unwrap_or_default(),
        })
    }
}

fn bad_money(_: crate::money::MoneyError) -> Error {
    Error::Corrupt { what: "currency" }
}

fn room_fits(room: &crate::hotel::RoomType, stay: &Stay) -> bool {
    room.active && u32::from(room.max_occupancy) * stay.rooms >= stay.guests
}

fn hotel_candidates(snapshot: &Snapshot, stay: &Stay, query: &HotelSearch) -> Vec<HotelCandidate> {
    let matches = |entry: &HotelEntry| {
        let h = &entry.hotel;
        h.active
            && stay.stars.as_ref().is_none_or(|s| s.contains(&h.stars))
            && stay.amenities.iter().all(|a| h.amenities.contains(a))
    };
    match (stay.point, non_empty(&query.city)) {
        (Some((lat, lon, radius)), _) => snapshot
            .hotels
            .values()
            .filter(|e| matches(e))
            .filter_map(|e| {
                let d = crate::geo::distance_km(lat, lon, e.hotel.latitude, e.hotel.longitude);
                (d <= radius).then(|| HotelCandidate {
                    entry: e.clone(),
                    distance_km: Some(d),
                })
            })
            .collect(),
        (None, Some(city)) => snapshot
            .hotels_by_city
            .get(&city.to_lowercase())
            .into_iter()
            .flatten()
            .filter_map(|id| snapshot.hotels.get(id))
            .filter(|e| matches(e))
            .map(|e| HotelCandidate {
                entry: e.clone(),
                distance_km: None,
            })
            .collect(),
        (None, None) => Vec::new(),
    }
}

/// Every rate plan of the hotel sellable for the whole stay, priced.
fn stay_options(
    entry: &HotelEntry,
    stay: &Stay,
    counts: &HashMap<String, Counts>,
    refundable_only: bool,
    options: &crate::Options,
) -> Result<Vec<(StayOption, OfferDraft)>, Error> {
    let mut found = Vec::new();
    for room in entry.room_types.iter().filter(|r| room_fits(r, stay)) {
        let mut nightly_counts = Vec::with_capacity(stay.nights.len());
        let mut item = String::with_capacity(64);
        for night in &stay.nights {
            item.clear();
            hotel::write_room_item(&mut item, room.id, *night);
            match counts.get(&item) {
                Some(c) if c.available() >= i64::from(stay.rooms) => nightly_counts.push(*c),
                _ => break,
            }
        }
        if nightly_counts.len() != stay.nights.len() {
            continue; // some night is sold out, closed or not on sale
        }
        let rooms_left = nightly_counts.iter().map(|c| c.available()).min().unwrap_or(0);
        for plan in entry
            .rate_plans
            .iter()
            .filter(|p| p.active && p.room_type_id == room.id)
        {
            if refundable_only && !plan.refundable {
                continue;
            }
            let Some(base) = plan.nightly(stay.check_in, stay.nights.len() as u32) else {
                continue;
            };
            let Ok(currency) = Currency::parse(&plan.currency) else {
                continue;
            };
            let mut nightly = Vec::with_capacity(base.len());
            for (price, c) in base.iter().zip(&nightly_counts) {
                nightly.push(
                    options
                        .dynamic_pricing
                        .apply(*price, c.committed, c.capacity)
                        .map_err(pricing_error)?,
                );
            }
            let price = pricing::stay_total(&nightly, stay.rooms, stay.guests, &options.fees).map_err(pricing_error)?;
            let draft = OfferDraft {
                total: Money::new(price.total_minor, currency),
                details: OfferDetails::Hotel {
                    hotel_id: entry.hotel.id,
                    room_type_id: room.id,
                    rate_plan_id: plan.id,
                    check_in: Day(stay.check_in),
                    check_out: Day(stay.check_out),
                    rooms: stay.rooms,
                    guests: stay.guests,
                    refundable: plan.refundable,
                    free_cancellation_hours: plan.free_cancellation_hours,
                },
            };
            found.push((
                StayOption {
                    room_type_id: room.id,
                    room_type: room.name.clone(),
                    rate_plan_id: plan.id,
                    rate_plan: plan.name.clone(),
                    meal_plan: plan.meal_plan,
                    refundable: plan.refundable,
                    free_cancellation_hours: plan.free_cancellation_hours,
                    rooms_left,
                    nightly_minor: nightly,
                    currency: plan.currency.clone(),
                    price,
                    display_total: None,
                    offer_id: String::new(),
                },
                draft,
            ));
        }
    }
    Ok(found)
}

/// A pricing failure here comes from configuration or stored prices, not from the client: logged, answered 500.
fn pricing_error(error: pricing::PricingError) -> Error {
    tracing::error!(%error, "pricing failed");
    Error::Corrupt { what: "price" }
}

// Flights

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum FlightSort {
    #[default]
    Price,
    Duration,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FlightSearch {
    /// IATA airport codes.
    pub origin: Option<String>,
    pub destination: Option<String>,
    /// Local departure date at the origin.
    #[param(value_type = String, format = Date)]
    pub date: Option<Day>,
    /// For a round trip: the local departure date of the way back.
    #[param(value_type = String, format = Date)]
    pub return_date: Option<Day>,
    /// Default 1. Adults, children and infants together at most 9; infants sit on an adult's lap.
    pub adults: Option<u32>,
    pub children: Option<u32>,
    pub infants: Option<u32>,
    /// Default economy.
    pub cabin: Option<Cabin>,
    /// 0 for direct flights only; 1 (the default) adds one-stop connections.
    pub max_stops: Option<u8>,
    pub sort: Option<FlightSort>,
    pub currency: Option<String>,
    /// Itineraries per direction, 1 to 50 (default 20).
    pub limit: Option<u32>,
}

struct Trip {
    origin: String,
    destination: String,
    date: time::Date,
    return_date: Option<time::Date>,
    travellers: Vec<(TravellerType, u32)>,
    seats: i64,
    cabin: Cabin,
    max_stops: u8,
    display: Option<Currency>,
    limit: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlightSearchResponse {
    pub cabin: Cabin,
    pub passengers: Passengers,
    pub outbound: Vec<Itinerary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbound: Option<Vec<Itinerary>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct Passengers {
    pub adults: u32,
    pub children: u32,
    pub infants: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Itinerary {
    pub segments: Vec<Segment>,
    pub stops: usize,
    /// Minutes between each arrival and the next departure.
    pub connection_minutes: Vec<i64>,
    /// First departure to last arrival.
    pub duration_minutes: i64,
    /// The cheapest available fare class of each segment, priced for all passengers.
    pub fare_codes: Vec<String>,
    pub currency: String,
    #[schema(value_type = Object)]
    pub price: PriceBreakdown,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_total: Option<DisplayAmount>,
    pub offer_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Segment {
    pub departure_id: String,
    pub flight_number: String,
    pub airline: String,
    pub origin: String,
    pub destination: String,
    /// Local times carry the airport's UTC offset.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub departs_local: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub departs_utc: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub arrives_local: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub arrives_utc: OffsetDateTime,
    pub duration_minutes: i64,
    pub cabin: Cabin,
    /// Seats left in the cabin.
    pub seats_left: i64,
    /// Fare classes with room for every seated passenger, cheapest first.
    pub fares: Vec<FareOption>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FareOption {
    pub code: String,
    /// Adult fare after dynamic pricing.
    pub price_minor: i64,
    pub refundable: bool,
    pub change_fee_minor: i64,
    pub baggage_pieces: u8,
    pub seats_left: i64,
}

impl Trip {
    fn passengers(&self) -> Passengers {
        Passengers {
            adults: self.travellers[0].1,
            children: self.travellers[1].1,
            infants: self.travellers[2].1,
        }
    }
}

impl FlightSearch {
    fn validate(&self, snapshot: &Snapshot, today: time::Date) -> Result<Trip, Error> {
        let mut check = Check::default();
        let mut airport = |field: &str, code: &Option<String>| match non_empty(code) {
            None => {
                check.fail(field, "required");
                None
            }
            Some(c) => {
                let c = c.to_uppercase();
                if snapshot.zone(&c).is_none() {
                    check.fail(
                        field,
                        format!("unknown airport {}", c.chars().take(8).collect::<String>()),
                    );
                    None
                } else {
                    Some(c)
                }
            }
        };
        let origin = airport("origin", &self.origin);
        let destination = airport("destination", &self.destination);
        if origin.is_some() && origin == destination {
            check.fail("destination", "must differ from origin");
        }
        let date = self.date.map(|d| d.0);
        match date {
            None => check.fail("date", "required"),
            Some(d) if d < today - Duration::days(1) => check.fail("date", "must not be in the past"),
            Some(d) if (d - today).whole_days() > MAX_DAYS_AHEAD => {
                check.fail("date", format!("at most {MAX_DAYS_AHEAD} days ahead"))
            }
            Some(_) => {}
        }
        if let (Some(d), Some(r)) = (date, self.return_date) {
            if r.0 < d {
                check.fail("return_date", "must not be before date");
            } else if (r.0 - d).whole_days() > 365 {
                check.fail("return_date", "at most 365 days after date");
            }
        }
        let adults = self.adults.unwrap_or(1);
        let children = self.children.unwrap_or(0);
        let infants = self.infants.unwrap_or(0);
        let total = u64::from(adults) + u64::from(children) + u64::from(infants);
        if total == 0 || total > u64::from(pricing::MAX_TRAVELLERS) {
            check.fail(
                "passengers",
                format!("1 to {} passengers in all", pricing::MAX_TRAVELLERS),
            );
        }
        if infants > adults {
            check.fail("infants", "each infant sits on an adult's lap");
        }
        if adults + children == 0 && total > 0 {
            check.fail("adults", "at least one passenger needs a seat");
        }
        let max_stops = self.max_stops.unwrap_or(1);
        check.range("max_stops", max_stops, 0, 1);
        let display = display_currency(&mut check, &self.currency);
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        check.range("limit", limit, 1, MAX_PAGE);
        check.finish()?;
        let (Some(origin), Some(destination), Some(date)) = (origin, destination, date) else {
            return Err(Error::invalid("origin", "required"));
        };
        Ok(Trip {
            origin,
            destination,
            date,
            return_date: self.return_date.map(|d| d.0),
            travellers: vec![
                (TravellerType::Adult, adults),
                (TravellerType::Child, children),
                (TravellerType::Infant, infants),
            ],
            seats: i64::from(adults + children),
            cabin: self.cabin.unwrap_or(Cabin::Economy),
            max_stops,
            display,
            limit: limit as usize,
        })
    }
}

/// Direct flights and one-stop connections from `origin` to `destination` leaving on local `date`.
pub fn connections(
    snapshot: &Snapshot,
    origin: &str,
    destination: &str,
    date: time::Date,
    max_stops: u8,
) -> Vec<Vec<Arc<DepartureEntry>>> {
    let mut found = Vec::new();
    let Some(first_legs) = snapshot.by_origin_date.get(&(origin.to_owned(), date)) else {
        return found;
    };
    for first in first_legs {
        let leg = &first.departure;
        if leg.destination == destination {
            found.push(vec![first.clone()]);
            continue;
        }
        if max_stops == 0 || leg.destination == origin {
            continue;
        }
        let hub_date = snapshot.local(leg.arrives_at, &leg.destination).date();
        for day in [hub_date, hub_date + Duration::days(1)] {
            let route = (leg.destination.clone(), destination.to_owned(), day);
            let Some(second_legs) = snapshot.by_route_date.get(&route) else {
                continue;
            };
            for second in second_legs {
                let gap = second.departure.departs_at - leg.arrives_at;
                if (MIN_CONNECTION..=MAX_CONNECTION).contains(&gap) {
                    found.push(vec![first.clone(), second.clone()]);
                }
            }
        }
    }
    found
}

impl Catalog {
    /// Itineraries for a one-way or round trip.
    pub async fn search_flights(&self, query: &FlightSearch) -> Result<Bytes, Error> {
        let snapshot = self.snapshot();
        let trip = query.validate(&snapshot, OffsetDateTime::now_utc().date())?;
        let key = format!("flights:{}", serde_json::to_string(query).unwrap_or_default());
        if let Some(hit) = self.cached_result(&key, RESULT_MAX_AGE) {
            metrics::counter!("catalog_search_results_total", "kind" => "flights", "cache" => "hit").increment(1);
            return Ok(hit);
        }
        let generation = self.generation();
        let outbound = connections(&snapshot, &trip.origin, &trip.destination, trip.date, trip.max_stops);
        let inbound = trip
            .return_date
            .map(|d| connections(&snapshot, &trip.destination, &trip.origin, d, trip.max_stops));
        // A leg is in many itineraries (every connection through a hub): look it up and price it once.
        let mut legs: HashMap<&str, &DepartureEntry> = HashMap::new();
        for itinerary in outbound.iter().chain(inbound.iter().flatten()) {
            for leg in itinerary {
                legs.insert(&leg.departure.id, leg);
            }
        }
        let items: Vec<String> = legs.values().flat_map(|leg| segment_items(leg, trip.cabin)).collect();
        let counts = self.availability().get(&items).await?;
        let mut segments = HashMap::with_capacity(legs.len());
        for (id, leg) in legs {
            segments.insert(
                id,
                segment(&snapshot, leg, trip.cabin, trip.seats, &counts, self.options())?,
            );
        }
        let expires = self.offer_expiry();
        let price = |list: &[Vec<Arc<DepartureEntry>>]| -> Result<Vec<Itinerary>, Error> {
            let mut priced = Vec::new();
            for legs in list {
                if let Some(it) = self.itinerary(&snapshot, legs, &trip, &segments)? {
                    priced.push(it);
                }
            }
            // Prices compare in the display currency when one is asked and known, else as charged.
            let price = |it: &Itinerary| {
                it.display_total
                    .as_ref()
                    .map_or(it.price.total_minor, |d| d.amount_minor)
            };
            match query.sort.unwrap_or_default() {
                FlightSort::Price => priced.sort_by_key(|(it, _)| (price(it), it.duration_minutes)),
                FlightSort::Duration => priced.sort_by_key(|(it, _)| (it.duration_minutes, price(it))),
            }
            priced.truncate(trip.limit);
            Ok(priced
                .into_iter()
                .map(|(mut it, draft)| {
                    it.offer_id = self.sign(draft, expires);
                    it
                })
                .collect())
        };
        let response = FlightSearchResponse {
            cabin: trip.cabin,
            passengers: trip.passengers(),
            outbound: price(&outbound)?,
            inbound: inbound.as_deref().map(price).transpose()?,
        };
        let value = Bytes::from(serde_json::to_vec(&response).map_err(|_| Error::Corrupt { what: "search result" })?);
        metrics::counter!("catalog_search_results_total", "kind" => "flights", "cache" => "miss").increment(1);
        self.cache_result(key, generation, value.clone());
        Ok(value)
    }

    fn itinerary(
        &self,
        snapshot: &Snapshot,
        legs: &[Arc<DepartureEntry>],
        trip: &Trip,
        priced: &HashMap<&str, Option<Segment>>,
    ) -> Result<Option<(Itinerary, OfferDraft)>, Error> {
        let options = self.options();
        let mut segments = Vec::with_capacity(legs.len());
        let mut fares = Vec::with_capacity(legs.len());
        let mut currency = None;
        for leg in legs {
            let Some(Some(segment)) = priced.get(leg.departure.id.as_str()).cloned() else {
                return Ok(None);
            };
            let Ok(leg_currency) = Currency::parse(&leg.schedule.currency) else {
                return Ok(None);
            };
            if currency.is_some_and(|c| c != leg_currency) {
                return Ok(None); // a connection is sold in one currency
            }
            currency = Some(leg_currency);
            fares.push(segment.fares[0].clone());
            segments.push(segment);
        }
        let Some(currency) = currency else { return Ok(None) };
        let fare_prices: Vec<i64> = fares.iter().map(|f| f.price_minor).collect();
        let price = pricing::itinerary_total(
            &fare_prices,
            &trip.travellers,
            &options.traveller_pricing,
            &options.fees,
        )
        .map_err(pricing_error)?;
        let first = &legs[0].departure;
        let last = &legs[legs.len() - 1].departure;
        let connection_minutes = legs
            .windows(2)
            .map(|w| (w[1].departure.departs_at - w[0].departure.arrives_at).whole_minutes())
            .collect();
        let fare_codes: Vec<String> = fares.iter().map(|f| f.code.clone()).collect();
        let total = Money::new(price.total_minor, currency);
        let draft = OfferDraft {
            total,
            details: OfferDetails::Flight {
                departure_ids: legs.iter().map(|l| l.departure.id.clone()).collect(),
                cabin: trip.cabin,
                fare_codes: fare_codes.clone(),
                passengers: trip.passengers(),
                refundable: fares.iter().all(|f| f.refundable),
            },
        };
        Ok(Some((
            Itinerary {
                stops: legs.len() - 1,
                connection_minutes,
                duration_minutes: (last.arrives_at - first.departs_at).whole_minutes(),
                fare_codes,
                currency: currency.code().to_owned(),
                display_total: display_amount(snapshot, total, trip.display),
                price,
                segments,
                offer_id: String::new(),
            },
            draft,
        )))
    }

    /// One departure with every cabin and fare, for its details page.
    pub async fn departure_details(&self, id: &str) -> Result<DepartureDetails, Error> {
        let snapshot = self.snapshot();
        let entry = snapshot
            .departures
            .get(id)
            .cloned()
            .ok_or(Error::NotFound("departure"))?;
        let mut items = Vec::new();
        for cabin in &entry.schedule.cabins {
            items.extend(segment_items(&entry, cabin.cabin));
        }
        let counts = self.availability().get(&items).await?;
        let mut cabins = Vec::new();
        for cabin in &entry.schedule.cabins {
            if let Some(s) = segment(&snapshot, &entry, cabin.cabin, 0, &counts, self.options())? {
                cabins.push(s);
            }
        }
        Ok(DepartureDetails {
            currency: entry.schedule.currency.clone(),
            cabins,
        })
    }

    /// Active hotels near a point, nearest, best rated or cheapest first (cheapest by their lowest nightly price
    /// over the next 30 nights).
    pub fn recommend_hotels(&self, query: &Recommendations) -> Result<Vec<Recommendation>, Error> {
        let mut check = Check::default();
        let (lat, lon) = match (query.latitude, query.longitude) {
            (Some(lat), Some(lon)) => (lat, lon),
            (lat, _) => {
                check.fail(if lat.is_none() { "latitude" } else { "longitude" }, "required");
                (0.0, 0.0)
            }
        };
        if !(-90.0..=90.0).contains(&lat) {
            check.fail("latitude", "must be between -90 and 90");
        }
        if !(-180.0..=180.0).contains(&lon) {
            check.fail("longitude", "must be between -180 and 180");
        }
        let radius = query.radius_km.unwrap_or(25.0);
        if !(0.1..=MAX_RADIUS_KM).contains(&radius) {
            check.fail("radius_km", format!("must be between 0.1 and {MAX_RADIUS_KM}"));
        }
        let limit = query.limit.unwrap_or(10);
        check.range("limit", limit, 1, MAX_PAGE);
        check.finish()?;
        let today = OffsetDateTime::now_utc().date();
        let horizon = today + Duration::days(30);
        let snapshot = self.snapshot();
        let mut found: Vec<Recommendation> = snapshot
            .hotels
            .values()
            .filter(|e| e.hotel.active)
            .filter_map(|e| {
                let d = crate::geo::distance_km(lat, lon, e.hotel.latitude, e.hotel.longitude);
                if d > radius {
                    return None;
                }
                let from = e
                    .rate_plans
                    .iter()
                    .filter(|p| p.active)
                    .filter_map(|p| {
                        p.prices
                            .range(today..horizon)
                            .map(|(_, a)| (*a, p.currency.clone()))
                            .min()
                    })
                    .min();
                Some(Recommendation {
                    hotel: HotelSummary::from(&e.hotel),
                    distance_km: (d * 100.0).round() / 100.0,
                    from_price_minor: from.as_ref().map(|f| f.0),
                    currency: from.map(|f| f.1),
                })
            })
            .collect();
        match query.sort.unwrap_or_default() {
            RecommendationSort::Distance => found.sort_by(|a, b| a.distance_km.total_cmp(&b.distance_km)),
            RecommendationSort::Rating => found.sort_by(|a, b| {
                b.hotel
                    .stars
                    .cmp(&a.hotel.stars)
                    .then_with(|| a.distance_km.total_cmp(&b.distance_km))
            }),
            RecommendationSort::Price => {
                found.sort_by_key(|r| (r.from_price_minor.is_none(), r.from_price_minor, r.hotel.id))
            }
        }
        found.truncate(limit as usize);
        Ok(found)
    }

    /// Airports matching a code, city or name, best first.
    pub fn airports(&self, query: &AirportQuery) -> Result<Vec<AirportView>, Error> {
        let mut check = Check::default();
        let q = query.q.as_deref().unwrap_or("").trim().to_lowercase();
        if q.is_empty() || q.chars().count() > 50 {
            check.fail("q", "1 to 50 characters");
        }
        let limit = query.limit.unwrap_or(10);
        check.range("limit", limit, 1, 20);
        check.finish()?;
        let snapshot = self.snapshot();
        let order: HashMap<&str, usize> = crate::geo::airports()
            .iter()
            .enumerate()
            .map(|(i, a)| (a.code, i))
            .collect();
        let mut found: Vec<_> = snapshot
            .airports
            .values()
            .filter(|a| a.active)
            .filter_map(|a| {
                crate::geo::match_rank(&a.code, &a.city, &a.name, &q)
                    .map(|rank| (rank, order.get(a.code.as_str()).copied().unwrap_or(usize::MAX), a))
            })
            .collect();
        found.sort_by(|x, y| (x.0, x.1, &x.2.code).cmp(&(y.0, y.1, &y.2.code)));
        Ok(found
            .into_iter()
            .take(limit as usize)
            .map(|(_, _, a)| a.clone())
            .collect())
    }

    /// A hotel as travellers see it (404 when it is off sale).
    pub fn hotel_details(&self, id: Uuid) -> Result<crate::model::HotelDetails, Error> {
        let snapshot = self.snapshot();
        let entry = snapshot
            .hotels
            .get(&id)
            .filter(|e| e.hotel.active)
            .ok_or(Error::NotFound("hotel"))?;
        let mut details = crate::service::details(entry);
        details.room_types.retain(|r| r.active);
        details.rate_plans.retain(|p| p.active);
        Ok(details)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DepartureDetails {
    pub currency: String,
    /// One entry per cabin, each with its fares (those with no seat left included, `seats_left` 0).
    pub cabins: Vec<Segment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum RecommendationSort {
    #[default]
    Distance,
    Rating,
    Price,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Recommendations {
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// 0.1 to 100 km (default 25).
    pub radius_km: Option<f64>,
    pub sort: Option<RecommendationSort>,
    /// 1 to 50 (default 10).
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Recommendation {
    pub hotel: HotelSummary,
    pub distance_km: f64,
    /// Lowest nightly price of the next 30 nights, in `currency`.
    pub from_price_minor: Option<i64>,
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AirportQuery {
    /// Code, city or name (prefix or part).
    pub q: Option<String>,
    /// 1 to 20 (default 10).
    pub limit: Option<u32>,
}

fn segment_items(leg: &DepartureEntry, cabin: Cabin) -> Vec<String> {
    let mut items = Vec::new();
    if let Some(plan) = leg.schedule.cabins.iter().find(|c| c.cabin == cabin) {
        items.push(leg.departure.seat_item(cabin));
        items.extend(plan.fares.iter().map(|f| leg.departure.fare_item(&f.code)));
    }
    items
}

/// A departure in a cabin with the fares that have room for `seats` (all fares when `seats` is 0); `None` when
/// the cabin does not exist or has no room.
fn segment(
    snapshot: &Snapshot,
    leg: &DepartureEntry,
    cabin: Cabin,
    seats: i64,
    counts: &HashMap<String, Counts>,
    options: &crate::Options,
) -> Result<Option<Segment>, Error> {
    let Some(plan) = leg.schedule.cabins.iter().find(|c| c.cabin == cabin) else {
        return Ok(None);
    };
    let Some(cabin_counts) = counts.get(&leg.departure.seat_item(cabin)).copied() else {
        return Ok(None);
    };
    if cabin_counts.available() < seats {
        return Ok(None);
    }
    let mut fares = Vec::new();
    let mut seen = HashSet::new();
    for fare in &plan.fares {
        let Some(c) = counts.get(&leg.departure.fare_item(&fare.code)) else {
            continue;
        };
        let left = c.available().min(cabin_counts.available());
        if (seats > 0 && left < seats) || !seen.insert(fare.code.as_str()) {
            continue;
        }
        fares.push(fare_option(fare, left, cabin_counts, options)?);
    }
    if seats > 0 && fares.is_empty() {
        return Ok(None);
    }
    fares.sort_by_key(|f| f.price_minor);
    let d = &leg.departure;
    Ok(Some(Segment {
        departure_id: d.id.clone(),
        flight_number: d.flight_number.clone(),
        airline: d.airline.clone(),
        origin: d.origin.clone(),
        destination: d.destination.clone(),
        departs_local: snapshot.local(d.departs_at, &d.origin),
        departs_utc: d.departs_at,
        arrives_local: snapshot.local(d.arrives_at, &d.destination),
        arrives_utc: d.arrives_at,
        duration_minutes: (d.arrives_at - d.departs_at).whole_minutes(),
        cabin,
        seats_left: cabin_counts.available(),
        fares,
    }))
}

fn fare_option(fare: &FareClass, left: i64, cabin: Counts, options: &crate::Options) -> Result<FareOption, Error> {
    Ok(FareOption {
        code: fare.code.clone(),
        price_minor: options
            .dynamic_pricing
            .apply(fare.price_minor, cabin.committed, cabin.capacity)
            .map_err(pricing_error)?,
        refundable: fare.refundable,
        change_fee_minor: fare.change_fee_minor,
        baggage_pieces: fare.baggage_pieces,
        seats_left: left,
    })
}

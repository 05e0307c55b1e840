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

use crate::availability::{Counted, Counts};
use crate::flight::{Cabin, FareClass};
use crate::hotel::{self, MealPlan};
use crate::model::{AirportView, Check, Day};
use crate::money::{Currency, Money, Rate, convert};
use crate::offer::{Offer, Quote};
use crate::pricing::{self, PriceBreakdown, TravellerType};
use crate::snapshot::{DepartureEntry, HotelEntry, Snapshot};
use crate::{Catalog, Error};

mod browse;
mod flights;
mod hotels;
mod itinerary;
mod stay;

pub use browse::{AirportQuery, Recommendation, RecommendationSort, Recommendations};
pub use flights::{
    DepartureDetails, FareOption, FlightSearch, FlightSearchResponse, FlightSort, Itinerary, Passengers, Segment,
    connections,
};
pub use hotels::{HotelResult, HotelSearch, HotelSearchResponse, HotelSort, HotelSummary, StayOption};
pub(crate) use itinerary::{check_passengers, connects, fare_price, itinerary_price};
pub(crate) use stay::{StayPrice, Unpriced, check_occupancy, check_stay_dates, night_counts, price_stay};

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
/// A cached result is not served after this long, whatever happened.
const RESULT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a result may be served from the cache when its offers live `offer_ttl_secs`: a minute at most, and at
/// most a quarter of their life, so an offer served from the cache always has three quarters of it left (with the
/// shortest life allowed, 30 s, a result is kept 7.5 s).
fn result_max_age(offer_ttl_secs: u64) -> std::time::Duration {
    RESULT_MAX_AGE.min(std::time::Duration::from_millis(
        offer_ttl_secs.saturating_mul(1_000) / 4,
    ))
}

/// An amount converted for display only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DisplayAmount {
    pub amount_minor: i64,
    pub currency: String,
}

/// A search radius around a point: `radius_km`, or `default` when absent.
fn radius(check: &mut Check, radius_km: Option<f64>, default: f64) -> f64 {
    let radius = radius_km.unwrap_or(default);
    if !(0.1..=MAX_RADIUS_KM).contains(&radius) {
        check.fail("radius_km", format!("must be between 0.1 and {MAX_RADIUS_KM}"));
    }
    radius
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
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

/// Units of `to` per unit of `from`: 1 for the same currency, the rate set for the pair, or else the inverse of the
/// opposite pair's rate (a pair of currencies has one rate, set either way round). Search displays with it, quotes
/// convert with it, and both convert fixed fees into a product's currency with it (`price_stay`,
/// `itinerary_price`), so both show the same amounts. An inverse out of a rate's bounds is no rate (setting a rate
/// refuses one whose inverse would be; this guards rates stored before that).
pub(crate) fn fx_rate(snapshot: &Snapshot, from: Currency, to: Currency) -> Option<Decimal> {
    if from == to {
        return Some(Decimal::ONE);
    }
    match snapshot.fx.get(&(from, to)) {
        Some(entry) => Some(entry.rate.get()),
        None => snapshot
            .fx
            .get(&(to, from))
            .and_then(|entry| entry.rate.inverse().ok())
            .map(Rate::get),
    }
}

/// An amount in the display currency, when one is asked and a rate is known.
/// What prices are ordered by: their amount in one currency, so that results priced in different currencies
/// compare as money and not as numbers (12,000 yen is less than 100 euros). A price without a rate into that
/// currency sorts after every one with a rate (among themselves by currency, then amount).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SortPrice {
    Converted(i64),
    Unconverted(Currency, i64),
}

/// Orders the prices of one search as [`SortPrice`]s in `into` (the search's display currency when one is asked,
/// else `catalog.sort_currency`). Each currency's rate into `into` is looked up once a search (a rate stored the
/// other way round is inverted by a decimal division), not once a price; the same currency needs no rate.
pub(crate) struct PriceOrder<'a> {
    snapshot: &'a Snapshot,
    into: Currency,
    rates: Vec<(Currency, Option<Decimal>)>,
}

impl<'a> PriceOrder<'a> {
    pub(crate) fn new(snapshot: &'a Snapshot, into: Currency) -> PriceOrder<'a> {
        PriceOrder {
            snapshot,
            into,
            rates: Vec::new(),
        }
    }

    pub(crate) fn key(&mut self, amount: Money) -> SortPrice {
        if amount.currency == self.into {
            return SortPrice::Converted(amount.amount_minor);
        }
        let rate = match self.rates.iter().find(|(currency, _)| *currency == amount.currency) {
            Some((_, rate)) => *rate,
            None => {
                let rate = fx_rate(self.snapshot, amount.currency, self.into);
                self.rates.push((amount.currency, rate));
                rate
            }
        };
        match rate.and_then(|rate| convert(amount, self.into, rate).ok()) {
            Some(converted) => SortPrice::Converted(converted.amount_minor),
            None => SortPrice::Unconverted(amount.currency, amount.amount_minor),
        }
    }
}

fn display_amount(snapshot: &Snapshot, amount: Money, to: Option<Currency>) -> Option<DisplayAmount> {
    let to = to?;
    let rate = fx_rate(snapshot, amount.currency, to)?;
    convert(amount, to, rate).ok().map(|m| DisplayAmount {
        amount_minor: m.amount_minor,
        currency: m.currency.code().to_owned(),
    })
}

/// What an offer will say, kept plain until the option is on the page and gets signed.
struct OfferDraft {
    total: Money,
    details: OfferDetails,
}

/// What an offer describes: the choice (which a quote compares with what is booked), its terms and its price as
/// shown (`nightly_minor` and `price` are always set by search; a quote without them prices the choice as it is now).
///
/// Sealed into the token with postcard, which needs every field written in order: no `skip_serializing_if` here.
/// [`OfferDetails::to_json`] is how it reads as JSON, with the variant named in `kind`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferDetails {
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
        nightly_minor: Option<Vec<i64>>,
        price: Option<PriceBreakdown>,
    },
    Flight {
        departure_ids: Vec<String>,
        cabin: Cabin,
        fare_codes: Vec<String>,
        passengers: Passengers,
        refundable: bool,
        price: Option<PriceBreakdown>,
    },
}

impl OfferDetails {
    /// The details as JSON: the variant's fields, with `kind` naming it (`hotel` or `flight`).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(outer)) => match outer.into_iter().next() {
                Some((kind, serde_json::Value::Object(mut fields))) => {
                    fields.insert("kind".to_owned(), serde_json::Value::String(kind));
                    serde_json::Value::Object(fields)
                }
                _ => serde_json::Value::Null,
            },
            _ => serde_json::Value::Null,
        }
    }
}

impl OfferDraft {
    /// The draft with the price as shown on the page, which a quote presenting the offer reads back. Filled in only
    /// for the options signed, so the many options a search prices and drops cost no copies.
    fn shown(mut self, shown_nightly: Option<&[i64]>, shown_price: &PriceBreakdown) -> OfferDraft {
        match &mut self.details {
            OfferDetails::Hotel {
                nightly_minor, price, ..
            } => {
                *nightly_minor = shown_nightly.map(<[i64]>::to_vec);
                *price = Some(shown_price.clone());
            }
            OfferDetails::Flight { price, .. } => *price = Some(shown_price.clone()),
        }
        self
    }
}

impl Catalog {
    fn result_max_age(&self) -> std::time::Duration {
        result_max_age(self.options().offer_ttl_secs)
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
            details: draft.details,
        })
    }
}

fn bad_money(_: crate::money::MoneyError) -> Error {
    Error::Corrupt { what: "currency" }
}

/// A pricing failure here comes from configuration or stored prices, not from the client: logged, answered 500.
fn pricing_error(error: pricing::PricingError) -> Error {
    tracing::error!(%error, "pricing failed");
    Error::Corrupt { what: "price" }
}

/// A choice the catalog cannot price correctly now: a fixed fee in a currency with no exchange rate into the
/// choice's (the message says which). Search leaves it out; a quote refuses it (422 `currency_mismatch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NoRate(pub String);

/// A pricing result with a missing exchange rate told apart: that is a gap in the catalog's rates, and the choice is
/// not sold at any price; every other failure comes from configuration or stored prices (500).
fn priced<T>(result: Result<T, pricing::PricingError>) -> Result<Result<T, NoRate>, Error> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(error @ pricing::PricingError::NoRate { .. }) => Ok(Err(NoRate(error.to_string()))),
        Err(error) => Err(pricing_error(error)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::result_max_age;

    #[test]
    fn a_cached_offer_keeps_three_quarters_of_its_life() {
        assert_eq!(result_max_age(900), Duration::from_secs(60), "a minute at most");
        assert_eq!(result_max_age(240), Duration::from_secs(60));
        assert_eq!(result_max_age(100), Duration::from_secs(25));
        assert_eq!(result_max_age(30), Duration::from_millis(7_500));
    }
}

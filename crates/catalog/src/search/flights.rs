//! Flight search: direct and one-stop itineraries, one way or round trip, and a departure's details.

use super::*;

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
    /// IATA airport codes. Optional in the type only so that a missing one is named in the 422 with the others.
    #[param(required = true, pattern = "^[A-Za-z]{3}$")]
    pub origin: Option<String>,
    #[param(required = true, pattern = "^[A-Za-z]{3}$")]
    pub destination: Option<String>,
    /// Local departure date at the origin.
    #[param(value_type = String, format = Date)]
    pub date: Option<Day>,
    /// For a round trip: the local departure date of the way back.
    #[param(value_type = Option<String>, format = Date)]
    pub return_date: Option<Day>,
    /// Default 1. Adults, children and infants together at most 9; infants sit on an adult's lap.
    pub adults: Option<u32>,
    pub children: Option<u32>,
    pub infants: Option<u32>,
    /// Default economy.
    pub cabin: Option<Cabin>,
    /// 0 for direct flights only; 1 (the default) adds one-stop connections.
    #[param(minimum = 0, maximum = 1)]
    pub max_stops: Option<u8>,
    /// Result order (default: the first listed).
    #[param(inline)]
    pub sort: Option<FlightSort>,
    pub currency: Option<String>,
    /// Itineraries per direction, 1 to 50 (default 20).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
}

struct Trip {
    origin: String,
    destination: String,
    date: time::Date,
    return_date: Option<time::Date>,
    passengers: Passengers,
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

/// Who flies. Infants sit on an adult's lap: they pay a share of the fare but take no seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
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

impl Passengers {
    /// Travellers by type, as pricing counts them.
    pub(crate) fn travellers(&self) -> [(TravellerType, u32); 3] {
        [
            (TravellerType::Adult, self.adults),
            (TravellerType::Child, self.children),
            (TravellerType::Infant, self.infants),
        ]
    }

    /// Seats taken on every leg: infants on a lap take none.
    pub(crate) fn seats(&self) -> i64 {
        i64::from(self.adults) + i64::from(self.children)
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
        let passengers = Passengers {
            adults: self.adults.unwrap_or(1),
            children: self.children.unwrap_or(0),
            infants: self.infants.unwrap_or(0),
        };
        check_passengers(&mut check, "passengers", "", &passengers);
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
            passengers,
            cabin: self.cabin.unwrap_or(Cabin::Economy),
            max_stops,
            display,
            limit: limit as usize,
        })
    }
}

/// Direct flights and one-stop connections from `origin` to `destination` leaving on local `date`, after `now`: a
/// departure that has left cannot be booked (a quote refuses it), so search does not offer it.
pub fn connections(
    snapshot: &Snapshot,
    origin: &str,
    destination: &str,
    date: time::Date,
    max_stops: u8,
    now: OffsetDateTime,
) -> Vec<Vec<Arc<DepartureEntry>>> {
    let mut found = Vec::new();
    let Some(first_legs) = snapshot.by_origin_date.get(&(origin.to_owned(), date)) else {
        return found;
    };
    for first in first_legs {
        let leg = &first.departure;
        if leg.departs_at <= now {
            continue;
        }
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
                if connects(leg, &second.departure) {
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
        let now = OffsetDateTime::now_utc();
        let trip = query.validate(&snapshot, now.date())?;
        self.count_search(crate::service::SearchKind::Flight);
        let key = format!("flights:{}", serde_json::to_string(query).unwrap_or_default());
        if let Some(hit) = self.cached_result(&key, self.result_max_age()) {
            metrics::counter!("catalog_search_results_total", "kind" => "flights", "cache" => "hit").increment(1);
            return Ok(hit);
        }
        let generation = self.generation();
        let outbound = connections(
            &snapshot,
            &trip.origin,
            &trip.destination,
            trip.date,
            trip.max_stops,
            now,
        );
        let inbound = trip
            .return_date
            .map(|d| connections(&snapshot, &trip.destination, &trip.origin, d, trip.max_stops, now));
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
                segment(
                    &snapshot,
                    leg,
                    trip.cabin,
                    trip.passengers.seats(),
                    &counts,
                    self.options(),
                )?,
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
            // Prices compare as money, in the display currency when one is asked, else in `catalog.sort_currency`:
            // an itinerary's fares are in its airlines' currency.
            let mut order = PriceOrder::new(&snapshot, trip.display.unwrap_or(self.options().sort_currency));
            let mut keyed = Vec::with_capacity(priced.len());
            for (it, draft) in priced {
                let money = Money::new(it.price.total_minor, Currency::parse(&it.currency).map_err(bad_money)?);
                keyed.push((order.key(money), it, draft));
            }
            match query.sort.unwrap_or_default() {
                FlightSort::Price => keyed.sort_by_key(|(price, it, _)| (*price, it.duration_minutes)),
                FlightSort::Duration => keyed.sort_by_key(|(price, it, _)| (it.duration_minutes, *price)),
            }
            let mut priced: Vec<_> = keyed.into_iter().map(|(_, it, draft)| (it, draft)).collect();
            priced.truncate(trip.limit);
            Ok(priced
                .into_iter()
                .map(|(mut it, draft)| {
                    it.offer_id = self.sign(draft.shown(None, &it.price), expires);
                    it
                })
                .collect())
        };
        let response = FlightSearchResponse {
            cabin: trip.cabin,
            passengers: trip.passengers,
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
        // An itinerary whose fees cannot be converted into its currency has no correct price: it is not sold.
        let Ok(price) = itinerary_price(&fare_prices, &trip.passengers, currency, snapshot, options)? else {
            return Ok(None);
        };
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
                passengers: trip.passengers,
                refundable: fares.iter().all(|f| f.refundable),
                price: None,
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
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DepartureDetails {
    pub currency: String,
    /// One entry per cabin, each with its fares (those with no seat left included, `seats_left` 0).
    pub cabins: Vec<Segment>,
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
    counts: &Counted,
    options: &crate::Options,
) -> Result<Option<Segment>, Error> {
    let Some(plan) = leg.schedule.cabins.iter().find(|c| c.cabin == cabin) else {
        return Ok(None);
    };
    let Some(cabin_counts) = counts.get(&leg.departure.seat_item(cabin)) else {
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
        price_minor: fare_price(fare, cabin, options)?,
        refundable: fare.refundable,
        change_fee_minor: fare.change_fee_minor,
        baggage_pieces: fare.baggage_pieces,
        seats_left: left,
    })
}

//! Demo flights: routes from airline hubs and between nearby cities, frequencies, times, cabins and fares.

use super::*;

/// Each airline flies from its hub to this many cities (fewer if fewer are in range).
pub(super) const HUB_DESTINATIONS: (i64, i64) = (14, 22);
/// Point-to-point routes per airline, between cities within [`REGION_KM`] of its hub.
pub(super) const POINT_TO_POINT_ROUTES: (i64, i64) = (2, 5);
pub(super) const REGION_KM: f64 = 3_000.0;
/// Point-to-point routes are this long.
pub(super) const POINT_TO_POINT_KM: (f64, f64) = (300.0, 3_500.0);
/// Share of flights to a city with several airports that use one other than the busiest.
pub(super) const SECONDARY_AIRPORT_SHARE: f64 = 0.3;
/// Departures leave between these local times (minutes after midnight), on five-minute marks.
pub(super) const FIRST_DEPARTURE_MINUTE: i64 = 6 * 60;
pub(super) const LAST_DEPARTURE_MINUTE: i64 = 22 * 60 + 30;
pub(super) const MINUTES_PER_SLOT: i64 = 5;
/// Block time: taxi and climb, then cruise at this speed, rounded to five minutes and within these bounds.
pub(super) const TAXI_MINUTES: f64 = 30.0;
pub(super) const CRUISE_KMH: f64 = 800.0;
pub(super) const MIN_BLOCK_MINUTES: i64 = 45;
pub(super) const MAX_BLOCK_MINUTES: i64 = 1_000;
pub(super) const FIRST_FLIGHT_NUMBER: u32 = 100;
pub(super) const LAST_FLIGHT_NUMBER: u32 = 9_999;

/// A city pair an airline flies, both ways.
pub(super) struct Route {
    pub(super) origin: &'static geo::Airport,
    pub(super) destination: &'static geo::Airport,
    pub(super) distance_km: f64,
    pub(super) duration_minutes: i64,
    /// Flights a day each way, at scale 1.
    pub(super) frequency: u32,
    pub(super) days: [bool; 7],
}

/// What an airline's schedules share.
pub(super) struct FlightPlan<'a> {
    pub(super) airline: &'a geo::Airline,
    pub(super) pricing: Pricing,
    pub(super) from: Date,
    pub(super) to: Date,
}

/// An airline's flight numbers: pairs, odd out and even back (`XA101`, `XA102`).
#[derive(Default)]
pub(super) struct FlightNumbers {
    pub(super) used: u32,
}

impl FlightNumbers {
    pub(super) fn next_pair(&mut self) -> Option<(u32, u32)> {
        let outbound = FIRST_FLIGHT_NUMBER + 1 + 2 * self.used;
        if outbound + 1 > LAST_FLIGHT_NUMBER {
            return None;
        }
        self.used += 1;
        Some((outbound, outbound + 1))
    }
}

/// Scheduled minutes for a flight of this length, or `None` if it is too long to fly nonstop here.
pub(super) fn block_minutes(distance_km: f64) -> Option<i64> {
    let raw = TAXI_MINUTES + distance_km / CRUISE_KMH * 60.0;
    let rounded = (raw / 5.0).round() as i64 * 5;
    (rounded <= MAX_BLOCK_MINUTES).then_some(rounded.max(MIN_BLOCK_MINUTES))
}

pub(super) fn airport_distance(a: &geo::Airport, b: &geo::Airport) -> f64 {
    geo::distance_km(a.latitude, a.longitude, b.latitude, b.longitude)
}

/// A city's busiest airport, or sometimes one of its others.
pub(super) fn city_airport(rng: &mut Rng, city: &City) -> Option<&'static geo::Airport> {
    let code = match city.airports.split_first() {
        Some((_, others)) if !others.is_empty() && rng.chance(SECONDARY_AIRPORT_SHARE) => rng.pick(others),
        Some((busiest, _)) => busiest,
        None => return None,
    };
    geo::airport(code)
}

pub(super) fn route(
    rng: &mut Rng,
    origin: &'static geo::Airport,
    destination: &'static geo::Airport,
    weight: u32,
    point_to_point: bool,
) -> Option<Route> {
    if origin.code == destination.code || origin.city == destination.city {
        return None;
    }
    let distance_km = airport_distance(origin, destination);
    let duration_minutes = block_minutes(distance_km)?;
    let mut frequency = frequency(rng, distance_km, weight);
    if point_to_point {
        frequency = frequency.div_ceil(2);
    }
    let days = operating_days(rng, distance_km, weight);
    Some(Route {
        origin,
        destination,
        distance_km,
        duration_minutes,
        frequency,
        days,
    })
}

/// The hub's routes to the cities that matter most to it: big, near, or domestic.
pub(super) fn hub_routes(rng: &mut Rng, hub: &'static geo::Airport) -> Vec<Route> {
    let mut candidates: Vec<(f64, &City)> = geo::cities()
        .iter()
        .filter(|city| city.name != hub.city)
        .filter_map(|city| {
            let distance_km = geo::distance_km(hub.latitude, hub.longitude, city.latitude, city.longitude);
            block_minutes(distance_km)?;
            let domestic = if city.country == hub.country { 3.0 } else { 1.0 };
            let weight = f64::from(city_profile(city.name).weight);
            Some((
                weight * domestic * (-distance_km / 5_000.0).exp() * rng.between(0.6, 1.4),
                city,
            ))
        })
        .collect();
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    let wanted = rng.range(HUB_DESTINATIONS.0, HUB_DESTINATIONS.1) as usize;
    candidates
        .into_iter()
        .take(wanted)
        .filter_map(|(_, city)| {
            let destination = city_airport(rng, city)?;
            route(rng, hub, destination, city_profile(city.name).weight, false)
        })
        .collect()
}

/// A few routes between cities near the hub that skip it.
pub(super) fn point_to_point_routes(rng: &mut Rng, hub: &'static geo::Airport) -> Vec<Route> {
    let away_from_hub = |city: &&City| city.name != hub.city;
    let region: Vec<&City> = geo::cities()
        .iter()
        .filter(away_from_hub)
        .filter(|city| geo::distance_km(hub.latitude, hub.longitude, city.latitude, city.longitude) <= REGION_KM)
        .collect();
    if region.is_empty() {
        return Vec::new();
    }
    let region_weights: Vec<f64> = region
        .iter()
        .map(|city| f64::from(city_profile(city.name).weight))
        .collect();
    let wanted = rng.range(POINT_TO_POINT_ROUTES.0, POINT_TO_POINT_ROUTES.1) as usize;
    let mut routes: Vec<Route> = Vec::new();
    for _ in 0..wanted * 4 {
        if routes.len() >= wanted {
            break;
        }
        let from_city = region[rng.weighted(&region_weights)];
        let destinations: Vec<&City> = geo::cities()
            .iter()
            .filter(away_from_hub)
            .filter(|city| {
                let km = geo::distance_km(from_city.latitude, from_city.longitude, city.latitude, city.longitude);
                city.name != from_city.name && (POINT_TO_POINT_KM.0..=POINT_TO_POINT_KM.1).contains(&km)
            })
            .collect();
        if destinations.is_empty() {
            continue;
        }
        let weights: Vec<f64> = destinations
            .iter()
            .map(|city| f64::from(city_profile(city.name).weight))
            .collect();
        let to_city = destinations[rng.weighted(&weights)];
        let (Some(origin), Some(destination)) = (city_airport(rng, from_city), city_airport(rng, to_city)) else {
            continue;
        };
        let flown = |r: &Route| {
            (r.origin.city == from_city.name && r.destination.city == to_city.name)
                || (r.origin.city == to_city.name && r.destination.city == from_city.name)
        };
        if routes.iter().any(flown) {
            continue;
        }
        let weight = city_profile(from_city.name)
            .weight
            .min(city_profile(to_city.name).weight);
        routes.extend(route(rng, origin, destination, weight, true));
    }
    routes
}

/// Flights a day each way: several on short busy routes, one on long ones.
pub(super) fn frequency(rng: &mut Rng, distance_km: f64, weight: u32) -> u32 {
    let (lo, hi) = match distance_km {
        d if d < 1_000.0 => (2, 5),
        d if d < 2_500.0 => (1, 3),
        d if d < 5_000.0 => (1, 2),
        _ => (1, 1),
    };
    let busy = u32::from(weight >= 5 && distance_km < 5_000.0);
    (rng.range(lo, hi) as u32 + busy).min(6)
}

/// Daily, or some days of the week on long or thin routes.
pub(super) fn operating_days(rng: &mut Rng, distance_km: f64, weight: u32) -> [bool; 7] {
    let daily = match (distance_km, weight) {
        (d, w) if d >= 5_000.0 => 0.4 + 0.1 * f64::from(w),
        (_, w) if w <= 2 => 0.8,
        _ => 1.0,
    };
    if rng.chance(daily) {
        return [true; 7];
    }
    let mut days = [false; 7];
    let wanted = rng.range(3, 6) as usize;
    while days.iter().filter(|day| **day).count() < wanted {
        days[rng.below(7)] = true;
    }
    days
}

/// `count` local departure times spread over the day, each in its own share of it, on five-minute marks.
pub(super) fn departure_times(rng: &mut Rng, count: u32) -> Vec<Time> {
    let slots = (LAST_DEPARTURE_MINUTE - FIRST_DEPARTURE_MINUTE) / MINUTES_PER_SLOT + 1;
    let count = i64::from(count).clamp(1, slots);
    (0..count)
        .map(|i| {
            let first = i * slots / count;
            let slot = first + rng.range(0, slots / count - 1);
            Time::MIDNIGHT + Duration::minutes(FIRST_DEPARTURE_MINUTE + slot * MINUTES_PER_SLOT)
        })
        .collect()
}

/// The schedules of one route: `frequency × scale` flights each way.
pub(super) fn route_schedules(
    rng: &mut Rng,
    plan: &FlightPlan<'_>,
    route: &Route,
    scale: u32,
    numbers: &mut FlightNumbers,
) -> Vec<Schedule> {
    let count = route.frequency.saturating_mul(scale);
    let outbound_times = departure_times(rng, count);
    let return_times = departure_times(rng, count);
    let mut schedules = Vec::with_capacity(outbound_times.len() * 2);
    for (outbound_time, return_time) in outbound_times.into_iter().zip(return_times) {
        let Some((outbound, back)) = numbers.next_pair() else {
            break;
        };
        schedules.push(plan.schedule(outbound, route.origin, route.destination, outbound_time, route));
        schedules.push(plan.schedule(back, route.destination, route.origin, return_time, route));
    }
    schedules
}

impl FlightPlan<'_> {
    pub(super) fn schedule(
        &self,
        number: u32,
        origin: &geo::Airport,
        destination: &geo::Airport,
        departure_time: Time,
        route: &Route,
    ) -> Schedule {
        let key = [text_key(self.airline.code), u64::from(number)];
        let mut rng = Rng::keyed(STREAM_FLIGHT, &key);
        Schedule {
            id: demo_id(ID_SCHEDULE, &key),
            airline: self.airline.code.to_owned(),
            flight_number: format!("{}{number}", self.airline.code),
            origin: origin.code.to_owned(),
            destination: destination.code.to_owned(),
            departure_time,
            duration_minutes: route.duration_minutes,
            days: route.days,
            effective_from: self.from,
            effective_to: self.to,
            currency: self.pricing.currency.to_owned(),
            cabins: cabins(&mut rng, route.distance_km, &self.pricing),
        }
    }
}

/// A fare class; prices come in US dollars.
pub(super) struct FareSpec {
    pub(super) code: &'static str,
    pub(super) usd: f64,
    pub(super) refundable: bool,
    pub(super) change_fee_usd: f64,
    pub(super) baggage_pieces: u8,
    pub(super) booking_limit: i64,
}

pub(super) fn fare(spec: FareSpec, pricing: &Pricing) -> FareClass {
    FareClass {
        code: spec.code.to_owned(),
        price_minor: pricing.minor(spec.usd),
        refundable: spec.refundable,
        change_fee_minor: if spec.change_fee_usd > 0.0 {
            pricing.minor(spec.change_fee_usd)
        } else {
            0
        },
        baggage_pieces: spec.baggage_pieces,
        booking_limit: spec.booking_limit,
    }
}

/// Economy always; business on longer routes (and some shorter ones); first on some long-haul routes.
pub(super) fn cabins(rng: &mut Rng, distance_km: f64, pricing: &Pricing) -> Vec<CabinPlan> {
    let full_economy_usd = (70.0 + 0.15 * distance_km) * rng.between(0.9, 1.15);
    let (economy_seats, business_seats) = match distance_km {
        d if d < 1_500.0 => ((120, 190), (8, 16)),
        d if d < 4_000.0 => ((150, 220), (12, 24)),
        _ => ((220, 300), (24, 40)),
    };
    let mut cabins = vec![economy(rng, economy_seats, full_economy_usd, pricing)];
    if distance_km >= 1_500.0 || (distance_km >= 800.0 && rng.chance(0.3)) {
        let full_business_usd = full_economy_usd * 2.9;
        cabins.push(business(rng, business_seats, full_business_usd, pricing));
        if distance_km >= 7_000.0 && rng.chance(0.35) {
            cabins.push(first(rng, full_business_usd * 1.8, pricing));
        }
    }
    cabins
}

pub(super) fn economy(rng: &mut Rng, (lo, hi): (i64, i64), y_usd: f64, pricing: &Pricing) -> CabinPlan {
    let seats = rng.range(lo, hi);
    let overbooking_limit = rng.range(0, 6);
    let share = |percent: i64| seats * percent / 100;
    let fares = [
        FareSpec {
            code: "Y",
            usd: y_usd,
            refundable: true,
            change_fee_usd: 0.0,
            baggage_pieces: 1,
            booking_limit: seats + overbooking_limit,
        },
        FareSpec {
            code: "M",
            usd: y_usd * 0.62,
            refundable: false,
            change_fee_usd: (y_usd * 0.08).max(30.0),
            baggage_pieces: 1,
            booking_limit: share(65),
        },
        FareSpec {
            code: "Q",
            usd: y_usd * 0.4,
            refundable: false,
            change_fee_usd: (y_usd * 0.15).max(50.0),
            baggage_pieces: 0,
            booking_limit: share(40),
        },
        FareSpec {
            code: "V",
            usd: y_usd * 0.28,
            refundable: false,
            change_fee_usd: (y_usd * 0.2).max(60.0),
            baggage_pieces: 0,
            booking_limit: share(20),
        },
    ];
    CabinPlan {
        cabin: Cabin::Economy,
        seats,
        overbooking_limit,
        fares: fares.into_iter().map(|spec| fare(spec, pricing)).collect(),
    }
}

pub(super) fn business(rng: &mut Rng, (lo, hi): (i64, i64), j_usd: f64, pricing: &Pricing) -> CabinPlan {
    let seats = rng.range(lo, hi);
    let overbooking_limit = rng.range(0, 2);
    let fares = [
        FareSpec {
            code: "J",
            usd: j_usd,
            refundable: true,
            change_fee_usd: 0.0,
            baggage_pieces: 2,
            booking_limit: seats + overbooking_limit,
        },
        FareSpec {
            code: "C",
            usd: j_usd * 0.7,
            refundable: false,
            change_fee_usd: (j_usd * 0.05).max(75.0),
            baggage_pieces: 2,
            booking_limit: seats / 2,
        },
    ];
    CabinPlan {
        cabin: Cabin::Business,
        seats,
        overbooking_limit,
        fares: fares.into_iter().map(|spec| fare(spec, pricing)).collect(),
    }
}

pub(super) fn first(rng: &mut Rng, f_usd: f64, pricing: &Pricing) -> CabinPlan {
    let seats = rng.range(4, 8);
    let spec = FareSpec {
        code: "F",
        usd: f_usd,
        refundable: true,
        change_fee_usd: 0.0,
        baggage_pieces: 3,
        booking_limit: seats,
    };
    CabinPlan {
        cabin: Cabin::First,
        seats,
        overbooking_limit: 0,
        fares: vec![fare(spec, pricing)],
    }
}

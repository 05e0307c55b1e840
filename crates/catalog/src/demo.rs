//! A deterministic, realistic demo catalog for `phoenix seed demo [--scale N]`.
//!
//! Pure data generation, no I/O: hotel chains and airlines to create as organizations, about 2,000 hotels with
//! room types and a nightly price calendar across the 50 cities of [`geo::cities`], and the flight schedules of the
//! demo airlines of [`geo::airlines`] (hub-and-spoke networks plus some point-to-point routes, a little over 2,000
//! departures a day). `scale` multiplies hotels, hotel chains and flights. Prices are in each country's currency,
//! so [`fx_rates`] gives the exchange rates the catalog needs to charge the configured fixed fees in all of them.
//!
//! Everything comes from a small SplitMix64 generator seeded from a constant, and every hotel, route and flight
//! draws from its own stream keyed by what it is (city and number, airline and flight number), so the output is
//! identical on every run and ids ([`Uuid`]s built from the same streams) are stable across runs. (Seasonal curves
//! and route scores use `cos` and `exp`, whose last bit may differ between platforms' maths libraries, so another
//! platform could in principle round a price differently.) Names are ASCII and fictional.

use std::collections::{BTreeMap, HashSet};
use std::f64::consts::TAU;

use time::{Date, Duration, Time, Weekday};
use uuid::Uuid;

use crate::flight::{Cabin, CabinPlan, FareClass, Schedule};
use crate::geo::{self, City};
use crate::hotel::{Hotel, MealPlan, RatePlan, RoomType};
use crate::snapshot::HotelEntry;
use crate::store::Airline;

mod flights;
mod hotels;
mod money;

pub use money::fx_rates;
use money::{Pricing, airline_currency, local_currency};

use flights::*;
use hotels::*;

/// Nights priced and days flown when not told otherwise.
pub const DEFAULT_DAYS: u32 = 60;
/// Hotels generated per unit of scale.
pub const HOTELS_PER_SCALE: u32 = 2_000;
/// Hotel chains generated per unit of scale.
pub const CHAINS_PER_SCALE: u32 = 20;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoOptions {
    /// Multiplies hotels, hotel chains and flights; 1 is the default size, 0 counts as 1.
    pub scale: u32,
    /// First night priced and first day flown.
    pub start: Date,
    /// Nights priced and days flown ([`DEFAULT_DAYS`] by default); 0 counts as 1.
    pub days: u32,
}

impl DemoOptions {
    /// Scale 1 and [`DEFAULT_DAYS`] days from `start`.
    pub fn new(start: Date) -> DemoOptions {
        DemoOptions {
            scale: 1,
            start,
            days: DEFAULT_DAYS,
        }
    }

    fn scale(&self) -> u32 {
        self.scale.max(1)
    }

    fn days(&self) -> u32 {
        self.days.max(1)
    }

    /// The last day flown (and the last night priced).
    fn last_day(&self) -> Date {
        self.start.saturating_add(Duration::days(i64::from(self.days()) - 1))
    }

    /// Every night priced, in order.
    fn nights(&self) -> Vec<Date> {
        std::iter::successors(Some(self.start), |night| night.next_day())
            .take(self.days() as usize)
            .collect()
    }
}

/// The organizations that own the demo catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organizations {
    /// Hotel chains: id and name. The first word of a name is the chain's brand.
    pub hotel_chains: Vec<(Uuid, String)>,
    /// One per demo airline of [`geo::airlines`], named like it: id and name.
    pub airlines: Vec<(Uuid, String)>,
}

/// The organizations to create: [`CHAINS_PER_SCALE`] fictional hotel chains per unit of scale and one organization
/// per demo airline, with deterministic ids.
pub fn organizations(scale: u32) -> Organizations {
    let hotel_chains = (0..CHAINS_PER_SCALE * scale.max(1))
        .map(|i| (demo_id(ID_CHAIN, &[u64::from(i)]), chain_name(i as usize)))
        .collect();
    let airlines = geo::airlines()
        .iter()
        .map(|airline| {
            (
                demo_id(ID_AIRLINE_ORG, &[text_key(airline.code)]),
                airline.name.to_owned(),
            )
        })
        .collect();
    Organizations { hotel_chains, airlines }
}

/// The demo airlines, each owned by the organization of [`Organizations::airlines`] with its name; an airline
/// without one is left out.
pub fn airlines(orgs: &Organizations) -> Vec<Airline> {
    geo::airlines()
        .iter()
        .filter_map(|airline| {
            let (organization_id, _) = orgs.airlines.iter().find(|(_, name)| name == airline.name)?;
            Some(Airline {
                code: airline.code.to_owned(),
                name: airline.name.to_owned(),
                organization_id: *organization_id,
            })
        })
        .collect()
}

/// About [`HOTELS_PER_SCALE`] hotels per unit of scale across the cities of [`geo::cities`] (big cities get more),
/// each owned by one of `orgs.hotel_chains` and priced for every night of `options`. Empty without hotel chains.
pub fn hotels(orgs: &Organizations, options: &DemoOptions) -> Vec<HotelEntry> {
    if orgs.hotel_chains.is_empty() {
        return Vec::new();
    }
    let nights = options.nights();
    let counts = hotel_counts(HOTELS_PER_SCALE * options.scale());
    let mut entries = Vec::new();
    for (city_index, (city, count)) in geo::cities().iter().zip(counts).enumerate() {
        let mut taken_names = HashSet::new();
        for number in 0..count {
            let key = HotelKey {
                city_index: city_index as u64,
                number: u64::from(number),
            };
            entries.push(hotel(key, city, &orgs.hotel_chains, &nights, &mut taken_names));
        }
    }
    entries
}

/// The flight schedules of the demo airlines, effective for every day of `options`. Each airline flies from its
/// hub to many cities and back, plus a few point-to-point routes near its hub; `scale` multiplies frequencies.
///
/// Flight numbers are unique per airline and have at most four digits, so an airline stops adding flights at
/// number 9999 (only at scales far beyond the demo's).
pub fn schedules(options: &DemoOptions) -> Vec<Schedule> {
    let mut schedules = Vec::new();
    for airline in geo::airlines() {
        let Some(hub) = geo::airport(airline.home) else {
            continue;
        };
        let plan = FlightPlan {
            airline,
            pricing: Pricing::new(airline_currency(hub.country)),
            from: options.start,
            to: options.last_day(),
        };
        let mut rng = Rng::keyed(STREAM_ROUTES, &[text_key(airline.code)]);
        let mut numbers = FlightNumbers::default();
        let mut routes = hub_routes(&mut rng, hub);
        routes.extend(point_to_point_routes(&mut rng, hub));
        for route in &routes {
            schedules.extend(route_schedules(&mut rng, &plan, route, options.scale(), &mut numbers));
        }
    }
    schedules
}

// ---------------------------------------------------------------------------------------------------------------
// Deterministic randomness and ids.

const SEED: u64 = 0x5048_4f45_4e49_5821;
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Streams of randomness, one per kind of thing generated, so that one kind never shifts another.
const STREAM_HOTEL: u64 = 1;
const STREAM_ROUTES: u64 = 2;
const STREAM_FLIGHT: u64 = 3;
/// Id kinds: each kind of entity gets its own id stream.
const ID_CHAIN: u64 = 101;
const ID_AIRLINE_ORG: u64 = 102;
const ID_HOTEL: u64 = 103;
const ID_ROOM_TYPE: u64 = 104;
const ID_RATE_PLAN: u64 = 105;
const ID_SCHEDULE: u64 = 106;

/// The SplitMix64 output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A string as a stream key (FNV-1a).
fn text_key(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64: tiny, fast, and good enough for demo data.
struct Rng {
    state: u64,
}

impl Rng {
    /// The stream of `stream` for the thing identified by `key`.
    fn keyed(stream: u64, key: &[u64]) -> Rng {
        let state = key.iter().fold(mix(SEED ^ stream), |state, part| {
            mix(state ^ mix(part.wrapping_add(GOLDEN_GAMMA)))
        });
        Rng { state }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix(self.state)
    }

    /// Uniform in `0..n`; `n` must not be 0.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as usize) as i64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    /// A uniform choice from a non-empty slice.
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// An index chosen with probability proportional to its weight; the weights must not all be 0.
    fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut target = self.unit() * total;
        for (index, weight) in weights.iter().enumerate() {
            if target < *weight {
                return index;
            }
            target -= weight;
        }
        weights.len() - 1
    }
}

/// A well-formed (version 4 shaped) id derived from the kind of entity and its key.
fn demo_id(kind: u64, key: &[u64]) -> Uuid {
    let mut rng = Rng::keyed(kind, key);
    let bits = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
    uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid()
}

// ---------------------------------------------------------------------------------------------------------------
// Cities.

/// How many hotels a city gets relative to others, and how expensive it is relative to an average city.
#[derive(Debug, Clone, Copy)]
struct CityProfile {
    weight: u32,
    price_factor: f64,
}

const DEFAULT_PROFILE: CityProfile = CityProfile {
    weight: 2,
    price_factor: 1.0,
};

const CITY_PROFILES: &[(&str, u32, f64)] = &[
    ("London", 6, 1.45),
    ("Paris", 6, 1.35),
    ("Frankfurt", 3, 1.1),
    ("Munich", 3, 1.1),
    ("Berlin", 4, 0.95),
    ("Amsterdam", 4, 1.3),
    ("Madrid", 4, 0.95),
    ("Barcelona", 5, 1.05),
    ("Rome", 5, 1.05),
    ("Milan", 4, 1.1),
    ("Zurich", 2, 1.6),
    ("Vienna", 3, 1.0),
    ("Copenhagen", 2, 1.25),
    ("Stockholm", 2, 1.15),
    ("Dublin", 2, 1.25),
    ("Lisbon", 3, 0.9),
    ("Istanbul", 5, 0.7),
    ("Athens", 3, 0.85),
    ("Prague", 3, 0.8),
    ("New York", 6, 1.6),
    ("Boston", 2, 1.4),
    ("Washington", 3, 1.3),
    ("Miami", 4, 1.3),
    ("Chicago", 4, 1.2),
    ("Las Vegas", 4, 0.9),
    ("Los Angeles", 5, 1.3),
    ("San Francisco", 3, 1.45),
    ("Honolulu", 2, 1.5),
    ("Toronto", 3, 1.1),
    ("Vancouver", 2, 1.15),
    ("Mexico City", 3, 0.7),
    ("Sao Paulo", 3, 0.7),
    ("Rio de Janeiro", 3, 0.8),
    ("Buenos Aires", 2, 0.65),
    ("Dubai", 5, 1.2),
    ("Doha", 2, 1.1),
    ("Cairo", 2, 0.45),
    ("Marrakesh", 2, 0.6),
    ("Nairobi", 1, 0.6),
    ("Cape Town", 2, 0.7),
    ("Delhi", 3, 0.5),
    ("Mumbai", 3, 0.55),
    ("Singapore", 5, 1.3),
    ("Bangkok", 5, 0.55),
    ("Hong Kong", 4, 1.2),
    ("Beijing", 3, 0.75),
    ("Shanghai", 4, 0.8),
    ("Seoul", 4, 0.9),
    ("Tokyo", 6, 1.1),
    ("Sydney", 3, 1.2),
];

/// Cities where some hotels are on the beach.
const BEACH_CITIES: &[&str] = &[
    "Athens",
    "Barcelona",
    "Cape Town",
    "Doha",
    "Dubai",
    "Honolulu",
    "Lisbon",
    "Los Angeles",
    "Miami",
    "Mumbai",
    "Rio de Janeiro",
    "Sydney",
];

fn city_profile(name: &str) -> CityProfile {
    CITY_PROFILES
        .iter()
        .find(|(city, _, _)| *city == name)
        .map_or(DEFAULT_PROFILE, |(_, weight, price_factor)| CityProfile {
            weight: *weight,
            price_factor: *price_factor,
        })
}

/// Hotels per city of [`geo::cities`], proportional to weight and summing to `total` exactly.
fn hotel_counts(total: u32) -> Vec<u32> {
    let weights: Vec<u64> = geo::cities()
        .iter()
        .map(|city| u64::from(city_profile(city.name).weight))
        .collect();
    let sum: u64 = weights.iter().sum::<u64>().max(1);
    let (mut cumulative, mut assigned) = (0, 0);
    weights
        .iter()
        .map(|weight| {
            cumulative += weight;
            let upto = (u64::from(total) * cumulative + sum / 2) / sum;
            let count = upto - assigned;
            assigned = upto;
            count as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::hash::{DefaultHasher, Hash, Hasher};
    use std::sync::LazyLock;

    use time::macros::date;

    use super::money::UNITS_PER_USD;
    use super::*;
    use crate::money::{Currency, Rate};

    const START: Date = date!(2026 - 12 - 01);

    struct Demo {
        orgs: Organizations,
        hotels: Vec<HotelEntry>,
        schedules: Vec<Schedule>,
    }

    fn generate(scale: u32) -> Demo {
        let options = DemoOptions {
            scale,
            ..DemoOptions::new(START)
        };
        let orgs = organizations(scale);
        Demo {
            hotels: hotels(&orgs, &options),
            schedules: schedules(&options),
            orgs,
        }
    }

    static SCALE_1: LazyLock<Demo> = LazyLock::new(|| generate(1));
    /// Departures materialized from every schedule at scale 1.
    static DEPARTURES: LazyLock<usize> =
        LazyLock::new(|| SCALE_1.schedules.iter().map(|s| s.departures().unwrap().len()).sum());

    /// Departures a schedule has over its range, counted from its days of the week.
    fn operating_days(schedule: &Schedule) -> usize {
        let mut date = schedule.effective_from;
        let mut n = 0;
        while date <= schedule.effective_to {
            n += usize::from(schedule.days[usize::from(date.weekday().number_days_from_monday())]);
            date = date.next_day().unwrap();
        }
        n
    }

    fn fingerprint(demo: &Demo) -> u64 {
        let mut hasher = DefaultHasher::new();
        for entry in &demo.hotels {
            let h = &entry.hotel;
            (h.id, &h.name, &h.address, h.stars, &h.amenities, h.organization_id).hash(&mut hasher);
            h.latitude.to_bits().hash(&mut hasher);
            for plan in &entry.rate_plans {
                (plan.id, &plan.prices).hash(&mut hasher);
            }
        }
        for s in &demo.schedules {
            (
                s.id,
                &s.flight_number,
                &s.origin,
                &s.destination,
                s.departure_time,
                s.days,
            )
                .hash(&mut hasher);
            for cabin in &s.cabins {
                (
                    cabin.seats,
                    cabin.fares.iter().map(|f| f.price_minor).collect::<Vec<_>>(),
                )
                    .hash(&mut hasher);
            }
        }
        hasher.finish()
    }

    #[test]
    fn generation_is_deterministic() {
        let again = generate(1);
        assert_eq!(again.orgs, SCALE_1.orgs);
        assert_eq!(again.schedules, SCALE_1.schedules);
        assert_eq!(again.hotels.len(), SCALE_1.hotels.len());
        for (a, b) in again.hotels.iter().zip(&SCALE_1.hotels) {
            assert_eq!(a.hotel, b.hotel);
            assert_eq!(a.room_types, b.room_types);
            assert_eq!(a.rate_plans, b.rate_plans);
        }
        assert_eq!(fingerprint(&again), fingerprint(&SCALE_1));
    }

    #[test]
    fn every_schedule_validates_and_materializes() {
        for s in &SCALE_1.schedules {
            s.validate()
                .unwrap_or_else(|e| panic!("{} invalid: {e}", s.flight_number));
            assert_eq!(s.departures().unwrap().len(), operating_days(s), "{}", s.flight_number);
        }
    }

    #[test]
    fn thousands_of_departures_a_day_and_under_200k_in_total() {
        let counted: usize = SCALE_1.schedules.iter().map(operating_days).sum();
        assert_eq!(*DEPARTURES, counted);
        let per_day = *DEPARTURES as f64 / f64::from(DEFAULT_DAYS);
        assert!(per_day >= 2_000.0, "{per_day} departures a day");
        assert!(*DEPARTURES < 200_000, "{} departures", *DEPARTURES);
    }

    #[test]
    fn flights_look_like_flights() {
        let mut numbers = HashSet::new();
        for s in &SCALE_1.schedules {
            assert!(numbers.insert(s.flight_number.clone()), "{} twice", s.flight_number);
            let digits = s.flight_number.strip_prefix(&s.airline).unwrap();
            assert!(
                (1..=4).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
                "{}",
                s.flight_number
            );
            assert_ne!(s.origin, s.destination);
            let (origin, destination) = (geo::airport(&s.origin).unwrap(), geo::airport(&s.destination).unwrap());
            assert_ne!(origin.city, destination.city, "{}", s.flight_number);
            assert!((MIN_BLOCK_MINUTES..=MAX_BLOCK_MINUTES).contains(&s.duration_minutes));
            let minutes = i64::from(s.departure_time.hour()) * 60 + i64::from(s.departure_time.minute());
            assert!((FIRST_DEPARTURE_MINUTE..=LAST_DEPARTURE_MINUTE).contains(&minutes) && minutes % 5 == 0);
            assert_eq!((s.effective_from, s.effective_to), (START, date!(2027 - 01 - 29)));
            assert!(Currency::parse(&s.currency).is_ok(), "{}", s.currency);
            assert_eq!(s.cabins[0].cabin, Cabin::Economy);
        }
        let airlines: HashSet<&str> = SCALE_1.schedules.iter().map(|s| s.airline.as_str()).collect();
        assert_eq!(airlines.len(), geo::airlines().len(), "every airline flies");
        assert!(
            SCALE_1
                .schedules
                .iter()
                .any(|s| s.cabins.iter().any(|c| c.cabin == Cabin::First))
        );
        assert!(SCALE_1.schedules.iter().any(|s| s.cabins.len() == 1));
    }

    #[test]
    fn about_two_thousand_hotels_across_all_cities() {
        let hotels = &SCALE_1.hotels;
        assert!((1_900..=2_100).contains(&hotels.len()), "{} hotels", hotels.len());
        let mut per_city: HashMap<&str, usize> = HashMap::new();
        for entry in hotels {
            *per_city.entry(entry.hotel.city.as_str()).or_default() += 1;
        }
        assert!(per_city.len() >= 50);
        assert!(
            per_city["London"] > 2 * per_city["Nairobi"],
            "big cities get more hotels"
        );
        let ids: HashSet<Uuid> = hotels.iter().map(|e| e.hotel.id).collect();
        assert_eq!(ids.len(), hotels.len());
        let chains: HashSet<Uuid> = SCALE_1.orgs.hotel_chains.iter().map(|(id, _)| *id).collect();
        assert!(hotels.iter().all(|e| chains.contains(&e.hotel.organization_id)));
    }

    #[test]
    fn hotels_are_plausible() {
        let amenities: HashSet<&str> = AMENITIES.iter().copied().collect();
        let mut stars = [0usize; 5];
        for entry in &SCALE_1.hotels {
            let h = &entry.hotel;
            let city = geo::cities().iter().find(|c| c.name == h.city).unwrap();
            assert_eq!(
                (h.country.as_str(), h.time_zone.as_str()),
                (city.country, city.time_zone)
            );
            assert!(geo::distance_km(city.latitude, city.longitude, h.latitude, h.longitude) <= SCATTER_KM + 0.1);
            assert!(
                h.name.is_ascii() && h.address.is_ascii() && h.description.is_ascii(),
                "{}",
                h.name
            );
            assert!(h.amenities.iter().all(|a| amenities.contains(a.as_str())));
            stars[usize::from(h.stars) - 1] += 1;
            assert!((2..=4).contains(&entry.room_types.len()));
            for room in &entry.room_types {
                assert!((1..=4).contains(&room.max_occupancy) && (5..=60).contains(&room.rooms));
                let plans = entry.rate_plans.iter().filter(|p| p.room_type_id == room.id).count();
                assert!((1..=2).contains(&plans));
            }
        }
        assert!(
            stars[2] + stars[3] > SCALE_1.hotels.len() / 2,
            "mostly 3 and 4 stars: {stars:?}"
        );
        let names: HashSet<(&str, &str)> = SCALE_1
            .hotels
            .iter()
            .map(|e| (e.hotel.city.as_str(), e.hotel.name.as_str()))
            .collect();
        assert_eq!(names.len(), SCALE_1.hotels.len(), "names are unique within a city");
    }

    #[test]
    fn every_night_is_priced_in_the_local_currency() {
        let last = START + Duration::days(i64::from(DEFAULT_DAYS) - 1);
        for entry in &SCALE_1.hotels {
            let local = local_currency(&entry.hotel.country);
            for plan in &entry.rate_plans {
                assert_eq!(plan.currency, local);
                let currency = Currency::parse(&plan.currency).unwrap();
                assert_eq!(
                    plan.nightly(START, DEFAULT_DAYS).map(|p| p.len()),
                    Some(DEFAULT_DAYS as usize)
                );
                assert_eq!(plan.prices.len(), DEFAULT_DAYS as usize);
                assert_eq!(plan.prices.keys().next_back(), Some(&last));
                assert!(
                    plan.prices
                        .values()
                        .all(|p| *p > 0 && *p % 10_i64.pow(currency.exponent()) == 0)
                );
                assert_eq!(plan.refundable, plan.free_cancellation_hours.is_some());
            }
        }
        let in_tokyo = SCALE_1.hotels.iter().find(|e| e.hotel.city == "Tokyo").unwrap();
        assert_eq!(in_tokyo.rate_plans[0].currency, "JPY");
        assert!(
            in_tokyo.rate_plans[0]
                .prices
                .values()
                .all(|p| *p % 100 == 0 && *p > 3_000)
        );
        let in_paris = SCALE_1.hotels.iter().find(|e| e.hotel.city == "Paris").unwrap();
        assert_eq!(in_paris.rate_plans[0].currency, "EUR");
        assert_eq!(local_currency("MA"), "USD");
    }

    #[test]
    fn organizations_and_airlines() {
        let orgs = &SCALE_1.orgs;
        assert_eq!(orgs.hotel_chains.len(), 20);
        let names: HashSet<&str> = orgs.hotel_chains.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names.len(), 20);
        let airlines = airlines(orgs);
        assert_eq!(airlines.len(), geo::airlines().len());
        for airline in &airlines {
            let (_, name) = orgs
                .airlines
                .iter()
                .find(|(id, _)| *id == airline.organization_id)
                .unwrap();
            assert_eq!(name, &airline.name);
        }
        let bigger = organizations(3);
        let names: HashSet<&str> = bigger.hotel_chains.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names.len(), 60);
        assert_eq!(bigger.hotel_chains[..20], orgs.hotel_chains[..]);
    }

    #[test]
    fn scale_two_roughly_doubles() {
        let double = generate(2);
        assert_eq!(double.hotels.len(), 2 * SCALE_1.hotels.len());
        let departures = |demo: &Demo| demo.schedules.iter().map(operating_days).sum::<usize>() as f64;
        let ratio = departures(&double) / departures(&SCALE_1);
        assert!((1.8..=2.2).contains(&ratio), "{ratio}");
        let numbers: HashSet<&str> = double.schedules.iter().map(|s| s.flight_number.as_str()).collect();
        assert_eq!(numbers.len(), double.schedules.len());
    }

    #[test]
    fn profiles_name_real_cities() {
        for (name, _, _) in CITY_PROFILES {
            assert!(geo::cities().iter().any(|c| c.name == *name), "{name}");
        }
        for name in BEACH_CITIES {
            assert!(geo::cities().iter().any(|c| c.name == *name), "{name}");
        }
    }

    #[test]
    fn sizes_at_scale_one() {
        let room_nights: usize =
            SCALE_1.hotels.iter().map(|e| e.room_types.len()).sum::<usize>() * DEFAULT_DAYS as usize;
        let plans: usize = SCALE_1.hotels.iter().map(|e| e.rate_plans.len()).sum();
        let fare_buckets: usize = SCALE_1
            .schedules
            .iter()
            .map(|s| operating_days(s) * s.cabins.iter().map(|c| 1 + c.fares.len()).sum::<usize>())
            .sum();
        println!(
            "hotels {} room types {} rate plans {plans} room-night buckets {room_nights}; schedules {} departures {} \
             ({:.0}/day), seat and fare buckets {fare_buckets}",
            SCALE_1.hotels.len(),
            room_nights / DEFAULT_DAYS as usize,
            SCALE_1.schedules.len(),
            *DEPARTURES,
            *DEPARTURES as f64 / f64::from(DEFAULT_DAYS),
        );
    }

    #[test]
    fn fx_rates_reach_every_currency_the_demo_sells_in_from_the_fee_currency() {
        let rates = fx_rates(&crate::Options::default());
        let from_eur: HashMap<&str, &str> = rates
            .iter()
            .map(|r| {
                assert_eq!(r.base, "EUR", "the default fixed fees are in euros");
                assert!(Rate::parse(&r.rate).is_ok(), "{} to {}: {}", r.base, r.quote, r.rate);
                (r.quote.as_str(), r.rate.as_str())
            })
            .collect();
        let sold_in: HashSet<&str> = SCALE_1
            .hotels
            .iter()
            .flat_map(|e| e.rate_plans.iter().map(|p| p.currency.as_str()))
            .chain(SCALE_1.schedules.iter().map(|s| s.currency.as_str()))
            .collect();
        assert!(sold_in.len() > 20, "{sold_in:?}");
        for currency in sold_in.iter().filter(|c| **c != "EUR") {
            assert!(from_eur.contains_key(currency), "no rate from EUR to {currency}");
        }
        // 150 yen or 1350 won a dollar, 0.92 euro a dollar.
        assert_eq!(from_eur["JPY"], "163.04347826");
        assert_eq!(from_eur["KRW"], "1467.39130435");
        assert_eq!(from_eur["USD"], "1.08695652");

        let fees_in = |code: Option<&str>, kind| crate::Options {
            fees: vec![crate::pricing::FeeLine {
                code: "levy".into(),
                name: "Levy".into(),
                kind,
                currency: code.map(|c| Currency::parse(c).unwrap()),
                applies_to: crate::pricing::Applies::Both,
            }],
            ..crate::Options::default()
        };
        let from_jpy = fx_rates(&fees_in(Some("JPY"), crate::pricing::FeeKind::PerBooking(500)));
        assert!(from_jpy.iter().all(|r| r.base == "JPY" && r.quote != "JPY"));
        assert_eq!(from_jpy.len(), UNITS_PER_USD.len() - 1);
        // A fee currency the table does not know, and percentages, need no rates from the demo.
        assert!(fx_rates(&fees_in(Some("KWD"), crate::pricing::FeeKind::PerBooking(500))).is_empty());
        assert!(fx_rates(&fees_in(None, crate::pricing::FeeKind::PercentBp(500))).is_empty());
    }

    #[test]
    fn output_is_pinned_across_runs() {
        // Changing these means every seeded demo database changes: do it on purpose only.
        let chain = &SCALE_1.orgs.hotel_chains[0];
        assert_eq!(
            (chain.0.to_string().as_str(), chain.1.as_str()),
            ("426a530f-a1a4-4c2f-801b-f20501a885a0", "Aurora Hotels")
        );
        let first = &SCALE_1.hotels[0].hotel;
        assert_eq!(first.id.to_string(), "292ac93e-62dd-4810-9d77-d8a456fdf2c3");
        assert_eq!(first.name, "Kestrel London Market");
        assert_eq!(
            demo_id(ID_SCHEDULE, &[1, 2]).to_string(),
            "535a3e3b-b649-441f-8855-cd73551f68cb"
        );
        assert_eq!(demo_id(ID_SCHEDULE, &[1, 2]).get_version_num(), 4);
    }
}

//! Demo hotels: names, places, stars, amenities, room types and nightly prices.

use super::*;

pub(super) const CHAIN_BRANDS: &[&str] = &[
    "Aurora",
    "Bellavista",
    "Cobalt",
    "Driftwood",
    "Evergreen",
    "Goldcrest",
    "Harborlight",
    "Ivorygate",
    "Juniper",
    "Kestrel",
    "Larkspur",
    "Mistral",
    "Northwind",
    "Opaline",
    "Palisade",
    "Quillstone",
    "Rosewater",
    "Silverbirch",
    "Tamarind",
    "Umberfield",
];
pub(super) const CHAIN_SUFFIXES: &[&str] = &[
    "Hotels",
    "Hotels & Resorts",
    "Hospitality",
    "Collection",
    "Inns",
    "Stays",
];
pub(super) const CHAIN_QUALIFIERS: &[&str] = &[
    "Atlantic",
    "Pacific",
    "Continental",
    "Coastal",
    "Urban",
    "Heritage",
    "Select",
];

pub(super) const NAME_WORDS: &[&str] = &[
    "Lumiere",
    "Meridian",
    "Belvedere",
    "Regent",
    "Majestic",
    "Beaumont",
    "Astoria",
    "Bellevue",
    "Windsor",
    "Riviera",
    "Continental",
    "Ambassador",
    "Metropole",
    "Excelsior",
    "Imperial",
    "Royal",
    "Crown",
    "Orchid",
    "Magnolia",
    "Cedar",
    "Horizon",
    "Lotus",
    "Sapphire",
    "Emerald",
    "Oakwood",
    "Willow",
    "Sterling",
    "Garden",
    "Plaza",
    "Vista",
    "Summit",
    "Atlas",
    "Olympia",
    "Zenith",
    "Harmony",
    "Serenity",
];
pub(super) const DISTRICTS: &[&str] = &[
    "Centre",
    "Old Town",
    "Riverside",
    "Central Station",
    "Airport",
    "Harbour",
    "Park",
    "Downtown",
    "Uptown",
    "Waterfront",
    "City",
    "Gardens",
    "Market",
    "University",
    "Business District",
    "Cathedral Quarter",
    "Marina",
    "Hillside",
];
pub(super) const BUDGET_KINDS: &[&str] = &["Inn", "Hostel", "Budget Hotel", "Lodge", "Rooms", "Guesthouse"];
pub(super) const MIDSCALE_KINDS: &[&str] = &["Hotel", "Suites", "Inn", "Residences", "Boutique Hotel", "Apartments"];
pub(super) const LUXURY_KINDS: &[&str] = &[
    "Palace",
    "Grand Hotel",
    "Resort & Spa",
    "Residences",
    "Collection Hotel",
];
pub(super) const STREET_WORDS: &[&str] = &[
    "Linden", "Rose", "Market", "Station", "Church", "Park", "Harbour", "King", "Queen", "Mill", "Castle", "Garden",
    "River", "Bridge", "Chestnut", "Orchard", "Meadow", "Victoria", "Elm", "Maple", "Grove", "Hill",
];
pub(super) const STREET_TYPES: &[&str] = &[
    "Street",
    "Avenue",
    "Road",
    "Boulevard",
    "Lane",
    "Square",
    "Place",
    "Way",
    "Quay",
    "Row",
];

/// Amenity vocabulary, in the order amenities are listed.
pub(super) const AMENITIES: &[&str] = &[
    "free_wifi",
    "pool",
    "spa",
    "gym",
    "parking",
    "restaurant",
    "bar",
    "airport_shuttle",
    "pet_friendly",
    "air_conditioning",
    "family_rooms",
    "beach_access",
];

/// Weights of 1 to 5 stars: most hotels have 3 or 4.
pub(super) const STAR_WEIGHTS: [f64; 5] = [0.05, 0.15, 0.36, 0.31, 0.13];
/// Price of a standard room for one night by stars, in US dollars, before city and hotel factors.
pub(super) const STAR_BASE_USD: [f64; 5] = [45.0, 70.0, 110.0, 175.0, 330.0];
/// Hotels scatter up to this far from the city centre.
pub(super) const SCATTER_KM: f64 = 8.0;
pub(super) const KM_PER_DEGREE: f64 = 111.32;
/// Friday and Saturday nights cost this much more.
pub(super) const WEEKEND_UPLIFT: f64 = 1.15;
/// Non-refundable, room-only plans cost this fraction of the flexible plan with breakfast.
pub(super) const NON_REFUNDABLE_FACTOR: f64 = 0.85;
/// Share of room types that also sell a non-refundable plan.
pub(super) const NON_REFUNDABLE_SHARE: f64 = 0.75;

/// A kind of room and the hotels that have it.
pub(super) struct RoomSpec {
    pub(super) name: &'static str,
    pub(super) max_occupancy: u8,
    pub(super) beds: &'static str,
    pub(super) price_factor: f64,
    pub(super) min_rooms: i64,
    pub(super) max_rooms: i64,
    pub(super) min_stars: u8,
    pub(super) max_stars: u8,
}

pub(super) const ROOM_SPECS: &[RoomSpec] = &[
    RoomSpec {
        name: "Single Room",
        max_occupancy: 1,
        beds: "1 single bed",
        price_factor: 0.8,
        min_rooms: 5,
        max_rooms: 30,
        min_stars: 1,
        max_stars: 3,
    },
    RoomSpec {
        name: "Standard Double Room",
        max_occupancy: 2,
        beds: "1 double bed",
        price_factor: 1.0,
        min_rooms: 20,
        max_rooms: 60,
        min_stars: 1,
        max_stars: 4,
    },
    RoomSpec {
        name: "Twin Room",
        max_occupancy: 2,
        beds: "2 single beds",
        price_factor: 1.0,
        min_rooms: 10,
        max_rooms: 40,
        min_stars: 1,
        max_stars: 4,
    },
    RoomSpec {
        name: "Superior Double Room",
        max_occupancy: 2,
        beds: "1 queen bed",
        price_factor: 1.2,
        min_rooms: 10,
        max_rooms: 40,
        min_stars: 3,
        max_stars: 5,
    },
    RoomSpec {
        name: "Deluxe King Room",
        max_occupancy: 2,
        beds: "1 king bed",
        price_factor: 1.4,
        min_rooms: 10,
        max_rooms: 40,
        min_stars: 4,
        max_stars: 5,
    },
    RoomSpec {
        name: "Family Room",
        max_occupancy: 4,
        beds: "1 double bed and 2 single beds",
        price_factor: 1.5,
        min_rooms: 5,
        max_rooms: 20,
        min_stars: 2,
        max_stars: 5,
    },
    RoomSpec {
        name: "Junior Suite",
        max_occupancy: 3,
        beds: "1 king bed and 1 sofa bed",
        price_factor: 1.9,
        min_rooms: 5,
        max_rooms: 15,
        min_stars: 4,
        max_stars: 5,
    },
    RoomSpec {
        name: "Executive Suite",
        max_occupancy: 4,
        beds: "1 king bed and 2 sofa beds",
        price_factor: 2.6,
        min_rooms: 5,
        max_rooms: 10,
        min_stars: 5,
        max_stars: 5,
    },
];

/// The name of the `index`th hotel chain; the first word is the brand.
pub(super) fn chain_name(index: usize) -> String {
    let brand = CHAIN_BRANDS[index % CHAIN_BRANDS.len()];
    let suffix = CHAIN_SUFFIXES[index % CHAIN_SUFFIXES.len()];
    match index / CHAIN_BRANDS.len() {
        0 => format!("{brand} {suffix}"),
        round => match CHAIN_QUALIFIERS.get(round - 1) {
            Some(qualifier) => format!("{brand} {qualifier} {suffix}"),
            None => format!("{brand} {suffix} {}", round + 1),
        },
    }
}

/// Which hotel: its city's index in [`geo::cities`] and its number there. Hotel contents and ids derive from it.
#[derive(Debug, Clone, Copy)]
pub(super) struct HotelKey {
    pub(super) city_index: u64,
    pub(super) number: u64,
}

impl HotelKey {
    pub(super) fn id(self, kind: u64, parts: &[u64]) -> Uuid {
        let key: Vec<u64> = [self.city_index, self.number]
            .into_iter()
            .chain(parts.iter().copied())
            .collect();
        demo_id(kind, &key)
    }
}

pub(super) fn hotel(
    key: HotelKey,
    city: &City,
    chains: &[(Uuid, String)],
    nights: &[Date],
    taken_names: &mut HashSet<String>,
) -> HotelEntry {
    let mut rng = Rng::keyed(STREAM_HOTEL, &[key.city_index, key.number]);
    let hotel_id = key.id(ID_HOTEL, &[]);
    let (organization_id, chain) = &chains[rng.below(chains.len())];
    let brand = chain.split(' ').next().unwrap_or(chain);
    let stars = rng.weighted(&STAR_WEIGHTS) as u8 + 1;
    let district = rng.pick(DISTRICTS);
    let name = unique_hotel_name(&mut rng, brand, city.name, district, stars, taken_names);
    let (latitude, longitude, distance_km) = scatter(&mut rng, city);
    let specs = pick_room_specs(&mut rng, stars);
    let amenities = pick_amenities(&mut rng, stars, city.name, district, &specs);
    let pricing = Pricing::new(local_currency(city.country));
    let hotel_usd =
        STAR_BASE_USD[usize::from(stars) - 1] * city_profile(city.name).price_factor * rng.between(0.85, 1.2);
    let demand = night_demand(&mut rng, city, nights);
    let cancellation_hours = if rng.chance(0.3 + 0.1 * f64::from(stars)) {
        48
    } else {
        24
    };

    let mut room_types = Vec::with_capacity(specs.len());
    let mut rate_plans = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let room_type_id = key.id(ID_ROOM_TYPE, &[index as u64]);
        room_types.push(RoomType {
            id: room_type_id,
            hotel_id,
            name: spec.name.to_owned(),
            max_occupancy: spec.max_occupancy,
            beds: spec.beds.to_owned(),
            rooms: rng.range(spec.min_rooms, spec.max_rooms),
            active: true,
        });
        let room_usd = hotel_usd * spec.price_factor;
        let plan = PlanContext {
            key,
            hotel_id,
            room_type_id,
            room_index: index as u64,
            pricing,
            nights,
            demand: &demand,
        };
        rate_plans.push(plan.flexible(room_usd, cancellation_hours));
        if rng.chance(NON_REFUNDABLE_SHARE) {
            rate_plans.push(plan.non_refundable(room_usd));
        }
    }

    let hotel = Hotel {
        id: hotel_id,
        organization_id: *organization_id,
        description: description(stars, city.name, distance_km, &amenities),
        name,
        address: format!(
            "{} {} {}",
            rng.range(1, 240),
            rng.pick(STREET_WORDS),
            rng.pick(STREET_TYPES)
        ),
        city: city.name.to_owned(),
        country: city.country.to_owned(),
        latitude,
        longitude,
        stars,
        amenities,
        time_zone: city.time_zone.to_owned(),
        active: true,
    };
    HotelEntry {
        hotel,
        room_types,
        rate_plans,
    }
}

pub(super) fn hotel_name(rng: &mut Rng, brand: &str, city: &str, district: &str, stars: u8) -> String {
    let kinds = match stars {
        1 | 2 => BUDGET_KINDS,
        5 => LUXURY_KINDS,
        _ => MIDSCALE_KINDS,
    };
    let kind = rng.pick(kinds);
    let word = rng.pick(NAME_WORDS);
    match rng.below(5) {
        0 => format!("{brand} {city} {district}"),
        1 => format!("Hotel {word} {city} {district}"),
        2 => format!("The {word} {city}"),
        3 => format!("{word} {kind} {city}"),
        _ => format!("{city} {district} {kind}"),
    }
}

/// A hotel name not yet used in the city.
pub(super) fn unique_hotel_name(
    rng: &mut Rng,
    brand: &str,
    city: &str,
    district: &str,
    stars: u8,
    taken: &mut HashSet<String>,
) -> String {
    let mut name = hotel_name(rng, brand, city, district, stars);
    for _ in 0..8 {
        if !taken.contains(&name) {
            break;
        }
        name = hotel_name(rng, brand, city, district, stars);
    }
    let mut unique = name.clone();
    let mut n = 2;
    while taken.contains(&unique) {
        unique = format!("{name} {n}");
        n += 1;
    }
    taken.insert(unique.clone());
    unique
}

/// A point within [`SCATTER_KM`] of the city centre, denser near the centre: latitude, longitude, distance.
pub(super) fn scatter(rng: &mut Rng, city: &City) -> (f64, f64, f64) {
    let distance_km = SCATTER_KM * rng.unit();
    let bearing = TAU * rng.unit();
    let latitude = city.latitude + distance_km * bearing.cos() / KM_PER_DEGREE;
    let longitude = city.longitude + distance_km * bearing.sin() / (KM_PER_DEGREE * city.latitude.to_radians().cos());
    let round6 = |degrees: f64| (degrees * 1e6).round() / 1e6;
    (round6(latitude), round6(longitude), distance_km)
}

/// Two to four room types fit for the hotel's stars, cheapest first.
pub(super) fn pick_room_specs(rng: &mut Rng, stars: u8) -> Vec<&'static RoomSpec> {
    let eligible: Vec<&RoomSpec> = ROOM_SPECS
        .iter()
        .filter(|s| (s.min_stars..=s.max_stars).contains(&stars))
        .collect();
    let wanted = (rng.range(2, 4) as usize).min(eligible.len());
    let mut chosen: Vec<usize> = Vec::with_capacity(wanted);
    while chosen.len() < wanted {
        let index = rng.below(eligible.len());
        if !chosen.contains(&index) {
            chosen.push(index);
        }
    }
    chosen.sort_unstable();
    chosen.into_iter().map(|index| eligible[index]).collect()
}

/// What decides whether a hotel has an amenity.
pub(super) struct AmenityContext {
    pub(super) stars: f64,
    pub(super) beach: bool,
    pub(super) near_airport: bool,
    pub(super) family_rooms: bool,
}

pub(super) fn amenity_chance(amenity: &str, hotel: &AmenityContext) -> f64 {
    let above_one_star = hotel.stars - 1.0;
    match amenity {
        "free_wifi" => 0.92,
        "pool" => 0.04 + 0.12 * above_one_star + if hotel.beach { 0.2 } else { 0.0 },
        "spa" if hotel.stars >= 4.0 => 0.3 + 0.4 * (hotel.stars - 4.0),
        "spa" => 0.03,
        "gym" => 0.1 + 0.2 * above_one_star,
        "parking" => 0.5,
        "restaurant" => 0.15 + 0.22 * above_one_star,
        "bar" => 0.1 + 0.22 * above_one_star,
        "airport_shuttle" if hotel.near_airport => 0.8,
        "airport_shuttle" => 0.1,
        "pet_friendly" => 0.25,
        "air_conditioning" => 0.55 + 0.1 * hotel.stars,
        "family_rooms" if hotel.family_rooms => 1.0,
        "beach_access" if hotel.beach => 0.4,
        _ => 0.0,
    }
}

pub(super) fn pick_amenities(rng: &mut Rng, stars: u8, city: &str, district: &str, specs: &[&RoomSpec]) -> Vec<String> {
    let context = AmenityContext {
        stars: f64::from(stars),
        beach: BEACH_CITIES.contains(&city),
        near_airport: district == "Airport",
        family_rooms: specs.iter().any(|spec| spec.max_occupancy >= 4),
    };
    AMENITIES
        .iter()
        .filter(|amenity| rng.chance(amenity_chance(amenity, &context)))
        .map(|amenity| (*amenity).to_owned())
        .collect()
}

pub(super) fn description(stars: u8, city: &str, distance_km: f64, amenities: &[String]) -> String {
    let mut text = format!("A {stars}-star hotel in {city}, {distance_km:.1} km from the centre");
    if !amenities.is_empty() {
        let listed: Vec<String> = amenities.iter().take(4).map(|a| a.replace('_', " ")).collect();
        text.push_str(", with ");
        text.push_str(&listed.join(", "));
    }
    text.push('.');
    text
}

/// A price multiplier per night: season (peaking mid-summer of the city's hemisphere), weekends, and noise.
pub(super) fn night_demand(rng: &mut Rng, city: &City, nights: &[Date]) -> Vec<f64> {
    let peak_day = if city.latitude < 0.0 { 15.0 } else { 196.0 };
    let amplitude = rng.between(0.04, 0.12);
    nights
        .iter()
        .map(|night| {
            let season = 1.0 + amplitude * (TAU * (f64::from(night.ordinal()) - peak_day) / 365.25).cos();
            let weekend = if matches!(night.weekday(), Weekday::Friday | Weekday::Saturday) {
                WEEKEND_UPLIFT
            } else {
                1.0
            };
            season * weekend * rng.between(0.96, 1.04)
        })
        .collect()
}

/// What the rate plans of one room type share.
pub(super) struct PlanContext<'a> {
    pub(super) key: HotelKey,
    pub(super) hotel_id: Uuid,
    pub(super) room_type_id: Uuid,
    pub(super) room_index: u64,
    pub(super) pricing: Pricing,
    pub(super) nights: &'a [Date],
    pub(super) demand: &'a [f64],
}

impl PlanContext<'_> {
    pub(super) fn flexible(&self, room_usd: f64, cancellation_hours: u32) -> RatePlan {
        self.plan(0, "Flexible", MealPlan::Breakfast, Some(cancellation_hours), room_usd)
    }

    pub(super) fn non_refundable(&self, room_usd: f64) -> RatePlan {
        self.plan(
            1,
            "Non-refundable",
            MealPlan::RoomOnly,
            None,
            room_usd * NON_REFUNDABLE_FACTOR,
        )
    }

    pub(super) fn plan(
        &self,
        index: u64,
        name: &str,
        meal_plan: MealPlan,
        free_cancellation_hours: Option<u32>,
        room_usd: f64,
    ) -> RatePlan {
        let prices: BTreeMap<Date, i64> = self
            .nights
            .iter()
            .zip(self.demand)
            .map(|(night, demand)| (*night, self.pricing.minor(room_usd * demand)))
            .collect();
        RatePlan {
            id: self.key.id(ID_RATE_PLAN, &[self.room_index, index]),
            hotel_id: self.hotel_id,
            room_type_id: self.room_type_id,
            name: name.to_owned(),
            meal_plan,
            refundable: free_cancellation_hours.is_some(),
            free_cancellation_hours,
            currency: self.pricing.currency.to_owned(),
            prices,
            active: true,
        }
    }
}

//! What the catalog's API takes and gives: request bodies with their validation, and the views it answers with.
//! Validation collects every bad field at once and names it, so a client gets one 422 listing all its mistakes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::Date;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::flight::{CabinPlan, Schedule};
use crate::hotel::{Hotel, MealPlan, RatePlan, RoomType};
use crate::money::Currency;
use crate::store::{Airline, AirportRow};

/// A calendar date, `YYYY-MM-DD` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ToSchema)]
#[schema(value_type = String, format = Date, example = "2026-12-24")]
pub struct Day(pub Date);

impl Day {
    pub fn parse(s: &str) -> Option<Day> {
        crate::store::parse_date(s).map(Day)
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Day, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Day::parse(&text).ok_or_else(|| serde::de::Error::custom("expected a date as YYYY-MM-DD"))
    }
}

/// Field-by-field validation: the project's [`phoenix_api::FieldErrors`] with the catalog's recurring checks, ending
/// in the catalog's own 422.
#[derive(Debug, Default)]
pub(crate) struct Check(phoenix_api::FieldErrors);

impl Check {
    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.0.add(field, message);
    }

    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let n = value.trim().chars().count();
        if n < min || value.chars().count() > max {
            self.fail(field, format!("must have {min} to {max} characters"));
        } else if value.chars().any(char::is_control) {
            self.fail(field, "must not contain control characters");
        } else if phoenix_api::text::has_invisible_format(value) {
            // Names travellers read in search results, on bookings and in emails: no hidden reordering or spaces.
            self.fail(field, phoenix_api::text::INVISIBLE_FORMAT);
        }
    }

    pub fn range<T: PartialOrd + std::fmt::Display>(&mut self, field: &str, value: T, min: T, max: T) {
        if value < min || value > max {
            self.fail(field, format!("must be between {min} and {max}"));
        }
    }

    /// A point on the globe, as `latitude` and `longitude` in degrees.
    pub fn point(&mut self, latitude: f64, longitude: f64) {
        if !(-90.0..=90.0).contains(&latitude) {
            self.fail("latitude", "must be between -90 and 90");
        }
        if !(-180.0..=180.0).contains(&longitude) {
            self.fail("longitude", "must be between -180 and 180");
        }
    }

    /// An ISO 3166-1 alpha-2 country code.
    pub fn country(&mut self, field: &str, code: &str) {
        if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            self.fail(field, "must be an ISO 3166-1 alpha-2 code such as FR");
        }
    }

    pub fn finish(self) -> Result<(), crate::Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(crate::Error::Invalid(self.0.into_errors()))
        }
    }
}

/// A hotel as its API shows it.
pub type HotelView = Hotel;
/// A room type as its API shows it.
pub type RoomTypeView = RoomType;
/// An airport as its API shows it.
pub type AirportView = AirportRow;

// Hotels

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HotelInput {
    /// The owning hotel-chain organization: admins must name it; operators' hotels belong to their own.
    #[serde(default)]
    pub organization_id: Option<Uuid>,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 5000)]
    pub description: String,
    #[schema(min_length = 1, max_length = 500)]
    pub address: String,
    #[schema(min_length = 1, max_length = 100)]
    pub city: String,
    /// ISO 3166-1 alpha-2, `FR`.
    #[schema(pattern = "^[A-Z]{2}$")]
    pub country: String,
    #[schema(minimum = -90, maximum = 90)]
    pub latitude: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub longitude: f64,
    /// 1 to 5.
    #[schema(minimum = 1, maximum = 5)]
    pub stars: u8,
    /// At most 50, each 1 to 40 of `a-z`, `0-9` and `_` (`free_wifi`).
    #[serde(default)]
    #[schema(max_items = 50)]
    pub amenities: Vec<String>,
    /// IANA time zone, `Europe/Paris`.
    pub time_zone: String,
}

impl HotelInput {
    pub(crate) fn check(&self, check: &mut Check) {
        check.text("name", &self.name, 1, 200);
        check.text("description", &self.description, 0, 5_000);
        check.text("address", &self.address, 1, 500);
        check.text("city", &self.city, 1, 100);
        check.country("country", &self.country);
        check.point(self.latitude, self.longitude);
        check.range("stars", self.stars, 1, 5);
        if self.amenities.len() > 50 {
            check.fail("amenities", "at most 50 amenities");
        }
        for (i, amenity) in self.amenities.iter().enumerate() {
            let ok = (1..=40).contains(&amenity.len())
                && amenity
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                check.fail(
                    &format!("amenities[{i}]"),
                    "amenities are lowercase words like free_wifi",
                );
            }
        }
        if crate::geo::time_zone(&self.time_zone).is_none() {
            check.fail("time_zone", "must be an IANA time zone such as Europe/Paris");
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomTypeInput {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Guests one room sleeps, 1 to 12.
    #[schema(minimum = 1, maximum = 12)]
    pub max_occupancy: u8,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub beds: String,
    /// Rooms of this type, 0 to 10 000: each night's inventory bucket starts with this many.
    #[schema(minimum = 0, maximum = 10_000)]
    pub rooms: i64,
}

impl RoomTypeInput {
    pub(crate) fn check(&self, check: &mut Check) {
        check.text("name", &self.name, 1, 200);
        check.range("max_occupancy", self.max_occupancy, 1, 12);
        check.text("beds", &self.beds, 0, 200);
        check.range("rooms", self.rooms, 0, 10_000);
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatePlanInput {
    pub room_type_id: Uuid,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub meal_plan: MealPlan,
    pub refundable: bool,
    /// Refundable plans: free cancellation until this many hours before check-in (0 to 720).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 720)]
    pub free_cancellation_hours: Option<u32>,
    /// ISO 4217; the currency every price of the plan is charged in.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
}

impl RatePlanInput {
    pub(crate) fn check(&self, check: &mut Check) {
        check.text("name", &self.name, 1, 200);
        if let Some(hours) = self.free_cancellation_hours {
            if !self.refundable {
                check.fail(
                    "free_cancellation_hours",
                    "only refundable plans have free cancellation",
                );
            }
            check.range("free_cancellation_hours", hours, 0, 720);
        }
        if Currency::parse(&self.currency).is_err() {
            check.fail("currency", "must be an ISO 4217 code such as EUR");
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RatePlanView {
    pub id: Uuid,
    pub hotel_id: Uuid,
    pub room_type_id: Uuid,
    pub name: String,
    pub meal_plan: MealPlan,
    pub refundable: bool,
    pub free_cancellation_hours: Option<u32>,
    pub currency: String,
    pub active: bool,
    /// Priced nights: the first and last, and how many.
    pub first_night: Option<Day>,
    pub last_night: Option<Day>,
    pub priced_nights: usize,
}

impl From<&RatePlan> for RatePlanView {
    fn from(p: &RatePlan) -> RatePlanView {
        RatePlanView {
            id: p.id,
            hotel_id: p.hotel_id,
            room_type_id: p.room_type_id,
            name: p.name.clone(),
            meal_plan: p.meal_plan,
            refundable: p.refundable,
            free_cancellation_hours: p.free_cancellation_hours,
            currency: p.currency.clone(),
            active: p.active,
            first_night: p.prices.keys().next().copied().map(Day),
            last_night: p.prices.keys().next_back().copied().map(Day),
            priced_nights: p.prices.len(),
        }
    }
}

/// Most nights one call prices or resizes.
pub const MAX_CALENDAR_NIGHTS: i64 = 400;

/// A price for every night from `from` to `to`, both included.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PricesInput {
    pub from: Day,
    pub to: Day,
    /// Price of one room for one night, in minor units of the plan's currency.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub amount_minor: i64,
}

/// Rooms on sale for every night from `from` to `to`, both included: an allotment, or 0 to close out.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacityInput {
    pub from: Day,
    pub to: Day,
    #[schema(minimum = 0, maximum = 10_000)]
    pub rooms: i64,
}

pub(crate) fn check_span(check: &mut Check, from: Day, to: Day) {
    if to.0 < from.0 {
        check.fail("to", "must be on or after from");
    } else if (to.0 - from.0).whole_days() >= MAX_CALENDAR_NIGHTS {
        check.fail("to", format!("at most {MAX_CALENDAR_NIGHTS} nights at once"));
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HotelDetails {
    #[serde(flatten)]
    pub hotel: HotelView,
    pub room_types: Vec<RoomTypeView>,
    pub rate_plans: Vec<RatePlanView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CalendarChange {
    /// Nights changed.
    pub nights: usize,
    /// Nights left with more rooms than asked, because that many are already held or sold (they sell no more).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<KeptNight>,
}

/// A night a capacity change left above what was asked: its rooms are what is held and sold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct KeptNight {
    pub night: Day,
    pub rooms: i64,
}

// Flights

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AirportInput {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(min_length = 1, max_length = 100)]
    pub city: String,
    /// ISO 3166-1 alpha-2, `FR`.
    #[schema(pattern = "^[A-Z]{2}$")]
    pub country: String,
    /// IANA time zone, `Europe/Paris`.
    pub time_zone: String,
    #[schema(minimum = -90, maximum = 90)]
    pub latitude: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub longitude: f64,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AirlineInput {
    /// Two letters or digits.
    #[schema(pattern = "^[A-Z0-9]{2}$")]
    pub code: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The airline organization whose operators manage its schedules.
    pub organization_id: Uuid,
}

impl From<&Airline> for AirlineInput {
    fn from(a: &Airline) -> AirlineInput {
        AirlineInput {
            code: a.code.clone(),
            name: a.name.clone(),
            organization_id: a.organization_id,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    /// The airline's code; the flight number must start with it.
    #[schema(pattern = "^[A-Z0-9]{2}$")]
    pub airline: String,
    /// The airline's code and 1 to 4 digits, `PX123`.
    #[schema(pattern = "^[A-Z0-9]{2}[0-9]{1,4}$")]
    pub flight_number: String,
    /// IATA codes of known airports, different from each other.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub origin: String,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub destination: String,
    /// Local time at the origin, `HH:MM`.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub departure_time: String,
    /// 20 to 1440.
    #[schema(minimum = 20, maximum = 1440)]
    pub duration_minutes: i64,
    /// ISO weekdays the flight operates, each once: 1 is Monday, 7 Sunday.
    #[schema(min_items = 1, max_items = 7)]
    pub days: Vec<u8>,
    /// First and last local departure date, at most 400 days apart.
    pub effective_from: Day,
    pub effective_to: Day,
    /// ISO 4217 currency of every fare.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// One to four, each cabin once.
    #[schema(min_items = 1, max_items = 4)]
    pub cabins: Vec<CabinPlan>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
    pub id: Uuid,
    pub airline: String,
    pub flight_number: String,
    pub origin: String,
    pub destination: String,
    pub departure_time: String,
    pub duration_minutes: i64,
    pub days: Vec<u8>,
    pub effective_from: Day,
    pub effective_to: Day,
    pub currency: String,
    pub cabins: Vec<CabinPlan>,
    /// Departures materialized from the schedule.
    pub departures: usize,
}

impl ScheduleView {
    pub fn new(s: &Schedule, departures: usize) -> ScheduleView {
        ScheduleView {
            id: s.id,
            airline: s.airline.clone(),
            flight_number: s.flight_number.clone(),
            origin: s.origin.clone(),
            destination: s.destination.clone(),
            departure_time: crate::store::format_time(s.departure_time),
            duration_minutes: s.duration_minutes,
            days: (1..=7u8).filter(|d| s.days[usize::from(*d - 1)]).collect(),
            effective_from: Day(s.effective_from),
            effective_to: Day(s.effective_to),
            currency: s.currency.clone(),
            cabins: s.cabins.clone(),
            departures,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FxRateInput {
    /// Units of the quote currency per unit of the base currency, as a decimal string (`"1.0842"`).
    pub rate: String,
}

/// An exchange rate: units of `quote` per unit of `base`, the inverse serving the other way. A pair of currencies has
/// at most one, whichever way round it was set last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FxRateView {
    /// ISO 4217.
    pub base: String,
    /// ISO 4217.
    pub quote: String,
    /// A decimal string (`"1.0842"`).
    pub rate: String,
    /// When it was last set; absent only in rates the catalog does not hold (the demo's).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<time::OffsetDateTime>,
    /// The admin who last set it: shown to admins only, and absent when the platform set it (seeding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<Uuid>,
    /// In the answer to setting a rate: the rate the opposite pair (`quote` to `base`) had, which this one replaced
    /// and removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_opposite: Option<String>,
}

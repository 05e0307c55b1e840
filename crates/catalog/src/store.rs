//! The catalog's SQL. Catalog data is read whole into memory at start (see `snapshot`), so reads here are bulk
//! loads; writes are single statements or small transactions.

use std::collections::BTreeMap;

use phoenix_db::{Event, Pool, Timestamp, Tx, dispatch};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::Error;
use crate::flight::{CabinPlan, Departure, Schedule};
use crate::geo::Airport;
use crate::hotel::{Hotel, MealPlan, RatePlan, RoomType};
use crate::snapshot::HotelEntry;

/// Bound parameters per bulk statement: under both SQLite's (32 766) and PostgreSQL's (65 535) limits.
const BULK_ROWS: usize = 30_000;

#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

/// An airline, owned by an airline organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Airline {
    pub code: String,
    pub name: String,
    pub organization_id: Uuid,
}

/// An airport (seeded from the reference data, editable by admins).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AirportRow {
    pub code: String,
    pub name: String,
    pub city: String,
    pub country: String,
    pub time_zone: String,
    pub latitude: f64,
    pub longitude: f64,
    pub active: bool,
}

#[derive(sqlx::FromRow)]
struct HotelRow {
    id: Uuid,
    organization_id: Uuid,
    name: String,
    description: String,
    address: String,
    city: String,
    country: String,
    latitude: f64,
    longitude: f64,
    stars: i32,
    amenities: String,
    time_zone: String,
    active: bool,
}

#[derive(sqlx::FromRow)]
struct RoomTypeRow {
    id: Uuid,
    hotel_id: Uuid,
    name: String,
    max_occupancy: i32,
    beds: String,
    rooms: i64,
    active: bool,
}

#[derive(sqlx::FromRow)]
struct RatePlanRow {
    id: Uuid,
    hotel_id: Uuid,
    room_type_id: Uuid,
    name: String,
    meal_plan: String,
    refundable: bool,
    free_cancellation_hours: Option<i32>,
    currency: String,
    active: bool,
}

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    id: Uuid,
    airline: String,
    flight_number: String,
    origin: String,
    destination: String,
    departure_time: String,
    duration_minutes: i32,
    days: String,
    effective_from: String,
    effective_to: String,
    currency: String,
    cabins: String,
}

#[derive(sqlx::FromRow)]
struct DepartureRow {
    id: String,
    flight_number: String,
    airline: String,
    origin: String,
    destination: String,
    local_date: String,
    departs_at: Timestamp,
    arrives_at: Timestamp,
}

/// An exchange rate as stored: units of `quote` per unit of `base`, as decimal text.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FxRateRow {
    pub base: String,
    pub quote: String,
    pub rate: String,
    pub updated_at: Timestamp,
    /// The admin who set it; `None` for the platform (seeding).
    pub updated_by: Option<Uuid>,
}

type AirportTuple = (String, String, String, String, String, f64, f64, bool);
type DepartureTuple = (
    Uuid,
    String,
    String,
    String,
    String,
    String,
    String,
    Timestamp,
    Timestamp,
);

/// Everything the catalog holds, as loaded at start.
#[derive(Debug, Default)]
pub struct Everything {
    pub hotels: Vec<Hotel>,
    pub room_types: Vec<RoomType>,
    pub rate_plans: Vec<RatePlan>,
    pub airports: Vec<AirportRow>,
    pub airlines: Vec<Airline>,
    pub schedules: Vec<Schedule>,
    pub departures: Vec<(Uuid, Departure)>,
    pub fx_rates: Vec<FxRateRow>,
}

fn corrupt(what: &'static str) -> Error {
    Error::Corrupt { what }
}

pub fn parse_date(s: &str) -> Option<Date> {
    phoenix_api::date::parse_day(s)
}

fn days_text(days: &[bool; 7]) -> String {
    days.iter().map(|d| if *d { '1' } else { '0' }).collect()
}

fn parse_days(s: &str) -> Option<[bool; 7]> {
    let bytes = s.as_bytes();
    if bytes.len() != 7 || !bytes.iter().all(|b| *b == b'0' || *b == b'1') {
        return None;
    }
    let mut days = [false; 7];
    for (day, byte) in days.iter_mut().zip(bytes) {
        *day = *byte == b'1';
    }
    Some(days)
}

impl Store {
    pub fn new(pool: Pool) -> Store {
        Store { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub async fn begin(&self) -> Result<Tx, Error> {
        Ok(self.pool.begin().await?)
    }

    /// Writes an event that goes with no change of the catalog's tables (search counts), in its own transaction.
    pub async fn append_event(&self, event: &Event) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Loads the whole catalog.
    pub async fn load(&self) -> Result<Everything, Error> {
        let pool = &self.pool;
        let hotels: Vec<HotelRow> = dispatch!(pool, c => sqlx::query_as(
            "SELECT id, organization_id, name, description, address, city, country, latitude, longitude, stars,
                    amenities, time_zone, active FROM hotels").fetch_all(c).await)?;
        let room_types: Vec<RoomTypeRow> = dispatch!(pool, c => sqlx::query_as(
            "SELECT id, hotel_id, name, max_occupancy, beds, rooms, active FROM room_types").fetch_all(c).await)?;
        let rate_plans: Vec<RatePlanRow> = dispatch!(pool, c => sqlx::query_as(
            "SELECT id, hotel_id, room_type_id, name, meal_plan, refundable, free_cancellation_hours, currency, active
             FROM rate_plans").fetch_all(c).await)?;
        let prices: Vec<(Uuid, String, i64)> = dispatch!(pool, c => sqlx::query_as(
            "SELECT rate_plan_id, night, amount_minor FROM rate_prices").fetch_all(c).await)?;
        let airports: Vec<AirportTuple> = dispatch!(pool, c =>
            sqlx::query_as("SELECT code, name, city, country, time_zone, latitude, longitude, active FROM airports")
                .fetch_all(c).await)?;
        let airlines: Vec<(String, String, Uuid)> = dispatch!(pool, c =>
            sqlx::query_as("SELECT code, name, organization_id FROM airlines").fetch_all(c).await)?;
        let schedules: Vec<ScheduleRow> = dispatch!(pool, c => sqlx::query_as(
            "SELECT id, airline, flight_number, origin, destination, departure_time, duration_minutes, days,
                    effective_from, effective_to, currency, cabins FROM schedules WHERE active = TRUE")
            .fetch_all(c).await)?;
        let departures: Vec<(Uuid, DepartureRow)> = {
            let rows: Vec<DepartureTuple> = dispatch!(pool, c => sqlx::query_as(
                    "SELECT d.schedule_id, d.id, d.flight_number, d.airline, d.origin, d.destination, d.local_date,
                            d.departs_at, d.arrives_at
                     FROM departures d JOIN schedules s ON s.id = d.schedule_id WHERE s.active = TRUE")
                    .fetch_all(c).await)?;
            rows.into_iter()
                .map(|r| {
                    (
                        r.0,
                        DepartureRow {
                            id: r.1,
                            flight_number: r.2,
                            airline: r.3,
                            origin: r.4,
                            destination: r.5,
                            local_date: r.6,
                            departs_at: r.7,
                            arrives_at: r.8,
                        },
                    )
                })
                .collect()
        };
        let fx_rates: Vec<FxRateRow> = dispatch!(pool, c => sqlx::query_as(
            "SELECT base, quote, rate, updated_at, updated_by FROM fx_rates").fetch_all(c).await)?;

        let mut by_plan: BTreeMap<Uuid, BTreeMap<Date, i64>> = BTreeMap::new();
        for (plan, night, amount) in prices {
            let night = parse_date(&night).ok_or_else(|| corrupt("rate_prices.night"))?;
            by_plan.entry(plan).or_default().insert(night, amount);
        }
        Ok(Everything {
            hotels: hotels.into_iter().map(hotel).collect::<Result<_, _>>()?,
            room_types: room_types.into_iter().map(room_type).collect(),
            rate_plans: rate_plans
                .into_iter()
                .map(|row| {
                    let prices = by_plan.remove(&row.id).unwrap_or_default();
                    rate_plan(row, prices)
                })
                .collect::<Result<_, _>>()?,
            airports: airports
                .into_iter()
                .map(|a| AirportRow {
                    code: a.0,
                    name: a.1,
                    city: a.2,
                    country: a.3,
                    time_zone: a.4,
                    latitude: a.5,
                    longitude: a.6,
                    active: a.7,
                })
                .collect(),
            airlines: airlines
                .into_iter()
                .map(|a| Airline {
                    code: a.0,
                    name: a.1,
                    organization_id: a.2,
                })
                .collect(),
            schedules: schedules.into_iter().map(schedule).collect::<Result<_, _>>()?,
            departures: departures
                .into_iter()
                .map(|(schedule_id, row)| Ok((schedule_id, departure(row)?)))
                .collect::<Result<_, Error>>()?,
            fx_rates,
        })
    }

    // Hotels

    pub async fn save_hotel(&self, hotel: &Hotel, event: &Event) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        let amenities = serde_json::to_string(&hotel.amenities).map_err(|_| corrupt("amenities"))?;
        dispatch!(&mut tx, c => sqlx::query(
            "INSERT INTO hotels (id, organization_id, name, description, address, city, country, latitude, longitude,
                                 stars, amenities, time_zone, active, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (id) DO UPDATE SET name = $3, description = $4, address = $5, city = $6, country = $7,
                 latitude = $8, longitude = $9, stars = $10, amenities = $11, time_zone = $12, active = $13,
                 updated_at = $14")
            .bind(hotel.id).bind(hotel.organization_id).bind(&hotel.name).bind(&hotel.description)
            .bind(&hotel.address).bind(&hotel.city).bind(&hotel.country).bind(hotel.latitude).bind(hotel.longitude)
            .bind(i32::from(hotel.stars)).bind(&amenities).bind(&hotel.time_zone).bind(hotel.active)
            .bind(Timestamp::now())
            .execute(c).await.map(|_| ()))?;
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn save_room_type(&self, room: &RoomType, event: &Event) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        dispatch!(&mut tx, c => sqlx::query(
            "INSERT INTO room_types (id, hotel_id, name, max_occupancy, beds, rooms, active)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET name = $3, max_occupancy = $4, beds = $5, rooms = $6, active = $7")
            .bind(room.id).bind(room.hotel_id).bind(&room.name).bind(i32::from(room.max_occupancy))
            .bind(&room.beds).bind(room.rooms).bind(room.active)
            .execute(c).await.map(|_| ()))?;
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Saves a rate plan with all its prices (replacing those of the same nights).
    pub async fn save_rate_plan(&self, plan: &RatePlan, event: &Event) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        dispatch!(&mut tx, c => {
            sqlx::query(
                "INSERT INTO rate_plans (id, hotel_id, room_type_id, name, meal_plan, refundable,
                                         free_cancellation_hours, currency, active)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (id) DO UPDATE SET name = $4, meal_plan = $5, refundable = $6,
                     free_cancellation_hours = $7, active = $9")
                .bind(plan.id).bind(plan.hotel_id).bind(plan.room_type_id).bind(&plan.name)
                .bind(plan.meal_plan.as_str()).bind(plan.refundable)
                .bind(plan.free_cancellation_hours.map(|h| h as i32)).bind(&plan.currency).bind(plan.active)
                .execute(&mut *c).await?;
            for (night, amount) in &plan.prices {
                sqlx::query(
                    "INSERT INTO rate_prices (rate_plan_id, night, amount_minor) VALUES ($1, $2, $3)
                     ON CONFLICT (rate_plan_id, night) DO UPDATE SET amount_minor = $3")
                    .bind(plan.id).bind(night.to_string()).bind(amount)
                    .execute(&mut *c).await?;
            }
            Ok::<(), sqlx::Error>(())
        })?;
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(())
    }

    // Flights

    pub async fn save_airport(&self, airport: &AirportRow, event: &Event) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        dispatch!(&mut tx, c => sqlx::query(
            "INSERT INTO airports (code, name, city, country, time_zone, latitude, longitude, active)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (code) DO UPDATE SET name = $2, city = $3, country = $4, time_zone = $5, latitude = $6,
                 longitude = $7, active = $8")
            .bind(&airport.code).bind(&airport.name).bind(&airport.city).bind(&airport.country)
            .bind(&airport.time_zone).bind(airport.latitude).bind(airport.longitude).bind(airport.active)
            .execute(c).await.map(|_| ()))?;
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds the reference airports that are not there yet (first start).
    pub async fn seed_airports(&self, airports: &[Airport]) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        for a in airports {
            dispatch!(&mut tx, c => sqlx::query(
                "INSERT INTO airports (code, name, city, country, time_zone, latitude, longitude, active)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE) ON CONFLICT (code) DO NOTHING")
                .bind(a.code).bind(a.name).bind(a.city).bind(a.country).bind(a.time_zone)
                .bind(a.latitude).bind(a.longitude)
                .execute(c).await.map(|_| ()))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Inserts an airline; false when the code is taken.
    pub async fn insert_airline(&self, airline: &Airline, event: &Event) -> Result<bool, Error> {
        let mut tx = self.begin().await?;
        let n = dispatch!(&mut tx, c => sqlx::query(
            "INSERT INTO airlines (code, name, organization_id) VALUES ($1, $2, $3) ON CONFLICT (code) DO NOTHING")
            .bind(&airline.code).bind(&airline.name).bind(airline.organization_id)
            .execute(c).await.map(|d| d.rows_affected()))?;
        if n == 1 {
            tx.append_event(event).await?;
            tx.commit().await?;
        }
        Ok(n == 1)
    }

    /// Saves a schedule and its departures (replacing the departures of an existing schedule).
    pub async fn save_schedule(
        &self,
        schedule: &Schedule,
        departures: &[Departure],
        event: &Event,
    ) -> Result<(), Error> {
        let cabins = serde_json::to_string(&schedule.cabins).map_err(|_| corrupt("cabins"))?;
        let mut tx = self.begin().await?;
        dispatch!(&mut tx, c => {
            sqlx::query(
                "INSERT INTO schedules (id, airline, flight_number, origin, destination, departure_time,
                     duration_minutes, days, effective_from, effective_to, currency, cabins, active)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, TRUE)
                 ON CONFLICT (id) DO UPDATE SET departure_time = $6, duration_minutes = $7, days = $8,
                     effective_from = $9, effective_to = $10, cabins = $12, active = TRUE")
                .bind(schedule.id).bind(&schedule.airline).bind(&schedule.flight_number).bind(&schedule.origin)
                .bind(&schedule.destination).bind(format_time(schedule.departure_time))
                .bind(schedule.duration_minutes as i32).bind(days_text(&schedule.days))
                .bind(schedule.effective_from.to_string()).bind(schedule.effective_to.to_string())
                .bind(&schedule.currency).bind(&cabins)
                .execute(&mut *c).await?;
            sqlx::query("DELETE FROM departures WHERE schedule_id = $1").bind(schedule.id).execute(&mut *c).await?;
            for d in departures {
                sqlx::query(
                    "INSERT INTO departures (id, schedule_id, flight_number, airline, origin, destination, local_date,
                                             departs_at, arrives_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                    .bind(&d.id).bind(schedule.id).bind(&d.flight_number).bind(&d.airline).bind(&d.origin)
                    .bind(&d.destination).bind(d.local_date.to_string()).bind(Timestamp::from(d.departs_at))
                    .bind(Timestamp::from(d.arrives_at))
                    .execute(&mut *c).await?;
            }
            Ok::<(), sqlx::Error>(())
        })?;
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// True when another schedule already flies `flight_number` on one of the departures `ids`.
    pub async fn departure_taken(&self, schedule_id: Uuid, flight_number: &str, ids: &[String]) -> Result<bool, Error> {
        let taken: Vec<String> = dispatch!(&self.pool, c => sqlx::query_scalar(
            "SELECT id FROM departures WHERE flight_number = $1 AND schedule_id <> $2")
            .bind(flight_number).bind(schedule_id).fetch_all(c).await)?;
        Ok(ids.iter().any(|id| taken.contains(id)))
    }

    pub async fn deactivate_schedule(&self, id: Uuid, event: &Event) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        dispatch!(&mut tx, c => sqlx::query("UPDATE schedules SET active = FALSE WHERE id = $1")
            .bind(id).execute(c).await.map(|_| ()))?;
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Inserts many new schedules with their departures in one transaction (seeding).
    pub async fn save_schedules(&self, all: &[(Schedule, Vec<Departure>)], event: &Event) -> Result<(), Error> {
        let mut rows = Vec::with_capacity(all.len());
        for (schedule, _) in all {
            let cabins = serde_json::to_string(&schedule.cabins).map_err(|_| corrupt("cabins"))?;
            rows.push((schedule, cabins));
        }
        let departures: Vec<(Uuid, &Departure)> = all
            .iter()
            .flat_map(|(s, ds)| ds.iter().map(move |d| (s.id, d)))
            .collect();
        let mut tx = self.begin().await?;
        for chunk in rows.chunks(BULK_ROWS / 13) {
            dispatch!(&mut tx, c => {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO schedules (id, airline, flight_number, origin, destination, departure_time,
                         duration_minutes, days, effective_from, effective_to, currency, cabins, active) ");
                q.push_values(chunk, |mut b, (s, cabins)| {
                    b.push_bind(s.id).push_bind(&s.airline).push_bind(&s.flight_number).push_bind(&s.origin)
                        .push_bind(&s.destination).push_bind(format_time(s.departure_time))
                        .push_bind(s.duration_minutes as i32).push_bind(days_text(&s.days))
                        .push_bind(s.effective_from.to_string()).push_bind(s.effective_to.to_string())
                        .push_bind(&s.currency).push_bind(cabins).push_bind(true);
                });
                q.build().execute(&mut *c).await.map(|_| ())
            })?;
        }
        for chunk in departures.chunks(BULK_ROWS / 9) {
            dispatch!(&mut tx, c => {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO departures (id, schedule_id, flight_number, airline, origin, destination, local_date,
                                             departs_at, arrives_at) ");
                q.push_values(chunk, |mut b, (schedule_id, d)| {
                    b.push_bind(&d.id).push_bind(*schedule_id).push_bind(&d.flight_number).push_bind(&d.airline)
                        .push_bind(&d.origin).push_bind(&d.destination).push_bind(d.local_date.to_string())
                        .push_bind(Timestamp::from(d.departs_at)).push_bind(Timestamp::from(d.arrives_at));
                });
                q.build().execute(&mut *c).await.map(|_| ())
            })?;
        }
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Inserts many new hotels with their room types, rate plans and prices in one transaction (seeding).
    pub async fn save_hotels(&self, hotels: &[HotelEntry], event: &Event) -> Result<(), Error> {
        let mut amenities = Vec::with_capacity(hotels.len());
        for entry in hotels {
            amenities.push(serde_json::to_string(&entry.hotel.amenities).map_err(|_| corrupt("amenities"))?);
        }
        let rooms: Vec<&RoomType> = hotels.iter().flat_map(|h| &h.room_types).collect();
        let plans: Vec<&RatePlan> = hotels.iter().flat_map(|h| &h.rate_plans).collect();
        let prices: Vec<(Uuid, String, i64)> = plans
            .iter()
            .flat_map(|p| {
                p.prices
                    .iter()
                    .map(|(night, amount)| (p.id, night.to_string(), *amount))
            })
            .collect();
        let now = Timestamp::now();
        let mut tx = self.begin().await?;
        let rows: Vec<(&Hotel, &String)> = hotels.iter().map(|h| &h.hotel).zip(&amenities).collect();
        for chunk in rows.chunks(BULK_ROWS / 14) {
            dispatch!(&mut tx, c => {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO hotels (id, organization_id, name, description, address, city, country, latitude,
                         longitude, stars, amenities, time_zone, active, updated_at) ");
                q.push_values(chunk, |mut b, (h, amenities)| {
                    b.push_bind(h.id).push_bind(h.organization_id).push_bind(&h.name).push_bind(&h.description)
                        .push_bind(&h.address).push_bind(&h.city).push_bind(&h.country).push_bind(h.latitude)
                        .push_bind(h.longitude).push_bind(i32::from(h.stars)).push_bind(*amenities)
                        .push_bind(&h.time_zone).push_bind(h.active).push_bind(now);
                });
                q.build().execute(&mut *c).await.map(|_| ())
            })?;
        }
        for chunk in rooms.chunks(BULK_ROWS / 7) {
            dispatch!(&mut tx, c => {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO room_types (id, hotel_id, name, max_occupancy, beds, rooms, active) ");
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(r.id).push_bind(r.hotel_id).push_bind(&r.name).push_bind(i32::from(r.max_occupancy))
                        .push_bind(&r.beds).push_bind(r.rooms).push_bind(r.active);
                });
                q.build().execute(&mut *c).await.map(|_| ())
            })?;
        }
        for chunk in plans.chunks(BULK_ROWS / 9) {
            dispatch!(&mut tx, c => {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO rate_plans (id, hotel_id, room_type_id, name, meal_plan, refundable,
                         free_cancellation_hours, currency, active) ");
                q.push_values(chunk, |mut b, p| {
                    b.push_bind(p.id).push_bind(p.hotel_id).push_bind(p.room_type_id).push_bind(&p.name)
                        .push_bind(p.meal_plan.as_str()).push_bind(p.refundable)
                        .push_bind(p.free_cancellation_hours.map(|h| h as i32)).push_bind(&p.currency)
                        .push_bind(p.active);
                });
                q.build().execute(&mut *c).await.map(|_| ())
            })?;
        }
        for chunk in prices.chunks(BULK_ROWS / 3) {
            dispatch!(&mut tx, c => {
                let mut q = sqlx::QueryBuilder::new("INSERT INTO rate_prices (rate_plan_id, night, amount_minor) ");
                q.push_values(chunk, |mut b, (plan, night, amount)| {
                    b.push_bind(*plan).push_bind(night).push_bind(*amount);
                });
                q.build().execute(&mut *c).await.map(|_| ())
            })?;
        }
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets an exchange rate and removes the opposite pair's (`quote`/`base`) in the same transaction, so a pair of
    /// currencies has one rate whichever way it was set. `event` is made from the opposite pair's rate, if there
    /// was one, which is returned.
    pub async fn set_fx_rate(
        &self,
        row: &FxRateRow,
        event: impl FnOnce(Option<&str>) -> Result<Event, Error>,
    ) -> Result<Option<String>, Error> {
        let mut tx = self.begin().await?;
        let replaced: Option<String> = dispatch!(&mut tx, c => {
            let replaced = sqlx::query_scalar("DELETE FROM fx_rates WHERE base = $1 AND quote = $2 RETURNING rate")
                .bind(&row.quote).bind(&row.base)
                .fetch_optional(&mut *c).await?;
            sqlx::query(
                "INSERT INTO fx_rates (base, quote, rate, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (base, quote) DO UPDATE SET rate = $3, updated_at = $4, updated_by = $5")
                .bind(&row.base).bind(&row.quote).bind(&row.rate).bind(row.updated_at).bind(row.updated_by)
                .execute(&mut *c).await?;
            Ok::<_, sqlx::Error>(replaced)
        })?;
        tx.append_event(&event(replaced.as_deref())?).await?;
        tx.commit().await?;
        Ok(replaced)
    }

    /// Deletes the exchange rate from `base` to `quote` with the event `event` makes of the rate it had, which is
    /// returned; `None` (and nothing written) when that pair has no rate.
    pub async fn delete_fx_rate(
        &self,
        base: &str,
        quote: &str,
        event: impl FnOnce(&str) -> Result<Event, Error>,
    ) -> Result<Option<String>, Error> {
        let mut tx = self.begin().await?;
        let deleted: Option<String> = dispatch!(&mut tx, c => sqlx::query_scalar(
            "DELETE FROM fx_rates WHERE base = $1 AND quote = $2 RETURNING rate")
            .bind(base).bind(quote).fetch_optional(c).await)?;
        let Some(rate) = deleted else {
            return Ok(None);
        };
        tx.append_event(&event(&rate)?).await?;
        tx.commit().await?;
        Ok(Some(rate))
    }
}

pub(crate) fn format_time(t: time::Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// A local time as `HH:MM`, the one way schedules write it, in the database and on the wire.
pub(crate) fn parse_time(s: &str) -> Option<time::Time> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    time::Time::from_hms(h.parse().ok()?, m.parse().ok()?, 0).ok()
}

fn hotel(row: HotelRow) -> Result<Hotel, Error> {
    Ok(Hotel {
        id: row.id,
        organization_id: row.organization_id,
        name: row.name,
        description: row.description,
        address: row.address,
        city: row.city,
        country: row.country,
        latitude: row.latitude,
        longitude: row.longitude,
        stars: u8::try_from(row.stars).map_err(|_| corrupt("hotels.stars"))?,
        amenities: serde_json::from_str(&row.amenities).map_err(|_| corrupt("hotels.amenities"))?,
        time_zone: row.time_zone,
        active: row.active,
    })
}

fn room_type(row: RoomTypeRow) -> RoomType {
    RoomType {
        id: row.id,
        hotel_id: row.hotel_id,
        name: row.name,
        max_occupancy: u8::try_from(row.max_occupancy).unwrap_or(u8::MAX),
        beds: row.beds,
        rooms: row.rooms,
        active: row.active,
    }
}

fn rate_plan(row: RatePlanRow, prices: BTreeMap<Date, i64>) -> Result<RatePlan, Error> {
    Ok(RatePlan {
        id: row.id,
        hotel_id: row.hotel_id,
        room_type_id: row.room_type_id,
        name: row.name,
        meal_plan: MealPlan::parse(&row.meal_plan).ok_or_else(|| corrupt("rate_plans.meal_plan"))?,
        refundable: row.refundable,
        free_cancellation_hours: row.free_cancellation_hours.and_then(|h| u32::try_from(h).ok()),
        currency: row.currency,
        prices,
        active: row.active,
    })
}

fn schedule(row: ScheduleRow) -> Result<Schedule, Error> {
    Ok(Schedule {
        id: row.id,
        airline: row.airline,
        flight_number: row.flight_number,
        origin: row.origin,
        destination: row.destination,
        departure_time: parse_time(&row.departure_time).ok_or_else(|| corrupt("schedules.departure_time"))?,
        duration_minutes: i64::from(row.duration_minutes),
        days: parse_days(&row.days).ok_or_else(|| corrupt("schedules.days"))?,
        effective_from: parse_date(&row.effective_from).ok_or_else(|| corrupt("schedules.effective_from"))?,
        effective_to: parse_date(&row.effective_to).ok_or_else(|| corrupt("schedules.effective_to"))?,
        currency: row.currency,
        cabins: serde_json::from_str::<Vec<CabinPlan>>(&row.cabins).map_err(|_| corrupt("schedules.cabins"))?,
    })
}

fn departure(row: DepartureRow) -> Result<Departure, Error> {
    Ok(Departure {
        id: row.id,
        flight_number: row.flight_number,
        airline: row.airline,
        origin: row.origin,
        destination: row.destination,
        local_date: parse_date(&row.local_date).ok_or_else(|| corrupt("departures.local_date"))?,
        departs_at: OffsetDateTime::from(row.departs_at),
        arrives_at: OffsetDateTime::from(row.arrives_at),
    })
}

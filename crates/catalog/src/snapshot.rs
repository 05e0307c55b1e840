//! The catalog held in memory for search: loaded whole at start, changed in place by this process's writes. Search
//! reads a consistent `Arc` of it without touching the database.

use std::collections::HashMap;
use std::sync::Arc;

use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::flight::{Departure, Schedule};
use crate::hotel::{Hotel, RatePlan, RoomType};
use crate::money::{Currency, Rate};
use crate::store::{Airline, AirportRow, Everything};

/// A hotel with its room types and rate plans.
#[derive(Debug, Clone)]
pub struct HotelEntry {
    pub hotel: Hotel,
    pub room_types: Vec<RoomType>,
    pub rate_plans: Vec<RatePlan>,
}

impl HotelEntry {
    pub fn room_type(&self, id: Uuid) -> Result<&RoomType, crate::Error> {
        self.room_types
            .iter()
            .find(|r| r.id == id)
            .ok_or(crate::Error::NotFound("room type"))
    }

    pub fn rate_plan(&self, id: Uuid) -> Result<&RatePlan, crate::Error> {
        self.rate_plans
            .iter()
            .find(|p| p.id == id)
            .ok_or(crate::Error::NotFound("rate plan"))
    }
}

/// An exchange rate as the catalog holds it, with when and by whom it was last set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FxEntry {
    /// Units of the quote currency per unit of the base currency.
    pub rate: Rate,
    pub updated_at: OffsetDateTime,
    /// The admin who set it; `None` when the platform did (seeding).
    pub updated_by: Option<Uuid>,
}

/// A departure with the schedule it came from (cabins, fares, currency).
#[derive(Debug, Clone)]
pub struct DepartureEntry {
    pub departure: Departure,
    pub schedule: Arc<Schedule>,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub hotels: HashMap<Uuid, Arc<HotelEntry>>,
    /// Active hotels by lower-case city name.
    pub hotels_by_city: HashMap<String, Vec<Uuid>>,
    pub airports: HashMap<String, AirportRow>,
    pub airlines: HashMap<String, Airline>,
    pub schedules: HashMap<Uuid, Arc<Schedule>>,
    pub departures: HashMap<String, Arc<DepartureEntry>>,
    /// Departures by origin airport and local departure date.
    pub by_origin_date: HashMap<(String, Date), Vec<Arc<DepartureEntry>>>,
    /// Departures by origin, destination and local departure date: the second legs of connections.
    pub by_route_date: HashMap<(String, String, Date), Vec<Arc<DepartureEntry>>>,
    /// Exchange rates (display and quotation currencies, fixed fees in another currency) by base and quote: at most
    /// one per pair of currencies, whichever way round it was set; the other way converts with its inverse.
    pub fx: HashMap<(Currency, Currency), FxEntry>,
}

impl Snapshot {
    pub fn build(everything: Everything) -> Snapshot {
        let mut snapshot = Snapshot::default();
        let mut rooms: HashMap<Uuid, Vec<RoomType>> = HashMap::new();
        for room in everything.room_types {
            rooms.entry(room.hotel_id).or_default().push(room);
        }
        let mut plans: HashMap<Uuid, Vec<RatePlan>> = HashMap::new();
        for plan in everything.rate_plans {
            plans.entry(plan.hotel_id).or_default().push(plan);
        }
        for hotel in everything.hotels {
            let entry = HotelEntry {
                room_types: rooms.remove(&hotel.id).unwrap_or_default(),
                rate_plans: plans.remove(&hotel.id).unwrap_or_default(),
                hotel,
            };
            snapshot.put_hotel(entry);
        }
        for airport in everything.airports {
            snapshot.airports.insert(airport.code.clone(), airport);
        }
        for airline in everything.airlines {
            snapshot.airlines.insert(airline.code.clone(), airline);
        }
        let mut departures: HashMap<Uuid, Vec<Departure>> = HashMap::new();
        for (schedule_id, departure) in everything.departures {
            departures.entry(schedule_id).or_default().push(departure);
        }
        for schedule in everything.schedules {
            let own = departures.remove(&schedule.id).unwrap_or_default();
            snapshot.put_schedule(schedule, own);
        }
        for row in everything.fx_rates {
            if let (Ok(base), Ok(quote), Ok(rate)) = (
                Currency::parse(&row.base),
                Currency::parse(&row.quote),
                Rate::parse(&row.rate),
            ) {
                let entry = FxEntry {
                    rate,
                    updated_at: row.updated_at.into(),
                    updated_by: row.updated_by,
                };
                snapshot.fx.insert((base, quote), entry);
            }
        }
        snapshot
    }

    /// Adds or replaces a hotel and everything under it.
    pub fn put_hotel(&mut self, entry: HotelEntry) {
        let id = entry.hotel.id;
        if let Some(old) = self.hotels.get(&id) {
            let city = old.hotel.city.to_lowercase();
            if let Some(ids) = self.hotels_by_city.get_mut(&city) {
                ids.retain(|h| *h != id);
            }
        }
        if entry.hotel.active {
            self.hotels_by_city
                .entry(entry.hotel.city.to_lowercase())
                .or_default()
                .push(id);
        }
        self.hotels.insert(id, Arc::new(entry));
    }

    /// Adds or replaces a schedule and its departures.
    pub fn put_schedule(&mut self, schedule: Schedule, departures: Vec<Departure>) {
        let id = schedule.id;
        self.remove_schedule(id);
        let schedule = Arc::new(schedule);
        for departure in departures {
            let entry = Arc::new(DepartureEntry {
                departure,
                schedule: schedule.clone(),
            });
            self.departures.insert(entry.departure.id.clone(), entry.clone());
            let d = &entry.departure;
            self.by_route_date
                .entry((d.origin.clone(), d.destination.clone(), d.local_date))
                .or_default()
                .push(entry.clone());
            self.by_origin_date
                .entry((d.origin.clone(), d.local_date))
                .or_default()
                .push(entry);
        }
        self.schedules.insert(id, schedule);
    }

    /// The time zone of an airport this catalog knows.
    pub fn zone(&self, code: &str) -> Option<&'static time_tz::Tz> {
        self.airports
            .get(code)
            .filter(|a| a.active)
            .and_then(|a| crate::geo::time_zone(&a.time_zone))
    }

    /// A UTC instant as wall-clock time at an airport (UTC if the airport is unknown).
    pub fn local(&self, at: time::OffsetDateTime, airport: &str) -> time::OffsetDateTime {
        use time_tz::OffsetDateTimeExt;
        match self.zone(airport) {
            Some(zone) => at.to_timezone(zone),
            None => at,
        }
    }

    /// Sets the rate from `base` to `quote` and drops the opposite pair's, as the store does: the rate set last
    /// serves both ways.
    pub fn set_fx(&mut self, base: Currency, quote: Currency, entry: FxEntry) {
        self.fx.remove(&(quote, base));
        self.fx.insert((base, quote), entry);
    }

    pub fn put_airport(&mut self, airport: AirportRow) {
        self.airports.insert(airport.code.clone(), airport);
    }

    pub fn departures_of(&self, schedule_id: Uuid) -> usize {
        self.departures
            .values()
            .filter(|d| d.schedule.id == schedule_id)
            .count()
    }

    /// Takes a schedule and its departures out of search.
    pub fn remove_schedule(&mut self, id: Uuid) {
        if self.schedules.remove(&id).is_some() {
            self.departures.retain(|_, d| d.schedule.id != id);
            for list in self.by_origin_date.values_mut() {
                list.retain(|d| d.schedule.id != id);
            }
            for list in self.by_route_date.values_mut() {
                list.retain(|d| d.schedule.id != id);
            }
        }
    }
}

//! Flights: airlines, schedules, and the departures materialized from them.
//!
//! A schedule says "PX123 leaves LHR at 08:30 local on Mondays and Fridays from March to May, takes 7 h 55 min".
//! Materializing it turns each matching local date into a [`Departure`] with exact UTC times, computed with the
//! IANA database of each airport's zone, so a flight across a daylight-saving change leaves at 08:30 local on both
//! sides of it. Inventory gets one bucket per departure per cabin, and one per fare class carrying its booking limit.

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, Weekday};
use time_tz::{OffsetDateTimeExt, OffsetResult, PrimitiveDateTimeExt};
use utoipa::ToSchema;

use crate::geo;

/// Cabins, from the back of the aircraft to the front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cabin {
    Economy,
    PremiumEconomy,
    Business,
    First,
}

impl Cabin {
    pub fn as_str(self) -> &'static str {
        match self {
            Cabin::Economy => "economy",
            Cabin::PremiumEconomy => "premium_economy",
            Cabin::Business => "business",
            Cabin::First => "first",
        }
    }
}

/// A fare class of a cabin: what a seat sold in it costs and allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FareClass {
    /// One letter, unique across the schedule's cabins (`Y`, `M`, `J`).
    #[schema(pattern = "^[A-Z]$")]
    pub code: String,
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub price_minor: i64,
    pub refundable: bool,
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub change_fee_minor: i64,
    /// Checked bags included.
    pub baggage_pieces: u8,
    /// Seats that may be sold in this class per departure: at most the cabin's seats plus its overbooking limit.
    #[schema(minimum = 0)]
    pub booking_limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CabinPlan {
    pub cabin: Cabin,
    #[schema(minimum = 1, maximum = 1_000)]
    pub seats: i64,
    #[schema(minimum = 0, maximum = 100)]
    pub overbooking_limit: i64,
    /// 1 to 26.
    #[schema(min_items = 1, max_items = 26)]
    pub fares: Vec<FareClass>,
}

/// A repeating flight.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub id: uuid::Uuid,
    pub airline: String,
    /// Airline code and number, `PX123`.
    pub flight_number: String,
    pub origin: String,
    pub destination: String,
    /// Local time at the origin.
    pub departure_time: Time,
    pub duration_minutes: i64,
    /// Days the flight operates, Monday first.
    pub days: [bool; 7],
    /// First and last local date at the origin.
    pub effective_from: Date,
    pub effective_to: Date,
    pub currency: String,
    pub cabins: Vec<CabinPlan>,
}

/// One flight on one date.
#[derive(Debug, Clone, PartialEq)]
pub struct Departure {
    /// `PX123-2026-12-24` (flight number and local departure date).
    pub id: String,
    pub flight_number: String,
    pub airline: String,
    pub origin: String,
    pub destination: String,
    pub local_date: Date,
    pub departs_at: OffsetDateTime,
    pub arrives_at: OffsetDateTime,
}

impl Departure {
    /// The inventory bucket of a cabin on this departure.
    pub fn seat_item(&self, cabin: Cabin) -> String {
        seat_item(&self.id, cabin)
    }

    /// The inventory bucket of a fare class on this departure.
    pub fn fare_item(&self, code: &str) -> String {
        fare_item(&self.id, code)
    }

    pub fn departs_local(&self) -> OffsetDateTime {
        local(self.departs_at, &self.origin)
    }

    pub fn arrives_local(&self) -> OffsetDateTime {
        local(self.arrives_at, &self.destination)
    }
}

pub fn seat_item(departure_id: &str, cabin: Cabin) -> String {
    format!("seat:{departure_id}:{}", cabin.as_str())
}

pub fn fare_item(departure_id: &str, code: &str) -> String {
    format!("fare:{departure_id}:{code}")
}

/// A UTC instant as wall-clock time at an airport (UTC if the airport is unknown).
pub fn local(at: OffsetDateTime, airport: &str) -> OffsetDateTime {
    match geo::airport(airport).and_then(|a| geo::time_zone(a.time_zone)) {
        Some(zone) => at.to_timezone(zone),
        None => at,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("unknown airport {0}")]
    UnknownAirport(String),
    #[error("{0}")]
    Invalid(&'static str),
}

/// Limits on a schedule.
pub const MAX_SCHEDULE_DAYS: i64 = 400;
pub const MAX_DURATION_MINUTES: i64 = 24 * 60;

impl Schedule {
    /// Checks the schedule's shape: known distinct airports, a sane duration and range, cabins with seats and
    /// unique fare codes whose limits fit the cabin.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        self.validate_in(&reference_zone)
    }

    /// [`Schedule::validate`] with airports known to `zones` (airport code to its time zone).
    pub fn validate_in(&self, zones: &Zones<'_>) -> Result<(), ScheduleError> {
        for code in [&self.origin, &self.destination] {
            if zones(code).is_none() {
                return Err(ScheduleError::UnknownAirport(code.clone()));
            }
        }
        let invalid = |m| Err(ScheduleError::Invalid(m));
        if self.origin == self.destination {
            return invalid("origin and destination must differ");
        }
        if !(20..=MAX_DURATION_MINUTES).contains(&self.duration_minutes) {
            return invalid("duration_minutes must be between 20 and 1440");
        }
        if self.effective_to < self.effective_from
            || (self.effective_to - self.effective_from).whole_days() > MAX_SCHEDULE_DAYS
        {
            return invalid("effective_to must be on or after effective_from, at most 400 days later");
        }
        if !self.days.iter().any(|d| *d) {
            return invalid("the flight must operate on at least one day of the week");
        }
        if self.cabins.is_empty() || self.cabins.len() > 4 {
            return invalid("one to four cabins");
        }
        let mut codes = Vec::new();
        for (i, cabin) in self.cabins.iter().enumerate() {
            if self.cabins[..i].iter().any(|c| c.cabin == cabin.cabin) {
                return invalid("each cabin once");
            }
            if !(1..=1_000).contains(&cabin.seats) || !(0..=100).contains(&cabin.overbooking_limit) {
                return invalid("cabins have 1 to 1000 seats and an overbooking limit of 0 to 100");
            }
            if cabin.fares.is_empty() || cabin.fares.len() > 26 {
                return invalid("each cabin has 1 to 26 fare classes");
            }
            for fare in &cabin.fares {
                let letter = fare.code.len() == 1 && fare.code.bytes().all(|b| b.is_ascii_uppercase());
                if !letter || codes.contains(&fare.code) {
                    return invalid("fare codes are single uppercase letters, unique in the schedule");
                }
                codes.push(fare.code.clone());
                if !(1..=1_000_000_000).contains(&fare.price_minor)
                    || !(0..=1_000_000_000).contains(&fare.change_fee_minor)
                {
                    return invalid("fare prices and change fees must be positive and bounded");
                }
                if !(0..=cabin.seats + cabin.overbooking_limit).contains(&fare.booking_limit) {
                    return invalid("a fare's booking limit is between 0 and its cabin's seats plus overbooking");
                }
            }
        }
        Ok(())
    }

    /// Every departure of the schedule, in date order.
    pub fn departures(&self) -> Result<Vec<Departure>, ScheduleError> {
        self.departures_in(&reference_zone)
    }

    /// [`Schedule::departures`] with airports known to `zones`.
    pub fn departures_in(&self, zones: &Zones<'_>) -> Result<Vec<Departure>, ScheduleError> {
        self.validate_in(zones)?;
        let origin_zone = zones(&self.origin).ok_or_else(|| ScheduleError::UnknownAirport(self.origin.clone()))?;
        let mut departures = Vec::new();
        let mut date = self.effective_from;
        while date <= self.effective_to {
            if self.days[weekday_index(date.weekday())] {
                let departs_at = to_utc(PrimitiveDateTime::new(date, self.departure_time), origin_zone);
                departures.push(Departure {
                    id: format!("{}-{date}", self.flight_number),
                    flight_number: self.flight_number.clone(),
                    airline: self.airline.clone(),
                    origin: self.origin.clone(),
                    destination: self.destination.clone(),
                    local_date: date,
                    departs_at,
                    arrives_at: departs_at + Duration::minutes(self.duration_minutes),
                });
            }
            let Some(next) = date.next_day() else { break };
            date = next;
        }
        Ok(departures)
    }
}

/// Resolves an airport code to its time zone; `None` for an unknown airport.
pub type Zones<'a> = dyn Fn(&str) -> Option<&'static time_tz::Tz> + 'a;

/// The time zone of a reference airport ([`geo::airports`]).
pub fn reference_zone(airport: &str) -> Option<&'static time_tz::Tz> {
    geo::airport(airport).and_then(|a| geo::time_zone(a.time_zone))
}

fn weekday_index(day: Weekday) -> usize {
    usize::from(day.number_days_from_monday())
}

/// Local wall-clock time to UTC. In the autumn hour that happens twice the flight leaves the first time; a time
/// that does not exist (the spring gap) moves forward by the gap, as clocks do.
pub fn to_utc(local: PrimitiveDateTime, zone: &time_tz::Tz) -> OffsetDateTime {
    match local.assume_timezone(zone) {
        OffsetResult::Some(at) => at.to_offset(time::UtcOffset::UTC),
        OffsetResult::Ambiguous(first, _) => first.to_offset(time::UtcOffset::UTC),
        OffsetResult::None => {
            // Take the offset in force just before the gap and read the time with it: 02:30 in a gap from 02:00
            // to 03:00 becomes 03:30 local.
            let before = (local - Duration::hours(3)).assume_timezone(zone);
            let offset = match before {
                OffsetResult::Some(at) | OffsetResult::Ambiguous(at, _) => at.offset(),
                OffsetResult::None => time::UtcOffset::UTC,
            };
            local.assume_offset(offset).to_offset(time::UtcOffset::UTC)
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime, time};

    use super::*;

    fn schedule(origin: &str, destination: &str, at: Time, minutes: i64, from: Date, to: Date) -> Schedule {
        Schedule {
            id: uuid::Uuid::nil(),
            airline: "PX".into(),
            flight_number: "PX1".into(),
            origin: origin.into(),
            destination: destination.into(),
            departure_time: at,
            duration_minutes: minutes,
            days: [true; 7],
            effective_from: from,
            effective_to: to,
            currency: "EUR".into(),
            cabins: vec![CabinPlan {
                cabin: Cabin::Economy,
                seats: 150,
                overbooking_limit: 5,
                fares: vec![FareClass {
                    code: "Y".into(),
                    price_minor: 10_000,
                    refundable: true,
                    change_fee_minor: 0,
                    baggage_pieces: 1,
                    booking_limit: 150,
                }],
            }],
        }
    }

    #[test]
    fn local_departure_time_holds_across_a_daylight_saving_change() {
        // Europe moves clocks forward on 2026-03-29.
        let s = schedule(
            "LHR",
            "JFK",
            time!(08:30),
            475,
            date!(2026 - 03 - 28),
            date!(2026 - 03 - 30),
        );
        let utc: Vec<OffsetDateTime> = s.departures().unwrap().iter().map(|d| d.departs_at).collect();
        assert_eq!(
            utc,
            vec![
                datetime!(2026-03-28 08:30 UTC),
                datetime!(2026-03-29 07:30 UTC),
                datetime!(2026-03-30 07:30 UTC)
            ]
        );
        for d in s.departures().unwrap() {
            assert_eq!(d.departs_local().time(), time!(08:30));
        }
    }

    #[test]
    fn an_overnight_flight_arrives_the_next_local_day() {
        let s = schedule(
            "JFK",
            "LHR",
            time!(21:00),
            420,
            date!(2026 - 06 - 01),
            date!(2026 - 06 - 01),
        );
        let d = &s.departures().unwrap()[0];
        assert_eq!(d.departs_local().date(), date!(2026 - 06 - 01));
        assert_eq!(d.arrives_local().date(), date!(2026 - 06 - 02));
        assert_eq!(d.arrives_local().time(), time!(09:00));
    }

    #[test]
    fn gap_and_repeated_hour_are_resolved_like_clocks() {
        let ny = geo::time_zone("America/New_York").unwrap();
        // 02:30 does not exist on 2026-03-08 in New York: it is 03:30 EDT.
        assert_eq!(to_utc(datetime!(2026-03-08 02:30), ny), datetime!(2026-03-08 07:30 UTC));
        // 01:30 happens twice on 2026-11-01: the first time, EDT.
        assert_eq!(to_utc(datetime!(2026-11-01 01:30), ny), datetime!(2026-11-01 05:30 UTC));
    }

    #[test]
    fn operating_days_and_ids() {
        let mut s = schedule(
            "CDG",
            "FCO",
            time!(10:00),
            120,
            date!(2026 - 12 - 21),
            date!(2026 - 12 - 27),
        );
        s.days = [true, false, false, false, true, false, false];
        let ids: Vec<String> = s.departures().unwrap().into_iter().map(|d| d.id).collect();
        assert_eq!(ids, vec!["PX1-2026-12-21", "PX1-2026-12-25"]);
        assert_eq!(
            seat_item("PX1-2026-12-21", Cabin::Economy),
            "seat:PX1-2026-12-21:economy"
        );
        assert_eq!(fare_item("PX1-2026-12-21", "M"), "fare:PX1-2026-12-21:M");
    }

    #[test]
    fn invalid_schedules_are_refused() {
        let base = schedule(
            "CDG",
            "FCO",
            time!(10:00),
            120,
            date!(2026 - 12 - 21),
            date!(2026 - 12 - 27),
        );
        let mut same = base.clone();
        same.destination = "CDG".into();
        let mut unknown = base.clone();
        unknown.origin = "XXX".into();
        let mut backwards = base.clone();
        backwards.effective_to = date!(2026 - 12 - 01);
        let mut over_limit = base.clone();
        over_limit.cabins[0].fares[0].booking_limit = 1_000;
        for bad in [same, unknown, backwards, over_limit] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}

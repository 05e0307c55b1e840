//! Hotels: properties, their room types, and rate plans with a nightly price calendar.
//!
//! Inventory gets one bucket per room type per night (`room:<room type>:<date>`), sized to the number of rooms of
//! that type and adjustable per night (allotments, close-outs).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::Date;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Hotel {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub description: String,
    pub address: String,
    pub city: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub latitude: f64,
    pub longitude: f64,
    /// 1 to 5.
    pub stars: u8,
    pub amenities: Vec<String>,
    /// IANA zone, for check-in dates and cancellation deadlines.
    pub time_zone: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoomType {
    pub id: Uuid,
    pub hotel_id: Uuid,
    pub name: String,
    pub max_occupancy: u8,
    pub beds: String,
    /// Rooms of this type: each night's bucket starts with this capacity.
    pub rooms: i64,
    pub active: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MealPlan {
    RoomOnly,
    Breakfast,
    HalfBoard,
    FullBoard,
    AllInclusive,
}

impl MealPlan {
    pub fn as_str(self) -> &'static str {
        match self {
            MealPlan::RoomOnly => "room_only",
            MealPlan::Breakfast => "breakfast",
            MealPlan::HalfBoard => "half_board",
            MealPlan::FullBoard => "full_board",
            MealPlan::AllInclusive => "all_inclusive",
        }
    }

    pub fn parse(s: &str) -> Option<MealPlan> {
        [
            MealPlan::RoomOnly,
            MealPlan::Breakfast,
            MealPlan::HalfBoard,
            MealPlan::FullBoard,
            MealPlan::AllInclusive,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RatePlan {
    pub id: Uuid,
    pub hotel_id: Uuid,
    pub room_type_id: Uuid,
    pub name: String,
    pub meal_plan: MealPlan,
    pub refundable: bool,
    /// Free cancellation until this many hours before check-in (refundable plans).
    pub free_cancellation_hours: Option<u32>,
    /// ISO 4217 currency of every price of the plan.
    pub currency: String,
    /// Price of one room for one night, by date.
    pub prices: BTreeMap<Date, i64>,
    pub active: bool,
}

impl RatePlan {
    /// The nightly prices of a stay, or `None` if any night has no price (the plan is not sold then).
    pub fn nightly(&self, check_in: Date, nights: u32) -> Option<Vec<i64>> {
        // One walk of the map from check-in, rather than a search from the root for every night.
        let mut prices = Vec::with_capacity(nights as usize);
        let mut night = check_in;
        for (date, price) in self.prices.range(check_in..).take(nights as usize) {
            if *date != night {
                return None;
            }
            prices.push(*price);
            night = night.next_day()?;
        }
        (prices.len() == nights as usize).then_some(prices)
    }
}

/// The bucket of a room type on one night.
pub fn room_item(room_type_id: Uuid, night: Date) -> String {
    let mut item = String::with_capacity(48);
    write_room_item(&mut item, room_type_id, night);
    item
}

/// [`room_item`] into a buffer, for loops that look up many.
pub fn write_room_item(out: &mut String, room_type_id: Uuid, night: Date) {
    use std::fmt::Write;
    let _ = write!(out, "room:{}:{night}", room_type_id.simple());
}

/// The nights of a stay: check-in up to the night before check-out.
pub fn nights(check_in: Date, check_out: Date) -> Vec<Date> {
    let mut nights = Vec::new();
    let mut night = check_in;
    while night < check_out {
        nights.push(night);
        match night.next_day() {
            Some(next) => night = next,
            None => break,
        }
    }
    nights
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn nightly_prices_need_every_night() {
        let plan = RatePlan {
            id: Uuid::nil(),
            hotel_id: Uuid::nil(),
            room_type_id: Uuid::nil(),
            name: "Flexible".into(),
            meal_plan: MealPlan::Breakfast,
            refundable: true,
            free_cancellation_hours: Some(48),
            currency: "EUR".into(),
            prices: [
                (date!(2026 - 12 - 24), 100),
                (date!(2026 - 12 - 25), 150),
                (date!(2026 - 12 - 27), 90),
            ]
            .into_iter()
            .collect(),
            active: true,
        };
        assert_eq!(plan.nightly(date!(2026 - 12 - 24), 2), Some(vec![100, 150]));
        assert_eq!(plan.nightly(date!(2026 - 12 - 25), 2), None, "the 26th has no price");
        assert_eq!(plan.nightly(date!(2026 - 12 - 26), 1), None, "the 26th has no price");
        assert_eq!(plan.nightly(date!(2026 - 12 - 27), 1), Some(vec![90]));
        assert_eq!(plan.nightly(date!(2026 - 12 - 27), 2), None, "no price after the 27th");
        assert_eq!(plan.nightly(date!(2026 - 12 - 20), 3), None, "no price before the 24th");
        assert_eq!(nights(date!(2026 - 12 - 30), date!(2027 - 01 - 02)).len(), 3);
        assert!(nights(date!(2026 - 12 - 30), date!(2026 - 12 - 30)).is_empty());
        assert_eq!(
            room_item(Uuid::nil(), date!(2026 - 12 - 24)),
            "room:00000000000000000000000000000000:2026-12-24"
        );
    }
}

//! The analytics consumer: reporting projections kept up to date from events.
//!
//! Each event is read into an [`Effect`] by a pure function ([`effect`]), then added to the projections in the
//! consumer's transaction. Every effect is an addition (a count, a sum) or a keyed upsert, so the projections do
//! not depend on the order of events across subjects: a hold confirmed before its bucket's capacity is known is
//! counted as sold, and a room-night sold before its room type's hotel is known joins that hotel when it is.
//! Redeliveries are the consumer's inbox's business: each event is applied once.
//!
//! Definitions (the day is always the UTC date of the event's `time`):
//!
//! - bookings: `booking.confirmed.v1` per day and currency, count and `total_minor`;
//! - cancellations: `booking.cancelled.v1` per day and currency, count and the booking's `refunded_minor`;
//!   refunds: `payment.refunded.v1` per day and currency, count and amount (the growth of the payment's
//!   `refunded_minor`, exact because a payment's events arrive in order);
//! - conversion: searches from `catalog.searches_counted.v1` (on the day its window starts), bookings created
//!   (`booking.created.v1`) and confirmed per day;
//! - load factor: per departure, units sold over capacity of its `seat:{departure}:{cabin}` buckets;
//! - occupancy: per hotel and night, the same over its room types' `room:{room_type}:{night}` buckets.
//!
//! Units sold: `inventory.hold_confirmed.v1` adds each line's quantity, `inventory.hold_released.v1` whose `from`
//! is `confirmed` takes it back (a release or expiry of a hold that was only held never sold anything). Capacity:
//! the latest by event time of `inventory.item_updated.v1` and `inventory.items_created.v1` (when it carries
//! capacities).

use async_trait::async_trait;
use phoenix_db::{Timestamp, Tx};
use phoenix_events::{CloudEvent, Handler, HandlerError};
use serde_json::Value;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::store;

/// The consumer's durable name.
pub const NAME: &str = "analytics";

pub const DOMAINS: &[&str] = &["booking", "payment", "inventory", "catalog"];

/// The event types the projections read; others are acknowledged without effect.
pub const EVENT_TYPES: &[&str] = &[
    "booking.created.v1",
    "booking.confirmed.v1",
    "booking.cancelled.v1",
    "payment.refunded.v1",
    "catalog.searches_counted.v1",
    "catalog.room_type_created.v1",
    "catalog.room_type_updated.v1",
    "inventory.items_created.v1",
    "inventory.item_updated.v1",
    "inventory.hold_confirmed.v1",
    "inventory.hold_released.v1",
];

/// A bucket the projections follow: a cabin of a departure, or a room type on a night.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub item_id: String,
    pub kind: ItemKind,
    /// The departure id, or the room type id in simple form.
    pub unit: String,
    /// The departure's date (from its id, `PX10-2026-12-01`) or the night.
    pub day: Option<Date>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Seat,
    Room,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Seat => "seat",
            ItemKind::Room => "room",
        }
    }
}

impl Item {
    /// `seat:{departure_id}:{cabin}` or `room:{room_type_id}:{night}`; anything else (fare classes) is not followed.
    pub fn parse(item_id: &str) -> Option<Item> {
        if let Some(rest) = item_id.strip_prefix("seat:") {
            let (departure, cabin) = rest.rsplit_once(':')?;
            if departure.is_empty() || cabin.is_empty() {
                return None;
            }
            let day = departure
                .len()
                .checked_sub(10)
                .and_then(|at| departure.get(at..))
                .and_then(parse_day);
            return Some(Item {
                item_id: item_id.to_owned(),
                kind: ItemKind::Seat,
                unit: departure.to_owned(),
                day,
            });
        }
        let rest = item_id.strip_prefix("room:")?;
        let (room_type, night) = rest.split_once(':')?;
        let room_type = Uuid::try_parse(room_type).ok()?;
        Some(Item {
            item_id: item_id.to_owned(),
            kind: ItemKind::Room,
            unit: room_type.simple().to_string(),
            day: Some(parse_day(night)?),
        })
    }
}

/// `2026-12-01`.
pub fn parse_day(s: &str) -> Option<Date> {
    phoenix_api::date::parse_day(s)
}

/// `2026-12-01`: how days are stored (text sorts as dates do).
pub fn day_text(day: Date) -> String {
    let (year, month, d) = (day.year(), u8::from(day.month()), day.day());
    format!("{year:04}-{month:02}-{d:02}")
}

/// What one event does to the projections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    BookingCreated {
        day: Date,
    },
    BookingConfirmed {
        day: Date,
        currency: String,
        total_minor: i64,
    },
    BookingCancelled {
        day: Date,
        currency: String,
        refunded_minor: i64,
    },
    /// A payment's refunded total grew (to `refunded_minor`).
    PaymentRefunded {
        day: Date,
        currency: String,
        payment_id: String,
        refunded_minor: i64,
    },
    SearchesCounted {
        day: Date,
        hotel_searches: i64,
        flight_searches: i64,
    },
    RoomType {
        room_type_id: String,
        hotel_id: String,
    },
    /// Capacities as of `at`; `None` when the event names the bucket without its capacity.
    Capacity {
        at: Timestamp,
        items: Vec<(Item, Option<i64>)>,
    },
    /// Units sold (positive) or given back (negative).
    Sold {
        lines: Vec<(Item, i64)>,
    },
    Nothing,
}

/// Reads an event into its effect. An event of a followed type that lacks a field it needs is refused (it becomes
/// a dead letter rather than a silent hole in a report).
pub fn effect(event: &CloudEvent) -> Result<Effect, HandlerError> {
    let data = &event.data;
    let day = event.time.to_offset(time::UtcOffset::UTC).date();
    Ok(match event.event_type.as_str() {
        "booking.created.v1" => Effect::BookingCreated { day },
        "booking.confirmed.v1" => Effect::BookingConfirmed {
            day,
            currency: text(data, "currency")?,
            total_minor: number(data, "total_minor")?,
        },
        "booking.cancelled.v1" => Effect::BookingCancelled {
            day,
            currency: text(data, "currency")?,
            refunded_minor: number(data, "refunded_minor")?,
        },
        "payment.refunded.v1" => Effect::PaymentRefunded {
            day,
            currency: text(data, "currency")?,
            payment_id: data
                .get("payment_id")
                .and_then(Value::as_str)
                .unwrap_or(&event.subject)
                .to_owned(),
            refunded_minor: number(data, "refunded_minor")?,
        },
        "catalog.searches_counted.v1" => {
            let start = text(data, "window_start")?;
            let start = OffsetDateTime::parse(&start, &time::format_description::well_known::Rfc3339)
                .map_err(|e| HandlerError::rejected(format!("window_start: {e}")))?;
            Effect::SearchesCounted {
                day: start.to_offset(time::UtcOffset::UTC).date(),
                hotel_searches: number(data, "hotel_searches")?,
                flight_searches: number(data, "flight_searches")?,
            }
        }
        "catalog.room_type_created.v1" | "catalog.room_type_updated.v1" => {
            let id = |field| {
                Uuid::try_parse(&text(data, field)?).map_err(|e| HandlerError::rejected(format!("{field}: {e}")))
            };
            Effect::RoomType {
                room_type_id: id("room_type_id")?.simple().to_string(),
                hotel_id: id("hotel_id")?.to_string(),
            }
        }
        "inventory.item_updated.v1" => {
            let item_id = text(data, "item_id")?;
            let capacity = number(data, "capacity")?;
            Effect::Capacity {
                at: Timestamp::from_datetime(event.time),
                items: Item::parse(&item_id)
                    .map(|item| (item, Some(capacity)))
                    .into_iter()
                    .collect(),
            }
        }
        "inventory.items_created.v1" => Effect::Capacity {
            at: Timestamp::from_datetime(event.time),
            items: created_items(data)?,
        },
        "inventory.hold_confirmed.v1" => Effect::Sold { lines: lines(data, 1)? },
        "inventory.hold_released.v1" if data.get("from").and_then(Value::as_str) == Some("confirmed") => Effect::Sold {
            lines: lines(data, -1)?,
        },
        _ => Effect::Nothing,
    })
}

/// `items_created.v1` names its buckets in `item_ids`; if it also carries `items: [{item_id, capacity}]`, their
/// capacities are taken.
fn created_items(data: &Value) -> Result<Vec<(Item, Option<i64>)>, HandlerError> {
    let mut items = Vec::new();
    if let Some(listed) = data.get("items").and_then(Value::as_array) {
        for entry in listed {
            let item_id = text(entry, "item_id")?;
            let capacity = entry.get("capacity").and_then(Value::as_i64);
            items.extend(Item::parse(&item_id).map(|item| (item, capacity)));
        }
    }
    if let Some(ids) = data.get("item_ids").and_then(Value::as_array) {
        // A catalog change can create tens of thousands of buckets in one event: look them up, do not scan.
        let with_capacity: std::collections::HashSet<String> = items.iter().map(|(i, _)| i.item_id.clone()).collect();
        for id in ids {
            let id = id
                .as_str()
                .ok_or_else(|| HandlerError::rejected("item_ids: expected strings"))?;
            if !with_capacity.contains(id) {
                items.extend(Item::parse(id).map(|item| (item, None)));
            }
        }
    }
    Ok(items)
}

/// The followed lines of a hold, their quantities multiplied by `sign`.
fn lines(data: &Value, sign: i64) -> Result<Vec<(Item, i64)>, HandlerError> {
    let lines = data
        .get("lines")
        .and_then(Value::as_array)
        .ok_or_else(|| HandlerError::rejected("lines: missing"))?;
    let mut followed = Vec::new();
    for line in lines {
        let item_id = text(line, "item_id")?;
        let quantity = number(line, "quantity")?;
        if let Some(item) = Item::parse(&item_id) {
            followed.push((item, quantity * sign));
        }
    }
    Ok(followed)
}

fn text(data: &Value, field: &str) -> Result<String, HandlerError> {
    data.get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| HandlerError::rejected(format!("{field}: missing or not a string")))
}

/// A count or an amount: an integer from 0 to `i64::MAX`.
fn number(data: &Value, field: &str) -> Result<i64, HandlerError> {
    data.get(field)
        .and_then(Value::as_i64)
        .filter(|n| *n >= 0)
        .ok_or_else(|| HandlerError::rejected(format!("{field}: missing or not a non-negative integer")))
}

/// Keeps the projections, in the consumer's transaction.
pub struct AnalyticsHandler;

#[async_trait]
impl Handler for AnalyticsHandler {
    fn name(&self) -> &'static str {
        NAME
    }

    fn domains(&self) -> &'static [&'static str] {
        DOMAINS
    }

    fn wants(&self, event_type: &str) -> bool {
        EVENT_TYPES.contains(&event_type)
    }

    async fn apply(&self, tx: &mut Tx, event: &CloudEvent) -> Result<(), HandlerError> {
        self.apply_batch(tx, &[event]).await
    }

    /// Sums the batch's additions in memory and writes each touched row once.
    async fn apply_batch(&self, tx: &mut Tx, events: &[&CloudEvent]) -> Result<(), HandlerError> {
        let mut sums = store::Sums::default();
        for event in events {
            store::project(tx, &effect(event)?, &mut sums).await?;
        }
        sums.write(tx).await?;
        Ok(())
    }
}

/// An inclusive range of days, at most the service's `max_range_days` long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days {
    pub from: Date,
    pub to: Date,
}

/// Confirmed bookings of one day in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingsRow {
    pub day: String,
    pub currency: String,
    pub n_confirmed: i64,
    pub total_minor: i64,
}

/// Cancellations and refunds of one day in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancellationsRow {
    pub day: String,
    pub currency: String,
    pub n_cancelled: i64,
    pub cancelled_refunded_minor: i64,
    pub n_refunds: i64,
    pub refunds_minor: i64,
}

/// Searches and bookings of one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionRow {
    pub day: String,
    pub hotel_searches: i64,
    pub flight_searches: i64,
    pub n_created: i64,
    pub n_confirmed: i64,
}

/// Seats or room-nights of one departure, or of one hotel on one night.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadRow {
    /// The departure id, or the hotel id.
    pub key: String,
    /// The departure's date, or the night.
    pub day: Option<String>,
    /// Sum of the known capacities.
    pub capacity: i64,
    pub sold: i64,
    /// Buckets whose capacity has not been seen yet: their units sold are in `sold`, no capacity in `capacity`.
    pub n_unknown_capacity: i64,
}

impl LoadRow {
    /// Sold over capacity; `None` without capacity.
    pub fn ratio(&self) -> Option<f64> {
        (self.capacity > 0).then(|| self.sold as f64 / self.capacity as f64)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::{date, datetime};

    use super::*;

    fn event(event_type: &str, data: Value) -> CloudEvent {
        CloudEvent {
            specversion: "1.0".into(),
            id: Uuid::now_v7(),
            source: "phoenix.test".into(),
            event_type: event_type.into(),
            subject: "s-1".into(),
            time: datetime!(2026-12-01 23:30 -02:00),
            datacontenttype: "application/json".into(),
            data,
            correlationid: None,
            traceparent: None,
            sequence: 1,
        }
    }

    #[test]
    fn item_ids_are_read_into_departures_and_room_nights() {
        let room = Uuid::from_u128(7);
        let cases = [
            (
                "seat:PX10-2026-12-21:economy".to_owned(),
                Some((
                    ItemKind::Seat,
                    "PX10-2026-12-21".to_owned(),
                    Some(date!(2026 - 12 - 21)),
                )),
            ),
            (
                "seat:CHARTER:business".to_owned(),
                Some((ItemKind::Seat, "CHARTER".to_owned(), None)),
            ),
            (
                format!("room:{}:2026-12-24", room.simple()),
                Some((ItemKind::Room, room.simple().to_string(), Some(date!(2026 - 12 - 24)))),
            ),
            (
                format!("room:{room}:2026-12-24"),
                Some((ItemKind::Room, room.simple().to_string(), Some(date!(2026 - 12 - 24)))),
            ),
            ("room:nope:2026-12-24".to_owned(), None),
            ("fare:PX10-2026-12-21:Y".to_owned(), None),
            ("seat:".to_owned(), None),
        ];
        for (id, expected) in cases {
            let parsed = Item::parse(&id).map(|item| (item.kind, item.unit, item.day));
            assert_eq!(parsed, expected, "{id}");
        }
    }

    #[test]
    fn events_become_effects_on_the_utc_day() {
        let confirmed = effect(&event(
            "booking.confirmed.v1",
            json!({"currency": "EUR", "total_minor": 100}),
        ))
        .expect("effect");
        assert_eq!(
            confirmed,
            Effect::BookingConfirmed {
                day: date!(2026 - 12 - 02),
                currency: "EUR".into(),
                total_minor: 100
            }
        );
        let released_held = effect(&event(
            "inventory.hold_released.v1",
            json!({"from": "held", "lines": [{"item_id": "seat:A-2026-12-01:economy", "quantity": 2}]}),
        ))
        .expect("effect");
        assert_eq!(released_held, Effect::Nothing, "a hold that was only held sold nothing");
        let released_sold = effect(&event(
            "inventory.hold_released.v1",
            json!({"from": "confirmed", "lines": [{"item_id": "seat:A-2026-12-01:economy", "quantity": 2},
                                                 {"item_id": "fare:A-2026-12-01:Y", "quantity": 2}]}),
        ))
        .expect("effect");
        let Effect::Sold { lines } = released_sold else {
            panic!("expected units given back");
        };
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].1, -2);
        let searches = effect(&event(
            "catalog.searches_counted.v1",
            json!({"window_start": "2026-12-01T23:59:00+00:00", "window_end": "2026-12-02T00:04:00Z",
                   "hotel_searches": 3, "flight_searches": 4}),
        ))
        .expect("effect");
        assert_eq!(
            searches,
            Effect::SearchesCounted {
                day: date!(2026 - 12 - 01),
                hotel_searches: 3,
                flight_searches: 4
            }
        );
        for (event_type, data) in [
            ("booking.confirmed.v1", json!({"currency": "EUR"})),
            ("booking.confirmed.v1", json!({"currency": "EUR", "total_minor": -1})),
            ("inventory.hold_confirmed.v1", json!({})),
            ("catalog.searches_counted.v1", json!({"window_start": "yesterday"})),
        ] {
            assert!(effect(&event(event_type, data.clone())).is_err(), "{event_type} {data}");
        }
        assert_eq!(day_text(date!(0987 - 01 - 02)), "0987-01-02");
    }
}

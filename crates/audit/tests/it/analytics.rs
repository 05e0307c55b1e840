//! The projections of a small scripted scenario match numbers worked out by hand, delivered once, redelivered, and
//! with events of different services out of order.

use phoenix_audit::analytics::{BookingsRow, CancellationsRow, ConversionRow, Days, LoadRow};
use phoenix_db::Pool;
use serde_json::json;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

use crate::*;

phoenix_db::contract_suite!(
    phoenix_audit::migrations(),
    [
        the_scenario_adds_up_as_worked_out_by_hand,
        one_at_a_time_adds_up_the_same,
        three_at_a_time_add_up_the_same,
        a_catalog_change_naming_thousands_of_buckets_is_taken_whole,
    ]
);

const D: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);
const ROOM_TYPE: Uuid = Uuid::from_u128(0xA1);
const HOTEL: Uuid = Uuid::from_u128(0xB2);

fn booking(event_type: &str, id: &str, at: OffsetDateTime, total_minor: i64, refunded_minor: i64) -> CloudEvent {
    event_at(
        "phoenix.booking",
        event_type,
        id,
        at,
        json!({"booking_id": id, "customer_id": "c-1", "created_by": "c-1", "currency": "EUR",
               "total_minor": total_minor, "refunded_minor": refunded_minor, "contact_email": "ann@example.com"}),
    )
}

fn hold(event_type: &str, from: &str, lines: Value, at: OffsetDateTime) -> CloudEvent {
    event_at(
        "phoenix.inventory",
        event_type,
        &Uuid::now_v7().to_string(),
        at,
        json!({"hold_id": "h", "holder_id": "c-1", "from": from, "lines": lines}),
    )
}

fn capacity(item_id: &str, capacity: i64, at: OffsetDateTime) -> CloudEvent {
    event_at(
        "phoenix.inventory",
        "inventory.item_updated.v1",
        item_id,
        at,
        json!({"item_id": item_id, "capacity": capacity, "overbooking_limit": 0, "created": false}),
    )
}

/// Two bookings confirmed in EUR (100.00 and 250.00) of three created, the second cancelled the next day with a
/// refund of 200.00 (and a reconciliation event repeating that refund); 40 hotel and 60 flight searches; a
/// departure with two cabins (10 + 4 seats) of which 2 + 1 are sold and 1 given back; a room type (4 rooms) of
/// which 3 are sold on one night, before anyone knew its capacity or its hotel.
fn scenario() -> Vec<CloudEvent> {
    let d1 = D + Duration::days(1);
    let economy = "seat:PX10-2026-12-20:economy";
    let business = "seat:PX10-2026-12-20:business";
    let room = format!("room:{}:2026-12-24", ROOM_TYPE.simple());
    vec![
        // Sold before the capacity or the hotel is known.
        hold(
            "inventory.hold_confirmed.v1",
            "held",
            json!([{"item_id": economy, "quantity": 2}, {"item_id": "fare:PX10-2026-12-20:Y", "quantity": 2}]),
            D,
        ),
        hold(
            "inventory.hold_confirmed.v1",
            "held",
            json!([{"item_id": room, "quantity": 3}]),
            D,
        ),
        event_at(
            "phoenix.catalog",
            "catalog.searches_counted.v1",
            "searches",
            D,
            json!({"window_start": "2026-12-01T09:55:00Z", "window_end": "2026-12-01T10:00:00Z",
                   "hotel_searches": 40, "flight_searches": 60}),
        ),
        booking("booking.created.v1", "b-1", D, 10_000, 0),
        booking("booking.created.v1", "b-2", D, 25_000, 0),
        booking("booking.created.v1", "b-3", D, 5_000, 0),
        booking("booking.confirmed.v1", "b-1", D, 10_000, 0),
        booking("booking.confirmed.v1", "b-2", D, 25_000, 0),
        capacity(economy, 10, D + Duration::minutes(5)),
        // An older capacity delivered late does not replace the newer one.
        capacity(economy, 99, D - Duration::days(30)),
        event_at(
            "phoenix.inventory",
            "inventory.items_created.v1",
            business,
            D - Duration::days(30),
            json!({"item_ids": [business, "fare:PX10-2026-12-20:J"]}),
        ),
        capacity(business, 4, D),
        capacity(&room, 4, D),
        hold(
            "inventory.hold_confirmed.v1",
            "held",
            json!([{"item_id": business, "quantity": 1}]),
            D,
        ),
        // A held hold released gives nothing back; a confirmed one does.
        hold(
            "inventory.hold_released.v1",
            "held",
            json!([{"item_id": economy, "quantity": 3}]),
            D,
        ),
        hold(
            "inventory.hold_released.v1",
            "confirmed",
            json!([{"item_id": economy, "quantity": 1}]),
            d1,
        ),
        booking("booking.cancellation_requested.v1", "b-2", d1, 25_000, 0),
        booking("booking.cancelled.v1", "b-2", d1, 25_000, 20_000),
        event_at(
            "phoenix.payment",
            "payment.refunded.v1",
            "p-2",
            d1,
            json!({"payment_id": "p-2", "currency": "EUR", "captured_minor": 25_000, "refunded_minor": 20_000,
                   "operation": {"kind": "refund", "amount_minor": 20_000, "actor_id": "c-1"}}),
        ),
        event_at(
            "phoenix.payment",
            "payment.refunded.v1",
            "p-2",
            d1,
            json!({"payment_id": "p-2", "currency": "EUR", "captured_minor": 25_000, "refunded_minor": 20_000,
                   "operation": null, "reconciled": true}),
        ),
        // The room type's hotel arrives last.
        event_at(
            "phoenix.catalog",
            "catalog.room_type_created.v1",
            &HOTEL.to_string(),
            D,
            json!({"hotel_id": HOTEL, "room_type_id": ROOM_TYPE}),
        ),
    ]
}

async fn the_scenario_adds_up_as_worked_out_by_hand(pool: Pool) {
    scenario_adds_up(pool, usize::MAX).await;
}

/// The consumer sums a batch's additions before writing them: delivered one event at a time, or three at a time,
/// the numbers are the same.
async fn one_at_a_time_adds_up_the_same(pool: Pool) {
    scenario_adds_up(pool, 1).await;
}

async fn three_at_a_time_add_up_the_same(pool: Pool) {
    scenario_adds_up(pool, 3).await;
}

async fn scenario_adds_up(pool: Pool, batch: usize) {
    let world = world(pool);
    let events = scenario();
    for delivery in events.chunks(batch) {
        world.deliver(delivery).await;
    }
    // The bus redelivers part of it: nothing changes.
    world.deliver(&events[3..12]).await;

    let store = world.service.store();
    let days = Days {
        from: date!(2026 - 11 - 01),
        to: date!(2026 - 12 - 31),
    };
    assert_eq!(
        store.bookings(days, None).await.unwrap(),
        vec![BookingsRow {
            day: "2026-12-01".into(),
            currency: "EUR".into(),
            n_confirmed: 2,
            total_minor: 35_000
        }]
    );
    assert!(store.bookings(days, Some("USD")).await.unwrap().is_empty());
    assert_eq!(
        store.cancellations(days, Some("EUR")).await.unwrap(),
        vec![CancellationsRow {
            day: "2026-12-02".into(),
            currency: "EUR".into(),
            n_cancelled: 1,
            cancelled_refunded_minor: 20_000,
            n_refunds: 1,
            refunds_minor: 20_000
        }]
    );
    assert_eq!(
        store.conversion(days).await.unwrap(),
        vec![ConversionRow {
            day: "2026-12-01".into(),
            hotel_searches: 40,
            flight_searches: 60,
            n_created: 3,
            n_confirmed: 2
        }]
    );
    let load = store
        .load_factor(Some("PX10-2026-12-20"), None, None, 10)
        .await
        .unwrap();
    assert_eq!(
        load,
        vec![LoadRow {
            key: "PX10-2026-12-20".into(),
            day: Some("2026-12-20".into()),
            capacity: 14,
            sold: 2,
            n_unknown_capacity: 0
        }]
    );
    assert_eq!(load[0].ratio(), Some(2.0 / 14.0));
    let by_date = store.load_factor(None, Some(days), None, 10).await.unwrap();
    assert_eq!(by_date, load);
    let occupancy = store.occupancy(Some(HOTEL), days, None, 10).await.unwrap();
    assert_eq!(
        occupancy,
        vec![LoadRow {
            key: HOTEL.to_string(),
            day: Some("2026-12-24".into()),
            capacity: 4,
            sold: 3,
            n_unknown_capacity: 0
        }]
    );
    assert_eq!(occupancy[0].ratio(), Some(0.75));
    // Every event is in the audit log once, and the chain holds.
    let verification = world.service.verify().await.unwrap();
    assert!(
        matches!(verification, phoenix_audit::Verification::Intact { entries, .. } if entries == events.len() as u64),
        "{verification}"
    );
}

/// Seeding a catalog creates tens of thousands of buckets in one `items_created` event: every one is followed, with
/// its capacity where the event gives it (the statements are split, and nothing is dropped at the splits).
async fn a_catalog_change_naming_thousands_of_buckets_is_taken_whole(pool: Pool) {
    let world = world(pool);
    let night = |n: i64| (date!(2026 - 12 - 01) + Duration::days(n % 100)).to_string();
    let ids: Vec<String> = (0..3_000_i64)
        .map(|n| {
            format!(
                "room:{}:{}",
                Uuid::from_u128(0xC000 + (n / 100) as u128).simple(),
                night(n)
            )
        })
        .collect();
    let with_capacity: Vec<Value> = ids[..2_500]
        .iter()
        .enumerate()
        .map(|(n, id)| json!({"item_id": id, "capacity": n % 7 + 1}))
        .collect();
    let created = event_at(
        "phoenix.inventory",
        "inventory.items_created.v1",
        &ids[0],
        D,
        json!({"items": with_capacity, "item_ids": ids}),
    );
    world.deliver(&[created]).await;
    assert_eq!(world.count("inventory_items").await, 3_000);
    let capacities: (i64, i64) = phoenix_db::dispatch!(&world.pool, conn => {
        sqlx::query_as(
            "SELECT COUNT(capacity), CAST(COALESCE(SUM(capacity), 0) AS BIGINT) FROM inventory_items",
        )
        .fetch_one(conn)
        .await
    })
    .unwrap();
    let expected: i64 = (0..2_500).map(|n| n % 7 + 1).sum();
    assert_eq!(capacities, (2_500, expected));
}

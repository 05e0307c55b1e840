//! A booking follows refunds made on its payment outside a cancellation (`payment.refunded.v1`, consumer `booking`).

use phoenix_booking::orchestration::{Outcome, SagaKind};
use phoenix_booking::{RefundFollower, Status};
use phoenix_db::Pool;
use phoenix_events::{CloudEvent, Consumer, ConsumerOptions};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::*;

phoenix_db::contract_suite!(
    phoenix_booking::migrations(),
    [
        a_refund_on_the_bookings_payment_shows_on_the_booking,
        only_the_payment_the_saga_recorded_counts,
        a_cancellation_refunding_nothing_keeps_the_goodwill_refund,
    ]
);

fn consumer(pool: &Pool) -> Consumer {
    Consumer::new(
        pool.clone(),
        std::sync::Arc::new(RefundFollower),
        ConsumerOptions::default(),
    )
}

/// A payment event as payment writes it: the payment's running totals.
fn payment_event(event_type: &str, payment_id: Uuid, refunded_minor: i64, reference: Value) -> CloudEvent {
    CloudEvent {
        specversion: "1.0".into(),
        id: Uuid::now_v7(),
        source: "phoenix.payment".into(),
        event_type: event_type.into(),
        subject: payment_id.to_string(),
        time: time::OffsetDateTime::now_utc(),
        datacontenttype: "application/json".into(),
        data: json!({
            "payment_id": payment_id,
            "status": if refunded_minor > 0 { "partially_refunded" } else { "captured" },
            "refunded_minor": refunded_minor,
            "reference": reference,
        }),
        correlationid: None,
        traceparent: None,
        sequence: 1,
    }
}

/// A confirmed booking paid by a new payment; returns the booking's id, total and payment id.
async fn confirmed(world: &World, ann: &phoenix_api::Principal) -> (Uuid, i64, Uuid) {
    let booking = world
        .book(ann, vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], 1)
        .await;
    let payment_id = Uuid::now_v7();
    let outcome = Outcome::Confirmed {
        hold_id: Uuid::now_v7(),
        payment_id,
        captured_minor: booking.total_minor,
    };
    world.client.record_outcome(booking.id, &outcome).await.unwrap();
    (booking.id, booking.total_minor, payment_id)
}

async fn a_refund_on_the_bookings_payment_shows_on_the_booking(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let (id, total, payment_id) = confirmed(&world, &ann).await;
    let consumer = consumer(&pool);
    let first = payment_event("payment.refunded.v1", payment_id, 1_000, json!(id));
    let second = payment_event("payment.refunded.v1", payment_id, 2_500, json!(id));
    // The second refund's event arrives first, then the first's, then the second's again: the latest total stays.
    let applied = consumer.apply(std::slice::from_ref(&second)).await.unwrap();
    assert_eq!(applied.applied, 1);
    consumer.apply(&[first, second]).await.unwrap();
    let booking = world.booking.get(&ann, id).await.unwrap();
    assert_eq!((booking.status, booking.refunded_minor), (Status::Confirmed, 2_500));
    // Other payment events are not this consumer's business.
    let captured = payment_event("payment.captured.v1", payment_id, 0, json!(id));
    assert_eq!(consumer.apply(&[captured]).await.unwrap().ignored, 1);

    // A refund of more than the booking's total is not taken (payment never allows it; the row's rule would
    // refuse it and stall the batch): the booking keeps what it had, and the event does not become a dead letter.
    let beyond = payment_event("payment.refunded.v1", payment_id, total + 1, json!(id));
    consumer.apply(&[beyond]).await.unwrap();
    assert_eq!(world.booking.get(&ann, id).await.unwrap().refunded_minor, 2_500);
    assert!(consumer.dead_letters(true, 10).await.unwrap().is_empty());
}

/// A payment's `reference` is free text anyone paying may set: naming a booking there must not touch it. Only the
/// payment the saga recorded on the booking counts.
async fn only_the_payment_the_saga_recorded_counts(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let (id, _, _) = confirmed(&world, &ann).await;
    let stranger = payment_event("payment.refunded.v1", Uuid::now_v7(), 5_000, json!(id));
    let applied = consumer(&pool).apply(&[stranger]).await.unwrap();
    assert_eq!(applied.applied, 1, "handled, with no effect");
    assert_eq!(world.booking.get(&ann, id).await.unwrap().refunded_minor, 0);
}

/// A non-refundable stay (nothing back by its terms) that support had refunded 1,000 on goodwill: the saga refunds
/// nothing more and reports so, and the cancelled booking and its event still say 1,000 came back, not 0.
async fn a_cancellation_refunding_nothing_keeps_the_goodwill_refund(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let booking = world
        .book(&ann, vec![world.stay(world.hotel.saver, 10, 1, 1, 1)], 1)
        .await;
    let payment_id = Uuid::now_v7();
    let confirmed = Outcome::Confirmed {
        hold_id: Uuid::now_v7(),
        payment_id,
        captured_minor: booking.total_minor,
    };
    world.client.record_outcome(booking.id, &confirmed).await.unwrap();
    let goodwill = payment_event("payment.refunded.v1", payment_id, 1_000, json!(booking.id));
    consumer(&pool).apply(&[goodwill]).await.unwrap();

    let cancelling = world
        .booking
        .request_cancellation(&ann, booking.id, None, false)
        .await
        .unwrap();
    assert_eq!(cancelling.cancellation.as_ref().map(|c| c.refund_minor), Some(0));
    world
        .client
        .acknowledge(&[(booking.id, SagaKind::Cancellation)])
        .await
        .unwrap();
    let nothing_more = Outcome::Cancelled { refunded_minor: 0 };
    world.client.record_outcome(booking.id, &nothing_more).await.unwrap();
    let cancelled = world.booking.get(&ann, booking.id).await.unwrap();
    assert_eq!((cancelled.status, cancelled.refunded_minor), (Status::Cancelled, 1_000));
    let events = events_of(&pool, phoenix_booking::CANCELLED).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["refunded_minor"], 1_000, "{}", events[0]);
}

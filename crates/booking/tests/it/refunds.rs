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
        a_cancellation_after_a_goodwill_refund_records_what_it_returned,
        a_late_cancellation_after_a_goodwill_refund_keeps_its_fee,
        an_older_sagas_outcome_and_an_older_cancellation_still_read,
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

/// A cancelled booking's cancellation: what it refunded, what the policy allowed, the fee kept, and what had been
/// refunded before.
fn amounts(booking: &phoenix_booking::Booking) -> (i64, i64, i64, Option<i64>) {
    let c = booking.cancellation.as_ref().expect("a cancellation");
    (
        c.refund_minor,
        c.policy_refund_minor,
        c.fee_minor,
        c.refunded_before_minor,
    )
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
    let nothing_more = Outcome::Cancelled {
        refunded_minor: 0,
        refund_minor: Some(0),
    };
    world.client.record_outcome(booking.id, &nothing_more).await.unwrap();
    let cancelled = world.booking.get(&ann, booking.id).await.unwrap();
    assert_eq!((cancelled.status, cancelled.refunded_minor), (Status::Cancelled, 1_000));
    let cancellation = cancelled.cancellation.unwrap();
    assert_eq!(
        (cancellation.refund_minor, cancellation.refunded_before_minor),
        (0, Some(1_000))
    );
    let events = events_of(&pool, phoenix_booking::CANCELLED).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["refunded_minor"], 1_000, "{}", events[0]);
    assert_eq!(
        (&events[0]["refund_minor"], &events[0]["refunded_before_minor"]),
        (&json!(0), &json!(1_000))
    );
}

/// Cancels `id` (confirmed) as `actor` and plays the cancellation saga up to its report, which is the test's to make.
/// Returns what the policy refunds, as the saga is asked for it.
async fn cancel(world: &World, actor: &phoenix_api::Principal, id: Uuid) -> i64 {
    world
        .booking
        .request_cancellation(actor, id, None, false)
        .await
        .unwrap();
    let requests = world.client.saga_requests(10).await.unwrap();
    let request = requests.iter().find(|r| r.booking_id == id).unwrap();
    world.client.acknowledge(&[(id, SagaKind::Cancellation)]).await.unwrap();
    request.refund_minor
}

/// The cancelled event of booking `id`.
async fn cancelled_event(pool: &Pool, id: Uuid) -> Value {
    let events = events_of(pool, phoenix_booking::CANCELLED).await;
    let mine: Vec<Value> = events
        .into_iter()
        .filter(|e| e["booking_id"] == id.to_string())
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    mine.into_iter().next().unwrap()
}

/// Support refunded 2,500 of a booking on goodwill; the traveller then cancels inside the free period. The policy
/// gives everything back, but only the rest was left: the saga's refund returned that, and the cancellation records
/// it as what it refunded (with the policy's figure and the goodwill beside it), while the booking's `refunded_minor`
/// is everything the card got back.
async fn a_cancellation_after_a_goodwill_refund_records_what_it_returned(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let (id, total, payment_id) = confirmed(&world, &ann).await;
    let goodwill = payment_event("payment.refunded.v1", payment_id, 2_500, json!(id));
    consumer(&pool).apply(&[goodwill]).await.unwrap();

    let policy = cancel(&world, &ann, id).await;
    assert_eq!(policy, total, "free cancellation: the policy gives everything back");
    let cancelling = world.booking.get(&ann, id).await.unwrap();
    let asked = cancelling.cancellation.unwrap();
    assert_eq!(
        (
            asked.refund_minor,
            asked.policy_refund_minor,
            asked.fee_minor,
            asked.refunded_before_minor
        ),
        (total, total, 0, None)
    );
    // The saga refunded at most `total`, and the payment had only `total - 2_500` left.
    let outcome = Outcome::Cancelled {
        refunded_minor: total,
        refund_minor: Some(total - 2_500),
    };
    for _ in 0..2 {
        world.client.record_outcome(id, &outcome).await.unwrap();
    }
    let cancelled = world.booking.get(&ann, id).await.unwrap();
    assert_eq!((cancelled.status, cancelled.refunded_minor), (Status::Cancelled, total));
    assert_eq!(amounts(&cancelled), (total - 2_500, total, 0, Some(2_500)));
    let event = cancelled_event(&pool, id).await;
    assert_eq!(
        (
            &event["refunded_minor"],
            &event["refund_minor"],
            &event["policy_refund_minor"],
            &event["fee_minor"],
            &event["refunded_before_minor"],
            &event["status"]
        ),
        (
            &json!(total),
            &json!(total - 2_500),
            &json!(total),
            &json!(0),
            &json!(2_500),
            &json!("cancelled")
        ),
        "{event}"
    );
    // The saga's refund's own event, followed after the outcome, changes neither the total nor the cancellation.
    consumer(&pool)
        .apply(&[payment_event("payment.refunded.v1", payment_id, total, json!(id))])
        .await
        .unwrap();
    let after = world.booking.get(&ann, id).await.unwrap();
    assert_eq!(after.refunded_minor, total);
    assert_eq!(after.cancellation.unwrap().refund_minor, total - 2_500);
}

/// After the free period the policy keeps a fee. A goodwill refund before the cancellation does not change the fee:
/// it is what was paid less what the policy gives. The cancellation returns what the policy gives when that much is
/// left, what is left when less is.
async fn a_late_cancellation_after_a_goodwill_refund_keeps_its_fee(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    for shortfall in [false, true] {
        // Check-in in two days: the 72 hours of free cancellation are over.
        let booking = world
            .book(&ann, vec![world.stay(world.hotel.flexible, 2, 2, 1, 1)], 1)
            .await;
        let fee = booking.items[0].cancellation.fee_minor;
        // Less than the fee was refunded on goodwill, or so much that less than the policy's refund is left.
        let goodwill = match shortfall {
            false => fee / 2,
            true => fee + (booking.total_minor - fee) / 2,
        };
        let payment_id = Uuid::now_v7();
        let confirmed = Outcome::Confirmed {
            hold_id: Uuid::now_v7(),
            payment_id,
            captured_minor: booking.total_minor,
        };
        world.client.record_outcome(booking.id, &confirmed).await.unwrap();
        let (id, total) = (booking.id, booking.total_minor);
        let event = payment_event("payment.refunded.v1", payment_id, goodwill, json!(id));
        consumer(&pool).apply(&[event]).await.unwrap();
        let policy = cancel(&world, &ann, id).await;
        assert!(fee > 0 && policy > 0 && policy == total - fee, "{total} {policy} {fee}");
        let returned = policy.min(total - goodwill);
        assert_eq!(returned < policy, shortfall);
        let outcome = Outcome::Cancelled {
            refunded_minor: goodwill + returned,
            refund_minor: Some(returned),
        };
        world.client.record_outcome(id, &outcome).await.unwrap();
        let cancelled = world.booking.get(&ann, id).await.unwrap();
        assert_eq!(cancelled.refunded_minor, goodwill + returned);
        assert_eq!(
            amounts(&cancelled),
            (returned, policy, fee, Some(goodwill)),
            "goodwill {goodwill} of {total}"
        );
        let event = cancelled_event(&pool, id).await;
        assert_eq!(
            (&event["refund_minor"], &event["fee_minor"]),
            (&json!(returned), &json!(fee))
        );
    }
}

/// Booking and the saga may run as separate processes of different versions. A saga from before `refund_minor` was
/// reported sends none: the cancellation keeps the policy's figure and does not claim to know what came back before.
/// A cancellation stored before `policy_refund_minor` existed reads with its `refund_minor` as the policy's, and is
/// what the saga is asked to refund.
async fn an_older_sagas_outcome_and_an_older_cancellation_still_read(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let (id, total, payment_id) = confirmed(&world, &ann).await;
    consumer(&pool)
        .apply(&[payment_event("payment.refunded.v1", payment_id, 2_500, json!(id))])
        .await
        .unwrap();
    world
        .booking
        .request_cancellation(&ann, id, Some("plans changed".into()), false)
        .await
        .unwrap();
    let older = json!({
        "requested_at": "2026-12-01T10:00:00Z", "requested_by": ann.user_id, "reason": "plans changed",
        "refund_minor": total, "fee_minor": 0, "fees_waived": false,
    })
    .to_string();
    let updated = phoenix_db::dispatch!(&pool, conn => {
        sqlx::query("UPDATE bookings SET cancellation = $1 WHERE id = $2")
            .bind(&older)
            .bind(id)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
    })
    .unwrap();
    assert_eq!(updated, 1);
    let stored = world.booking.get(&ann, id).await.unwrap().cancellation.unwrap();
    assert_eq!(
        (
            stored.refund_minor,
            stored.policy_refund_minor,
            stored.refunded_before_minor
        ),
        (total, total, None)
    );
    let requests = world.client.saga_requests(10).await.unwrap();
    assert_eq!(
        requests
            .iter()
            .map(|r| (r.booking_id, r.refund_minor))
            .collect::<Vec<_>>(),
        [(id, total)]
    );

    // An outcome as an older saga serializes it, and a newer one without the figure: the same.
    let older: Outcome = serde_json::from_value(json!({"outcome": "cancelled", "refunded_minor": total})).unwrap();
    let unknown = Outcome::Cancelled {
        refunded_minor: total,
        refund_minor: None,
    };
    assert_eq!(older, unknown);
    assert_eq!(
        serde_json::to_value(&unknown).unwrap(),
        json!({"outcome": "cancelled", "refunded_minor": total})
    );
    world.client.record_outcome(id, &older).await.unwrap();
    let cancelled = world.booking.get(&ann, id).await.unwrap();
    assert_eq!((cancelled.status, cancelled.refunded_minor), (Status::Cancelled, total));
    let cancellation = cancelled.cancellation.unwrap();
    assert_eq!(
        (
            cancellation.refund_minor,
            cancellation.policy_refund_minor,
            cancellation.refunded_before_minor
        ),
        (total, total, None)
    );
    let event = cancelled_event(&pool, id).await;
    assert_eq!(
        (&event["refund_minor"], &event["refunded_before_minor"]),
        (&json!(total), &Value::Null)
    );
}

use std::time::{Duration, Instant};

use phoenix_booking::orchestration::{Outcome, SagaKind};
use phoenix_booking::{Options, Status};
use phoenix_db::Pool;
use uuid::Uuid;

use crate::*;

phoenix_db::contract_suite!(
    phoenix_booking::migrations(),
    [
        a_booking_is_written_pending_with_its_saga_request_and_event,
        a_package_of_a_stay_and_a_flight_holds_every_unit,
        a_waiting_create_answers_once_the_saga_confirms,
        a_create_still_pending_after_the_wait_answers_pending,
        completed_once_every_item_has_ended,
    ]
);

async fn a_booking_is_written_pending_with_its_saga_request_and_event(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let booking = world
        .book(&ann, vec![world.stay(world.hotel.flexible, 10, 3, 1, 2)], 2)
        .await;
    assert_eq!(booking.status, Status::Pending);
    assert_eq!(booking.locator.as_str().len(), 6);
    assert_eq!((booking.customer_id, booking.created_by), (ann.user_id, ann.user_id));
    assert_eq!(booking.currency, "EUR");
    assert!(
        booking.total_minor >= 24_000,
        "three nights of 80.00 and taxes: {booking:?}"
    );
    assert_eq!(booking.total_minor, booking.items[0].price_minor);
    assert_eq!(booking.items[0].inventory_lines.len(), 3, "one line per night");
    assert!(booking.items[0].cancellation.refundable);
    assert_eq!(booking.history.len(), 1);
    assert_eq!(booking.history[0].status, Status::Pending);

    let requests = world.client.saga_requests(10).await.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!((request.booking_id, request.kind), (booking.id, SagaKind::Booking));
    assert_eq!(request.payment_token.as_deref(), Some("tok_visa"));
    assert_eq!(request.amount_minor, booking.total_minor);
    assert_eq!(request.currency, "EUR");
    assert_eq!(request.hold_ttl_secs, 900);
    assert_eq!(request.lines, booking.items[0].inventory_lines);
    assert_eq!(request.actor.user_id, ann.user_id);
    assert!(matches!(
        request.actor.credential,
        phoenix_api::Credential::OnBehalf { of } if of == booking.id
    ));

    let created = events_of(&pool, phoenix_booking::CREATED).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["locator"], booking.locator.as_str());
    assert_eq!(created[0]["total_minor"], booking.total_minor);
    assert!(
        !created[0].to_string().contains("tok_visa"),
        "no payment token in events"
    );
}

async fn a_package_of_a_stay_and_a_flight_holds_every_unit(pool: Pool) {
    let world = world(pool).await;
    let items = vec![
        world.stay(world.hotel.saver, 12, 2, 1, 2),
        world.flight(12, "Y", 2, 0, 0),
    ];
    let booking = world.book(&customer(), items, 2).await;
    assert_eq!(booking.items.len(), 2);
    assert_eq!(
        booking.total_minor,
        booking.items.iter().map(|i| i.price_minor).sum::<i64>()
    );
    let request = world.client.saga_requests(10).await.unwrap().remove(0);
    let lines: i64 = request.lines.iter().map(|l| l.quantity).sum();
    let expected: i64 = booking
        .items
        .iter()
        .flat_map(|i| &i.inventory_lines)
        .map(|l| l.quantity)
        .sum();
    assert_eq!(lines, expected);
    assert!(
        request.lines.len() >= 3,
        "two nights and the flight's seats: {request:?}"
    );
}

async fn a_waiting_create_answers_once_the_saga_confirms(pool: Pool) {
    let options = Options {
        confirm_wait_ms: 10_000,
        ..Options::default()
    };
    let world = world_with(pool, options).await;
    // The saga: woken by booking's signal, confirms whatever it is handed.
    let client = world.client.clone();
    let wake = client.wake_signal().unwrap();
    let saga = tokio::spawn(async move {
        loop {
            wake.notified().await;
            for request in client.saga_requests(10).await.unwrap() {
                let taken = [(request.booking_id, request.kind)];
                client.acknowledge(&taken).await.unwrap();
                let outcome = Outcome::Confirmed {
                    hold_id: Uuid::now_v7(),
                    payment_id: Uuid::now_v7(),
                    captured_minor: request.amount_minor,
                };
                client.record_outcome(request.booking_id, &outcome).await.unwrap();
            }
        }
    });
    let started = Instant::now();
    let booking = world
        .book(&customer(), vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], 1)
        .await;
    assert_eq!(booking.status, Status::Confirmed);
    assert!(started.elapsed() < Duration::from_secs(9), "woken, not timed out");
    let statuses: Vec<Status> = booking.history.iter().map(|h| h.status).collect();
    assert_eq!(statuses, [Status::Pending, Status::Confirmed]);
    saga.abort();
}

async fn a_create_still_pending_after_the_wait_answers_pending(pool: Pool) {
    let options = Options {
        confirm_wait_ms: 250,
        ..Options::default()
    };
    let world = world_with(pool, options).await;
    let booking = world
        .book(&customer(), vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], 1)
        .await;
    assert_eq!(booking.status, Status::Pending);
}

async fn completed_once_every_item_has_ended(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let confirmed = world
        .confirmed(&ann, vec![world.stay(world.hotel.flexible, 10, 2, 1, 1)])
        .await;
    let pending = world
        .book(&ann, vec![world.stay(world.hotel.flexible, 11, 1, 1, 1)], 1)
        .await;
    let before_end = phoenix_db::Timestamp::from(confirmed.items[0].ends_at - time::Duration::minutes(1));
    assert_eq!(world.booking.complete_ended(before_end).await.unwrap(), 0);
    let after_end = phoenix_db::Timestamp::from(confirmed.items[0].ends_at + time::Duration::days(2));
    // The sweeper runs each pass in a trace of its own; the completions carry it.
    let pass = phoenix_api::trace::child_of(None);
    let completed = phoenix_api::trace::scope(pass.clone(), world.booking.complete_ended(after_end)).await;
    assert_eq!(completed.unwrap(), 1);
    let done = world.booking.get(&ann, confirmed.id).await.unwrap();
    assert_eq!(done.status, Status::Completed);
    assert_eq!(done.history.last().unwrap().status, Status::Completed);
    let still = world.booking.get(&ann, pending.id).await.unwrap();
    assert_eq!(still.status, Status::Pending, "only confirmed bookings complete");
    assert_eq!(world.booking.complete_ended(after_end).await.unwrap(), 0);
    assert_eq!(events_of(&pool, phoenix_booking::COMPLETED).await.len(), 1);
    let traces: Vec<Option<String>> = pool
        .unpublished_events(10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == phoenix_booking::COMPLETED)
        .map(|e| e.traceparent)
        .collect();
    assert_eq!(traces, [Some(pass)]);
}

use phoenix_booking::orchestration::{Outcome, SagaKind};
use phoenix_booking::{Error, Status};
use phoenix_db::Pool;

use serde_json::json;

use crate::*;

phoenix_db::contract_suite!(
    phoenix_booking::migrations(),
    [
        cancelling_before_the_deadline_refunds_in_full,
        cancelling_non_refundable_refunds_nothing_but_still_releases,
        cancelling_after_the_deadline_keeps_the_fee,
        support_may_waive_the_fees_with_a_reason,
        a_card_number_is_never_taken_as_a_reason,
        only_confirmed_bookings_can_be_cancelled,
        the_cancellation_request_names_who_asked,
        every_event_of_a_booking_carries_its_id_as_correlation_id,
        a_cancelled_outcome_returning_more_than_the_policy_or_the_payment_is_refused,
    ]
);

/// Requests the cancellation, plays the cancellation saga with the refund it asks for, and returns the refund.
async fn cancel_and_refund(world: &World, actor: &phoenix_api::Principal, booking: &phoenix_booking::Booking) -> i64 {
    cancel_and_refund_waiving(world, actor, booking, false).await
}

/// [`cancel_and_refund`], with the fees waived or not.
async fn cancel_and_refund_waiving(
    world: &World,
    actor: &phoenix_api::Principal,
    booking: &phoenix_booking::Booking,
    waive_fees: bool,
) -> i64 {
    let cancelling = world
        .booking
        .request_cancellation(actor, booking.id, Some("plans changed".into()), waive_fees)
        .await
        .unwrap();
    assert_eq!(
        cancelling.cancellation.as_ref().map(|c| c.fees_waived),
        Some(waive_fees)
    );
    assert_eq!(cancelling.status, Status::Cancelling);
    let requests = world.client.saga_requests(10).await.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!((request.booking_id, request.kind), (booking.id, SagaKind::Cancellation));
    assert_eq!(
        (request.hold_id, request.payment_id),
        (booking.hold_id, booking.payment_id)
    );
    assert_eq!(request.payment_token, None);
    // While cancelling, the cancellation is to refund what the policy gives; what came back before is not known.
    let asked = cancelling.cancellation.clone().unwrap();
    assert_eq!(
        (
            asked.refund_minor,
            asked.policy_refund_minor,
            asked.refunded_before_minor
        ),
        (request.refund_minor, request.refund_minor, None)
    );
    assert_eq!(asked.fee_minor, booking.total_minor - asked.policy_refund_minor);
    world
        .client
        .acknowledge(&[(booking.id, SagaKind::Cancellation)])
        .await
        .unwrap();
    // Nothing was refunded before: the saga's refund returns all the policy gives.
    let outcome = Outcome::Cancelled {
        refunded_minor: request.refund_minor,
        refund_minor: Some(request.refund_minor),
    };
    world.client.record_outcome(booking.id, &outcome).await.unwrap();
    world.client.record_outcome(booking.id, &outcome).await.unwrap();
    let cancelled = world.booking.get(actor, booking.id).await.unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    assert_eq!(cancelled.refunded_minor, request.refund_minor);
    let done = cancelled.cancellation.clone().unwrap();
    assert_eq!(
        (
            done.refund_minor,
            done.policy_refund_minor,
            done.fee_minor,
            done.refunded_before_minor
        ),
        (request.refund_minor, request.refund_minor, asked.fee_minor, Some(0))
    );
    let event = events_of(&world.pool, phoenix_booking::CANCELLED)
        .await
        .into_iter()
        .find(|e| e["booking_id"] == booking.id.to_string())
        .unwrap();
    assert_eq!(
        (
            &event["refunded_minor"],
            &event["refund_minor"],
            &event["policy_refund_minor"],
            &event["fee_minor"],
            &event["refunded_before_minor"]
        ),
        (
            &json!(request.refund_minor),
            &json!(request.refund_minor),
            &json!(request.refund_minor),
            &json!(asked.fee_minor),
            &json!(0)
        ),
        "{event}"
    );
    let statuses: Vec<Status> = cancelled.history.iter().map(|h| h.status).collect();
    assert_eq!(
        statuses,
        [
            Status::Pending,
            Status::Confirmed,
            Status::Cancelling,
            Status::Cancelled
        ]
    );
    assert_eq!(cancelled.history[2].actor_id, Some(actor.user_id));
    assert_eq!(cancelled.history[2].reason.as_deref(), Some("plans changed"));
    // Asking again changes nothing.
    let again = world
        .booking
        .request_cancellation(actor, booking.id, None, false)
        .await
        .unwrap();
    assert_eq!(again.status, Status::Cancelled);
    request.refund_minor
}

async fn cancelling_before_the_deadline_refunds_in_full(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let booking = world
        .confirmed(&ann, vec![world.stay(world.hotel.flexible, 10, 3, 1, 1)])
        .await;
    assert_eq!(cancel_and_refund(&world, &ann, &booking).await, booking.total_minor);
    let requested = events_of(&pool, phoenix_booking::CANCELLATION_REQUESTED).await;
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0]["refund_minor"], booking.total_minor);
    assert_eq!(requested[0]["policy_refund_minor"], booking.total_minor);
    assert_eq!(requested[0]["fee_minor"], 0);
    assert_eq!(events_of(&pool, phoenix_booking::CANCELLED).await.len(), 1);
}

async fn cancelling_non_refundable_refunds_nothing_but_still_releases(pool: Pool) {
    let world = world(pool).await;
    let ann = customer();
    let booking = world
        .confirmed(&ann, vec![world.stay(world.hotel.saver, 10, 1, 1, 1)])
        .await;
    assert_eq!(cancel_and_refund(&world, &ann, &booking).await, 0);
}

async fn cancelling_after_the_deadline_keeps_the_fee(pool: Pool) {
    let world = world(pool).await;
    let ann = customer();
    // Check-in in two days: the 72 hours of free cancellation are over.
    let booking = world
        .confirmed(&ann, vec![world.stay(world.hotel.flexible, 2, 2, 1, 1)])
        .await;
    let fee = booking.items[0].cancellation.fee_minor;
    assert!(fee > 0 && fee < booking.total_minor, "{booking:?}");
    assert_eq!(
        cancel_and_refund(&world, &ann, &booking).await,
        booking.total_minor - fee
    );
}

/// When the supplier is why a trip is off, support refunds everything paid whatever the terms; nobody else may, and
/// not without saying why.
async fn support_may_waive_the_fees_with_a_reason(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let saver = world
        .confirmed(&ann, vec![world.stay(world.hotel.saver, 10, 1, 1, 1)])
        .await;
    let late = world
        .confirmed(&ann, vec![world.stay(world.hotel.flexible, 2, 2, 1, 1)])
        .await;
    let refused = world
        .booking
        .request_cancellation(&ann, saver.id, Some("the hotel closed".into()), true)
        .await;
    assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
    let problem = phoenix_api::Problem::from(refused.unwrap_err());
    assert_eq!((problem.status.as_u16(), problem.code.as_ref()), (403, "forbidden"));
    for reason in [None, Some("  ".to_owned())] {
        let refused = world
            .booking
            .request_cancellation(&support(), saver.id, reason, true)
            .await;
        match refused {
            Err(Error::Invalid(fields)) => assert_eq!(fields[0].field, "reason"),
            other => panic!("expected a reason asked for, got {other:?}"),
        }
    }
    // Nothing was asked of the saga by the refusals.
    assert!(world.client.saga_requests(10).await.unwrap().is_empty());
    assert_eq!(
        world.booking.get(&ann, saver.id).await.unwrap().status,
        Status::Confirmed
    );

    let staff = support();
    for booking in [&saver, &late] {
        assert_eq!(
            cancel_and_refund_waiving(&world, &staff, booking, true).await,
            booking.total_minor
        );
    }
    // Waiving again is harmless; waiving the fees of a booking cancelled under its terms is refused, not ignored.
    let again = world
        .booking
        .request_cancellation(&staff, saver.id, Some("the hotel closed".into()), true)
        .await
        .unwrap();
    assert_eq!(again.status, Status::Cancelled);
    let kept = world
        .confirmed(&ann, vec![world.stay(world.hotel.saver, 12, 1, 1, 1)])
        .await;
    assert_eq!(cancel_and_refund(&world, &ann, &kept).await, 0);
    let refused = world
        .booking
        .request_cancellation(&staff, kept.id, Some("the hotel closed".into()), true)
        .await;
    assert!(
        matches!(
            refused,
            Err(Error::AlreadyCancelled {
                status: Status::Cancelled
            })
        ),
        "{refused:?}"
    );
    let problem = phoenix_api::Problem::from(refused.unwrap_err());
    assert_eq!(
        (problem.status.as_u16(), problem.code.as_ref()),
        (409, "already_cancelled")
    );
    let requested = events_of(&pool, phoenix_booking::CANCELLATION_REQUESTED).await;
    assert_eq!(requested.len(), 3);
    let waived: Vec<_> = requested.iter().filter(|e| e["fees_waived"] == true).collect();
    assert_eq!(waived.len(), 2, "the two waivers, not the customer's own cancellation");
    for event in waived {
        assert_eq!(event["fee_minor"].as_i64(), Some(0));
        assert_eq!(event["requested_by"], staff.user_id.to_string());
    }
}

async fn only_confirmed_bookings_can_be_cancelled(pool: Pool) {
    let world = world(pool).await;
    let ann = customer();
    let pending = world
        .book(&ann, vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], 1)
        .await;
    let refused = world.booking.request_cancellation(&ann, pending.id, None, false).await;
    assert!(matches!(refused, Err(Error::BookingPending)), "{refused:?}");
    let failed = Outcome::Failed {
        code: "insufficient_inventory".into(),
        detail: "sold out".into(),
    };
    world.client.record_outcome(pending.id, &failed).await.unwrap();
    let refused = world.booking.request_cancellation(&ann, pending.id, None, false).await;
    assert!(
        matches!(refused, Err(Error::NotCancellable { status: Status::Failed })),
        "{refused:?}"
    );
    for (error, status, code) in [
        (Error::BookingPending, 409, "booking_pending"),
        (
            Error::NotCancellable {
                status: Status::Completed,
            },
            409,
            "not_cancellable",
        ),
    ] {
        let problem = phoenix_api::Problem::from(error);
        assert_eq!((problem.status.as_u16(), problem.code.as_ref()), (status, code));
    }
    let confirmed = world
        .confirmed(&ann, vec![world.stay(world.hotel.flexible, 11, 1, 1, 1)])
        .await;
    let long = "x".repeat(501);
    let refused = world
        .booking
        .request_cancellation(&ann, confirmed.id, Some(long), false)
        .await;
    assert!(matches!(refused, Err(Error::Invalid(_))));
    // Support may cancel any booking.
    let cancelling = world
        .booking
        .request_cancellation(&support(), confirmed.id, None, false)
        .await
        .unwrap();
    assert_eq!(cancelling.status, Status::Cancelling);
}

async fn the_cancellation_request_names_who_asked(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let booking = world
        .confirmed(&ann, vec![world.stay(world.hotel.flexible, 10, 3, 1, 1)])
        .await;
    let staff = support();
    world
        .booking
        .request_cancellation(&staff, booking.id, Some("duplicate".into()), false)
        .await
        .unwrap();
    let requested = events_of(&pool, phoenix_booking::CANCELLATION_REQUESTED).await;
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0]["requested_by"], staff.user_id.to_string());
    assert_eq!(requested[0]["created_by"], ann.user_id.to_string());
}

async fn every_event_of_a_booking_carries_its_id_as_correlation_id(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let first = world
        .confirmed(&ann, vec![world.stay(world.hotel.flexible, 10, 3, 1, 1)])
        .await;
    let second = world
        .confirmed(&ann, vec![world.stay(world.hotel.flexible, 20, 1, 1, 1)])
        .await;
    cancel_and_refund(&world, &ann, &first).await;

    let events = pool.unpublished_events(1_000).await.unwrap();
    let types_of = |booking_id: uuid::Uuid| -> Vec<&str> {
        let id = booking_id.to_string();
        for event in events.iter().filter(|e| e.subject == id) {
            assert_eq!(
                event.correlation_id.as_deref(),
                Some(id.as_str()),
                "{}",
                event.event_type
            );
        }
        events
            .iter()
            .filter(|e| e.correlation_id.as_deref() == Some(id.as_str()))
            .map(|e| e.event_type.as_str())
            .collect()
    };
    assert_eq!(
        types_of(first.id),
        [
            phoenix_booking::CREATED,
            phoenix_booking::CONFIRMED,
            phoenix_booking::CANCELLATION_REQUESTED,
            phoenix_booking::CANCELLED
        ]
    );
    assert_eq!(
        types_of(second.id),
        [phoenix_booking::CREATED, phoenix_booking::CONFIRMED]
    );
}

/// A reason goes into the booking's history, its events and the audit log, which keeps it for good: one holding a
/// card number is refused, and the booking stays as it was.
async fn a_card_number_is_never_taken_as_a_reason(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let booking = world
        .confirmed(&ann, vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)])
        .await;
    for reason in [
        "4242424242424242",
        "charged twice on card 4242-4242-4242-4242, please refund",
    ] {
        let refused = world
            .booking
            .request_cancellation(&ann, booking.id, Some(reason.into()), false)
            .await;
        match refused {
            Err(Error::Invalid(fields)) => assert_eq!(
                (fields[0].field.as_str(), fields[0].message.as_str()),
                ("reason", "must not contain a card number")
            ),
            other => panic!("expected the reason refused, got {other:?}"),
        }
    }
    assert!(world.client.saga_requests(10).await.unwrap().is_empty());
    assert_eq!(
        world.booking.get(&ann, booking.id).await.unwrap().status,
        Status::Confirmed
    );
}

/// The saga's report of what its refund returned is checked: never negative, never more than the policy gives, never
/// more than the payment's refunds in all. A refused report leaves the booking cancelling, for the saga to retry.
async fn a_cancelled_outcome_returning_more_than_the_policy_or_the_payment_is_refused(pool: Pool) {
    let world = world(pool).await;
    let ann = customer();
    // Check-in in two days: the policy keeps a fee.
    let booking = world
        .confirmed(&ann, vec![world.stay(world.hotel.flexible, 2, 2, 1, 1)])
        .await;
    let cancelling = world
        .booking
        .request_cancellation(&ann, booking.id, None, false)
        .await
        .unwrap();
    let policy = cancelling.cancellation.as_ref().unwrap().policy_refund_minor;
    assert!(policy > 0 && policy < booking.total_minor, "{cancelling:?}");
    for (refunded_minor, refund_minor, field) in [
        (booking.total_minor, policy + 1, "refund_minor"),
        (policy - 1, policy, "refund_minor"),
        (policy, -1, "refund_minor"),
        (booking.total_minor + 1, policy, "refunded_minor"),
    ] {
        let outcome = Outcome::Cancelled {
            refunded_minor,
            refund_minor: Some(refund_minor),
        };
        match world.booking.record_outcome(booking.id, &outcome).await {
            Err(Error::Invalid(fields)) => assert_eq!(fields[0].field, field, "{outcome:?}"),
            other => panic!("{outcome:?} should be refused, got {other:?}"),
        }
    }
    let still = world.booking.get(&ann, booking.id).await.unwrap();
    assert_eq!((still.status, still.refunded_minor), (Status::Cancelling, 0));
    let outcome = Outcome::Cancelled {
        refunded_minor: policy,
        refund_minor: Some(policy),
    };
    let cancelled = world.booking.record_outcome(booking.id, &outcome).await.unwrap();
    assert_eq!(cancelled.cancellation.unwrap().refund_minor, policy);
}

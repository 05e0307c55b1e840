use phoenix_booking::orchestration::{Outcome, SagaKind};
use phoenix_booking::{Error, Options, Service, Status};
use phoenix_db::Pool;
use uuid::Uuid;

use crate::*;

phoenix_db::contract_suite!(
    phoenix_booking::migrations(),
    [
        acknowledging_forgets_the_request_and_the_payment_token,
        a_confirmed_outcome_confirms_once_and_recording_it_again_is_fine,
        a_failed_outcome_fails_the_booking_with_its_code,
        outcomes_that_do_not_follow_the_status_are_refused,
        an_outcome_another_replica_recorded_wins_over_this_ones_stale_copy,
    ]
);

async fn payment_token_of(pool: &Pool, id: Uuid) -> Option<String> {
    phoenix_db::dispatch!(pool, conn => {
        sqlx::query_scalar("SELECT payment_token FROM bookings WHERE id = $1").bind(id).fetch_one(conn).await
    })
    .unwrap()
}

async fn acknowledging_forgets_the_request_and_the_payment_token(pool: Pool) {
    let world = world(pool.clone()).await;
    let first = world
        .book(&customer(), vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], 1)
        .await;
    let second = world
        .book(&customer(), vec![world.stay(world.hotel.flexible, 11, 1, 1, 1)], 1)
        .await;
    let requests = world.client.saga_requests(10).await.unwrap();
    let ids: Vec<Uuid> = requests.iter().map(|r| r.booking_id).collect();
    assert_eq!(ids, [first.id, second.id], "oldest first");
    assert_eq!(
        world.client.saga_requests(1).await.unwrap().len(),
        1,
        "bounded by the limit"
    );

    world
        .client
        .acknowledge(&[(first.id, SagaKind::Booking)])
        .await
        .unwrap();
    // Twice is fine, and a kind that was never asked changes nothing.
    world
        .client
        .acknowledge(&[(first.id, SagaKind::Booking)])
        .await
        .unwrap();
    world
        .client
        .acknowledge(&[(second.id, SagaKind::Cancellation)])
        .await
        .unwrap();
    let left: Vec<Uuid> = world
        .client
        .saga_requests(10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.booking_id)
        .collect();
    assert_eq!(left, [second.id]);
    assert_eq!(payment_token_of(&pool, first.id).await, None);
    assert_eq!(payment_token_of(&pool, second.id).await.as_deref(), Some("tok_visa"));
}

async fn a_confirmed_outcome_confirms_once_and_recording_it_again_is_fine(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let booking = world
        .book(&ann, vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], 1)
        .await;
    let outcome = Outcome::Confirmed {
        hold_id: Uuid::now_v7(),
        payment_id: Uuid::now_v7(),
        captured_minor: booking.total_minor,
    };
    // Confirmed before the request was even acknowledged: the request and the token go with the booking saga.
    world.client.record_outcome(booking.id, &outcome).await.unwrap();
    world.client.record_outcome(booking.id, &outcome).await.unwrap();
    let confirmed = world.booking.get(&ann, booking.id).await.unwrap();
    assert_eq!(confirmed.status, Status::Confirmed);
    let Outcome::Confirmed {
        hold_id, payment_id, ..
    } = outcome
    else {
        unreachable!()
    };
    assert_eq!(
        (confirmed.hold_id, confirmed.payment_id),
        (Some(hold_id), Some(payment_id))
    );
    let statuses: Vec<Status> = confirmed.history.iter().map(|h| h.status).collect();
    assert_eq!(statuses, [Status::Pending, Status::Confirmed]);
    assert!(world.client.saga_requests(10).await.unwrap().is_empty());
    assert_eq!(payment_token_of(&pool, booking.id).await, None);
    let events = events_of(&pool, phoenix_booking::CONFIRMED).await;
    assert_eq!(events.len(), 1, "recorded twice, confirmed once");
    assert_eq!(events[0]["payment_id"], payment_id.to_string());
}

async fn a_failed_outcome_fails_the_booking_with_its_code(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let booking = world
        .book(&ann, vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], 1)
        .await;
    let declined = Outcome::Failed {
        code: "payment_declined".into(),
        detail: "the card was declined".into(),
    };
    world.client.record_outcome(booking.id, &declined).await.unwrap();
    world.client.record_outcome(booking.id, &declined).await.unwrap();
    let failed = world.booking.get(&ann, booking.id).await.unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.failure.as_ref().unwrap().code, "payment_declined");
    assert_eq!(
        failed.history.last().unwrap().reason.as_deref(),
        Some("payment_declined")
    );
    assert_eq!(events_of(&pool, phoenix_booking::FAILED).await.len(), 1);
    let problem = phoenix_booking::failed_problem(&failed);
    assert_eq!(
        (problem.status.as_u16(), problem.code.as_ref()),
        (402, "payment_declined")
    );
    assert_eq!(problem.extensions["booking_id"], booking.id.to_string());
    assert_eq!(problem.extensions["locator"], booking.locator.as_str());
}

async fn outcomes_that_do_not_follow_the_status_are_refused(pool: Pool) {
    let world = world(pool).await;
    let ann = customer();
    let booking = world
        .book(&ann, vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], 1)
        .await;
    let illegal = |result: Result<_, Error>| {
        assert!(matches!(result, Err(Error::InvalidTransition { .. })), "{result:?}");
    };
    let cancelled = Outcome::Cancelled {
        refunded_minor: 0,
        refund_minor: Some(0),
    };
    illegal(world.booking.record_outcome(booking.id, &cancelled).await);
    let confirm = |hold_id| Outcome::Confirmed {
        hold_id,
        payment_id: Uuid::now_v7(),
        captured_minor: 1,
    };
    world
        .booking
        .record_outcome(booking.id, &confirm(Uuid::now_v7()))
        .await
        .unwrap();
    // Another saga's confirmation, a failure after confirmation: refused, and the booking stays as it was.
    illegal(world.booking.record_outcome(booking.id, &confirm(Uuid::now_v7())).await);
    let failed = Outcome::Failed {
        code: "hold_expired".into(),
        detail: "late".into(),
    };
    illegal(world.booking.record_outcome(booking.id, &failed).await);
    assert_eq!(
        world.booking.get(&ann, booking.id).await.unwrap().status,
        Status::Confirmed
    );
    let problem = phoenix_api::Problem::from(Error::InvalidTransition {
        from: Status::Confirmed,
        to: Status::Failed,
    });
    assert_eq!(
        (problem.status.as_u16(), problem.code.as_ref()),
        (409, "invalid_transition")
    );
    let bad_code = Outcome::Failed {
        code: "Not A Code".into(),
        detail: String::new(),
    };
    assert!(matches!(
        world.booking.record_outcome(booking.id, &bad_code).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        world.booking.record_outcome(Uuid::now_v7(), &cancelled).await,
        Err(Error::NotFound)
    ));
}

/// While a request waits, this process decides the saga's outcome on the booking it wrote (pending); another booking
/// replica may have recorded an outcome since. The status guard makes the stale copy lose: what is stored decides.
async fn an_outcome_another_replica_recorded_wins_over_this_ones_stale_copy(pool: Pool) {
    let waiting = Options {
        confirm_wait_ms: 30_000,
        wait_poll_ms: 30_000,
        ..Options::default()
    };
    let world = world_with(pool.clone(), waiting.clone()).await;
    let replica = Service::new(
        pool.clone(),
        waiting,
        phoenix_catalog::Client::Local(world.catalog.clone()),
        phoenix_identity::Client::Local(world.identity.clone()),
    );
    let ann = customer();
    let request = request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], adults(1));
    let creating = {
        let service = world.booking.clone();
        tokio::spawn(async move { service.create(&ann, request, &key()).await })
    };
    // The booking is written (pending) and its request waits, holding that copy.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let booking_id = loop {
        if let Some(request) = world.client.saga_requests(1).await.unwrap().first() {
            break request.booking_id;
        }
        assert!(tokio::time::Instant::now() < deadline, "the booking was never written");
        tokio::task::yield_now().await;
    };
    let declined = Outcome::Failed {
        code: "payment_declined".into(),
        detail: "the card was declined".into(),
    };
    let failed = replica.record_outcome(booking_id, &declined).await.unwrap();
    assert_eq!(failed.status, Status::Failed);

    // A confirmation decided on the stale pending copy is refused once the stored booking is read.
    let confirmed = Outcome::Confirmed {
        hold_id: Uuid::now_v7(),
        payment_id: Uuid::now_v7(),
        captured_minor: failed.total_minor,
    };
    let refused = world.booking.record_outcome(booking_id, &confirmed).await;
    assert!(matches!(refused, Err(Error::InvalidTransition { .. })), "{refused:?}");
    // The same failure again is already done: answered with the stored booking, nothing written twice.
    let again = world.booking.record_outcome(booking_id, &declined).await.unwrap();
    assert_eq!(again.status, Status::Failed);

    let stored = world.booking.get(&ann, booking_id).await.unwrap();
    let statuses: Vec<Status> = stored.history.iter().map(|h| h.status).collect();
    assert_eq!(statuses, [Status::Pending, Status::Failed]);
    assert_eq!(
        stored.failure.as_ref().map(|f| f.code.as_str()),
        Some("payment_declined")
    );
    assert_eq!(events_of(&pool, phoenix_booking::FAILED).await.len(), 1);
    assert!(events_of(&pool, phoenix_booking::CONFIRMED).await.is_empty());
    creating.abort();
}

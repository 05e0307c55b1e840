use phoenix_booking::Error;
use phoenix_db::Pool;
use uuid::Uuid;

use crate::*;

phoenix_db::contract_suite!(
    phoenix_booking::migrations(),
    [
        the_same_request_three_times_makes_one_booking,
        the_same_request_five_times_at_once_makes_one_booking,
        a_different_body_under_the_same_key_is_refused,
        keys_belong_to_the_actor_that_used_them,
        a_key_answers_for_24_hours_then_books_anew,
    ]
);

async fn the_same_request_three_times_makes_one_booking(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let key = key();
    let body = request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], adults(1));
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(world.booking.create(&ann, body.clone(), &key).await.unwrap());
    }
    assert!(!made[0].replayed && made[1].replayed && made[2].replayed);
    assert!(made.iter().all(|c| c.booking.id == made[0].booking.id));
    assert_eq!(n_bookings(&pool).await, 1);
    // Confirmed meanwhile: a retry sees the booking as it is now.
    world.confirm_all().await;
    let again = world.booking.create(&ann, body, &key).await.unwrap();
    assert_eq!(again.booking.status, phoenix_booking::Status::Confirmed);
    assert_eq!(events_of(&pool, phoenix_booking::CREATED).await.len(), 1);
}

async fn the_same_request_five_times_at_once_makes_one_booking(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let key = key();
    let body = request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], adults(1));
    let attempts = (0..5).map(|_| {
        let (service, body, key) = (world.booking.clone(), body.clone(), key.clone());
        tokio::spawn(async move { service.create(&ann, body, &key).await })
    });
    let results = futures::future::join_all(attempts).await;
    let mut ids: Vec<Uuid> = Vec::new();
    for result in results {
        match result.unwrap() {
            Ok(created) => ids.push(created.booking.id),
            Err(Error::IdempotencyKeyInUse) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(n_bookings(&pool).await, 1);
    assert_eq!(world.client.saga_requests(10).await.unwrap().len(), 1);
}

async fn a_different_body_under_the_same_key_is_refused(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let key = key();
    let first = request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], adults(1));
    world.booking.create(&ann, first, &key).await.unwrap();
    let other = request(vec![world.stay(world.hotel.flexible, 14, 1, 1, 1)], adults(1));
    let refused = world.booking.create(&ann, other, &key).await;
    assert!(matches!(refused, Err(Error::IdempotencyKeyReused)), "{refused:?}");
    let problem = phoenix_api::Problem::from(Error::IdempotencyKeyReused);
    assert_eq!(
        (problem.status.as_u16(), problem.code.as_ref()),
        (422, "idempotency_key_reused")
    );
    assert_eq!(n_bookings(&pool).await, 1);
}

async fn keys_belong_to_the_actor_that_used_them(pool: Pool) {
    let world = world(pool.clone()).await;
    let key = key();
    let body = request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], adults(1));
    let ann = world.booking.create(&customer(), body.clone(), &key).await.unwrap();
    let bob = world.booking.create(&customer(), body, &key).await.unwrap();
    assert_ne!(ann.booking.id, bob.booking.id);
    assert!(!bob.replayed);
    assert_eq!(n_bookings(&pool).await, 2);
}

/// Stripe's window: a key replays its booking for 24 hours; after that the same key makes a new booking (with the
/// same body or another), and the old booking keeps its key marked expired.
async fn a_key_answers_for_24_hours_then_books_anew(pool: Pool) {
    let world = world(pool.clone()).await;
    let ann = customer();
    let key = key();
    let body = request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], adults(1));
    let first = world.booking.create(&ann, body.clone(), &key).await.unwrap();
    let age = |hours: i64| {
        let pool = pool.clone();
        let id = first.booking.id;
        async move {
            let at =
                phoenix_db::Timestamp::from_datetime(time::OffsetDateTime::now_utc() - time::Duration::hours(hours));
            phoenix_db::dispatch!(&pool, conn => {
                sqlx::query("UPDATE bookings SET created_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(id)
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
            .unwrap();
        }
    };
    age(23).await;
    let within = world.booking.create(&ann, body.clone(), &key).await.unwrap();
    assert!(
        within.replayed && within.booking.id == first.booking.id,
        "still answered within 24 h"
    );

    age(25).await;
    let other = request(vec![world.stay(world.hotel.flexible, 14, 1, 1, 1)], adults(1));
    let anew = world.booking.create(&ann, other, &key).await.unwrap();
    assert!(!anew.replayed);
    assert_ne!(anew.booking.id, first.booking.id);
    assert_eq!(n_bookings(&pool).await, 2);
    let again = world.booking.create(&ann, body, &key).await;
    assert!(
        matches!(again, Err(Error::IdempotencyKeyReused)),
        "the key now answers for the new booking: {again:?}"
    );
    let keys: Vec<String> = phoenix_db::dispatch!(&pool, conn => {
        sqlx::query_scalar("SELECT idempotency_key FROM bookings ORDER BY created_at").fetch_all(conn).await
    })
    .unwrap();
    assert_eq!(keys, vec![format!("{key}:expired:{}", anew.booking.id), key.clone()]);
}

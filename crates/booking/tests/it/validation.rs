use phoenix_api::{Problem, Role};
use phoenix_booking::{BookingRequest, Error};
use phoenix_db::Pool;
use phoenix_identity::OrganizationKind;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::*;

phoenix_db::contract_suite!(
    phoenix_booking::migrations(),
    [
        bad_requests_are_refused_before_anything_is_written,
        a_total_one_payment_cannot_take_is_refused_before_anything_is_written,
        a_total_of_nothing_is_refused_before_anything_is_written,
        travellers_must_match_the_party_of_every_item,
        a_traveller_is_of_their_type_on_every_day_of_travel,
        a_card_number_is_never_taken_as_a_payment_token,
        the_catalogs_refusals_pass_through_unchanged,
        only_agents_partners_and_admins_book_for_someone_else,
        an_agent_books_only_for_the_public_and_their_own_organization,
    ]
);

async fn attempt(world: &World, request: BookingRequest) -> Result<phoenix_booking::Booking, Error> {
    world
        .booking
        .create(&customer(), request, &key())
        .await
        .map(|c| c.booking)
}

fn fields(result: Result<phoenix_booking::Booking, Error>) -> Vec<String> {
    match result {
        Err(Error::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
        other => panic!("expected invalid fields, got {other:?}"),
    }
}

fn with(mut request: BookingRequest, change: impl FnOnce(&mut Value)) -> BookingRequest {
    let mut json = serde_json::to_value(&request).unwrap();
    change(&mut json);
    request = serde_json::from_value(json).unwrap();
    request
}

async fn bad_requests_are_refused_before_anything_is_written(pool: Pool) {
    let world = world(pool.clone()).await;
    let good = request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], adults(1));
    let cases: Vec<(BookingRequest, &[&str])> = vec![
        (request(vec![], adults(1)), &["items"]),
        (
            request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], json!([])),
            &["travellers"],
        ),
        (
            with(good.clone(), |r| r["contact"]["email"] = json!("not an email")),
            &["contact.email"],
        ),
        (
            with(good.clone(), |r| r["contact"]["phone"] = json!("call me")),
            &["contact.phone"],
        ),
        (
            with(good.clone(), |r| {
                r["travellers"][0]["first_name"] = json!(" ");
                r["travellers"][0]["last_name"] = json!("x".repeat(61));
            }),
            &["travellers[0].first_name", "travellers[0].last_name"],
        ),
        (
            with(good.clone(), |r| r["payment_token"] = json!("")),
            &["payment_token"],
        ),
        (
            with(good.clone(), |r| {
                r["travellers"][0]["type"] = json!("child");
                r["travellers"][0]["date_of_birth"] = Value::Null;
            }),
            &["travellers[0].date_of_birth"],
        ),
        // Born in 1990: not a child on the day of travel.
        (
            with(good.clone(), |r| r["travellers"][0]["type"] = json!("child")),
            &["travellers[0].type"],
        ),
        (
            with(good.clone(), |r| r["travellers"][0]["date_of_birth"] = json!(day(40))),
            &["travellers[0].date_of_birth"],
        ),
        // 1800 for 1980: nobody travels at 226.
        (
            with(good.clone(), |r| {
                r["travellers"][0]["date_of_birth"] = json!("1800-01-01")
            }),
            &["travellers[0].date_of_birth"],
        ),
        // A right-to-left override or a zero-width space would change how the name reads on a ticket.
        (
            with(good.clone(), |r| {
                r["travellers"][0]["first_name"] = json!("Ann\u{202e}eeL");
                r["travellers"][0]["last_name"] = json!("Le\u{200b}e");
            }),
            &["travellers[0].first_name", "travellers[0].last_name"],
        ),
        // A last name of punctuation only could never be looked up.
        (
            with(good.clone(), |r| r["travellers"][0]["last_name"] = json!("--")),
            &["travellers[0].last_name"],
        ),
        // A child alone in a hotel room: no room is let to children without an adult.
        (
            with(good.clone(), |r| {
                r["travellers"][0]["type"] = json!("child");
                r["travellers"][0]["date_of_birth"] = json!(day(-365 * 9));
            }),
            &["travellers"],
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(fields(attempt(&world, request).await), expected);
    }
    // A party of none, or too many, is a bad item (not one traveller too many), named with everything else wrong.
    let nobody = request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 0)], json!([]));
    assert_eq!(fields(attempt(&world, nobody).await), ["travellers", "items[0].guests"]);
    let crowd = request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 37)], adults(1));
    assert_eq!(fields(attempt(&world, crowd).await), ["items[0].guests"]);
    let no_passengers = request(vec![world.flight(10, "Y", 0, 0, 0)], adults(1));
    assert_eq!(fields(attempt(&world, no_passengers).await), ["items[0].passengers"]);
    let seven = request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 1); 7], adults(1));
    assert_eq!(fields(attempt(&world, seven).await), ["items"]);
    let flight_without_birth_date = request(
        vec![world.flight(10, "Y", 1, 0, 0)],
        json!([{"first_name": "Ann", "last_name": "Lee", "type": "adult"}]),
    );
    assert_eq!(
        fields(attempt(&world, flight_without_birth_date).await),
        ["travellers[0].date_of_birth"]
    );
    // A flight of no departures is named with everything else wrong, not left for the catalog to find later.
    let mut nowhere = world.flight(10, "Y", 1, 0, 0);
    nowhere["departure_ids"] = json!([]);
    let nowhere_without_birth_date = request(
        vec![nowhere],
        json!([{"first_name": "Ann", "last_name": "Lee", "type": "adult"}]),
    );
    assert_eq!(
        fields(attempt(&world, nowhere_without_birth_date).await),
        ["items[0].departure_ids", "travellers[0].date_of_birth"]
    );
    let problem = Problem::from(Error::Invalid(vec![]));
    assert_eq!(
        (problem.status.as_u16(), problem.code.as_ref()),
        (422, "invalid_fields")
    );
    assert_eq!(n_bookings(&pool).await, 0);
}

/// A basket dearer than one authorization may be is refused up front, naming the items, instead of becoming a
/// booking that fails at the payment with nothing said about why.
async fn a_total_one_payment_cannot_take_is_refused_before_anything_is_written(pool: Pool) {
    let stay = |world: &World| request(vec![world.stay(world.hotel.flexible, 10, 3, 1, 1)], adults(1));
    let world = world(pool.clone()).await;
    let quoted = attempt(&world, stay(&world)).await.unwrap().total_minor;
    let tight = world_with(
        pool.clone(),
        phoenix_booking::Options {
            max_total_minor: quoted - 1,
            ..quick()
        },
    )
    .await;
    let refused = attempt(&tight, stay(&tight)).await;
    match &refused {
        Err(Error::Invalid(errors)) => {
            assert_eq!(errors[0].field, "items");
            assert!(
                errors[0].message.contains(&(quoted - 1).to_string()),
                "{}",
                errors[0].message
            );
        }
        other => panic!("expected the items refused, got {other:?}"),
    }
    assert_eq!(n_bookings(&pool).await, 1, "only the first, affordable one");
    let just = world_with(
        pool.clone(),
        phoenix_booking::Options {
            max_total_minor: quoted,
            ..quick()
        },
    )
    .await;
    attempt(&just, stay(&just)).await.unwrap();
}

/// A basket that comes to less than half a minor unit in the currency asked for would be a booking with nothing to
/// pay, which no card payment can authorize: refused up front, naming the items.
async fn a_total_of_nothing_is_refused_before_anything_is_written(pool: Pool) {
    let world = world(pool.clone()).await;
    world
        .catalog
        .set_fx_rate(&admin(), "EUR", "KWD", "0.0000001")
        .await
        .unwrap();
    let night = || request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], adults(1));
    let in_dinars = BookingRequest {
        currency: Some("KWD".into()),
        ..night()
    };
    match attempt(&world, in_dinars).await {
        Err(Error::Invalid(errors)) => {
            assert_eq!(errors[0].field, "items");
            assert!(errors[0].message.contains("nothing in KWD"), "{}", errors[0].message);
        }
        other => panic!("expected the items refused, got {other:?}"),
    }
    assert_eq!(n_bookings(&pool).await, 0);
    attempt(&world, night()).await.unwrap();
}

/// An infant who turns two between the flight out and the flight home needs a seat on the second: no single type
/// fits the whole booking, and the type is checked on each day of travel, not only the first.
async fn a_traveller_is_of_their_type_on_every_day_of_travel(pool: Pool) {
    let world = world(pool.clone()).await;
    let born = day(12).0 - time::Duration::days(731);
    let party = json!([
        {"first_name": "Ann", "last_name": "Lee", "type": "adult", "date_of_birth": "1990-04-02"},
        {"first_name": "Kim", "last_name": "Lee", "type": "infant", "date_of_birth": born.to_string()},
    ]);
    let both_ways = request(
        vec![world.flight(10, "Y", 1, 0, 1), world.flight(14, "Y", 1, 0, 1)],
        party.clone(),
    );
    match attempt(&world, both_ways).await {
        Err(Error::Invalid(errors)) => {
            assert_eq!(errors[0].field, "travellers[1].type");
            assert!(
                errors[0].message.contains(&format!("child on {}", day(14).0)),
                "{}",
                errors[0].message
            );
        }
        other => panic!("expected the infant refused on the way home, got {other:?}"),
    }
    assert_eq!(n_bookings(&pool).await, 0);
    attempt(&world, request(vec![world.flight(10, "Y", 1, 0, 1)], party))
        .await
        .unwrap();
}

async fn travellers_must_match_the_party_of_every_item(pool: Pool) {
    let world = world(pool.clone()).await;
    let mismatched = |result: Result<_, Error>| {
        assert!(matches!(result, Err(Error::TravellerMismatch { .. })), "{result:?}");
    };
    mismatched(
        attempt(
            &world,
            request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 2)], adults(1)),
        )
        .await,
    );
    mismatched(
        attempt(
            &world,
            request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], adults(2)),
        )
        .await,
    );
    // The largest party decides: two guests in the room, two flying.
    let family = json!([
        {"first_name": "Ann", "last_name": "Lee", "type": "adult", "date_of_birth": "1990-04-02"},
        {"first_name": "Kim", "last_name": "Lee", "type": "child", "date_of_birth": day(-365 * 6)},
    ]);
    let package = vec![
        world.stay(world.hotel.flexible, 10, 1, 1, 2),
        world.flight(10, "Y", 2, 0, 0),
    ];
    mismatched(attempt(&world, request(package, family.clone())).await);
    let problem = Problem::from(Error::TravellerMismatch { detail: String::new() });
    assert_eq!(
        (problem.status.as_u16(), problem.code.as_ref()),
        (422, "traveller_count_mismatch")
    );
    assert_eq!(n_bookings(&pool).await, 0);
    let package = vec![
        world.stay(world.hotel.flexible, 10, 1, 1, 2),
        world.flight(10, "Y", 1, 1, 0),
    ];
    let booked = attempt(&world, request(package, family)).await.unwrap();
    assert_eq!(booked.travellers.len(), 2);
}

async fn a_card_number_is_never_taken_as_a_payment_token(pool: Pool) {
    let world = world(pool.clone()).await;
    for card in ["4242424242424242", "4242 4242 4242 4242", "4242-4242-4242-4242"] {
        // Everything else is wrong too: the card number is what the client must hear about.
        let mut bad = request(vec![], json!([]));
        bad.payment_token = card.to_owned();
        assert!(matches!(attempt(&world, bad).await, Err(Error::CardNumberNotAllowed)));
    }
    // Nor as a traveller's name, which travels in events and notifications.
    let named = request(
        vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)],
        json!([{"first_name": "4242 4242 4242 4242", "last_name": "Lee", "type": "adult"}]),
    );
    assert_eq!(fields(attempt(&world, named).await), ["travellers[0].first_name"]);
    let problem = Problem::from(Error::CardNumberNotAllowed);
    assert_eq!(
        (problem.status.as_u16(), problem.code.as_ref()),
        (422, "card_number_not_allowed")
    );
    assert!(!problem.to_string().contains("4242"));
    assert_eq!(n_bookings(&pool).await, 0);
}

async fn the_catalogs_refusals_pass_through_unchanged(pool: Pool) {
    let world = world(pool.clone()).await;
    let catalog = |result: Result<_, Error>| match result {
        Err(Error::Catalog(problem)) => (problem.status.as_u16(), problem.code.to_string()),
        other => panic!("expected the catalog's problem, got {other:?}"),
    };
    let mut unknown = world.stay(world.hotel.flexible, 10, 1, 1, 1);
    unknown["rate_plan_id"] = json!(Uuid::now_v7());
    assert_eq!(catalog(attempt(&world, request(vec![unknown], adults(1))).await).0, 422);
    let mut forged = world.stay(world.hotel.flexible, 10, 1, 1, 1);
    forged["offer_id"] = json!("ofr_eyJub3QiOiJzaWduZWQifQ.AAAA");
    assert_eq!(catalog(attempt(&world, request(vec![forged], adults(1))).await).0, 422);
    // Five rooms of a hotel that has four.
    let too_many = world.stay(world.hotel.flexible, 10, 1, 5, 5);
    assert_eq!(
        catalog(attempt(&world, request(vec![too_many], adults(5))).await),
        (409, "unavailable".to_owned())
    );
    assert_eq!(n_bookings(&pool).await, 0);
}

async fn only_agents_partners_and_admins_book_for_someone_else(pool: Pool) {
    let world = world(pool.clone()).await;
    let someone = world.user(&[Role::Customer], None).await.user_id;
    let mut body = request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], adults(1));
    body.customer_id = Some(someone);
    let refused = world.booking.create(&customer(), body.clone(), &key()).await;
    assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
    assert_eq!(Problem::from(Error::Forbidden("x")).status.as_u16(), 403);
    let support = world.booking.create(&support(), body.clone(), &key()).await;
    assert!(
        matches!(support, Err(Error::Forbidden(_))),
        "support reads, it does not book"
    );
    let desk = agent(Uuid::now_v7());
    let made = world.booking.create(&desk, body.clone(), &key()).await.unwrap().booking;
    assert_eq!((made.customer_id, made.created_by), (someone, desk.user_id));
    assert_eq!(made.organization_id, desk.organization_id);
    let partner = principal(&[Role::Partner], Some(Uuid::now_v7()));
    let made = world.booking.create(&partner, body, &key()).await.unwrap().booking;
    assert_eq!(made.customer_id, someone);
}

async fn an_agent_books_only_for_the_public_and_their_own_organization(pool: Pool) {
    let world = world(pool.clone()).await;
    let agency = world.organization(OrganizationKind::Agency).await;
    let rival = world.organization(OrganizationKind::Agency).await;
    let desk = world.user(&[Role::Agent], Some(agency)).await;
    let colleague = world.user(&[Role::Agent], Some(agency)).await;
    let rivals_staff = world.user(&[Role::Agent], Some(rival)).await;
    let for_whom = |customer_id: Uuid| {
        let mut body = request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], adults(1));
        body.customer_id = Some(customer_id);
        body
    };
    // No such user, and a rival agency's staff: the same refusal (it does not tell them apart), nothing written.
    for stranger in [Uuid::now_v7(), rivals_staff.user_id] {
        let refused = world.booking.create(&desk, for_whom(stranger), &key()).await;
        assert_eq!(fields(refused.map(|c| c.booking)), ["customer_id"]);
    }
    let partner = world.user(&[Role::Partner], Some(agency)).await;
    let refused = world
        .booking
        .create(&partner, for_whom(rivals_staff.user_id), &key())
        .await;
    assert_eq!(fields(refused.map(|c| c.booking)), ["customer_id"]);
    assert_eq!(n_bookings(&pool).await, 0);
    // A colleague, and for an admin anyone who exists.
    let made = world
        .booking
        .create(&desk, for_whom(colleague.user_id), &key())
        .await
        .unwrap()
        .booking;
    assert_eq!(
        (made.customer_id, made.organization_id),
        (colleague.user_id, Some(agency))
    );
    let made = world
        .booking
        .create(&admin(), for_whom(rivals_staff.user_id), &key())
        .await
        .unwrap()
        .booking;
    assert_eq!(made.customer_id, rivals_staff.user_id);
    let refused = world.booking.create(&admin(), for_whom(Uuid::now_v7()), &key()).await;
    assert_eq!(fields(refused.map(|c| c.booking)), ["customer_id"]);
}

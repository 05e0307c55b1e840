//! Booking end to end over HTTP, on SQLite and on PostgreSQL: hotel, flight and package bookings confirmed through
//! the saga, declined cards undone, idempotent retries, cancellations refunded by policy, and isolation between
//! customers and organizations. Money is checked at the payment service and units at inventory, not only in the
//! booking's own answer.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Api, Reply, TestApp};

/// Runs one scenario on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = crate::common::spawn_with(crate::common::config()).await;
                    super::$name(&app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let databases = crate::common::PostgresDatabases::new();
                    let mut config = crate::common::config();
                    config.database_url = Some(phoenix::config::Secret::new(databases.url.clone()));
                    let app = crate::common::spawn_with(config).await;
                    super::$name(&app).await;
                }
            )*
        }
    };
}

on_both_backends!(
    hotel_booking_confirms_and_cancelling_before_the_deadline_refunds_in_full,
    flight_and_package_bookings_hold_everything_or_nothing,
    a_declined_card_fails_the_booking_and_releases_the_hold,
    the_same_request_three_times_or_five_at_once_books_and_charges_once,
    customers_and_organizations_never_see_each_others_bookings,
    bad_booking_input_is_a_problem_naming_the_cause,
    cancelling_after_the_deadline_charges_the_fee_and_non_refundable_refunds_nothing,
    support_refunds_in_full_when_the_supplier_calls_the_trip_off,
    a_cancellation_after_a_direct_refund_returns_only_what_is_left,
    a_bookings_units_go_back_only_with_the_booking,
    a_bookings_events_carry_the_trace_of_the_request_that_made_it,
);

pub fn date(days: i64) -> String {
    (time::OffsetDateTime::now_utc().date() + time::Duration::days(days)).to_string()
}

/// What the scenarios book: a hotel with a flexible and a non-refundable plan, an airline with a daily flight.
pub struct World {
    pub admin: String,
    pub hotel_id: String,
    pub room_type_id: String,
    pub flexible_plan: String,
    pub strict_plan: String,
}

/// Sets up a hotel chain with one hotel (4 double rooms; 80.00 a night from day 1 to day 30).
pub async fn world(app: &Api, admin: String) -> World {
    let (_, ops) = app.operator(&admin, "ops@harbour.example", "hotel_chain").await;
    let made = app
        .post(
            "/api/v1/catalog/hotels",
            Some(&ops),
            json!({
                "name": "Hotel du Port", "address": "2 Quai", "city": "Marseille", "country": "FR",
                "latitude": 43.2965, "longitude": 5.3698, "stars": 3, "amenities": ["free_wifi"],
                "time_zone": "Europe/Paris"
            }),
        )
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    let hotel_id = made.body["id"].as_str().unwrap().to_owned();
    let room = app
        .post(
            &format!("/api/v1/catalog/hotels/{hotel_id}/room-types"),
            Some(&ops),
            json!({"name": "Double", "max_occupancy": 2, "beds": "1 double", "rooms": 4}),
        )
        .await;
    assert_eq!(room.status, 201, "{room:?}");
    let room_type_id = room.body["id"].as_str().unwrap().to_owned();
    let mut plans = Vec::new();
    for (name, refundable, hours) in [("Flexible", true, Some(72)), ("Saver", false, None)] {
        let plan = app
            .post(
                &format!("/api/v1/catalog/hotels/{hotel_id}/rate-plans"),
                Some(&ops),
                json!({"room_type_id": room_type_id, "name": name, "meal_plan": "breakfast",
                       "refundable": refundable, "free_cancellation_hours": hours, "currency": "EUR"}),
            )
            .await;
        assert_eq!(plan.status, 201, "{plan:?}");
        let plan_id = plan.body["id"].as_str().unwrap().to_owned();
        let prices = app
            .call(
                Method::PUT,
                &format!("/api/v1/catalog/hotels/{hotel_id}/rate-plans/{plan_id}/prices"),
                Some(&ops),
                Some(json!({"from": date(0), "to": date(30), "amount_minor": 8_000})),
            )
            .await;
        assert_eq!(prices.status, 200, "{prices:?}");
        plans.push(plan_id);
    }
    World {
        admin,
        hotel_id,
        room_type_id,
        flexible_plan: plans[0].clone(),
        strict_plan: plans[1].clone(),
    }
}

impl World {
    pub fn stay(&self, plan: &str, from: i64, nights: i64, rooms: u32, guests: u32) -> Value {
        json!({
            "kind": "hotel", "hotel_id": self.hotel_id, "room_type_id": self.room_type_id, "rate_plan_id": plan,
            "check_in": date(from), "check_out": date(from + nights), "rooms": rooms, "guests": guests
        })
    }
}

pub fn travellers(n: usize) -> Value {
    let names = ["Lee", "Okafor", "Silva", "Novak"];
    Value::Array(
        (0..n)
            .map(|i| {
                json!({"first_name": "Ann", "last_name": names[i % names.len()], "type": "adult",
                            "date_of_birth": "1990-04-02"})
            })
            .collect(),
    )
}

pub fn booking(items: Vec<Value>, n_travellers: usize, token: &str) -> Value {
    json!({
        "items": items,
        "travellers": travellers(n_travellers),
        "contact": {"email": "ann@example.com", "phone": "+33 6 12 34 56 78"},
        "payment_token": token,
    })
}

/// The sagas of a booking once each has saved its last step (which it does just after booking has recorded the
/// outcome a client sees).
pub async fn finished_sagas(app: &Api, admin: &str, booking_id: &str) -> crate::common::Reply {
    let path = format!("/api/v1/sagas?booking_id={booking_id}");
    for _ in 0..250 {
        let sagas = app.get(&path, Some(admin)).await;
        let states = sagas.body["items"].as_array().cloned().unwrap_or_default();
        if !states.is_empty()
            && states
                .iter()
                .all(|s| matches!(s["state"].as_str(), Some("completed" | "compensated")))
        {
            return sagas;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the sagas of booking {booking_id} did not finish");
}

/// Books `items` for `n_travellers` as `customer`, paying with `token`, under a fresh idempotency key.
pub async fn book(app: &Api, customer: &str, items: Vec<Value>, n_travellers: usize, token: &str) -> Reply {
    app.post_keyed(
        "/api/v1/bookings",
        Some(customer),
        &key(),
        booking(items, n_travellers, token),
    )
    .await
}

/// Books one room for one night, ten days from now, with a good card, and checks it was confirmed at once.
pub async fn book_a_confirmed_night(app: &Api, customer: &str, world: &World) -> Reply {
    let made = book(
        app,
        customer,
        vec![world.stay(&world.flexible_plan, 10, 2, 1, 1)],
        1,
        "tok_visa",
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    assert_eq!(made.body["status"], "confirmed");
    made
}

pub fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Counters of the bucket of one night of the world's room type, as inventory reports them.
pub async fn night(app: &Api, world: &World, from: i64) -> Value {
    let items = app
        .post(
            "/api/v1/inventory/availability",
            Some(&world.admin),
            json!({"item_ids": [phoenix_catalog::hotel::room_item(
                world.room_type_id.parse().unwrap(),
                time::OffsetDateTime::now_utc().date() + time::Duration::days(from),
            )]}),
        )
        .await;
    assert_eq!(items.status, 200, "{items:?}");
    items.body["items"][0].clone()
}

async fn hotel_booking_confirms_and_cancelling_before_the_deadline_refunds_in_full(app: &TestApp) {
    let world = world(app, app.admin().await).await;
    let (_, ann) = app.customer("ann@example.com").await;
    let made = book(
        app,
        &ann,
        vec![world.stay(&world.flexible_plan, 10, 3, 1, 2)],
        2,
        "tok_visa",
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    let booking = &made.body;
    assert_eq!(booking["status"], "confirmed");
    let locator = booking["locator"].as_str().unwrap();
    assert_eq!(locator.len(), 6);
    assert!(locator.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    let total = booking["total_minor"].as_i64().unwrap();
    assert!(total >= 24_000, "three nights of 80.00 plus taxes: {booking:?}");
    for from in 10..13 {
        assert_eq!(night(app, &world, from).await["sold"], 1);
    }

    let id = booking["id"].as_str().unwrap();
    let payment_id = booking["payment_id"].as_str().unwrap();
    let payment = app
        .get(&format!("/api/v1/payments/{payment_id}"), Some(&world.admin))
        .await;
    assert_eq!(payment.body["status"], "captured", "{payment:?}");
    assert_eq!(payment.body["captured_minor"], total);

    let fetched = app.get(&format!("/api/v1/bookings/{id}"), Some(&ann)).await;
    assert_eq!(fetched.body["locator"], locator);
    let history: Vec<&str> = fetched.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["pending", "confirmed"]);
    let found = app
        .get(
            &format!(
                "/api/v1/bookings/lookup?locator={}&last_name=lee",
                locator.to_lowercase()
            ),
            None,
        )
        .await;
    assert_eq!(found.status, 200, "{found:?}");
    assert_eq!(found.body["id"], id);
    app.get(
        &format!("/api/v1/bookings/lookup?locator={locator}&last_name=Smith"),
        None,
    )
    .await
    .assert_problem(404, "not_found");

    let cancelled = cancel(app, &ann, id, json!({"reason": "plans changed"})).await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["refunded_minor"], total);
    let payment = app
        .get(&format!("/api/v1/payments/{payment_id}"), Some(&world.admin))
        .await;
    assert_eq!(payment.body["refunded_minor"], total, "{payment:?}");
    for from in 10..13 {
        assert_eq!(night(app, &world, from).await["sold"], 0);
    }
}

async fn cancelling_after_the_deadline_charges_the_fee_and_non_refundable_refunds_nothing(app: &TestApp) {
    let world = world(app, app.admin().await).await;
    let (_, ann) = app.customer("ann@example.com").await;
    // Check-in in two days: the flexible plan's 72 hours of free cancellation are already over.
    let late = book(
        app,
        &ann,
        vec![world.stay(&world.flexible_plan, 2, 2, 1, 1)],
        1,
        "tok_visa",
    )
    .await;
    assert_eq!(late.status, 201, "{late:?}");
    let total = late.body["total_minor"].as_i64().unwrap();
    let fee = late.body["items"][0]["cancellation"]["fee_minor"].as_i64().unwrap();
    assert!(fee > 0 && fee < total, "{late:?}");
    let id = late.body["id"].as_str().unwrap();
    let cancelled = cancel(app, &ann, id, json!({"reason": "ill"})).await;
    assert_eq!(cancelled.body["status"], "cancelled", "{cancelled:?}");
    assert_eq!(cancelled.body["refunded_minor"], total - fee);

    let strict = confirmed_stay(app, &ann, world.stay(&world.strict_plan, 20, 1, 1, 1)).await;
    let (id, payment_id) = (&strict.id, &strict.payment_id);
    let cancelled = cancel(app, &ann, id, json!({"reason": "ill"})).await;
    assert_eq!(cancelled.body["status"], "cancelled", "{cancelled:?}");
    assert_eq!(cancelled.body["refunded_minor"], 0);
    let payment = app
        .get(&format!("/api/v1/payments/{payment_id}"), Some(&world.admin))
        .await;
    assert_eq!(payment.body["refunded_minor"], 0);
    assert_eq!(
        night(app, &world, 20).await["sold"],
        0,
        "the room returns to stock all the same"
    );
}

/// A non-refundable stay the hotel cannot honour: the traveller may not waive the terms, support may (with a reason),
/// and then everything paid comes back, by the provider's own books.
async fn support_refunds_in_full_when_the_supplier_calls_the_trip_off(app: &TestApp) {
    let world = world(app, app.admin().await).await;
    let (_, ann) = app.customer("ann@example.com").await;
    let strict = confirmed_stay(app, &ann, world.stay(&world.strict_plan, 20, 1, 1, 1)).await;
    let (id, total, payment_id) = (&strict.id, strict.total, &strict.payment_id);
    let waive = |reason: Option<&str>| json!({"reason": reason, "waive_fees": true});

    let refused = cancel(app, &ann, id, waive(Some("the hotel closed"))).await;
    assert_eq!(
        (refused.status.as_u16(), refused.body["code"].as_str()),
        (403, Some("forbidden"))
    );
    let desk = app.support(&world.admin, "desk@example.com").await;
    let refused = cancel(app, &desk, id, waive(None)).await;
    assert_eq!(refused.status, 422, "{refused:?}");
    assert_eq!(refused.body["errors"][0]["field"], "reason");
    let booking = app.get(&format!("/api/v1/bookings/{id}"), Some(&ann)).await;
    assert_eq!(booking.body["status"], "confirmed", "the refusals changed nothing");

    let cancelled = cancel(app, &desk, id, waive(Some("the hotel closed for works"))).await;
    assert_eq!(cancelled.body["status"], "cancelled", "{cancelled:?}");
    assert_eq!(cancelled.body["refunded_minor"], total);
    let cancellation = &cancelled.body["cancellation"];
    assert_eq!(
        (
            cancellation["fees_waived"].as_bool(),
            cancellation["fee_minor"].as_i64()
        ),
        (Some(true), Some(0))
    );
    let payment = app
        .get(&format!("/api/v1/payments/{payment_id}"), Some(&world.admin))
        .await;
    assert_eq!(payment.body["refunded_minor"], total);
    let refunds = refunds_in_ledger(app).await;
    assert_eq!(refunds, [total], "the provider paid it all back, once");
    assert_eq!(night(app, &world, 20).await["sold"], 0);
}

/// Support refunded part of a booking's payment directly (goodwill): the booking shows it. Then the traveller
/// cancels inside the free period: the cancellation returns what is left, never more than was paid, and the booking
/// ends cancelled.
async fn a_cancellation_after_a_direct_refund_returns_only_what_is_left(app: &TestApp) {
    let world = world(app, app.admin().await).await;
    let (_, ann) = app.customer("ann@example.com").await;
    let booked = confirmed_stay(app, &ann, world.stay(&world.flexible_plan, 20, 2, 1, 1)).await;
    let (id, total, payment_id) = (&booked.id, booked.total, &booked.payment_id);
    let goodwill = app
        .post_keyed(
            &format!("/api/v1/payments/{payment_id}/refund"),
            Some(&world.admin),
            "goodwill-1",
            json!({"amount_minor": 3_000, "reason": "noisy room"}),
        )
        .await;
    assert_eq!(goodwill.status, 200, "{goodwill:?}");
    // The booking follows its payment's refund (through payment's event), for its customer to see.
    let followed = app
        .until(
            &format!("/api/v1/bookings/{id}"),
            &ann,
            "the booking shows the goodwill refund",
            |b| b["refunded_minor"] == 3_000,
        )
        .await;
    assert_eq!(followed["status"], "confirmed", "a refund is not a cancellation");

    let cancelled = cancel(app, &ann, id, json!({"reason": "plans changed"})).await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    assert_eq!(cancelled.body["status"], "cancelled");
    let cancellation = &cancelled.body["cancellation"];
    assert_eq!(cancellation["policy_refund_minor"], total, "the policy's refund");
    assert_eq!(
        cancellation["refund_minor"],
        total - 3_000,
        "what the cancellation returned"
    );
    assert_eq!(cancellation["refunded_before_minor"], 3_000);
    assert_eq!(cancellation["fee_minor"], 0);
    assert_eq!(cancelled.body["refunded_minor"], total, "all the card got back");
    let payment = app
        .get(&format!("/api/v1/payments/{payment_id}"), Some(&world.admin))
        .await;
    assert_eq!(
        (payment.body["status"].as_str(), payment.body["refunded_minor"].as_i64()),
        (Some("refunded"), Some(total))
    );
    let refunds = refunds_in_ledger(app).await;
    assert_eq!(refunds, [3_000, total - 3_000]);
    assert_eq!(night(app, &world, 20).await["sold"], 0);
}

/// The hold a booking made is the booking's: releasing (or confirming) it through inventory's own API is refused
/// even to those who may hold inventory there, so the units cannot go back on sale while the booking stands;
/// cancelling the booking returns them.
async fn a_bookings_units_go_back_only_with_the_booking(app: &TestApp) {
    let world = world(app, app.admin().await).await;
    let (_, ann) = app.customer("ann@example.com").await;
    let booked = confirmed_stay(app, &ann, world.stay(&world.flexible_plan, 20, 1, 1, 1)).await;
    let (id, hold_id) = (&booked.id, &booked.hold_id);
    let hold = app
        .get(&format!("/api/v1/inventory/holds/{hold_id}"), Some(&world.admin))
        .await;
    assert_eq!(
        (hold.body["status"].as_str(), hold.body["managed"].as_bool()),
        (Some("confirmed"), Some(true))
    );
    for action in ["release", "confirm"] {
        app.post(
            &format!("/api/v1/inventory/holds/{hold_id}/{action}"),
            Some(&world.admin),
            json!({}),
        )
        .await
        .assert_problem(409, "hold_managed");
    }
    assert_eq!(night(app, &world, 20).await["sold"], 1, "still sold to the booking");

    let cancelled = cancel(app, &ann, id, json!({"reason": "plans changed"})).await;
    assert_eq!(cancelled.body["status"], "cancelled", "{cancelled:?}");
    assert_eq!(night(app, &world, 20).await["sold"], 0);
}

/// Asks for booking `id` to be cancelled, as `token`, with `body` (`reason`, `waive_fees`).
async fn cancel(app: &TestApp, token: &str, id: &str, body: Value) -> Reply {
    let path = format!("/api/v1/bookings/{id}/cancel");
    app.call(Method::PUT, &path, Some(token), Some(body)).await
}

/// A booking confirmed at once (201).
struct Confirmed {
    id: String,
    total: i64,
    payment_id: String,
    hold_id: String,
}

/// Books one stay for one adult as `token`, with a good card, and expects it confirmed.
async fn confirmed_stay(app: &TestApp, token: &str, stay: Value) -> Confirmed {
    let made = book(app, token, vec![stay], 1, "tok_visa").await;
    assert_eq!(made.status, 201, "{made:?}");
    let text = |name: &str| made.body[name].as_str().unwrap().to_owned();
    Confirmed {
        id: text("id"),
        total: made.body["total_minor"].as_i64().unwrap(),
        payment_id: text("payment_id"),
        hold_id: text("hold_id"),
    }
}

/// The refunds the simulated provider's own ledger holds, oldest first.
async fn refunds_in_ledger(app: &TestApp) -> Vec<i64> {
    let ledger = app.simulator().ledger().await.unwrap();
    ledger
        .into_iter()
        .filter(|entry| entry.kind == phoenix_payment::provider::simulated::EntryKind::Refund)
        .map(|entry| entry.amount_minor)
        .collect()
}

/// An airline flying Paris to Nice every day at 09:00 with 3 economy seats (fares Y refundable, Q not);
/// returns the day's departure id for `day`.
async fn airline(app: &Api, admin: &str, day: i64) -> String {
    let (org, ops) = app.operator(admin, "ops@px.example", "airline").await;
    let airline = app
        .post(
            "/api/v1/catalog/airlines",
            Some(admin),
            json!({"code": "PX", "name": "Phoenix Air", "organization_id": org}),
        )
        .await;
    assert_eq!(airline.status, 201, "{airline:?}");
    let fare = |code: &str, price: i64, refundable: bool| {
        json!({"code": code, "price_minor": price, "refundable": refundable, "change_fee_minor": 0,
               "baggage_pieces": 1, "booking_limit": 3})
    };
    let schedule = app
        .post(
            "/api/v1/catalog/schedules",
            Some(&ops),
            json!({"airline": "PX", "flight_number": "PX10", "origin": "CDG", "destination": "NCE",
                   "departure_time": "09:00", "duration_minutes": 80, "days": [1, 2, 3, 4, 5, 6, 7],
                   "effective_from": date(1), "effective_to": date(30), "currency": "EUR",
                   "cabins": [{"cabin": "economy", "seats": 3, "overbooking_limit": 0,
                               "fares": [fare("Y", 12_000, true), fare("Q", 6_000, false)]}]}),
        )
        .await;
    assert_eq!(schedule.status, 201, "{schedule:?}");
    let found = app
        .get(
            &format!("/api/v1/search/flights?origin=CDG&destination=NCE&date={}", date(day)),
            None,
        )
        .await;
    assert_eq!(found.status, 200, "{found:?}");
    found.body["outbound"][0]["segments"][0]["departure_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn flight(departure_id: &str, fare: &str, adults: u32) -> Value {
    json!({"kind": "flight", "departure_ids": [departure_id], "cabin": "economy", "fare_codes": [fare],
           "passengers": {"adults": adults, "children": 0, "infants": 0}})
}

/// Counters of an inventory bucket.
async fn bucket(app: &Api, admin: &str, item_id: &str) -> (i64, i64) {
    let found = app
        .post(
            "/api/v1/inventory/availability",
            Some(admin),
            json!({"item_ids": [item_id]}),
        )
        .await;
    let item = &found.body["items"][0];
    (item["held"].as_i64().unwrap(), item["sold"].as_i64().unwrap())
}

async fn flight_and_package_bookings_hold_everything_or_nothing(app: &TestApp) {
    let world = world(app, app.admin().await).await;
    let departure = airline(app, &world.admin, 10).await;
    let seats = format!("seat:{departure}:economy");
    let (_, ann) = app.customer("ann@example.com").await;

    let flown = book(app, &ann, vec![flight(&departure, "Y", 2)], 2, "tok_visa").await;
    assert_eq!(flown.status, 201, "{flown:?}");
    assert_eq!(flown.body["items"][0]["kind"], "flight");
    assert_eq!(bucket(app, &world.admin, &seats).await, (0, 2));
    assert_eq!(bucket(app, &world.admin, &format!("fare:{departure}:Y")).await, (0, 2));

    // A package: the last seat and two hotel nights, in one hold, one payment.
    let package = booking(
        vec![flight(&departure, "Q", 1), world.stay(&world.strict_plan, 10, 2, 1, 1)],
        1,
        "tok_visa",
    );
    let packed = app.post_keyed("/api/v1/bookings", Some(&ann), &key(), package).await;
    assert_eq!(packed.status, 201, "{packed:?}");
    let items = packed.body["items"].as_array().unwrap();
    let total: i64 = items.iter().map(|i| i["price_minor"].as_i64().unwrap()).sum();
    assert_eq!(
        packed.body["total_minor"], total,
        "one total for the package: {packed:?}"
    );
    let payment_id = packed.body["payment_id"].as_str().unwrap();
    let paid = app
        .get(&format!("/api/v1/payments/{payment_id}"), Some(&world.admin))
        .await;
    assert_eq!(paid.body["captured_minor"], total, "{paid:?}");
    assert_eq!(bucket(app, &world.admin, &seats).await, (0, 3));
    assert_eq!(night(app, &world, 11).await["sold"], 1);

    // The flight is full: a package with it and a free hotel night is refused whole; the night stays free.
    let refused = book(
        app,
        &ann,
        vec![
            world.stay(&world.flexible_plan, 12, 1, 1, 1),
            flight(&departure, "Y", 1),
        ],
        1,
        "tok_visa",
    )
    .await;
    // Refused by the quote (the catalog already saw the seats go) or by the hold (it had not yet): either way whole.
    assert_eq!(refused.status, 409, "{refused:?}");
    assert!(
        matches!(
            refused.body["code"].as_str(),
            Some("unavailable" | "insufficient_inventory")
        ),
        "{refused:?}"
    );
    assert_eq!(night(app, &world, 12).await["held"], 0);
    assert_eq!(night(app, &world, 12).await["sold"], 0);
    assert_eq!(bucket(app, &world.admin, &seats).await, (0, 3));

    // Five rooms for a hotel of four: nothing is held, and the answer says why.
    let too_many = book(
        app,
        &ann,
        vec![world.stay(&world.flexible_plan, 8, 2, 5, 5)],
        5,
        "tok_visa",
    )
    .await;
    too_many.assert_problem(409, "unavailable");
    assert_eq!(night(app, &world, 8).await["held"], 0);
}

async fn a_declined_card_fails_the_booking_and_releases_the_hold(app: &TestApp) {
    let world = world(app, app.admin().await).await;
    let (_, ann) = app.customer("ann@example.com").await;
    let declined = book(
        app,
        &ann,
        vec![world.stay(&world.flexible_plan, 10, 2, 1, 1)],
        1,
        "tok_decline",
    )
    .await;
    declined.assert_problem(402, "payment_declined");
    let id = declined.body["booking_id"].as_str().unwrap();
    let failed = app.get(&format!("/api/v1/bookings/{id}"), Some(&ann)).await;
    assert_eq!(failed.body["status"], "failed", "{failed:?}");
    assert_eq!(failed.body["failure"]["code"], "payment_declined");
    for from in 10..12 {
        let counters = night(app, &world, from).await;
        assert_eq!(
            (counters["held"].as_i64(), counters["sold"].as_i64()),
            (Some(0), Some(0))
        );
    }
    let sagas = finished_sagas(app, &world.admin, id).await;
    assert_eq!(sagas.body["items"][0]["state"], "compensated", "{sagas:?}");
    let steps: Vec<(&str, &str)> = sagas.body["items"][0]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("hold_inventory", "ok"),
            ("authorize_payment", "failed"),
            ("release_hold", "ok"),
            ("fail_booking", "ok")
        ]
    );
    // Support reads one saga by id; the customer may not.
    let saga_id = sagas.body["items"][0]["id"].as_str().unwrap();
    let one = app.get(&format!("/api/v1/sagas/{saga_id}"), Some(&world.admin)).await;
    assert_eq!(one.body["failure_code"], "payment_declined", "{one:?}");
    app.get(&format!("/api/v1/sagas/{saga_id}"), Some(&ann))
        .await
        .assert_problem(403, "forbidden");
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains(
            r#"phoenix_saga_steps_total{saga="booking",step="authorize_payment",direction="do",outcome="failed"}"#
        ),
        "saga metrics are exported"
    );
}

async fn the_same_request_three_times_or_five_at_once_books_and_charges_once(app: &TestApp) {
    let world = world(app, app.admin().await).await;
    let (_, ann) = app.customer("ann@example.com").await;
    let body = booking(vec![world.stay(&world.flexible_plan, 12, 1, 1, 1)], 1, "tok_visa");
    let sequential = key();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let reply = app
            .post_keyed("/api/v1/bookings", Some(&ann), &sequential, body.clone())
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        ids.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");

    let concurrent = key();
    let replies = futures::future::join_all(
        (0..5).map(|_| app.post_keyed("/api/v1/bookings", Some(&ann), &concurrent, body.clone())),
    )
    .await;
    let mut made: Vec<String> = replies
        .iter()
        .filter(|r| r.status.is_success())
        .map(|r| r.body["id"].as_str().unwrap().to_owned())
        .collect();
    for reply in replies.iter().filter(|r| !r.status.is_success()) {
        reply.assert_problem(409, "idempotency_key_in_use");
    }
    made.dedup();
    assert_eq!(made.len(), 1, "{replies:?}");
    let mine = app.get("/api/v1/bookings", Some(&ann)).await;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 2, "{mine:?}");
    assert_eq!(night(app, &world, 12).await["sold"], 2);
    app.post_keyed(
        "/api/v1/bookings",
        Some(&ann),
        &sequential,
        booking(vec![world.stay(&world.flexible_plan, 14, 1, 1, 1)], 1, "tok_visa"),
    )
    .await
    .assert_problem(422, "idempotency_key_reused");
}

async fn customers_and_organizations_never_see_each_others_bookings(app: &TestApp) {
    let world = world(app, app.admin().await).await;
    let (_, ann) = app.customer("ann@example.com").await;
    let (_, bob) = app.customer("bob@example.com").await;
    let made = book(
        app,
        &ann,
        vec![world.stay(&world.flexible_plan, 15, 1, 1, 1)],
        1,
        "tok_visa",
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    let id = made.body["id"].as_str().unwrap();
    app.get(&format!("/api/v1/bookings/{id}"), Some(&bob))
        .await
        .assert_problem(404, "not_found");
    cancel(app, &bob, id, json!({"reason": "x"}))
        .await
        .assert_problem(404, "not_found");
    let bobs = app.get("/api/v1/bookings", Some(&bob)).await;
    assert_eq!(bobs.body["items"], json!([]), "{bobs:?}");
    let support = app.get(&format!("/api/v1/bookings/{id}"), Some(&world.admin)).await;
    assert_eq!(support.status, 200);
}

async fn bad_booking_input_is_a_problem_naming_the_cause(app: &TestApp) {
    let world = world(app, app.admin().await).await;
    let (_, ann) = app.customer("ann@example.com").await;
    let post = |body: Value| {
        let ann = ann.clone();
        async move { app.post_keyed("/api/v1/bookings", Some(&ann), &key(), body).await }
    };
    let mut unknown = world.stay(&world.flexible_plan, 10, 1, 1, 1);
    unknown["rate_plan_id"] = json!(uuid::Uuid::now_v7());
    let reply = post(booking(vec![unknown], 1, "tok_visa")).await;
    assert_eq!(reply.status, 422, "{reply:?}");
    let reply = post(booking(
        vec![world.stay(&world.flexible_plan, 10, 1, 1, 2)],
        1,
        "tok_visa",
    ))
    .await;
    reply.assert_problem(422, "traveller_count_mismatch");
    let reply = post(booking(
        vec![world.stay(&world.flexible_plan, 10, 1, 1, 1)],
        1,
        "4242 4242 4242 4242",
    ))
    .await;
    reply.assert_problem(422, "card_number_not_allowed");
    let reply = post(booking(
        vec![world.stay(&world.flexible_plan, 40, 1, 1, 1)],
        1,
        "tok_visa",
    ))
    .await;
    assert!(
        matches!(reply.status.as_u16(), 409 | 422),
        "no price that far out: {reply:?}"
    );
    let reply = post(booking(vec![], 1, "tok_visa")).await;
    assert_eq!(reply.status, 422, "{reply:?}");
    let reply = app
        .post("/api/v1/bookings", Some(&ann), booking(vec![], 1, "tok_visa"))
        .await;
    reply.assert_problem(400, "idempotency_key_required");
    let mut expired = world.stay(&world.flexible_plan, 10, 1, 1, 1);
    expired["offer_id"] = json!("ofr_eyJub3QiOiJzaWduZWQifQ.AAAA");
    let reply = post(booking(vec![expired], 1, "tok_visa")).await;
    assert_eq!(reply.status, 422, "{reply:?}");
    let mine = app.get("/api/v1/bookings", Some(&ann)).await;
    assert_eq!(mine.body["items"], json!([]), "nothing was written: {mine:?}");
}

/// The trace of the request that books continues through the saga, which runs outside that request: the events
/// booking and payment write for the booking (created, confirmed, authorized, captured) all carry it.
async fn a_bookings_events_carry_the_trace_of_the_request_that_made_it(app: &TestApp) {
    let world = world(app, app.admin().await).await;
    let (_, ann) = app.customer("traced@example.com").await;
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let made = app
        .http
        .post(format!("{}/api/v1/bookings", app.base))
        .bearer_auth(&ann)
        .header("idempotency-key", key())
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&booking(
            vec![world.stay(&world.flexible_plan, 10, 1, 1, 1)],
            1,
            "tok_visa",
        ))
        .send()
        .await
        .unwrap();
    let made = crate::common::read(made).await;
    assert_eq!(made.body["status"], "confirmed", "{made:?}");
    let answered = made.headers["traceparent"].to_str().unwrap();
    assert_eq!(phoenix_api::trace::trace_id(answered), Some(trace.as_str()));
    assert_events_traced(&[app], &made).await;
}

/// Asserts that the events booking, payment and inventory wrote for the booking `made` (created, confirmed;
/// authorized, captured; hold placed, confirmed), in whichever of `apps` they were written, all carry the trace of
/// the request that made it.
pub async fn assert_events_traced(apps: &[&TestApp], made: &Reply) {
    let answered = made.headers["traceparent"].to_str().unwrap();
    let trace = phoenix_api::trace::trace_id(answered)
        .expect("a traceparent")
        .to_owned();
    let subjects = [&made.body["id"], &made.body["payment_id"], &made.body["hold_id"]]
        .map(|id| id.as_str().expect("booking, payment and hold ids").to_owned());
    let mut traced = Vec::new();
    for (_, pool) in apps.iter().flat_map(|app| &app.outboxes) {
        for event in pool.events_after(0, 1_000).await.unwrap() {
            if subjects.contains(&event.subject) {
                let trace_id = event.traceparent.as_deref().and_then(phoenix_api::trace::trace_id);
                traced.push((event.event_type, trace_id.map(str::to_owned)));
            }
        }
    }
    traced.sort();
    let expected = [
        "booking.confirmed.v1",
        "booking.created.v1",
        "inventory.hold_confirmed.v1",
        "inventory.hold_created.v1",
        "payment.authorized.v1",
        "payment.captured.v1",
    ];
    assert_eq!(
        traced,
        expected.map(|event_type| (event_type.to_owned(), Some(trace.clone()))),
    );
}

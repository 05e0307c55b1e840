use phoenix_catalog::flight::{Cabin, CabinPlan, FareClass, fare_item, seat_item};
use phoenix_catalog::model::{AirlineInput, ScheduleInput};
use phoenix_catalog::search::{FlightSearch, FlightSearchResponse, FlightSort, Itinerary, connections};
use phoenix_catalog::{Error, Options};
use phoenix_db::Pool;
use uuid::Uuid;

use super::*;

phoenix_db::contract_suite!(
    phoenix_catalog::migrations(),
    [
        schedules_materialize_departures_and_buckets,
        connections_respect_the_connection_window_across_time_zones,
        a_departure_that_has_left_is_not_offered,
        an_overnight_flight_arrives_the_next_local_day,
        round_trips_return_both_ways_and_prices_follow_travellers,
        a_full_fare_class_is_skipped_and_a_full_cabin_hides_the_flight,
        bad_flight_searches_name_the_field,
        bad_schedules_name_the_field,
        a_schedule_change_never_strands_travellers_holding_seats,
        a_schedule_change_never_moves_a_booked_departure,
        a_schedule_change_a_booked_departure_cannot_take_changes_nothing,
        deactivating_a_schedule_while_holds_race_it_strands_no_one,
    ]
);

pub const DAY: i64 = 20;

pub async fn airline(world: &World, code: &str) -> Uuid {
    let org = airline_org(world).await;
    world
        .catalog
        .create_airline(
            &admin(),
            AirlineInput {
                code: code.into(),
                name: format!("{code} Airways"),
                organization_id: org,
            },
        )
        .await
        .unwrap();
    org
}

fn fares() -> Vec<FareClass> {
    [
        ("Y", 20_000, true, 10),
        ("M", 15_000, false, 5),
        ("Q", 10_000, false, 2),
    ]
    .into_iter()
    .map(|(code, price, refundable, limit)| FareClass {
        code: code.into(),
        price_minor: price,
        refundable,
        change_fee_minor: if refundable { 0 } else { 5_000 },
        baggage_pieces: u8::from(refundable),
        booking_limit: limit,
    })
    .collect()
}

pub fn schedule(number: &str, origin: &str, destination: &str, at: &str, minutes: i64) -> ScheduleInput {
    ScheduleInput {
        airline: number[..2].into(),
        flight_number: number.into(),
        origin: origin.into(),
        destination: destination.into(),
        departure_time: at.into(),
        duration_minutes: minutes,
        days: vec![1, 2, 3, 4, 5, 6, 7],
        effective_from: day(DAY - 2),
        effective_to: day(DAY + 10),
        currency: "EUR".into(),
        cabins: vec![CabinPlan {
            cabin: Cabin::Economy,
            seats: 10,
            overbooking_limit: 0,
            fares: fares(),
        }],
    }
}

pub async fn fly(world: &World, org: Uuid, number: &str, origin: &str, destination: &str, at: &str, minutes: i64) {
    world
        .catalog
        .create_schedule(&operator(org), schedule(number, origin, destination, at, minutes))
        .await
        .unwrap();
}

pub fn trip(origin: &str, destination: &str, date: i64) -> FlightSearch {
    FlightSearch {
        origin: Some(origin.into()),
        destination: Some(destination.into()),
        date: Some(day(date)),
        ..FlightSearch::default()
    }
}

pub async fn search(world: &World, query: FlightSearch) -> FlightSearchResponse {
    let value = world.catalog.search_flights(&query).await.unwrap();
    serde_json::from_slice(&value).unwrap()
}

fn numbers(itinerary: &Itinerary) -> Vec<&str> {
    itinerary.segments.iter().map(|s| s.flight_number.as_str()).collect()
}

pub fn no_fees() -> Options {
    Options {
        fees: Vec::new(),
        dynamic_pricing: phoenix_catalog::pricing::DynamicPricing::flat(),
        ..Options::default()
    }
}

pub async fn schedules_materialize_departures_and_buckets(pool: Pool) {
    let world = world(pool).await;
    let org = airline(&world, "PX").await;
    let mut input = schedule("PX10", "CDG", "LHR", "08:00", 80);
    input.days = vec![1, 5]; // Mondays and Fridays
    let made = world
        .catalog
        .create_schedule(&operator(org), input.clone())
        .await
        .unwrap();
    let expected: Vec<time::Date> = (DAY - 2..=DAY + 10)
        .map(|n| day(n).0)
        .filter(|d| matches!(d.weekday(), time::Weekday::Monday | time::Weekday::Friday))
        .collect();
    assert_eq!(made.departures, expected.len());
    for date in &expected {
        let id = format!("PX10-{date}");
        let seat = world.inventory.item(&seat_item(&id, Cabin::Economy)).await.unwrap();
        assert_eq!((seat.capacity, seat.overbooking_limit), (10, 0));
        let q = world.inventory.item(&fare_item(&id, "Q")).await.unwrap();
        assert_eq!(q.capacity, 2, "a fare bucket carries its booking limit");
        assert_eq!(q.organization_id, Some(org));
    }
    // The same flight number on the same dates from another schedule is refused.
    let twice = world.catalog.create_schedule(&operator(org), input.clone()).await;
    assert!(matches!(twice, Err(Error::Conflict("flight_exists", _))), "{twice:?}");
    // More seats: every departure's bucket grows.
    input.cabins[0].seats = 12;
    let updated = world
        .catalog
        .update_schedule(&operator(org), made.id, input)
        .await
        .unwrap();
    assert_eq!(updated.cabins[0].seats, 12);
    let id = format!("PX10-{}", expected[0]);
    assert_eq!(
        world
            .inventory
            .item(&seat_item(&id, Cabin::Economy))
            .await
            .unwrap()
            .capacity,
        12
    );
    let details = world.catalog.departure_details(&id).await.unwrap();
    assert_eq!(details.cabins[0].seats_left, 12);
    assert_eq!(
        details.cabins[0]
            .fares
            .iter()
            .map(|f| f.code.as_str())
            .collect::<Vec<_>>(),
        ["Q", "M", "Y"]
    );
    // Deactivated: gone from search and details.
    world
        .catalog
        .deactivate_schedule(&operator(org), made.id)
        .await
        .unwrap();
    assert!(matches!(
        world.catalog.departure_details(&id).await,
        Err(Error::NotFound(_))
    ));
}

/// Search offers what a quote would sell: not a departure that has left, alone or as the first leg of a connection.
/// (`search_flights` passes the clock's time; here it is set either side of the departure.)
pub async fn a_departure_that_has_left_is_not_offered(pool: Pool) {
    let world = world(pool).await;
    let org = airline(&world, "PX").await;
    fly(&world, org, "PX1", "CDG", "LHR", "08:00", 80).await;
    fly(&world, org, "PX3", "LHR", "JFK", "09:05", 480).await;
    let snapshot = world.catalog.snapshot();
    let date = day(DAY).0;
    let found = |now| {
        let direct = connections(&snapshot, "CDG", "LHR", date, 0, now).len();
        let connecting = connections(&snapshot, "CDG", "JFK", date, 1, now).len();
        (direct, connecting)
    };
    let long_ago = time::OffsetDateTime::UNIX_EPOCH;
    assert_eq!(found(long_ago), (1, 1));
    let leaves = connections(&snapshot, "CDG", "LHR", date, 0, long_ago)[0][0]
        .departure
        .departs_at;
    assert_eq!(
        found(leaves - time::Duration::seconds(1)),
        (1, 1),
        "a second before it leaves"
    );
    assert_eq!(found(leaves), (0, 0), "as it leaves");
    // The second leg alone is still offered from London until it leaves itself.
    assert_eq!(connections(&snapshot, "LHR", "JFK", date, 0, leaves).len(), 1);
}

pub async fn connections_respect_the_connection_window_across_time_zones(pool: Pool) {
    let world = world(pool).await;
    let org = airline(&world, "PX").await;
    // Paris 08:00 (UTC+1) to London, 80 minutes: lands 08:20 London time (UTC+0).
    fly(&world, org, "PX1", "CDG", "LHR", "08:00", 80).await;
    fly(&world, org, "PX2", "LHR", "JFK", "09:00", 480).await; // 40 minutes later: too short
    fly(&world, org, "PX3", "LHR", "JFK", "09:05", 480).await; // 45 minutes: the minimum
    fly(&world, org, "PX4", "LHR", "JFK", "14:20", 480).await; // 6 hours: the maximum
    fly(&world, org, "PX5", "LHR", "JFK", "14:25", 480).await; // 6 h 5 min: too long
    fly(&world, org, "PX6", "CDG", "JFK", "10:00", 510).await; // direct
    fly(&world, org, "PX7", "LHR", "FRA", "10:00", 95).await; // elsewhere
    let mut query = trip("CDG", "JFK", DAY);
    query.sort = Some(FlightSort::Duration);
    let found = search(&world, query).await;
    let mut routes: Vec<Vec<&str>> = found.outbound.iter().map(numbers).collect();
    routes.sort();
    assert_eq!(routes, vec![vec!["PX1", "PX3"], vec!["PX1", "PX4"], vec!["PX6"]]);
    // Duration order: direct (8 h 30), then the short connection, then the long one.
    assert_eq!(
        found.outbound.iter().map(|i| i.duration_minutes).collect::<Vec<_>>(),
        [510, 605, 920]
    );
    let short = &found.outbound[1];
    assert_eq!(short.connection_minutes, [45]);
    assert_eq!(short.stops, 1);
    let first = &short.segments[0];
    assert_eq!(first.departs_local.time(), time::macros::time!(08:00));
    assert_eq!(first.departs_local.offset().whole_hours(), 1);
    assert_eq!(first.arrives_local.time(), time::macros::time!(08:20));
    assert_eq!(first.arrives_local.offset().whole_hours(), 0);
    assert_eq!(first.departs_utc.offset(), time::UtcOffset::UTC);
    // New York is UTC-5 in December: 09:05 London + 8 h = 12:05 New York.
    assert_eq!(short.segments[1].arrives_local.time(), time::macros::time!(12:05));
    // Direct only.
    let mut direct = trip("CDG", "JFK", DAY);
    direct.max_stops = Some(0);
    let found = search(&world, direct).await;
    assert_eq!(found.outbound.iter().map(numbers).collect::<Vec<_>>(), [vec!["PX6"]]);
}

pub async fn an_overnight_flight_arrives_the_next_local_day(pool: Pool) {
    let world = world(pool).await;
    let org = airline(&world, "PX").await;
    // New York 21:00 (UTC-5) for 7 hours: London 09:00 the next day.
    fly(&world, org, "PX20", "JFK", "LHR", "21:00", 420).await;
    fly(&world, org, "PX21", "LHR", "CDG", "10:30", 75).await;
    let found = search(&world, trip("JFK", "CDG", DAY)).await;
    assert_eq!(found.outbound.len(), 1);
    let it = &found.outbound[0];
    assert_eq!(numbers(it), ["PX20", "PX21"]);
    let overnight = &it.segments[0];
    assert_eq!(overnight.departs_local.date(), day(DAY).0);
    assert_eq!(overnight.arrives_local.date(), day(DAY + 1).0);
    assert_eq!(overnight.arrives_local.time(), time::macros::time!(09:00));
    assert_eq!(it.connection_minutes, [90]);
    // The connecting flight leaves the day after the search date: it is that day's departure.
    assert_eq!(it.segments[1].departure_id, format!("PX21-{}", day(DAY + 1).0));
}

pub async fn round_trips_return_both_ways_and_prices_follow_travellers(pool: Pool) {
    let world = world_with(pool, no_fees()).await;
    let org = airline(&world, "PX").await;
    fly(&world, org, "PX30", "CDG", "LHR", "08:00", 80).await;
    fly(&world, org, "PX31", "LHR", "CDG", "18:00", 75).await;
    let mut query = trip("CDG", "LHR", DAY);
    query.return_date = Some(day(DAY + 3));
    query.adults = Some(2);
    query.children = Some(1);
    query.infants = Some(1);
    let found = search(&world, query).await;
    assert_eq!(found.outbound.iter().map(numbers).collect::<Vec<_>>(), [vec!["PX30"]]);
    let inbound = found.inbound.unwrap();
    assert_eq!(inbound.iter().map(numbers).collect::<Vec<_>>(), [vec!["PX31"]]);
    assert_eq!(inbound[0].segments[0].departure_id, format!("PX31-{}", day(DAY + 3).0));
    // Q (2 seats left) cannot seat three: M it is. Two adults, a child at 75 %, an infant at 10 %.
    let out = &found.outbound[0];
    assert_eq!(out.fare_codes, ["M"]);
    assert_eq!(out.price.total_minor, 15_000 * 2 + 11_250 + 1_500);
    let offer = world.catalog.verify_offer(&out.offer_id).unwrap();
    assert_eq!(offer.total.amount_minor, out.price.total_minor);
    assert_eq!(offer.details["fare_codes"][0], "M");
    assert_eq!(offer.details["kind"], "flight");
    // One passenger gets the cheapest class.
    let solo = search(&world, trip("CDG", "LHR", DAY)).await;
    assert_eq!(solo.outbound[0].fare_codes, ["Q"]);
    assert_eq!(solo.outbound[0].price.total_minor, 10_000);
    assert!(solo.inbound.is_none());
}

pub async fn a_full_fare_class_is_skipped_and_a_full_cabin_hides_the_flight(pool: Pool) {
    let world = world_with(pool, no_fees()).await;
    let org = airline(&world, "PX").await;
    fly(&world, org, "PX40", "CDG", "LHR", "08:00", 80).await;
    let id = format!("PX40-{}", day(DAY).0);
    assert_eq!(
        search(&world, trip("CDG", "LHR", DAY)).await.outbound[0].fare_codes,
        ["Q"]
    );
    // A seat in Q holds both the cabin and the fare class: one multi-line hold, twice.
    for _ in 0..2 {
        world
            .inventory
            .create_hold(
                &agent(),
                HoldRequest {
                    lines: vec![(seat_item(&id, Cabin::Economy), 1), (fare_item(&id, "Q"), 1)],
                    ttl_secs: None,
                    reference: None,
                },
                None,
            )
            .await
            .unwrap();
    }
    world.catalog.follow_inventory().await.unwrap();
    let found = search(&world, trip("CDG", "LHR", DAY)).await;
    assert_eq!(found.outbound[0].fare_codes, ["M"]);
    assert_eq!(found.outbound[0].segments[0].seats_left, 8);
    hold(&world, &seat_item(&id, Cabin::Economy), 8).await;
    world.catalog.follow_inventory().await.unwrap();
    assert!(search(&world, trip("CDG", "LHR", DAY)).await.outbound.is_empty());
    // Another cabin of the same flight was never offered: the schedule has none.
    let mut business = trip("CDG", "LHR", DAY);
    business.cabin = Some(Cabin::Business);
    assert!(search(&world, business).await.outbound.is_empty());
}

pub async fn bad_flight_searches_name_the_field(pool: Pool) {
    let world = world(pool).await;
    let bad = |query: FlightSearch| {
        let catalog = world.catalog.clone();
        async move { invalid_fields(catalog.search_flights(&query).await) }
    };
    assert_eq!(bad(trip("XXX", "LHR", DAY)).await, ["origin"]);
    assert_eq!(bad(trip("CDG", "ZZZ", DAY)).await, ["destination"]);
    assert_eq!(bad(trip("CDG", "CDG", DAY)).await, ["destination"]);
    assert_eq!(bad(trip("cdg", "cdg", DAY)).await, ["destination"]);
    let mut many = trip("CDG", "LHR", DAY);
    (many.adults, many.children) = (Some(6), Some(4));
    assert_eq!(bad(many).await, ["passengers"]);
    let mut laps = trip("CDG", "LHR", DAY);
    (laps.adults, laps.infants) = (Some(1), Some(2));
    assert_eq!(bad(laps).await, ["infants"]);
    let mut back = trip("CDG", "LHR", DAY);
    back.return_date = Some(day(DAY - 1));
    assert_eq!(bad(back).await, ["return_date"]);
    assert_eq!(bad(trip("CDG", "LHR", -5)).await, ["date"]);
    let nothing = FlightSearch {
        limit: Some(0),
        ..FlightSearch::default()
    };
    assert_eq!(bad(nothing).await, ["origin", "destination", "date", "limit"]);
    // Nine passengers are fine; lower case codes are read as codes.
    let mut nine = trip("cdg", "lhr", DAY);
    (nine.adults, nine.children) = (Some(5), Some(4));
    assert!(world.catalog.search_flights(&nine).await.is_ok());
    // Schedules name their bad fields too.
    let org = airline(&world, "PX").await;
    let mut input = schedule("PX1", "CDG", "QQQ", "25:00", 10);
    input.days = vec![0, 8];
    let refused = world.catalog.create_schedule(&operator(org), input).await;
    let fields = invalid_fields(refused);
    for field in ["departure_time", "days[0]", "days[1]", "destination"] {
        assert!(fields.contains(&field.to_owned()), "{field} in {fields:?}");
    }
}

pub async fn bad_schedules_name_the_field(pool: Pool) {
    let world = world(pool).await;
    let org = airline(&world, "PX").await;
    let bad = |input: ScheduleInput| {
        let catalog = world.catalog.clone();
        async move { invalid_fields(catalog.create_schedule(&operator(org), input).await) }
    };
    // The airline's code and one to four digits, as the document's pattern says.
    for number in ["PX12345", "PX", "QX123", "PXA12"] {
        let mut input = schedule("PX123", "CDG", "LHR", "08:00", 80);
        input.flight_number = number.into();
        assert_eq!(bad(input).await, ["flight_number"], "{number}");
    }
    for time in ["24:00", "8:00", "08:60"] {
        assert_eq!(
            bad(schedule("PX123", "CDG", "LHR", time, 80)).await,
            ["departure_time"],
            "{time}"
        );
    }
    let mut twice = schedule("PX123", "CDG", "LHR", "08:00", 80);
    twice.days = vec![1, 3, 1];
    assert_eq!(bad(twice).await, ["days[2]"]);
    assert_eq!(bad(schedule("PX123", "CDG", "XXX", "08:00", 80)).await, ["destination"]);
    assert_eq!(
        bad(schedule("PX123", "CDG", "LHR", "08:00", 19)).await,
        ["duration_minutes"]
    );
    for number in ["PX1", "PX1234"] {
        world
            .catalog
            .create_schedule(&operator(org), schedule(number, "CDG", "LHR", "08:00", 80))
            .await
            .unwrap_or_else(|e| panic!("{number}: {e:?}"));
    }
}

/// Departures (or cabins) a schedule change drops are closed in inventory, so nothing more can be sold on a flight
/// that no longer operates, and the change is refused while anyone holds seats on one: their booking would point at
/// nothing. A departure an earlier change dropped comes back with its seats when a later one brings it back.
pub async fn a_schedule_change_never_strands_travellers_holding_seats(pool: Pool) {
    let world = world(pool).await;
    let org = airline(&world, "PX").await;
    let input = schedule("PX20", "CDG", "LHR", "09:00", 80);
    let made = world
        .catalog
        .create_schedule(&operator(org), input.clone())
        .await
        .unwrap();
    let departure = |n: i64| format!("PX20-{}", day(n).0);
    let seats = |n: i64| seat_item(&departure(n), Cabin::Economy);
    let fare = |n: i64| fare_item(&departure(n), "Q");
    let travel_agent = agent();
    let booked = hold_as(&world.inventory, &travel_agent, &seats(DAY), 2).await.unwrap();

    // Ending the schedule before a departure with seats held is refused, and nothing changes.
    let mut shorter = input.clone();
    shorter.effective_to = day(DAY - 1);
    let refused = world.catalog.update_schedule(&operator(org), made.id, shorter).await;
    match &refused {
        Err(Error::Conflict("departure_booked", detail)) => {
            assert!(detail.contains(&departure(DAY)), "{detail}")
        }
        other => panic!("expected 409 departure_booked, got {other:?}"),
    }
    for n in [DAY, DAY + 1, DAY + 10] {
        let bucket = world.inventory.item(&seats(n)).await.unwrap();
        assert_eq!((bucket.capacity, bucket.overbooking_limit), (10, 0), "{}", departure(n));
        world.catalog.departure_details(&departure(n)).await.unwrap();
    }
    assert_eq!(world.inventory.item(&seats(DAY)).await.unwrap().held, 2);

    // Dropping only departures nobody holds seats on goes through: those are closed, the booked one is kept.
    let mut until_booked = input.clone();
    until_booked.effective_to = day(DAY);
    world
        .catalog
        .update_schedule(&operator(org), made.id, until_booked)
        .await
        .unwrap();
    for n in [DAY + 1, DAY + 10] {
        let bucket = world.inventory.item(&seats(n)).await.unwrap();
        assert_eq!(
            (bucket.capacity, bucket.overbooking_limit),
            (0, 0),
            "{} is closed",
            departure(n)
        );
        assert!(matches!(
            world.catalog.departure_details(&departure(n)).await,
            Err(Error::NotFound(_))
        ));
        let fare = world.inventory.item(&fare(n)).await.unwrap();
        assert_eq!(
            (fare.capacity, fare.overbooking_limit),
            (0, 0),
            "{} fares closed too",
            departure(n)
        );
    }
    let kept = world.inventory.item(&seats(DAY)).await.unwrap();
    assert_eq!((kept.capacity, kept.held), (10, 2));
    assert_eq!(world.inventory.item(&fare(DAY)).await.unwrap().capacity, 2);

    // Bringing the dates back reopens the closed departures with the schedule's seats.
    world
        .catalog
        .update_schedule(&operator(org), made.id, input.clone())
        .await
        .unwrap();
    for n in [DAY + 1, DAY + 10] {
        assert_eq!(world.inventory.item(&seats(n)).await.unwrap().capacity, 10);
        assert_eq!(
            world.inventory.item(&fare(n)).await.unwrap().capacity,
            2,
            "the Q fare's limit"
        );
        let details = world.catalog.departure_details(&departure(n)).await.unwrap();
        assert_eq!(details.cabins[0].seats_left, 10);
    }

    // Taking the whole schedule off sale is refused while the seats are held, and closes everything once released.
    let refused = world.catalog.deactivate_schedule(&operator(org), made.id).await;
    assert!(
        matches!(refused, Err(Error::Conflict("departure_booked", _))),
        "{refused:?}"
    );
    world.catalog.departure_details(&departure(DAY)).await.unwrap();
    world.inventory.release(&travel_agent, booked.id).await.unwrap();
    world
        .catalog
        .deactivate_schedule(&operator(org), made.id)
        .await
        .unwrap();
    for n in [DAY - 2, DAY, DAY + 10] {
        assert_eq!(
            world.inventory.item(&seats(n)).await.unwrap().capacity,
            0,
            "{}",
            departure(n)
        );
        assert_eq!(
            world.inventory.item(&fare(n)).await.unwrap().capacity,
            0,
            "{}",
            departure(n)
        );
    }
}

/// A change that keeps a departure's date but moves its time (or its arrival) is refused while travellers hold seats
/// on it: they booked the old time and nobody would tell them. Unbooked departures move, and stay on sale.
pub async fn a_schedule_change_never_moves_a_booked_departure(pool: Pool) {
    let world = world(pool).await;
    let org = airline(&world, "PX").await;
    let input = schedule("PX30", "CDG", "LHR", "09:00", 80);
    let made = world
        .catalog
        .create_schedule(&operator(org), input.clone())
        .await
        .unwrap();
    let departure = |n: i64| format!("PX30-{}", day(n).0);
    let seats = |n: i64| seat_item(&departure(n), Cabin::Economy);
    let departs_local = |response: FlightSearchResponse| {
        let itinerary = &response.outbound[0];
        (itinerary.segments[0].departs_local.time(), itinerary.duration_minutes)
    };
    let travel_agent = agent();
    let booked = hold_as(&world.inventory, &travel_agent, &seats(DAY), 1).await.unwrap();

    let mut later = input.clone();
    later.departure_time = "11:30".into();
    let mut longer = input.clone();
    longer.duration_minutes = 95;
    for moved in [later.clone(), longer] {
        let refused = world.catalog.update_schedule(&operator(org), made.id, moved).await;
        match &refused {
            Err(Error::Conflict("departure_booked", detail)) => {
                assert!(detail.contains(&departure(DAY)), "{detail}");
                assert!(!detail.contains(&departure(DAY + 1)), "{detail}");
            }
            other => panic!("expected 409 departure_booked, got {other:?}"),
        }
        // Nothing moved and nothing was closed.
        let (departs, minutes) = departs_local(search(&world, trip("CDG", "LHR", DAY)).await);
        assert_eq!((departs.hour(), departs.minute(), minutes), (9, 0, 80));
        for n in [DAY, DAY + 1] {
            assert_eq!(
                world.inventory.item(&seats(n)).await.unwrap().capacity,
                10,
                "{}",
                departure(n)
            );
        }
    }

    // Once the seats are released the departures move, and stay on sale at the new time.
    world.inventory.release(&travel_agent, booked.id).await.unwrap();
    world
        .catalog
        .update_schedule(&operator(org), made.id, later)
        .await
        .unwrap();
    for n in [DAY, DAY + 1] {
        let (departs, _) = departs_local(search(&world, trip("CDG", "LHR", n)).await);
        assert_eq!((departs.hour(), departs.minute()), (11, 30), "{}", departure(n));
        let bucket = world.inventory.item(&seats(n)).await.unwrap();
        assert_eq!((bucket.capacity, bucket.held), (10, 0), "{} reopened", departure(n));
    }
}

/// Agents hold seats on a schedule's last departure while it is being deactivated: whichever wins, the result is
/// whole. Either the schedule is gone, every one of its buckets closed with nothing held (a hold that came after the
/// close found no seats), or it is refused and every bucket is back as it was with the holds that won on it (a hold
/// that came after the check but before the close refused the close).
pub async fn deactivating_a_schedule_while_holds_race_it_strands_no_one(pool: Pool) {
    let world = world(pool).await;
    let org = airline(&world, "PX").await;
    let made = world
        .catalog
        .create_schedule(&operator(org), schedule("PX30", "CDG", "LHR", "10:00", 80))
        .await
        .unwrap();
    let departures: Vec<String> = (DAY - 2..=DAY + 10).map(|n| format!("PX30-{}", day(n).0)).collect();
    let seats: Vec<String> = departures
        .iter()
        .map(|departure| seat_item(departure, Cabin::Economy))
        .collect();
    // The last departure's bucket is the last the close reaches: the widest window for a hold to land in.
    let last = seats[seats.len() - 1].clone();
    let deactivation = {
        let catalog = world.catalog.clone();
        tokio::spawn(async move { catalog.deactivate_schedule(&operator(org), made.id).await })
    };
    let holders: Vec<_> = (0..8usize)
        .map(|n| {
            let (inventory, item) = (world.inventory.clone(), last.clone());
            tokio::spawn(async move {
                // Spread over the deactivation: some before its check, some during its close, some after.
                for _ in 0..n * 40 {
                    tokio::task::yield_now().await;
                }
                let agent = agent();
                hold_as(&inventory, &agent, &item, 1)
                    .await
                    .ok()
                    .map(|hold| (agent, hold))
            })
        })
        .collect();
    let outcome = deactivation.await.unwrap();
    let mut holds = Vec::new();
    for holder in holders {
        holds.extend(holder.await.unwrap());
    }
    let held = holds.len() as i64;
    let bucket = |item: String| {
        let inventory = world.inventory.clone();
        async move { inventory.item(&item).await.unwrap() }
    };
    match outcome {
        Ok(_) => assert_eq!(held, 0, "no hold got in once the schedule was closed"),
        Err(Error::Conflict("departure_booked", _)) => {
            assert!(held > 0, "refused only for seats someone holds");
            for seat in &seats {
                let found = bucket(seat.clone()).await;
                let expected = if *seat == last { held } else { 0 };
                assert_eq!(
                    (found.capacity, found.overbooking_limit, found.held),
                    (10, 0, expected),
                    "{seat}: a refused change leaves the seats as they were"
                );
            }
            world.catalog.departure_details(&departures[0]).await.unwrap();
            for (agent, hold) in holds {
                world.inventory.release(&agent, hold.id).await.unwrap();
            }
            // Nobody holds seats now: the second attempt goes through.
            world
                .catalog
                .deactivate_schedule(&operator(org), made.id)
                .await
                .unwrap();
        }
        Err(other) => panic!("expected the schedule deactivated or 409 departure_booked, got {other:?}"),
    }
    for seat in &seats {
        let found = bucket(seat.clone()).await;
        assert_eq!(
            (found.capacity, found.overbooking_limit, found.held, found.sold),
            (0, 0, 0, 0),
            "{seat}: closed, nothing on it"
        );
    }
    for departure in &departures {
        assert!(matches!(
            world.catalog.departure_details(departure).await,
            Err(Error::NotFound(_))
        ));
    }
}

/// A change that would leave a departure fewer seats than its travellers hold is refused, and a refusal changes
/// nothing: not the other departures' seats, not the booked departure's fare buckets, not the schedule as stored
/// (a catalog started afresh on the same database still has the old one).
pub async fn a_schedule_change_a_booked_departure_cannot_take_changes_nothing(pool: Pool) {
    let world = world(pool.clone()).await;
    let org = airline(&world, "PX").await;
    let input = schedule("PX40", "CDG", "LHR", "09:00", 80);
    let made = world
        .catalog
        .create_schedule(&operator(org), input.clone())
        .await
        .unwrap();
    let departure = |n: i64| format!("PX40-{}", day(n).0);
    let travel_agent = agent();
    for item in [
        seat_item(&departure(DAY), Cabin::Economy),
        fare_item(&departure(DAY), "Y"),
    ] {
        hold_as(&world.inventory, &travel_agent, &item, 3).await.unwrap();
    }
    let offered = |response: FlightSearchResponse| {
        let itinerary = &response.outbound[0];
        (
            itinerary.fare_codes.clone(),
            serde_json::to_value(&itinerary.price).unwrap(),
        )
    };
    let before = offered(search(&world, trip("CDG", "LHR", DAY + 1)).await);

    let mut smaller = input.clone();
    smaller.cabins[0].seats = 2;
    for fare in &mut smaller.cabins[0].fares {
        fare.booking_limit = fare.booking_limit.min(2);
        fare.price_minor = 99_900;
    }
    let refused = world.catalog.update_schedule(&operator(org), made.id, smaller).await;
    match &refused {
        Err(Error::Upstream(problem)) => assert_eq!(problem.code, "capacity_below_committed", "{problem:?}"),
        other => panic!("expected 409 capacity_below_committed, got {other:?}"),
    }
    for n in [DAY, DAY + 1, DAY + 2] {
        let seats = world
            .inventory
            .item(&seat_item(&departure(n), Cabin::Economy))
            .await
            .unwrap();
        assert_eq!(seats.capacity, 10, "{}", departure(n));
        for (fare, limit) in [("Y", 10), ("M", 5), ("Q", 2)] {
            let bucket = world.inventory.item(&fare_item(&departure(n), fare)).await.unwrap();
            assert_eq!(bucket.capacity, limit, "{} {fare}", departure(n));
        }
    }
    assert_eq!(offered(search(&world, trip("CDG", "LHR", DAY + 1)).await), before);
    let restarted = World {
        catalog: catalog_on(pool, &world.inventory, &world.identity, Options::default()).await,
        ..world
    };
    assert_eq!(offered(search(&restarted, trip("CDG", "LHR", DAY + 1)).await), before);
}

//! Quotes of itineraries and packages: the price search shows, the seats to hold, the terms of fares, the fields a
//! refusal names, and one currency for a package sold in two.

use phoenix_catalog::Options;
use phoenix_catalog::flight::{Cabin, fare_item, seat_item};
use phoenix_catalog::quote::{FlightItem, ItemKind, QuoteItem};
use phoenix_catalog::search::{Itinerary, Passengers};
use phoenix_db::Pool;

use super::flights::{DAY, airline, fly, no_fees, schedule, search, trip};
use super::quote::{quote, refusal, stay_item};
use super::*;

phoenix_db::contract_suite!(
    phoenix_catalog::migrations(),
    [
        a_quote_prices_an_itinerary_as_search_does,
        fares_set_the_terms_and_offers_the_price,
        bad_flight_quotes_name_the_field,
        a_package_in_two_currencies_converts_to_one,
        a_price_too_large_to_charge_is_the_clients_to_change_not_a_fault,
    ]
);

fn departure(number: &str, n: i64) -> String {
    format!("{number}-{}", day(n).0)
}

fn passengers(adults: u32, children: u32, infants: u32) -> Passengers {
    Passengers {
        adults,
        children,
        infants,
    }
}

fn flight_item(legs: &[&str], codes: &[&str], passengers: Passengers) -> FlightItem {
    FlightItem {
        departure_ids: legs.iter().map(|l| departure(l, DAY)).collect(),
        cabin: Cabin::Economy,
        fare_codes: codes.iter().map(|c| (*c).to_owned()).collect(),
        passengers,
        offer_id: None,
    }
}

fn of(itinerary: &Itinerary, passengers: Passengers) -> FlightItem {
    FlightItem {
        departure_ids: itinerary.segments.iter().map(|s| s.departure_id.clone()).collect(),
        cabin: Cabin::Economy,
        fare_codes: itinerary.fare_codes.clone(),
        passengers,
        offer_id: None,
    }
}

pub async fn a_quote_prices_an_itinerary_as_search_does(pool: Pool) {
    // The default options: airport charges per traveller, and dynamic pricing.
    let world = world(pool).await;
    let org = airline(&world, "PX").await;
    fly(&world, org, "PX1", "CDG", "LHR", "08:00", 80).await;
    fly(&world, org, "PX3", "LHR", "JFK", "09:05", 480).await;
    // Half the first leg's cabin is gone: its fares cost 10 % more.
    hold(&world, &seat_item(&departure("PX1", DAY), Cabin::Economy), 5).await;
    world.catalog.follow_inventory().await.unwrap();
    let family = passengers(2, 1, 1);
    let mut query = trip("CDG", "JFK", DAY);
    (query.adults, query.children, query.infants) = (Some(2), Some(1), Some(1));
    let found = search(&world, query).await;
    let connection = &found.outbound[0];
    assert_eq!(connection.fare_codes, ["M", "M"], "Q cannot seat three");

    let quoted = quote(&world, vec![QuoteItem::Flight(of(connection, family))], None)
        .await
        .unwrap();
    let item = &quoted.items[0];
    assert_eq!(item.kind, ItemKind::Flight);
    assert_eq!(
        (quoted.currency.as_str(), quoted.total_minor),
        ("EUR", connection.price.total_minor)
    );
    assert_eq!(item.price_minor, connection.price.total_minor);
    assert_eq!(item.breakdown.as_ref().unwrap().base_minor, connection.price.base_minor);
    assert_eq!(item.starts_at, connection.segments[0].departs_utc);
    assert_eq!(item.ends_at, connection.segments[1].arrives_utc);
    assert_eq!(item.organization_id, org);
    let date = day(DAY).0;
    assert_eq!(
        item.description,
        format!("PX1 + PX3 CDG-LHR-JFK on {date}, economy, 4 passengers")
    );
    // The cabin and the fare class of each leg, for the three who sit: the infant rides on a lap.
    let lines: Vec<(String, i64)> = item
        .inventory_lines
        .iter()
        .map(|l| (l.item_id.clone(), l.quantity))
        .collect();
    let (first, second) = (departure("PX1", DAY), departure("PX3", DAY));
    let expected = vec![
        (seat_item(&first, Cabin::Economy), 3),
        (fare_item(&first, "M"), 3),
        (seat_item(&second, Cabin::Economy), 3),
        (fare_item(&second, "M"), 3),
    ];
    assert_eq!(lines, expected);
    world
        .inventory
        .create_hold(
            &agent(),
            HoldRequest {
                lines,
                ttl_secs: None,
                reference: None,
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        world
            .inventory
            .item(&seat_item(&first, Cabin::Economy))
            .await
            .unwrap()
            .held,
        8
    );
    assert_eq!(world.inventory.item(&fare_item(&second, "M")).await.unwrap().held, 3);
    // Two seats are left on the first leg: the same family cannot be quoted again, a couple can.
    world.catalog.follow_inventory().await.unwrap();
    let refused = refusal(quote(&world, vec![QuoteItem::Flight(of(connection, family))], None).await);
    assert_eq!(refused, (409, "unavailable".into(), vec!["items[0]".to_owned()]));
    let couple = QuoteItem::Flight(of(connection, passengers(2, 0, 0)));
    assert!(quote(&world, vec![couple], None).await.is_ok());
}

pub async fn fares_set_the_terms_and_offers_the_price(pool: Pool) {
    let options = Options {
        fees: Vec::new(),
        flight_cancellation_fee_bp: 2_500,
        ..Options::default()
    };
    let world = world_with(pool, options).await;
    let org = airline(&world, "PX").await;
    fly(&world, org, "PX30", "CDG", "LHR", "08:00", 80).await;
    let solo = passengers(1, 0, 0);
    // Y is refundable: free until a day before departure, then a quarter of the price is kept.
    let refundable = quote(
        &world,
        vec![QuoteItem::Flight(flight_item(&["PX30"], &["Y"], solo))],
        None,
    )
    .await
    .unwrap();
    let item = &refundable.items[0];
    assert_eq!(item.price_minor, 20_000);
    assert!(item.cancellation.refundable);
    assert_eq!(
        item.cancellation.free_until,
        Some(item.starts_at - time::Duration::hours(24))
    );
    assert_eq!(item.cancellation.fee_minor, 5_000);
    // Q is not: nothing comes back.
    let saver = quote(
        &world,
        vec![QuoteItem::Flight(flight_item(&["PX30"], &["Q"], solo))],
        None,
    )
    .await
    .unwrap();
    let c = &saver.items[0].cancellation;
    assert_eq!((c.refundable, c.free_until, c.fee_minor), (false, None, 10_000));

    // The offer shown at 10 000 holds once the cabin fills and the fare rises.
    let shown = search(&world, trip("CDG", "LHR", DAY)).await.outbound[0].clone();
    hold(&world, &seat_item(&departure("PX30", DAY), Cabin::Economy), 5).await;
    world.catalog.follow_inventory().await.unwrap();
    let mut item = of(&shown, solo);
    item.offer_id = Some(shown.offer_id.clone());
    let offered = quote(&world, vec![QuoteItem::Flight(item.clone())], None)
        .await
        .unwrap();
    assert_eq!(offered.total_minor, 10_000);
    let now = quote(&world, vec![QuoteItem::Flight(of(&shown, solo))], None)
        .await
        .unwrap();
    assert_eq!(now.total_minor, 11_000);
    // The offer is for one adult in Q: not for two, nor for Y.
    let mut two = item.clone();
    two.passengers = passengers(2, 0, 0);
    let mut other_fare = item.clone();
    other_fare.fare_codes = vec!["Y".into()];
    for other in [two, other_fare] {
        let refused = refusal(quote(&world, vec![QuoteItem::Flight(other)], None).await);
        assert_eq!(
            refused,
            (422, "offer_mismatch".into(), vec!["items[0].offer_id".to_owned()])
        );
    }
}

pub async fn bad_flight_quotes_name_the_field(pool: Pool) {
    let world = world(pool).await;
    let org = airline(&world, "PX").await;
    fly(&world, org, "PX1", "CDG", "LHR", "08:00", 80).await;
    fly(&world, org, "PX2", "LHR", "JFK", "09:00", 480).await; // 40 minutes after PX1 lands
    fly(&world, org, "PX3", "LHR", "JFK", "09:05", 480).await;
    fly(&world, org, "PX8", "LHR", "CDG", "10:00", 75).await;
    let mut dollars = schedule("PX5", "LHR", "JFK", "10:00", 480);
    dollars.currency = "USD".into();
    world.catalog.create_schedule(&operator(org), dollars).await.unwrap();
    // Yesterday's departure has left.
    let mut gone = schedule("PX9", "CDG", "LHR", "00:05", 80);
    (gone.effective_from, gone.effective_to) = (day(-1), day(-1));
    world.catalog.create_schedule(&operator(org), gone).await.unwrap();

    let adult = passengers(1, 0, 0);
    let with = |change: &dyn Fn(&mut FlightItem)| {
        let mut item = flight_item(&["PX1", "PX3"], &["Y", "Y"], adult);
        change(&mut item);
        item
    };
    let cases: Vec<(FlightItem, &[&str])> = vec![
        (
            with(&|i| i.departure_ids[0] = "PX404-2026-01-01".into()),
            &["items[0].departure_ids[0]"],
        ),
        (
            with(&|i| i.departure_ids[1] = departure("PX2", DAY)),
            &["items[0].departure_ids[1]"],
        ),
        (with(&|i| i.departure_ids.reverse()), &["items[0].departure_ids[1]"]),
        (
            with(&|i| i.departure_ids[1] = departure("PX8", DAY)),
            &["items[0].departure_ids"],
        ),
        (
            with(&|i| i.departure_ids[1] = departure("PX5", DAY)),
            &["items[0].departure_ids"],
        ),
        (
            with(&|i| i.departure_ids.push(departure("PX8", DAY))),
            &["items[0].departure_ids"],
        ),
        (
            with(&|i| {
                i.fare_codes.pop();
            }),
            &["items[0].fare_codes"],
        ),
        (with(&|i| i.fare_codes[0] = "Z".into()), &["items[0].fare_codes[0]"]),
        (with(&|i| i.cabin = Cabin::Business), &["items[0].cabin"]),
        (
            with(&|i| i.passengers = passengers(1, 0, 2)),
            &["items[0].passengers.infants"],
        ),
        (with(&|i| i.passengers = passengers(0, 0, 0)), &["items[0].passengers"]),
        (with(&|i| i.passengers = passengers(5, 5, 0)), &["items[0].passengers"]),
        (
            with(&|i| (i.departure_ids, i.fare_codes) = (vec![format!("PX9-{}", day(-1).0)], vec!["Y".into()])),
            &["items[0].departure_ids[0]"],
        ),
    ];
    for (item, fields) in cases {
        let refused = invalid_fields(quote(&world, vec![QuoteItem::Flight(item.clone())], None).await);
        assert_eq!(refused, fields, "{item:?}");
    }
    // A good connection is fine.
    assert!(
        quote(&world, vec![QuoteItem::Flight(with(&|_| {}))], None)
            .await
            .is_ok()
    );
}

pub async fn a_package_in_two_currencies_converts_to_one(pool: Pool) {
    let world = world_with(pool, no_fees()).await;
    let org = airline(&world, "PX").await;
    let mut dollars = schedule("PX60", "CDG", "NCE", "09:00", 85);
    dollars.currency = "USD".into();
    world.catalog.create_schedule(&operator(org), dollars).await.unwrap();
    let h = hotel(&world, chain(&world).await, "Nice", 2, |_| 10_001).await;
    world
        .catalog
        .set_fx_rate(&admin(), "EUR", "USD", "1.08345")
        .await
        .unwrap();
    let flight = QuoteItem::Flight(flight_item(&["PX60"], &["Q"], passengers(1, 0, 0)));
    let stay = QuoteItem::Hotel(stay_item(&h, DAY, DAY + 1, 1, 1));

    // In the first item's currency: 100.01 EUR at 1.08345 is 108.355... USD, 108.36.
    let package = quote(&world, vec![flight.clone(), stay.clone()], None).await.unwrap();
    assert_eq!(package.currency, "USD");
    let (f, s) = (&package.items[0], &package.items[1]);
    assert_eq!((f.price_minor, f.original_price.as_ref()), (10_000, None));
    assert_eq!(s.price_minor, 10_836);
    let original = s.original_price.as_ref().unwrap();
    assert_eq!((original.amount_minor, original.currency.as_str()), (10_001, "EUR"));
    assert_eq!(
        s.breakdown.as_ref().unwrap().currency,
        "EUR",
        "the breakdown is the hotel's"
    );
    assert_eq!(
        s.cancellation.fee_minor, 10_836,
        "one night of a one-night stay, converted alike"
    );
    assert_eq!(package.total_minor, 10_000 + 10_836);

    // In euros, through the inverse rate: 100.00 USD / 1.08345 is 92.2977... EUR, 92.30.
    let package = quote(&world, vec![flight.clone(), stay.clone()], Some("EUR"))
        .await
        .unwrap();
    assert_eq!(package.currency, "EUR");
    assert_eq!(package.items[0].price_minor, 9_230);
    assert_eq!(package.items[0].original_price.as_ref().unwrap().currency, "USD");
    assert_eq!(package.items[0].cancellation.fee_minor, 9_230, "Q is not refundable");
    assert_eq!(package.total_minor, 9_230 + 10_001);

    // Without a rate, each item that cannot be converted is named.
    let refused = refusal(quote(&world, vec![flight.clone(), stay.clone()], Some("CHF")).await);
    let expected = vec!["items[0]".to_owned(), "items[1]".to_owned()];
    assert_eq!(refused, (422, "currency_mismatch".into(), expected));
    // A hotel's offer does not price a flight.
    let mut stay_search = super::hotels::stay("Nice", DAY, DAY + 1);
    stay_search.guests = Some(1);
    let offer = super::hotels::search(&world, stay_search).await.results[0].options[0]
        .offer_id
        .clone();
    let mut item = flight_item(&["PX60"], &["Q"], passengers(1, 0, 0));
    item.offer_id = Some(offer);
    let refused = refusal(quote(&world, vec![stay, QuoteItem::Flight(item)], None).await);
    assert_eq!(
        refused,
        (422, "offer_mismatch".into(), vec!["items[1].offer_id".to_owned()])
    );
}

pub async fn a_price_too_large_to_charge_is_the_clients_to_change_not_a_fault(pool: Pool) {
    let world = world_with(pool, no_fees()).await;
    // The dearest night there may be, and the largest rate there may be.
    let h = hotel(&world, chain(&world).await, "Nice", 2, |_| 1_000_000_000).await;
    world
        .catalog
        .set_fx_rate(&admin(), "EUR", "USD", "1000000000")
        .await
        .unwrap();
    // One night converts: 10^9 EUR cents at 10^9 is 10^18 USD cents, within range.
    let night = QuoteItem::Hotel(stay_item(&h, DAY, DAY + 1, 1, 1));
    let quoted = quote(&world, vec![night.clone()], Some("USD")).await.unwrap();
    assert_eq!(quoted.total_minor, 1_000_000_000_000_000_000);
    // Ten nights do not: the item is named, 422, instead of a server error.
    let stay = QuoteItem::Hotel(stay_item(&h, DAY, DAY + 10, 1, 1));
    let refused = refusal(quote(&world, vec![stay], Some("USD")).await);
    assert_eq!(refused, (422, "invalid_fields".into(), vec!["items[0]".to_owned()]));
    // Nor do nine nights and one more, each of which converts: the total goes over, at the item that takes it there.
    let nine = QuoteItem::Hotel(stay_item(&h, DAY, DAY + 9, 1, 1));
    let quoted = quote(&world, vec![nine.clone()], Some("USD")).await.unwrap();
    assert_eq!(quoted.total_minor, 9_000_000_000_000_000_000);
    let refused = refusal(quote(&world, vec![nine, night], Some("USD")).await);
    assert_eq!(refused, (422, "invalid_fields".into(), vec!["items[1]".to_owned()]));
}

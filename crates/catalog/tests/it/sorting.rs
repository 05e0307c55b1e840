//! Sorting by price across currencies: results priced in different currencies are ordered as money (converted
//! into the display currency, or else `catalog.sort_currency`), not by their numbers; a price with no rate into
//! that currency comes after the ones with a rate.

use phoenix_catalog::search::{FlightSearch, FlightSort, HotelSearch, HotelSort, RecommendationSort, Recommendations};
use phoenix_db::Pool;

use super::fees::hotel_priced_in;
use super::flights::{DAY, airline, schedule, trip};
use super::hotels::{plain, search, stay};
use super::*;

phoenix_db::contract_suite!(
    phoenix_catalog::migrations(),
    [
        hotels_priced_in_different_currencies_sort_as_money,
        flights_priced_in_different_currencies_sort_as_money,
    ]
);

/// 12,000 yen (75 EUR at 160 yen a euro), 100.00 EUR, and 50.00 CHF with no rate into euros, all in one city.
pub async fn hotels_priced_in_different_currencies_sort_as_money(pool: Pool) {
    let world = world_with(pool, plain(vec![], vec![])).await;
    let yen = hotel_priced_in(&world, "Paris", "JPY", 12_000).await;
    let euro = hotel_priced_in(&world, "Paris", "EUR", 10_000).await;
    let franc = hotel_priced_in(&world, "Paris", "CHF", 5_000).await;
    world.catalog.set_fx_rate(&admin(), "EUR", "JPY", "160").await.unwrap();

    let cheapest_first = |query| {
        let world = &world;
        async move {
            let found = search(world, query).await;
            found.results.iter().map(|r| r.hotel.id).collect::<Vec<_>>()
        }
    };
    let query = stay("Paris", 10, 11);
    assert_eq!(query.sort, None, "the default order is by price");
    assert_eq!(
        cheapest_first(query.clone()).await,
        [yen.hotel, euro.hotel, franc.hotel],
        "in euros: 75, 100, then the one without a rate"
    );
    let in_yen = HotelSearch {
        currency: Some("JPY".into()),
        sort: Some(HotelSort::Price),
        ..query
    };
    assert_eq!(
        cheapest_first(in_yen).await,
        [yen.hotel, euro.hotel, franc.hotel],
        "in yen: 12,000, 16,000, then the one without a rate"
    );

    // Recommendations near the same point, cheapest first by their lowest nightly price: the same order.
    let recommended = world
        .catalog
        .recommend_hotels(&Recommendations {
            latitude: Some(48.8566),
            longitude: Some(2.3522),
            radius_km: Some(5.0),
            sort: Some(RecommendationSort::Price),
            limit: Some(10),
        })
        .unwrap();
    assert_eq!(
        recommended.iter().map(|r| r.hotel.id).collect::<Vec<_>>(),
        [yen.hotel, euro.hotel, franc.hotel]
    );
    assert_eq!(recommended[0].currency.as_deref(), Some("JPY"));
    assert_eq!(recommended[0].from_price_minor, Some(12_000));
}

/// The same fares in won and in euros: the won itinerary is the cheaper one although it is longer and its numbers
/// are the same (10,000 won is 6.81 EUR at 1467.39 won a euro).
pub async fn flights_priced_in_different_currencies_sort_as_money(pool: Pool) {
    let world = world_with(pool, plain(vec![], vec![])).await;
    let org = airline(&world, "PX").await;
    let mut won = schedule("PX70", "CDG", "NCE", "09:00", 95);
    won.currency = "KRW".into();
    world.catalog.create_schedule(&operator(org), won).await.unwrap();
    let euro = schedule("PX71", "CDG", "NCE", "10:00", 85);
    world.catalog.create_schedule(&operator(org), euro).await.unwrap();
    world
        .catalog
        .set_fx_rate(&admin(), "EUR", "KRW", "1467.39")
        .await
        .unwrap();

    let numbers = |sort| {
        let world = &world;
        async move {
            let query = FlightSearch {
                sort,
                ..trip("CDG", "NCE", DAY)
            };
            let found = super::flights::search(world, query).await;
            found
                .outbound
                .iter()
                .map(|it| it.segments[0].flight_number.clone())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        numbers(Some(FlightSort::Price)).await,
        ["PX70", "PX71"],
        "cheapest first"
    );
    assert_eq!(numbers(None).await, ["PX70", "PX71"], "price is the default order");
    assert_eq!(
        numbers(Some(FlightSort::Duration)).await,
        ["PX71", "PX70"],
        "shortest first"
    );
}

use phoenix_catalog::hotel::room_item;
use phoenix_catalog::model::{CapacityInput, Day, FxRateView, KeptNight, RoomTypeInput};
use phoenix_catalog::pricing::{Applies, DynamicPricing, FeeKind, FeeLine, Step};
use phoenix_catalog::search::{HotelSearch, HotelSearchResponse, HotelSort};
use phoenix_catalog::{Error, Options};
use phoenix_db::Pool;
use uuid::Uuid;

use super::*;

phoenix_db::contract_suite!(
    phoenix_catalog::migrations(),
    [
        a_sold_out_night_hides_the_hotel_only_for_stays_covering_it,
        a_close_out_hides_the_hotel_and_reopening_shows_it,
        a_close_out_after_sales_keeps_the_rooms_sold_and_sells_no_more,
        a_new_number_of_rooms_keeps_allotments_and_close_outs,
        stay_total_is_the_sum_of_nightly_prices_with_fees,
        dynamic_pricing_steps_apply_at_their_load_factors,
        display_currency_converts_and_rounds,
        rates_are_listed_by_base_then_quote_with_when_and_who_set_them,
        a_rate_whose_inverse_is_out_of_range_is_refused,
        filters_sort_and_pages,
        geo_search_finds_hotels_within_the_radius,
        offers_prove_the_price_and_refuse_tampering,
        bad_hotel_searches_name_the_field,
        hidden_characters_in_names_are_refused,
        catalog_survives_a_restart,
        a_replica_picks_up_another_replicas_writes,
    ]
);

pub async fn search(world: &World, query: HotelSearch) -> HotelSearchResponse {
    let value = world.catalog.search_hotels(&query).await.unwrap();
    serde_json::from_slice(&value).unwrap()
}

pub fn stay(city: &str, from: i64, to: i64) -> HotelSearch {
    HotelSearch {
        city: Some(city.into()),
        check_in: Some(day(from)),
        check_out: Some(day(to)),
        guests: Some(2),
        rooms: Some(1),
        ..HotelSearch::default()
    }
}

fn ids(response: &HotelSearchResponse) -> Vec<Uuid> {
    response.results.iter().map(|r| r.hotel.id).collect()
}

/// Options with only the fees a test names, and flat prices unless it names steps.
pub fn plain(fees: Vec<FeeLine>, steps: Vec<Step>) -> Options {
    Options {
        fees,
        dynamic_pricing: DynamicPricing { steps },
        ..Options::default()
    }
}

pub async fn a_sold_out_night_hides_the_hotel_only_for_stays_covering_it(pool: Pool) {
    let world = world(pool).await;
    let org = chain(&world).await;
    let full = hotel(&world, org, "Paris", 2, |_| 10_000).await;
    let other = hotel(&world, org, "Paris", 2, |_| 12_000).await;
    // Search first, so the answer is cached: the sale below must not be hidden by the cache.
    assert_eq!(search(&world, stay("paris", 12, 15)).await.results.len(), 2);

    // Both rooms of night 13 go.
    hold(&world, &room_item(full.room_type, day(13).0), 2).await;
    world.catalog.follow_inventory().await.unwrap();

    for (from, to, shown) in [
        (12, 15, false),
        (13, 14, false),
        (10, 13, true),
        (14, 18, true),
        (11, 14, false),
    ] {
        let found = ids(&search(&world, stay("Paris", from, to)).await);
        assert_eq!(found.contains(&full.hotel), shown, "stay {from}..{to}");
        assert!(
            found.contains(&other.hotel),
            "the other hotel is unaffected, stay {from}..{to}"
        );
    }
    // One room short is still short: two rooms asked when one is left.
    hold(&world, &room_item(other.room_type, day(20).0), 1).await;
    world.catalog.follow_inventory().await.unwrap();
    let mut two_rooms = stay("Paris", 19, 21);
    two_rooms.rooms = Some(2);
    two_rooms.guests = Some(3);
    assert!(!ids(&search(&world, two_rooms.clone()).await).contains(&other.hotel));
    two_rooms.rooms = Some(1);
    two_rooms.guests = Some(2);
    assert!(ids(&search(&world, two_rooms).await).contains(&other.hotel));
}

pub async fn a_close_out_hides_the_hotel_and_reopening_shows_it(pool: Pool) {
    let world = world(pool).await;
    let org = chain(&world).await;
    let h = hotel(&world, org, "Lyon", 5, |_| 9_000).await;
    let close = |rooms| CapacityInput {
        from: day(16),
        to: day(17),
        rooms,
    };
    let changed = world
        .catalog
        .set_capacity(&operator(org), h.hotel, h.room_type, close(0))
        .await
        .unwrap();
    assert_eq!(changed.nights, 2);
    assert!(search(&world, stay("Lyon", 15, 17)).await.results.is_empty());
    assert_eq!(search(&world, stay("Lyon", 18, 20)).await.results.len(), 1);
    world
        .catalog
        .set_capacity(&operator(org), h.hotel, h.room_type, close(1))
        .await
        .unwrap();
    let found = search(&world, stay("Lyon", 15, 17)).await;
    assert_eq!(
        found.results[0].options[0].rooms_left, 1,
        "the allotment is what is left"
    );
    // Nights without a price are not on sale, whatever the capacity.
    assert!(search(&world, stay("Lyon", 28, 31)).await.results.is_empty());
}

/// A hotel stops selling nights it already sold rooms on: those nights keep what is held and sold (the travellers
/// keep their rooms), sell no more, and the answer names them; the rest close, all in one request.
pub async fn a_close_out_after_sales_keeps_the_rooms_sold_and_sells_no_more(pool: Pool) {
    let world = world(pool).await;
    let org = chain(&world).await;
    let h = hotel(&world, org, "Lyon", 5, |_| 9_000).await;
    let night = |n: i64| room_item(h.room_type, day(n).0);
    let travel_agent = agent();
    hold_as(&world.inventory, &travel_agent, &night(17), 2).await.unwrap();
    let close = |rooms| CapacityInput {
        from: day(16),
        to: day(18),
        rooms,
    };
    for rooms in [0, 1] {
        let changed = world
            .catalog
            .set_capacity(&operator(org), h.hotel, h.room_type, close(rooms))
            .await
            .unwrap();
        assert_eq!(changed.nights, 3);
        assert_eq!(
            changed.kept,
            [KeptNight {
                night: Day(day(17).0),
                rooms: 2
            }],
            "closing to {rooms}"
        );
        for (n, capacity) in [(16, rooms), (17, 2), (18, rooms)] {
            let bucket = world.inventory.item(&night(n)).await.unwrap();
            assert_eq!(bucket.capacity, capacity, "night {n} closing to {rooms}");
        }
    }
    let more = hold_as(&world.inventory, &travel_agent, &night(17), 1).await;
    assert!(
        matches!(more, Err(phoenix_inventory::Error::Insufficient(_))),
        "{more:?}"
    );
    let night_16 = search(&world, stay("Lyon", 16, 17)).await;
    assert_eq!(night_16.results[0].options[0].rooms_left, 1, "the allotment asked for");
    assert!(
        search(&world, stay("Lyon", 17, 18)).await.results.is_empty(),
        "sold, and no more"
    );
}

pub async fn a_new_number_of_rooms_keeps_allotments_and_close_outs(pool: Pool) {
    let world = world(pool).await;
    let org = chain(&world).await;
    let h = hotel(&world, org, "Nice", 5, |_| 9_000).await;
    let actor = operator(org);
    let set = |from, to, rooms| CapacityInput {
        from: day(from),
        to: day(to),
        rooms,
    };
    // Nights 16 and 17 get an allotment of 2, night 18 is closed out; a search caches the counters meanwhile.
    world
        .catalog
        .set_capacity(&actor, h.hotel, h.room_type, set(16, 17, 2))
        .await
        .unwrap();
    world
        .catalog
        .set_capacity(&actor, h.hotel, h.room_type, set(18, 18, 0))
        .await
        .unwrap();
    assert_eq!(search(&world, stay("Nice", 14, 16)).await.results.len(), 1);

    let double = |rooms| RoomTypeInput {
        name: "Double".into(),
        max_occupancy: 2,
        beds: "1 queen".into(),
        rooms,
    };
    world
        .catalog
        .update_room_type(&actor, h.hotel, h.room_type, double(8))
        .await
        .unwrap();

    for (night, rooms) in [(10, 8), (15, 8), (16, 2), (17, 2), (18, 0), (19, 8), (29, 8)] {
        let bucket = world
            .inventory
            .item(&room_item(h.room_type, day(night).0))
            .await
            .unwrap();
        assert_eq!(bucket.capacity, rooms, "night {night}");
    }
    let found = search(&world, stay("Nice", 14, 16)).await;
    assert_eq!(
        found.results[0].options[0].rooms_left, 8,
        "search sees the new number at once"
    );

    // Fewer rooms than a night already sold: that night keeps what it sold and sells no more; the others follow.
    hold_as(&world.inventory, &agent(), &room_item(h.room_type, day(20).0), 7)
        .await
        .unwrap();

    world
        .catalog
        .update_room_type(&actor, h.hotel, h.room_type, double(3))
        .await
        .unwrap();
    for (night, rooms) in [(19, 3), (20, 7), (21, 3), (16, 2), (18, 0)] {
        let bucket = world
            .inventory
            .item(&room_item(h.room_type, day(night).0))
            .await
            .unwrap();
        assert_eq!(bucket.capacity, rooms, "night {night}");
    }
}

pub async fn stay_total_is_the_sum_of_nightly_prices_with_fees(pool: Pool) {
    let fees = vec![
        FeeLine {
            code: "vat".into(),
            name: "VAT".into(),
            kind: FeeKind::PercentBp(1_000),
            currency: None,
            applies_to: Applies::Hotel,
        },
        FeeLine {
            code: "city".into(),
            name: "City tax".into(),
            kind: FeeKind::PerNight(150),
            currency: Some(eur()),
            applies_to: Applies::Both,
        },
        FeeLine {
            code: "seat".into(),
            name: "Not for hotels".into(),
            kind: FeeKind::PerBooking(999),
            currency: Some(eur()),
            applies_to: Applies::Flight,
        },
    ];
    let world = world_with(pool, plain(fees, vec![])).await;
    let h = hotel(&world, chain(&world).await, "Nice", 3, |n| 10_000 + n * 111).await;
    let mut query = stay("Nice", 11, 15);
    query.rooms = Some(2);
    query.guests = Some(4);
    let found = search(&world, query).await;
    let option = &found.results[0].options[0];
    let nightly: Vec<i64> = (11..15).map(|n| 10_000 + n * 111).collect();
    assert_eq!(option.nightly_minor, nightly);
    let base: i64 = nightly.iter().sum::<i64>() * 2;
    assert_eq!(option.price.base_minor, base);
    let vat = (base * 1_000 + 5_000) / 10_000;
    let city = 150 * 4 * 2;
    assert_eq!(
        option.price.fees.iter().map(|f| f.code.as_str()).collect::<Vec<_>>(),
        ["vat", "city"]
    );
    assert_eq!(option.price.fees[0].amount_minor, vat);
    assert_eq!(option.price.fees[1].amount_minor, city);
    assert_eq!(option.price.total_minor, base + vat + city);
    assert_eq!(option.currency, "EUR");
    assert_eq!(option.rate_plan_id, h.rate_plan);
    assert_eq!(found.nights, 4);
}

pub async fn dynamic_pricing_steps_apply_at_their_load_factors(pool: Pool) {
    let steps = vec![
        Step {
            load_factor_bp: 5_000,
            increase_bp: 1_000,
        },
        Step {
            load_factor_bp: 7_500,
            increase_bp: 2_500,
        },
    ];
    let world = world_with(pool, plain(vec![], steps)).await;
    let h = hotel(&world, chain(&world).await, "Porto", 4, |_| 10_000).await;
    // 0, 1 of 4 taken: base; 2 of 4 (50 %): +10 %; 3 of 4 (75 %): +25 %.
    for (night, taken, price) in [(20, 0, 10_000), (21, 1, 10_000), (22, 2, 11_000), (23, 3, 12_500)] {
        if taken > 0 {
            hold(&world, &room_item(h.room_type, day(night).0), taken).await;
        }
        world.catalog.follow_inventory().await.unwrap();
        let found = search(&world, stay("Porto", night, night + 1)).await;
        assert_eq!(
            found.results[0].options[0].nightly_minor[0], price,
            "{taken} of 4 taken"
        );
    }
    // A stay prices each night at its own load.
    let found = search(&world, stay("Porto", 20, 24)).await;
    assert_eq!(
        found.results[0].options[0].nightly_minor,
        [10_000, 10_000, 11_000, 12_500]
    );
    assert_eq!(found.results[0].options[0].price.total_minor, 43_500);
}

pub async fn display_currency_converts_and_rounds(pool: Pool) {
    let world = world_with(pool, plain(vec![], vec![])).await;
    hotel(&world, chain(&world).await, "Bordeaux", 2, |_| 10_001).await;
    world
        .catalog
        .set_fx_rate(&admin(), "EUR", "USD", "1.08345")
        .await
        .unwrap();
    world
        .catalog
        .set_fx_rate(&admin(), "JPY", "EUR", "0.0062")
        .await
        .unwrap();
    let mut query = stay("Bordeaux", 12, 13);
    query.currency = Some("USD".into());
    let found = search(&world, query).await;
    let option = &found.results[0].options[0];
    assert_eq!(option.currency, "EUR", "the charge stays in the supplier's currency");
    // 100.01 EUR * 1.08345 = 108.355834... USD -> 108.36
    let display = option.display_total.as_ref().unwrap();
    assert_eq!((display.amount_minor, display.currency.as_str()), (10_836, "USD"));
    // Through the inverse of JPY->EUR: 100.01 / 0.0062 = 16130.6451... JPY (no minor unit) -> 16131.
    let mut query = stay("Bordeaux", 12, 13);
    query.currency = Some("JPY".into());
    let found = search(&world, query).await;
    let display = found.results[0].options[0].display_total.as_ref().unwrap();
    assert_eq!((display.amount_minor, display.currency.as_str()), (16_131, "JPY"));
    // Bounds apply to the display amount.
    let mut query = stay("Bordeaux", 12, 13);
    query.currency = Some("USD".into());
    query.max_price = Some(10_835);
    assert!(search(&world, query).await.results.is_empty());
    // A currency without a rate shows no display total and cannot meet display bounds.
    let mut query = stay("Bordeaux", 12, 13);
    query.currency = Some("CHF".into());
    assert!(
        search(&world, query.clone()).await.results[0].options[0]
            .display_total
            .is_none()
    );
    query.min_price = Some(1);
    assert!(search(&world, query).await.results.is_empty());
    let refused = world.catalog.set_fx_rate(&admin(), "EUR", "USD", "-1").await;
    assert_eq!(invalid_fields(refused), ["rate"]);
}

pub async fn rates_are_listed_by_base_then_quote_with_when_and_who_set_them(pool: Pool) {
    let world = world(pool.clone()).await;
    let c = &world.catalog;
    assert!(c.fx_rates(None).is_empty());
    let (first, second) = (admin(), admin());
    let before = time::OffsetDateTime::now_utc();
    c.set_fx_rate(&first, "USD", "JPY", "150").await.unwrap();
    c.set_fx_rate(&first, "EUR", "USD", "1.0800").await.unwrap();
    c.set_fx_rate(&first, "EUR", "GBP", "0.86").await.unwrap();
    c.set_fx_rate(&second, "EUR", "USD", "1.09").await.unwrap();
    let after = time::OffsetDateTime::now_utc();
    let rows = |viewer: Option<&Principal>| -> Vec<(String, String, String, Option<Uuid>)> {
        c.fx_rates(viewer)
            .into_iter()
            .map(|r| (r.base, r.quote, r.rate, r.updated_by))
            .collect()
    };
    let row = |base: &str, quote: &str, rate: &str, by: Option<&Principal>| {
        (
            base.to_owned(),
            quote.to_owned(),
            rate.to_owned(),
            by.map(|p| p.user_id),
        )
    };
    // Admins see who set each rate (the last to change it).
    assert_eq!(
        rows(Some(&admin())),
        [
            row("EUR", "GBP", "0.86", Some(&first)),
            row("EUR", "USD", "1.09", Some(&second)),
            row("USD", "JPY", "150", Some(&first)),
        ]
    );
    // Everyone else sees the rates and when they were set, not by whom.
    for viewer in [None, Some(agent()), Some(operator(Uuid::now_v7()))] {
        assert_eq!(
            rows(viewer.as_ref()),
            [
                row("EUR", "GBP", "0.86", None),
                row("EUR", "USD", "1.09", None),
                row("USD", "JPY", "150", None),
            ]
        );
    }
    let listed = c.fx_rates(None);
    for rate in &listed {
        let at = rate.updated_at.unwrap();
        assert!(
            before - time::Duration::milliseconds(1) <= at && at <= after,
            "{rate:?}"
        );
        assert_eq!(rate.replaced_opposite, None);
    }
    assert!(listed[0].updated_at <= listed[1].updated_at, "EUR/USD changed last");
    // All of it is stored: a catalog started on the same database lists the same.
    let replica = catalog_on(pool, &world.inventory, &world.identity, Options::default()).await;
    assert_eq!(replica.fx_rates(Some(&admin())), c.fx_rates(Some(&admin())));
}

/// A rate within a rate's bounds whose inverse is not would convert one way only, and used the other way would look
/// like a missing rate: refused on `rate`, saying why. So is a rate beyond the bounds itself.
pub async fn a_rate_whose_inverse_is_out_of_range_is_refused(pool: Pool) {
    let world = world_with(pool, plain(vec![], vec![])).await;
    hotel(&world, chain(&world).await, "Bordeaux", 2, |_| 10_001).await;
    let c = &world.catalog;
    let refusal = |result: Result<FxRateView, Error>| match result {
        Err(Error::Invalid(errors)) => {
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].field, "rate");
            errors[0].message.clone()
        }
        other => panic!("expected 422 on rate, got {other:?}"),
    };
    for rate in ["0.0000000001", "0.000000000999", "0.000000000001"] {
        let message = refusal(c.set_fx_rate(&admin(), "JPY", "EUR", rate).await);
        assert!(
            message.contains("inverse") && message.contains("at least 0.000000001"),
            "{rate}: {message}"
        );
    }
    for rate in ["1000000000000", "1000000000.5"] {
        let message = refusal(c.set_fx_rate(&admin(), "EUR", "JPY", rate).await);
        assert!(
            message.contains("exceeds the maximum of 1000000000"),
            "{rate}: {message}"
        );
    }
    assert!(c.fx_rates(None).is_empty(), "nothing refused is stored");

    // At the bound it converts both ways: 100.01 EUR at 1 / 0.000000001 is 100 010 000 000 yen.
    c.set_fx_rate(&admin(), "JPY", "EUR", "0.000000001").await.unwrap();
    let mut query = stay("Bordeaux", 12, 13);
    query.currency = Some("JPY".into());
    let display = search(&world, query).await.results[0].options[0]
        .display_total
        .clone()
        .unwrap();
    assert_eq!(
        (display.amount_minor, display.currency.as_str()),
        (100_010_000_000, "JPY")
    );
}

pub async fn filters_sort_and_pages(pool: Pool) {
    let world = world_with(pool, plain(vec![], vec![])).await;
    let org = chain(&world).await;
    let mut made = Vec::new();
    for (i, stars) in [3u8, 5, 4, 2, 5].into_iter().enumerate() {
        let h = hotel(&world, org, "Madrid", 3, move |_| 20_000 - i as i64 * 1_000).await;
        let mut input = hotel_input("Madrid");
        input.stars = stars;
        if i % 2 == 0 {
            input.amenities.push("pool".into());
        }
        world
            .catalog
            .update_hotel(&operator(org), h.hotel, input)
            .await
            .unwrap();
        made.push(h.hotel);
    }
    // Cheapest first by default: the last made is the cheapest.
    let all = search(&world, stay("Madrid", 12, 14)).await;
    assert_eq!(ids(&all), made.iter().rev().copied().collect::<Vec<_>>());
    let mut query = stay("Madrid", 12, 14);
    query.stars = Some("5".into());
    assert_eq!(ids(&search(&world, query).await), [made[4], made[1]]);
    let mut query = stay("Madrid", 12, 14);
    query.amenities = Some("pool,spa".into());
    assert_eq!(ids(&search(&world, query).await), [made[4], made[2], made[0]]);
    let mut query = stay("Madrid", 12, 14);
    query.sort = Some(HotelSort::Stars);
    let by_stars: Vec<u8> = search(&world, query)
        .await
        .results
        .iter()
        .map(|r| r.hotel.stars)
        .collect();
    assert_eq!(by_stars, [5, 5, 4, 3, 2]);
    let mut query = stay("Madrid", 12, 14);
    query.min_price = Some(34_000);
    query.max_price = Some(38_000);
    assert_eq!(ids(&search(&world, query).await), [made[3], made[2], made[1]]);
    // Pages of two walk through all five exactly once.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let mut query = stay("Madrid", 12, 14);
        query.limit = Some(2);
        query.cursor = cursor;
        let page = search(&world, query).await;
        assert_eq!(page.total, 5);
        seen.extend(ids(&page));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids(&all));
    // Refundable only: a non-refundable hotel disappears.
    let only = world.catalog.snapshot().hotels[&made[0]].rate_plans[0].clone();
    world
        .catalog
        .update_rate_plan(
            &operator(org),
            made[0],
            only.id,
            phoenix_catalog::model::RatePlanInput {
                room_type_id: only.room_type_id,
                name: "Saver".into(),
                meal_plan: phoenix_catalog::hotel::MealPlan::RoomOnly,
                refundable: false,
                free_cancellation_hours: None,
                currency: "EUR".into(),
            },
        )
        .await
        .unwrap();
    let mut query = stay("Madrid", 12, 14);
    query.refundable = Some(true);
    assert!(!ids(&search(&world, query).await).contains(&made[0]));
    // A deactivated hotel is gone from search and from its public page.
    world.catalog.deactivate_hotel(&operator(org), made[1]).await.unwrap();
    assert!(!ids(&search(&world, stay("Madrid", 12, 14)).await).contains(&made[1]));
    assert!(matches!(world.catalog.hotel_details(made[1]), Err(Error::NotFound(_))));
    assert_eq!(world.catalog.hotel_details(made[2]).unwrap().room_types.len(), 1);
}

pub async fn geo_search_finds_hotels_within_the_radius(pool: Pool) {
    let world = world(pool).await;
    let org = chain(&world).await;
    let near = hotel(&world, org, "Paris", 2, |_| 10_000).await;
    let far = hotel(&world, org, "Versailles", 2, |n| 9_000 + n).await;
    let mut input = hotel_input("Versailles");
    (input.latitude, input.longitude) = (48.8049, 2.1204); // about 17.8 km from the centre of Paris
    input.stars = 5;
    world
        .catalog
        .update_hotel(&operator(org), far.hotel, input)
        .await
        .unwrap();
    let around = |radius| HotelSearch {
        latitude: Some(48.8566),
        longitude: Some(2.3522),
        radius_km: Some(radius),
        sort: Some(HotelSort::Distance),
        ..stay("", 12, 13)
    };
    let close = search(&world, around(10.0)).await;
    assert_eq!(ids(&close), [near.hotel]);
    assert_eq!(close.results[0].distance_km, Some(0.0));
    let wide = search(&world, around(20.0)).await;
    assert_eq!(ids(&wide), [near.hotel, far.hotel]);
    let d = wide.results[1].distance_km.unwrap();
    assert!((17.0..19.0).contains(&d), "{d}");
    // Recommendations near the point, nearest first, with a from-price.
    let recommended = world
        .catalog
        .recommend_hotels(&phoenix_catalog::search::Recommendations {
            latitude: Some(48.85),
            longitude: Some(2.35),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        recommended.iter().map(|r| r.hotel.id).collect::<Vec<_>>(),
        [near.hotel, far.hotel]
    );
    assert_eq!(recommended[0].from_price_minor, Some(10_000));
    // Best rated first, and cheapest first (by the lowest nightly price of the next 30 nights).
    for (sort, first) in [
        (phoenix_catalog::search::RecommendationSort::Rating, far.hotel),
        (phoenix_catalog::search::RecommendationSort::Price, far.hotel),
        (phoenix_catalog::search::RecommendationSort::Distance, near.hotel),
    ] {
        let recommended = world
            .catalog
            .recommend_hotels(&phoenix_catalog::search::Recommendations {
                latitude: Some(48.85),
                longitude: Some(2.35),
                sort: Some(sort),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(recommended[0].hotel.id, first, "{sort:?}");
        assert_eq!(recommended.len(), 2);
    }
    let cheapest = world
        .catalog
        .recommend_hotels(&phoenix_catalog::search::Recommendations {
            latitude: Some(48.85),
            longitude: Some(2.35),
            sort: Some(phoenix_catalog::search::RecommendationSort::Price),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(cheapest[0].from_price_minor, Some(9_010));
}

pub async fn offers_prove_the_price_and_refuse_tampering(pool: Pool) {
    let world = world(pool).await;
    let h = hotel(&world, chain(&world).await, "Paris", 2, |_| 10_000).await;
    let found = search(&world, stay("Paris", 12, 14)).await;
    let option = &found.results[0].options[0];
    let offer = world.catalog.verify_offer(&option.offer_id).unwrap();
    assert_eq!(offer.total.amount_minor, option.price.total_minor);
    assert_eq!(offer.total.currency, "EUR");
    assert_eq!(offer.details["rate_plan_id"], h.rate_plan.to_string());
    assert_eq!(offer.details["check_in"], day(12).0.to_string());
    assert_eq!(offer.details["kind"], "hotel");
    assert_eq!(offer.details["price"]["total_minor"], option.price.total_minor);
    let mut forged = option.offer_id.clone();
    let mid = forged.len() / 3;
    let flipped = if forged.as_bytes()[mid] == b'A' { "B" } else { "A" };
    forged.replace_range(mid..mid + 1, flipped);
    assert!(matches!(world.catalog.verify_offer(&forged), Err(Error::Offer(_))));
    assert!(matches!(
        world.catalog.verify_offer("ofr_nonsense"),
        Err(Error::Offer(_))
    ));
}

pub async fn bad_hotel_searches_name_the_field(pool: Pool) {
    let world = world(pool).await;
    let bad = |query: HotelSearch| {
        let catalog = world.catalog.clone();
        async move { invalid_fields(catalog.search_hotels(&query).await) }
    };
    assert_eq!(bad(stay("Paris", 12, 12)).await, ["check_out"]);
    assert_eq!(bad(stay("Paris", 12, 11)).await, ["check_out"]);
    assert_eq!(bad(stay("Paris", 12, 43)).await, ["check_out"], "31 nights");
    assert_eq!(bad(stay("Paris", -2, 3)).await, ["check_in"]);
    let mut far = stay("", 12, 13);
    (far.latitude, far.longitude, far.radius_km) = (Some(48.0), Some(2.0), Some(500.0));
    assert_eq!(bad(far.clone()).await, ["radius_km"]);
    far.radius_km = Some(0.0);
    assert_eq!(bad(far).await, ["radius_km"]);
    let mut nowhere = stay("", 12, 13);
    nowhere.city = None;
    assert_eq!(bad(nowhere).await, ["city"]);
    let mut rooms = stay("Paris", 12, 13);
    rooms.rooms = Some(10);
    rooms.guests = Some(20);
    assert_eq!(bad(rooms).await, ["rooms"]);
    let mut many = stay("Paris", 12, 13);
    (many.latitude, many.longitude, many.currency, many.stars) =
        (Some(100.0), Some(0.0), Some("XXQ".into()), Some("6".into()));
    assert_eq!(bad(many).await, ["latitude", "stars", "currency"]);
    let mut negative = stay("Paris", 12, 13);
    (negative.min_price, negative.max_price) = (Some(-5), Some(-1));
    assert_eq!(bad(negative).await, ["min_price", "max_price"]);
    // A 30-night stay is fine.
    assert!(world.catalog.search_hotels(&stay("Paris", 12, 42)).await.is_ok());
}

/// Travellers read a hotel's, a room type's and a rate plan's names in search results, on bookings and in emails: a
/// right-to-left override or a zero-width space would make them show what they do not say.
pub async fn hidden_characters_in_names_are_refused(pool: Pool) {
    let world = world(pool).await;
    let org = chain(&world).await;
    let (c, actor) = (&world.catalog, operator(org));
    let mut input = hotel_input("Paris");
    input.name = "Grand \u{202e}letoH\u{202c} Paris".into();
    input.address = "1 rue\u{200b} de Rivoli".into();
    assert_eq!(invalid_fields(c.create_hotel(&actor, input).await), ["name", "address"]);
    let h = hotel(&world, org, "Paris", 5, |_| 10_000).await;
    let mut renamed = hotel_input("Paris");
    renamed.description = "Quiet\u{2066} rooms".into();
    assert_eq!(
        invalid_fields(c.update_hotel(&actor, h.hotel, renamed).await),
        ["description"]
    );
    let room = RoomTypeInput {
        name: "\u{202e}Suite".into(),
        max_occupancy: 2,
        beds: "1 king".into(),
        rooms: 3,
    };
    assert_eq!(
        invalid_fields(c.create_room_type(&actor, h.hotel, room).await),
        ["name"]
    );
    let plan = phoenix_catalog::model::RatePlanInput {
        room_type_id: h.room_type,
        name: "\u{200b}Flexible".into(),
        meal_plan: phoenix_catalog::hotel::MealPlan::Breakfast,
        refundable: true,
        free_cancellation_hours: Some(48),
        currency: "EUR".into(),
    };
    assert_eq!(
        invalid_fields(c.create_rate_plan(&actor, h.hotel, plan).await),
        ["name"]
    );
    // Nothing of it was kept, and names in other scripts, joiners included, are names like any other.
    let kept = c.hotel_for_manager(&actor, h.hotel).unwrap();
    assert_eq!(
        (kept.hotel.name.as_str(), kept.room_types.len(), kept.rate_plans.len()),
        ("Hotel Lumiere", 1, 1)
    );
    let mut persian = hotel_input("Paris");
    persian.name = "هتل علی\u{200c}رضا".into();
    assert!(c.create_hotel(&actor, persian).await.is_ok());
}

pub async fn catalog_survives_a_restart(pool: Pool) {
    let world = world(pool.clone()).await;
    let h = hotel(&world, chain(&world).await, "Paris", 2, |n| 10_000 + n).await;
    world.catalog.set_fx_rate(&admin(), "EUR", "GBP", "0.86").await.unwrap();
    let World {
        catalog,
        inventory_db,
        identity,
        _identity_db,
        ..
    } = world;
    drop(catalog);
    let inventory = phoenix_inventory::Service::new(
        inventory_db.pool(),
        phoenix_inventory::Options::default(),
        phoenix_inventory::Clock::System,
    )
    .await
    .unwrap();
    let catalog = catalog_on(pool, &inventory, &identity, Options::default()).await;
    let snapshot = catalog.snapshot();
    let entry = &snapshot.hotels[&h.hotel];
    assert_eq!(entry.rate_plans[0].prices.len(), 20);
    assert_eq!(entry.rate_plans[0].prices[&day(15).0], 10_015);
    assert_eq!(
        snapshot.fx[&(currency("EUR"), currency("GBP"))].rate.get().to_string(),
        "0.86"
    );
    let mut query = stay("Paris", 12, 14);
    query.currency = Some("GBP".into());
    let value: serde_json::Value = serde_json::from_slice(&catalog.search_hotels(&query).await.unwrap()).unwrap();
    assert_eq!(value["results"][0]["hotel"]["id"], h.hotel.to_string());
}

pub async fn a_replica_picks_up_another_replicas_writes(pool: Pool) {
    let world = world(pool.clone()).await;
    let replica = catalog_on(pool, &world.inventory, &world.identity, Options::default()).await;
    let start = world.catalog.follow_catalog(0).await.unwrap();
    let h = hotel(&world, chain(&world).await, "Paris", 2, |_| 10_000).await;
    world.catalog.set_fx_rate(&admin(), "EUR", "SEK", "11.2").await.unwrap();
    // The replica finds events it did not write and reloads (its own follower may get there first: either way).
    replica.follow_catalog(start).await.unwrap();
    let snapshot = replica.snapshot();
    assert_eq!(snapshot.hotels[&h.hotel].rate_plans[0].prices.len(), 20);
    assert!(snapshot.fx.contains_key(&(currency("EUR"), currency("SEK"))));
    let found: serde_json::Value =
        serde_json::from_slice(&replica.search_hotels(&stay("Paris", 12, 13)).await.unwrap()).unwrap();
    assert_eq!(found["total"], 1);
}

fn currency(code: &str) -> phoenix_catalog::money::Currency {
    phoenix_catalog::money::Currency::parse(code).unwrap()
}

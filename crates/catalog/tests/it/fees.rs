//! Fixed fees are amounts in their own currency: a product priced in another converts them at the catalog's
//! exchange rates, once per unit (night, guest, traveller) and half up, and search and quotes charge the same; a
//! product whose fees have no rate into its currency is neither found nor quoted, and a same-currency product is
//! priced as configured.

use phoenix_api::Problem;
use phoenix_catalog::demo::{self, DemoOptions};
use phoenix_catalog::flight::Cabin;
use phoenix_catalog::model::{PricesInput, RatePlanInput, RoomTypeInput};
use phoenix_catalog::pricing::{Applies, DynamicPricing, FeeKind, FeeLine, PriceBreakdown};
use phoenix_catalog::quote::{FlightItem, HotelItem, QuoteItem};
use phoenix_catalog::search::{HotelSearch, Passengers, StayOption};
use phoenix_catalog::{Error, Options};
use phoenix_db::Pool;

use super::flights::{DAY, airline, schedule, trip};
use super::hotels::{plain, search, stay};
use super::quote::{quote, refusal, stay_item};
use super::*;

phoenix_db::contract_suite!(
    phoenix_catalog::migrations(),
    [
        fixed_fees_convert_into_the_hotels_currency_in_search_and_quote,
        a_hotel_whose_fees_have_no_rate_is_neither_found_nor_quoted,
        airport_charges_convert_into_the_fares_currency_and_need_a_rate,
        demo_hotels_sell_once_the_demo_rates_are_set,
        a_deleted_rate_converts_nothing_from_then_on,
        setting_the_opposite_pair_replaces_the_rate,
        two_catalogs_racing_to_set_a_pair_both_ways_leave_one_rate,
    ]
);

fn line(code: &str, kind: FeeKind, currency: Option<&str>, applies_to: Applies) -> FeeLine {
    FeeLine {
        code: code.into(),
        name: code.replace('_', " "),
        kind,
        currency: currency.map(|c| phoenix_catalog::money::Currency::parse(c).unwrap()),
        applies_to,
    }
}

/// VAT 10 %, a city tax of 2.50 EUR a room-night and a levy of 1.20 EUR a guest on hotels, flat prices.
fn hotel_fees() -> Options {
    plain(
        vec![
            line("vat", FeeKind::PercentBp(1_000), None, Applies::Hotel),
            line("city_tax", FeeKind::PerNight(250), Some("EUR"), Applies::Hotel),
            line("levy", FeeKind::PerTraveller(120), Some("EUR"), Applies::Hotel),
        ],
        vec![],
    )
}

/// A hotel in `city` with a room type of three rooms and one plan in `currency` at `nightly_minor` for nights 10 to
/// 29 from today.
pub async fn hotel_priced_in(world: &World, city: &str, currency: &str, nightly_minor: i64) -> HotelIds {
    let org = chain(world).await;
    let actor = operator(org);
    let c = &world.catalog;
    let hotel = c.create_hotel(&actor, hotel_input(city)).await.unwrap();
    let room = RoomTypeInput {
        name: "Double".into(),
        max_occupancy: 2,
        beds: "1 queen".into(),
        rooms: 3,
    };
    let room = c.create_room_type(&actor, hotel.id, room).await.unwrap();
    let plan = RatePlanInput {
        room_type_id: room.id,
        name: "Flexible".into(),
        meal_plan: phoenix_catalog::hotel::MealPlan::RoomOnly,
        refundable: true,
        free_cancellation_hours: Some(48),
        currency: currency.into(),
    };
    let plan = c.create_rate_plan(&actor, hotel.id, plan).await.unwrap();
    let prices = PricesInput {
        from: day(10),
        to: day(29),
        amount_minor: nightly_minor,
    };
    c.set_prices(&actor, hotel.id, plan.id, prices).await.unwrap();
    HotelIds {
        hotel: hotel.id,
        room_type: room.id,
        rate_plan: plan.id,
    }
}

/// Two nights from day 12, two rooms, three guests: four room-nights.
fn two_nights_two_rooms(city: &str) -> HotelSearch {
    HotelSearch {
        rooms: Some(2),
        guests: Some(3),
        ..stay(city, 12, 14)
    }
}

fn fees(price: &PriceBreakdown) -> Vec<(&str, i64)> {
    price.fees.iter().map(|f| (f.code.as_str(), f.amount_minor)).collect()
}

/// The only option search shows in `city` for two nights, two rooms and three guests.
async fn only_option(world: &World, city: &str) -> StayOption {
    let found = search(world, two_nights_two_rooms(city)).await;
    assert_eq!(found.total, 1, "{city}");
    assert_eq!(found.results[0].options.len(), 1, "{city}");
    found.results[0].options[0].clone()
}

/// Quotes `item` alone, and with the offer search showed, and checks both charge what search showed.
async fn quoted_as_shown(world: &World, item: HotelItem, option: &StayOption) {
    let with_offer = HotelItem {
        offer_id: Some(option.offer_id.clone()),
        ..item.clone()
    };
    for item in [item, with_offer] {
        let quoted = quote(world, vec![QuoteItem::Hotel(item)], None).await.unwrap();
        assert_eq!(quoted.currency, option.currency);
        assert_eq!(quoted.total_minor, option.price.total_minor);
        let breakdown = quoted.items[0].breakdown.as_ref().unwrap();
        let quoted_fees: Vec<(&str, i64)> = breakdown
            .fees
            .iter()
            .map(|f| (f.code.as_str(), f.amount_minor))
            .collect();
        assert_eq!(quoted_fees, fees(&option.price), "{}", option.currency);
        assert_eq!(breakdown.base_minor, option.price.base_minor);
    }
}

pub async fn fixed_fees_convert_into_the_hotels_currency_in_search_and_quote(pool: Pool) {
    let world = world_with(pool, hotel_fees()).await;
    let tokyo = hotel_priced_in(&world, "Tokyo", "JPY", 20_000).await;
    let kuwait = hotel_priced_in(&world, "Kuwait City", "KWD", 45_000).await;
    let paris = hotel_priced_in(&world, "Paris", "EUR", 10_000).await;
    let admin = admin();
    world.catalog.set_fx_rate(&admin, "EUR", "JPY", "163.1").await.unwrap();
    // Only the other way round for dinars: EUR to KWD is its inverse, 1 / 3.2 = 0.3125.
    world.catalog.set_fx_rate(&admin, "KWD", "EUR", "3.2").await.unwrap();

    // 2.50 EUR at 163.1 is 407.75 yen: 408 a room-night, 1632 for four (1631 if the total were converted).
    // 1.20 EUR is 195.72 yen: 196 a guest, 588 for three.
    let option = only_option(&world, "Tokyo").await;
    assert_eq!(option.currency, "JPY");
    assert_eq!(option.price.base_minor, 80_000);
    assert_eq!(
        fees(&option.price),
        [("vat", 8_000), ("city_tax", 1_632), ("levy", 588)]
    );
    assert_eq!(option.price.total_minor, 80_000 + 8_000 + 1_632 + 588);
    quoted_as_shown(&world, stay_item(&tokyo, 12, 14, 2, 3), &option).await;

    // 2.50 EUR at 0.3125 is 0.78125 KWD: 781 fils a room-night, 3124 for four (3125 if the total were converted).
    // 1.20 EUR is exactly 0.375 KWD a guest.
    let option = only_option(&world, "Kuwait City").await;
    assert_eq!(option.currency, "KWD");
    assert_eq!(option.price.base_minor, 180_000);
    assert_eq!(
        fees(&option.price),
        [("vat", 18_000), ("city_tax", 3_124), ("levy", 1_125)]
    );
    assert_eq!(option.price.total_minor, 180_000 + 18_000 + 3_124 + 1_125);
    quoted_as_shown(&world, stay_item(&kuwait, 12, 14, 2, 3), &option).await;

    // In the fees' own currency, the amounts as configured, whatever the rates.
    let option = only_option(&world, "Paris").await;
    assert_eq!(
        fees(&option.price),
        [("vat", 4_000), ("city_tax", 250 * 4), ("levy", 120 * 3)]
    );
    assert_eq!(option.price.total_minor, 40_000 + 4_000 + 1_000 + 360);
    quoted_as_shown(&world, stay_item(&paris, 12, 14, 2, 3), &option).await;

    // A new rate prices anew: search and quotes both follow it.
    world.catalog.set_fx_rate(&admin, "EUR", "JPY", "150").await.unwrap();
    let option = only_option(&world, "Tokyo").await;
    assert_eq!(
        fees(&option.price),
        [("vat", 8_000), ("city_tax", 375 * 4), ("levy", 180 * 3)]
    );
    quoted_as_shown(&world, stay_item(&tokyo, 12, 14, 2, 3), &option).await;
}

pub async fn a_hotel_whose_fees_have_no_rate_is_neither_found_nor_quoted(pool: Pool) {
    let world = world_with(pool, hotel_fees()).await;
    let bangkok = hotel_priced_in(&world, "Bangkok", "THB", 150_000).await;
    let paris = hotel_priced_in(&world, "Paris", "EUR", 10_000).await;
    // A rate to another currency, or from baht to a third, is no rate from the fees' euros to baht.
    world
        .catalog
        .set_fx_rate(&admin(), "EUR", "JPY", "163.1")
        .await
        .unwrap();
    world
        .catalog
        .set_fx_rate(&admin(), "THB", "USD", "0.028")
        .await
        .unwrap();

    assert_eq!(search(&world, two_nights_two_rooms("Bangkok")).await.total, 0);
    let alone = quote(&world, vec![QuoteItem::Hotel(stay_item(&bangkok, 12, 14, 2, 3))], None).await;
    let problem = match alone {
        Err(error @ Error::CurrencyMismatch(_)) => Problem::from(error),
        other => panic!("expected a currency mismatch, got {other:?}"),
    };
    assert_eq!(
        (problem.status.as_u16(), problem.code.as_ref()),
        (422, "currency_mismatch")
    );
    assert_eq!(problem.errors[0].field, "items[0]");
    assert!(
        problem.errors[0].message.contains("from EUR to THB") && problem.errors[0].message.contains("city_tax"),
        "{}",
        problem.errors[0].message
    );
    // In a package, only that item is named; the one in euros is fine.
    let package = vec![
        QuoteItem::Hotel(stay_item(&paris, 12, 14, 2, 3)),
        QuoteItem::Hotel(stay_item(&bangkok, 12, 14, 2, 3)),
    ];
    assert_eq!(
        refusal(quote(&world, package.clone(), None).await),
        (422, "currency_mismatch".into(), vec!["items[1]".to_owned()])
    );

    // Once the rate is set, it sells: 2.50 EUR at 38.5 is 96.25 baht a room-night, 1.20 EUR 46.20 a guest.
    world.catalog.set_fx_rate(&admin(), "EUR", "THB", "38.5").await.unwrap();
    let option = only_option(&world, "Bangkok").await;
    assert_eq!(
        fees(&option.price),
        [("vat", 60_000), ("city_tax", 9_625 * 4), ("levy", 4_620 * 3)]
    );
    quoted_as_shown(&world, stay_item(&bangkok, 12, 14, 2, 3), &option).await;
    // The package too, in euros: the baht item converts at the inverse of the same rate.
    let package = quote(&world, package, None).await.unwrap();
    assert_eq!(package.currency, "EUR");
    assert_eq!(
        package.items[1].original_price.as_ref().unwrap().amount_minor,
        option.price.total_minor
    );
}

pub async fn airport_charges_convert_into_the_fares_currency_and_need_a_rate(pool: Pool) {
    // The default fees (airport charges 15.00 EUR a traveller), flat prices.
    let options = Options {
        dynamic_pricing: DynamicPricing::flat(),
        ..Options::default()
    };
    let world = world_with(pool, options).await;
    let org = airline(&world, "PX").await;
    let mut won = schedule("PX70", "CDG", "NCE", "09:00", 85);
    won.currency = "KRW".into();
    world.catalog.create_schedule(&operator(org), won).await.unwrap();
    let family = Passengers {
        adults: 2,
        children: 0,
        infants: 1,
    };
    let mut query = trip("CDG", "NCE", DAY);
    (query.adults, query.infants) = (Some(2), Some(1));
    let item = FlightItem {
        departure_ids: vec![format!("PX70-{}", day(DAY).0)],
        cabin: Cabin::Economy,
        fare_codes: vec!["Q".into()],
        passengers: family,
        offer_id: None,
    };

    // Without a rate from EUR to KRW: not found, and refused.
    assert!(super::flights::search(&world, query.clone()).await.outbound.is_empty());
    assert_eq!(
        refusal(quote(&world, vec![QuoteItem::Flight(item.clone())], None).await),
        (422, "currency_mismatch".into(), vec!["items[0]".to_owned()])
    );

    // 15.00 EUR at 1467.39 is 22010.85 won: 22011 a traveller, the infant too.
    world
        .catalog
        .set_fx_rate(&admin(), "EUR", "KRW", "1467.39")
        .await
        .unwrap();
    let found = super::flights::search(&world, query).await;
    let itinerary = &found.outbound[0];
    assert_eq!(itinerary.currency, "KRW");
    assert_eq!(itinerary.fare_codes, ["Q"]);
    // Two adults at 10 000 won and an infant at 10 %.
    assert_eq!(itinerary.price.base_minor, 21_000);
    assert_eq!(fees(&itinerary.price), [("airport_charges", 22_011 * 3)]);
    assert_eq!(itinerary.price.total_minor, 21_000 + 66_033);
    for offer_id in [None, Some(itinerary.offer_id.clone())] {
        let item = FlightItem {
            offer_id,
            ..item.clone()
        };
        let quoted = quote(&world, vec![QuoteItem::Flight(item)], None).await.unwrap();
        assert_eq!((quoted.currency.as_str(), quoted.total_minor), ("KRW", 87_033));
        let breakdown = quoted.items[0].breakdown.as_ref().unwrap();
        assert_eq!(breakdown.fees[0].amount_minor, 66_033);
    }
}

/// The demo prices hotels in local currencies; with the rates [`demo::fx_rates`] gives, they sell with the city tax
/// converted, and without them they are not found.
pub async fn demo_hotels_sell_once_the_demo_rates_are_set(pool: Pool) {
    let world = world(pool).await;
    let options = DemoOptions {
        scale: 1,
        start: day(10).0,
        days: 3,
    };
    let hotels = demo::hotels(&demo::organizations(1), &options);
    let first_in = |city: &str| hotels.iter().find(|e| e.hotel.city == city).unwrap().clone();
    let picked = vec![first_in("Tokyo"), first_in("Seoul"), first_in("Paris")];
    world.catalog.load_hotels(&admin(), picked).await.unwrap();
    let one_night = |city: &str| HotelSearch {
        guests: Some(1),
        ..stay(city, 11, 12)
    };
    assert_eq!(search(&world, one_night("Paris")).await.total, 1);
    for city in ["Tokyo", "Seoul"] {
        assert_eq!(search(&world, one_night(city)).await.total, 0, "{city} without rates");
    }

    for rate in demo::fx_rates(world.catalog.options()) {
        world
            .catalog
            .set_fx_rate(&admin(), &rate.base, &rate.quote, &rate.rate)
            .await
            .unwrap();
    }
    // 2.50 EUR a night at 150 / 0.92 yen (163.04347826) is 407.61 yen; at 1350 / 0.92 won (1467.39130435),
    // 3668.48 won.
    for (city, currency, city_tax) in [("Tokyo", "JPY", 408), ("Seoul", "KRW", 3_668), ("Paris", "EUR", 250)] {
        let found = search(&world, one_night(city)).await;
        assert_eq!(found.total, 1, "{city}");
        for option in &found.results[0].options {
            assert_eq!(option.currency, currency);
            let charged = option.price.fees.iter().find(|f| f.code == "city_tax").unwrap();
            assert_eq!(charged.amount_minor, city_tax, "{city}");
        }
    }
}

/// A deleted rate is gone from search and quotes at once (not left in cached results): the products whose fees it
/// converted are neither found nor quoted, and no price shows in the currency it reached.
pub async fn a_deleted_rate_converts_nothing_from_then_on(pool: Pool) {
    let world = world_with(pool, hotel_fees()).await;
    let tokyo = hotel_priced_in(&world, "Tokyo", "JPY", 20_000).await;
    let paris = hotel_priced_in(&world, "Paris", "EUR", 10_000).await;
    let c = &world.catalog;
    c.set_fx_rate(&admin(), "EUR", "JPY", "163.1").await.unwrap();
    let in_yen = || HotelSearch {
        currency: Some("JPY".into()),
        ..two_nights_two_rooms("Paris")
    };
    let option = only_option(&world, "Tokyo").await;
    quoted_as_shown(&world, stay_item(&tokyo, 12, 14, 2, 3), &option).await;
    let paris_item = || vec![QuoteItem::Hotel(stay_item(&paris, 12, 14, 2, 3))];
    assert!(
        search(&world, in_yen()).await.results[0].options[0]
            .display_total
            .is_some()
    );
    assert_eq!(quote(&world, paris_item(), Some("JPY")).await.unwrap().currency, "JPY");

    c.delete_fx_rate(&admin(), "EUR", "JPY").await.unwrap();
    assert!(c.fx_rates(None).is_empty());
    // The same searches as before: answered anew, not from the result cache.
    assert_eq!(search(&world, two_nights_two_rooms("Tokyo")).await.total, 0);
    assert_eq!(
        refusal(quote(&world, vec![QuoteItem::Hotel(stay_item(&tokyo, 12, 14, 2, 3))], None).await),
        (422, "currency_mismatch".into(), vec!["items[0]".to_owned()])
    );
    let with_offer = HotelItem {
        offer_id: Some(option.offer_id.clone()),
        ..stay_item(&tokyo, 12, 14, 2, 3)
    };
    assert_eq!(
        refusal(quote(&world, vec![QuoteItem::Hotel(with_offer)], None).await),
        (422, "currency_mismatch".into(), vec!["items[0]".to_owned()])
    );
    // Paris still sells in euros, but no longer shows or quotes in yen.
    let found = search(&world, in_yen()).await;
    assert_eq!(found.total, 1);
    assert!(found.results[0].options[0].display_total.is_none());
    assert_eq!(
        refusal(quote(&world, paris_item(), Some("JPY")).await),
        (422, "currency_mismatch".into(), vec!["items[0]".to_owned()])
    );

    // Nothing left to delete: 404 with the catalog's code, and the opposite way names no rate either.
    for (base, quote) in [("EUR", "JPY"), ("JPY", "EUR")] {
        let gone = c.delete_fx_rate(&admin(), base, quote).await;
        let problem = match gone {
            Err(error @ Error::NotFound(_)) => Problem::from(error),
            other => panic!("expected 404, got {other:?}"),
        };
        assert_eq!((problem.status.as_u16(), problem.code.as_ref()), (404, "not_found"));
    }
}

/// The exchange rates listed, as `BASE/QUOTE rate`.
fn rates(catalog: &phoenix_catalog::Catalog) -> Vec<String> {
    catalog
        .fx_rates(None)
        .into_iter()
        .map(|r| format!("{}/{} {}", r.base, r.quote, r.rate))
        .collect()
}

/// A pair of currencies has one rate: setting it the other way round replaces the first, whose inverse no longer
/// converts anything, and the last set serves both ways.
pub async fn setting_the_opposite_pair_replaces_the_rate(pool: Pool) {
    let world = world_with(pool, hotel_fees()).await;
    let tokyo = hotel_priced_in(&world, "Tokyo", "JPY", 20_000).await;
    let c = &world.catalog;
    let first = c.set_fx_rate(&admin(), "EUR", "JPY", "163.1").await.unwrap();
    assert_eq!(first.replaced_opposite, None);
    // 160 yen a euro, set from the yen's side.
    let second = c.set_fx_rate(&admin(), "JPY", "EUR", "0.00625").await.unwrap();
    assert_eq!(second.replaced_opposite.as_deref(), Some("163.1"));
    assert_eq!(rates(c), ["JPY/EUR 0.00625"]);
    assert_eq!(c.snapshot().fx.len(), 1);

    // The fees convert at the inverse of the rate set last: 2.50 EUR is 400 yen a room-night, 1.20 EUR 192 a
    // guest (at 163.1 they were 408 and 196).
    let option = only_option(&world, "Tokyo").await;
    assert_eq!(
        fees(&option.price),
        [("vat", 8_000), ("city_tax", 400 * 4), ("levy", 192 * 3)]
    );
    quoted_as_shown(&world, stay_item(&tokyo, 12, 14, 2, 3), &option).await;

    // And back: the yen's side is replaced in turn.
    let third = c.set_fx_rate(&admin(), "EUR", "JPY", "150").await.unwrap();
    assert_eq!(third.replaced_opposite.as_deref(), Some("0.00625"));
    assert_eq!(rates(c), ["EUR/JPY 150"]);
    let option = only_option(&world, "Tokyo").await;
    assert_eq!(
        fees(&option.price),
        [("vat", 8_000), ("city_tax", 375 * 4), ("levy", 180 * 3)]
    );
}

/// Two catalog processes on one database (each serializes only its own writes) setting one pair both ways at
/// once: every set succeeds (the one the pair's unique index refuses goes again), and one rate is left, the same in
/// the database as in a catalog that loads it afresh.
pub async fn two_catalogs_racing_to_set_a_pair_both_ways_leave_one_rate(pool: Pool) {
    let world = world_with(pool.clone(), hotel_fees()).await;
    let other = catalog_on(pool.clone(), &world.inventory, &world.identity, hotel_fees()).await;
    let racers: Vec<_> = (0..24)
        .map(|i| {
            let catalog = if i % 2 == 0 {
                world.catalog.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move {
                if i % 4 < 2 {
                    catalog.set_fx_rate(&admin(), "EUR", "JPY", "160").await
                } else {
                    catalog.set_fx_rate(&admin(), "JPY", "EUR", "0.00625").await
                }
            })
        })
        .collect();
    for racer in racers {
        racer.await.unwrap().unwrap();
    }
    let fresh = catalog_on(pool, &world.inventory, &world.identity, hotel_fees()).await;
    let listed = fresh.fx_rates(None);
    assert_eq!(listed.len(), 1, "{listed:?}");
}

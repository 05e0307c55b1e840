//! Quotes of stays: the price search shows, the offer's price, the buckets to hold, the cancellation terms, and the
//! fields and items a refusal names. Shared helpers for the other quote suites live here too.

use phoenix_api::{Principal, Problem};
use phoenix_catalog::Error;
use phoenix_catalog::hotel::room_item;
use phoenix_catalog::model::{CapacityInput, PricesInput, RatePlanInput};
use phoenix_catalog::offer::{Offer, OfferSigner};
use phoenix_catalog::quote::{HotelItem, ItemKind, Quotation, QuoteItem, QuoteRequest};
use phoenix_catalog::search::{HotelSearch, HotelSearchResponse, OfferDetails};
use phoenix_db::Pool;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};
use time_tz::OffsetDateTimeExt;

use super::hotels::{plain, search, stay};
use super::*;

phoenix_db::contract_suite!(
    phoenix_catalog::migrations(),
    [
        a_quote_prices_a_stay_as_search_does,
        an_offer_sets_the_price_and_must_describe_the_item,
        stay_lines_are_the_buckets_to_hold,
        stay_terms_follow_the_plan_on_the_hotels_clock,
        bad_stay_quotes_name_the_field,
        closed_or_short_nights_make_the_item_unavailable,
        a_stay_checks_in_no_earlier_than_today_where_the_hotel_is,
    ]
);

/// The key `catalog_on` signs with, to mint offers the catalog accepts (an expired one, say).
const TEST_KEY: &[u8] = b"a test key that is long enough!!";

pub fn customer() -> Principal {
    principal(&[Role::Customer], None)
}

pub async fn quote(world: &World, items: Vec<QuoteItem>, currency: Option<&str>) -> Result<Quotation, Error> {
    let request = QuoteRequest {
        items,
        currency: currency.map(str::to_owned),
    };
    world.catalog.quote(&customer(), &request).await
}

/// The status, code and named fields of a refusal.
pub fn refusal(result: Result<Quotation, Error>) -> (u16, String, Vec<String>) {
    let problem = match result {
        Ok(q) => panic!("expected a refusal, got {q:?}"),
        Err(error) => Problem::from(error),
    };
    let fields = problem.errors.iter().map(|e| e.field.clone()).collect();
    (problem.status.as_u16(), problem.code.to_string(), fields)
}

pub fn stay_item(h: &HotelIds, from: i64, to: i64, rooms: u32, guests: u32) -> HotelItem {
    HotelItem {
        hotel_id: h.hotel,
        room_type_id: h.room_type,
        rate_plan_id: h.rate_plan,
        check_in: day(from),
        check_out: day(to),
        rooms,
        guests,
        offer_id: None,
    }
}

/// Prices a plan for the nights `from..=to`.
async fn price_nights(world: &World, org: Uuid, h: &HotelIds, plan: Uuid, from: Date, to: Date, amount_minor: i64) {
    let prices = PricesInput {
        from: Day(from),
        to: Day(to),
        amount_minor,
    };
    world
        .catalog
        .set_prices(&operator(org), h.hotel, plan, prices)
        .await
        .unwrap();
}

async fn search_stay(world: &World, from: i64, to: i64, rooms: u32, guests: u32) -> HotelSearchResponse {
    let mut query = stay("Paris", from, to);
    (query.rooms, query.guests) = (Some(rooms), Some(guests));
    search(world, query).await
}

pub async fn a_quote_prices_a_stay_as_search_does(pool: Pool) {
    // The default options: VAT, a city tax per room-night, and dynamic pricing.
    let world = world(pool).await;
    let org = chain(&world).await;
    let h = hotel(&world, org, "Paris", 4, |n| 10_000 + n * 100).await;
    // Half the rooms of night 13 go: that night costs 10 % more.
    hold(&world, &room_item(h.room_type, day(13).0), 2).await;
    world.catalog.follow_inventory().await.unwrap();
    let found = search_stay(&world, 12, 15, 2, 3).await;
    let option = &found.results[0].options[0];
    assert_eq!(option.nightly_minor, [11_200, 11_300 * 11 / 10, 11_400]);

    let quoted = quote(&world, vec![QuoteItem::Hotel(stay_item(&h, 12, 15, 2, 3))], None)
        .await
        .unwrap();
    assert_eq!(
        (quoted.currency.as_str(), quoted.total_minor),
        ("EUR", option.price.total_minor)
    );
    let item = &quoted.items[0];
    assert_eq!(item.kind, ItemKind::Hotel);
    assert_eq!(item.price_minor, option.price.total_minor);
    let breakdown = item.breakdown.as_ref().unwrap();
    assert_eq!(breakdown.currency, "EUR");
    assert_eq!(breakdown.base_minor, option.price.base_minor);
    let fees: Vec<(&str, i64)> = breakdown
        .fees
        .iter()
        .map(|f| (f.code.as_str(), f.amount_minor))
        .collect();
    let shown: Vec<(&str, i64)> = option
        .price
        .fees
        .iter()
        .map(|f| (f.code.as_str(), f.amount_minor))
        .collect();
    assert_eq!(fees, shown);
    assert!(item.original_price.is_none() && item.offer_id.is_none());
    assert_eq!(item.organization_id, org);
    assert!(
        item.description
            .starts_with("Hotel Lumiere, Double (Flexible): 3 nights"),
        "{}",
        item.description
    );
    // Check-in at 15:00 and check-out at 11:00 in Paris.
    let paris = phoenix_catalog::geo::time_zone("Europe/Paris").unwrap();
    let starts = item.starts_at.to_timezone(paris);
    assert_eq!((starts.date(), starts.time()), (day(12).0, time::macros::time!(15:00)));
    let ends = item.ends_at.to_timezone(paris);
    assert_eq!((ends.date(), ends.time()), (day(15).0, time::macros::time!(11:00)));
    assert_eq!(item.starts_at.offset(), UtcOffset::UTC);
}

pub async fn an_offer_sets_the_price_and_must_describe_the_item(pool: Pool) {
    let world = world_with(pool, plain(vec![], vec![])).await;
    let org = chain(&world).await;
    let h = hotel(&world, org, "Paris", 3, |_| 10_000).await;
    let option = search_stay(&world, 12, 14, 1, 2).await.results[0].options[0].clone();
    assert_eq!(option.price.total_minor, 20_000);
    // The price goes up after the customer saw it: the offer keeps the price shown.
    price_nights(&world, org, &h, h.rate_plan, day(12).0, day(13).0, 15_000).await;
    let mut item = stay_item(&h, 12, 14, 1, 2);
    item.offer_id = Some(option.offer_id.clone());
    let quoted = quote(&world, vec![QuoteItem::Hotel(item.clone())], None).await.unwrap();
    assert_eq!(quoted.items[0].price_minor, 20_000);
    assert_eq!(quoted.items[0].offer_id.as_deref(), Some(option.offer_id.as_str()));
    assert_eq!(quoted.items[0].breakdown.as_ref().unwrap().base_minor, 20_000);
    assert_eq!(quoted.items[0].cancellation.fee_minor, 10_000, "one night as shown");
    // Without it, the price of now.
    let now = quote(&world, vec![QuoteItem::Hotel(stay_item(&h, 12, 14, 1, 2))], None)
        .await
        .unwrap();
    assert_eq!(now.total_minor, 30_000);

    // An offer for one guest does not price two, nor other dates.
    for (guests, to) in [(1, 14), (2, 15)] {
        let mut other = stay_item(&h, 12, to, 1, guests);
        other.offer_id = item.offer_id.clone();
        let refused = refusal(quote(&world, vec![QuoteItem::Hotel(other)], None).await);
        assert_eq!(
            refused,
            (422, "offer_mismatch".into(), vec!["items[0].offer_id".to_owned()])
        );
    }
    // Tampered with, nonsense, and expired.
    let mut forged = option.offer_id.clone();
    let mid = forged.len() / 3;
    let flipped = if forged.as_bytes()[mid] == b'A' { "B" } else { "A" };
    forged.replace_range(mid..mid + 1, flipped);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let offer: Offer<OfferDetails> = OfferSigner::new(TEST_KEY).verify(&option.offer_id, now).unwrap();
    let expired = OfferSigner::new(TEST_KEY).sign(&Offer {
        expires_at_unix: now - 1,
        ..offer
    });
    for (token, code) in [
        (forged, "invalid_offer"),
        ("ofr_nonsense".to_owned(), "invalid_offer"),
        (expired, "offer_expired"),
    ] {
        let mut presented = stay_item(&h, 12, 14, 1, 2);
        presented.offer_id = Some(token);
        // The offer is the second item's: the field names it.
        let items = vec![
            QuoteItem::Hotel(stay_item(&h, 20, 21, 1, 1)),
            QuoteItem::Hotel(presented),
        ];
        let refused = refusal(quote(&world, items, None).await);
        assert_eq!(refused, (422, code.into(), vec!["items[1].offer_id".to_owned()]));
    }
}

pub async fn stay_lines_are_the_buckets_to_hold(pool: Pool) {
    let world = world_with(pool, plain(vec![], vec![])).await;
    let h = hotel(&world, chain(&world).await, "Paris", 3, |_| 10_000).await;
    let quoted = quote(&world, vec![QuoteItem::Hotel(stay_item(&h, 20, 23, 2, 4))], None)
        .await
        .unwrap();
    let lines: Vec<(String, i64)> = quoted.items[0]
        .inventory_lines
        .iter()
        .map(|l| (l.item_id.clone(), l.quantity))
        .collect();
    let expected: Vec<(String, i64)> = (20..23).map(|n| (room_item(h.room_type, day(n).0), 2)).collect();
    assert_eq!(lines, expected, "one line per night, as many as the rooms");

    // Held as quoted, inventory counts exactly those units: the night of check-out is not one.
    world
        .inventory
        .create_hold(
            &agent(),
            HoldRequest {
                lines: lines.clone(),
                ttl_secs: None,
                reference: None,
            },
            None,
        )
        .await
        .unwrap();
    for (n, held) in [(20, 2), (21, 2), (22, 2), (23, 0)] {
        let bucket = world.inventory.item(&room_item(h.room_type, day(n).0)).await.unwrap();
        assert_eq!(bucket.held, held, "night {n}");
    }
    // One room of the type is left on those nights: two more cannot be quoted, one can.
    world.catalog.follow_inventory().await.unwrap();
    let refused = refusal(quote(&world, vec![QuoteItem::Hotel(stay_item(&h, 21, 24, 2, 2))], None).await);
    assert_eq!(refused, (409, "unavailable".into(), vec!["items[0]".to_owned()]));
    assert!(
        quote(&world, vec![QuoteItem::Hotel(stay_item(&h, 21, 24, 1, 2))], None)
            .await
            .is_ok()
    );
}

/// The first day from `after` on which 15:00 in `zone` has another UTC offset than the day before: a clock change.
fn next_clock_change(zone: &time_tz::Tz, after: Date) -> (Date, UtcOffset, UtcOffset) {
    let offset = |d: Date| {
        PrimitiveDateTime::new(d, time::macros::time!(13:00))
            .assume_utc()
            .to_timezone(zone)
            .offset()
    };
    (1..400)
        .map(|n| after + time::Duration::days(n))
        .find(|d| offset(*d) != offset(d.previous_day().unwrap()))
        .map(|d| (d, offset(d.previous_day().unwrap()), offset(d)))
        .expect("clocks change at least once a year in Paris")
}

pub async fn stay_terms_follow_the_plan_on_the_hotels_clock(pool: Pool) {
    let world = world_with(pool, plain(vec![], vec![])).await;
    let org = chain(&world).await;
    let h = hotel(&world, org, "Paris", 3, |_| 10_000).await;
    let paris = phoenix_catalog::geo::time_zone("Europe/Paris").unwrap();
    // Check in on the day clocks change: 48 hours of free cancellation end before the change.
    let (check_in, before, after) = next_clock_change(paris, day(12).0);
    price_nights(
        &world,
        org,
        &h,
        h.rate_plan,
        check_in,
        check_in.next_day().unwrap(),
        12_000,
    )
    .await;
    let mut item = stay_item(&h, 0, 0, 2, 3);
    (item.check_in, item.check_out) = (Day(check_in), Day(check_in + time::Duration::days(2)));
    let quoted = quote(&world, vec![QuoteItem::Hotel(item.clone())], None).await.unwrap();
    let q = &quoted.items[0];
    let three_pm = |d: Date, offset| PrimitiveDateTime::new(d, time::macros::time!(15:00)).assume_offset(offset);
    assert_eq!(q.starts_at, three_pm(check_in, after));
    let free_until = three_pm(check_in - time::Duration::days(2), before);
    assert_eq!(q.cancellation.free_until, Some(free_until));
    assert_ne!(
        q.starts_at - free_until,
        time::Duration::hours(48),
        "wall-clock hours, not elapsed"
    );
    assert!(q.cancellation.refundable);
    assert_eq!(q.cancellation.fee_minor, 24_000, "the first night of both rooms");
    assert_eq!(q.price_minor, 48_000);

    // A non-refundable plan of the same room: nothing comes back, ever.
    let saver = world
        .catalog
        .create_rate_plan(
            &operator(org),
            h.hotel,
            RatePlanInput {
                room_type_id: h.room_type,
                name: "Saver".into(),
                meal_plan: phoenix_catalog::hotel::MealPlan::RoomOnly,
                refundable: false,
                free_cancellation_hours: None,
                currency: "EUR".into(),
            },
        )
        .await
        .unwrap();
    price_nights(&world, org, &h, saver.id, check_in, check_in.next_day().unwrap(), 9_000).await;
    item.rate_plan_id = saver.id;
    let quoted = quote(&world, vec![QuoteItem::Hotel(item)], None).await.unwrap();
    let c = &quoted.items[0].cancellation;
    assert_eq!((c.refundable, c.free_until, c.fee_minor), (false, None, 36_000));
}

async fn stay_fields(world: &World, item: HotelItem) -> Vec<String> {
    invalid_fields(quote(world, vec![QuoteItem::Hotel(item)], None).await)
}

pub async fn bad_stay_quotes_name_the_field(pool: Pool) {
    let world = world(pool).await;
    let org = chain(&world).await;
    let h = hotel(&world, org, "Paris", 3, |_| 10_000).await;
    let other = hotel(&world, org, "Paris", 3, |_| 10_000).await;
    let with = |change: &dyn Fn(&mut HotelItem)| {
        let mut item = stay_item(&h, 12, 14, 1, 2);
        change(&mut item);
        item
    };
    let cases: Vec<(HotelItem, &[&str])> = vec![
        (with(&|i| i.hotel_id = Uuid::now_v7()), &["items[0].hotel_id"]),
        (with(&|i| i.room_type_id = other.room_type), &["items[0].room_type_id"]),
        (with(&|i| i.rate_plan_id = other.rate_plan), &["items[0].rate_plan_id"]),
        (with(&|i| i.check_out = day(12)), &["items[0].check_out"]),
        (with(&|i| i.check_out = day(43)), &["items[0].check_out"]),
        (with(&|i| i.check_in = day(-1)), &["items[0].check_in"]),
        (
            with(&|i| (i.check_in, i.check_out) = (day(600), day(601))),
            &["items[0].check_in"],
        ),
        (with(&|i| i.guests = 3), &["items[0].guests"]),
        (with(&|i| i.rooms = 0), &["items[0].rooms"]),
        (
            with(&|i| (i.rooms, i.guests) = (u32::MAX, u32::MAX)),
            &["items[0].rooms", "items[0].guests"],
        ),
    ];
    for (item, fields) in cases {
        assert_eq!(stay_fields(&world, item.clone()).await, fields, "{item:?}");
    }
    // Every bad field of every item at once, and the request's own.
    let items = vec![
        QuoteItem::Hotel(stay_item(&h, 12, 14, 1, 2)),
        QuoteItem::Hotel(with(&|i| (i.check_out, i.guests) = (day(11), 5))),
    ];
    let refused = invalid_fields(quote(&world, items, Some("EURO")).await);
    assert_eq!(refused, ["currency", "items[1].check_out", "items[1].guests"]);
    // No items, or too many.
    assert_eq!(invalid_fields(quote(&world, vec![], None).await), ["items"]);
    let seven = vec![QuoteItem::Hotel(stay_item(&h, 12, 14, 1, 2)); 7];
    assert_eq!(invalid_fields(quote(&world, seven, None).await), ["items"]);
    // A deactivated hotel is not on sale.
    world
        .catalog
        .deactivate_hotel(&operator(org), other.hotel)
        .await
        .unwrap();
    assert_eq!(
        stay_fields(&world, stay_item(&other, 12, 14, 1, 2)).await,
        ["items[0].hotel_id"]
    );
}

pub async fn closed_or_short_nights_make_the_item_unavailable(pool: Pool) {
    let world = world(pool).await;
    let org = chain(&world).await;
    let h = hotel(&world, org, "Paris", 3, |_| 10_000).await;
    // Night 30 has no price: a stay over it is not on sale.
    let refused = refusal(quote(&world, vec![QuoteItem::Hotel(stay_item(&h, 28, 31, 1, 2))], None).await);
    assert_eq!(refused, (409, "unavailable".into(), vec!["items[0]".to_owned()]));
    // Night 16 closed out: the second item is named, the first is fine.
    let close = CapacityInput {
        from: day(16),
        to: day(16),
        rooms: 0,
    };
    world
        .catalog
        .set_capacity(&operator(org), h.hotel, h.room_type, close)
        .await
        .unwrap();
    let items = vec![
        QuoteItem::Hotel(stay_item(&h, 12, 14, 1, 2)),
        QuoteItem::Hotel(stay_item(&h, 15, 17, 1, 2)),
    ];
    let refused = refusal(quote(&world, items, None).await);
    assert_eq!(refused, (409, "unavailable".into(), vec!["items[1]".to_owned()]));
}

/// A hotel in `city` whose clocks are `zone`'s, priced from two days before today (UTC) to three after.
async fn hotel_in(world: &World, city: &str, zone: &str) -> HotelIds {
    let input = HotelInput {
        time_zone: zone.into(),
        ..hotel_input(city)
    };
    hotel_of(world, chain(world).await, input, 3, -2..4, |_| 10_000).await
}

/// A hotel sells its nights by its own calendar: in Kiritimati (UTC+14) the night before today there is over,
/// whatever UTC's date, and is neither quoted nor found; in Honolulu (UTC-10) tonight is still on sale when UTC is
/// already at tomorrow. Both zones keep one offset all year.
async fn a_stay_checks_in_no_earlier_than_today_where_the_hotel_is(pool: Pool) {
    let world = world(pool).await;
    let east = hotel_in(&world, "Kiritimati", "Pacific/Kiritimati").await;
    let west = hotel_in(&world, "Honolulu", "Pacific/Honolulu").await;
    let now = OffsetDateTime::now_utc();
    let today_east = (now + time::Duration::hours(14)).date();
    let today_west = (now - time::Duration::hours(10)).date();
    let one_night = |h: &HotelIds, check_in: Date| {
        let mut item = stay_item(h, 0, 1, 1, 1);
        item.check_in = Day(check_in);
        item.check_out = Day(check_in + time::Duration::days(1));
        QuoteItem::Hotel(item)
    };
    let over = quote(
        &world,
        vec![one_night(&east, today_east - time::Duration::days(1))],
        None,
    )
    .await;
    assert_eq!(
        refusal(over),
        (422, "invalid_fields".into(), vec!["items[0].check_in".into()])
    );
    quote(&world, vec![one_night(&east, today_east)], None).await.unwrap();
    quote(&world, vec![one_night(&west, today_west)], None).await.unwrap();

    let found = |city: &str, check_in: Date| HotelSearch {
        city: Some(city.into()),
        check_in: Some(Day(check_in)),
        check_out: Some(Day(check_in + time::Duration::days(1))),
        guests: Some(1),
        ..HotelSearch::default()
    };
    let past_east = search(&world, found("Kiritimati", today_east - time::Duration::days(1))).await;
    assert_eq!(past_east.total, 0);
    assert_eq!(search(&world, found("Kiritimati", today_east)).await.total, 1);
    assert_eq!(search(&world, found("Honolulu", today_west)).await.total, 1);
}

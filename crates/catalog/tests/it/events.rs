use std::time::Duration as StdDuration;

use phoenix_catalog::SEARCHES_COUNTED;
use phoenix_catalog::model::RoomTypeInput;
use phoenix_db::{OutboxRecord, Pool};
use time::format_description::well_known::Rfc3339;

use super::*;

phoenix_db::contract_suite!(
    phoenix_catalog::migrations(),
    [
        searches_are_written_as_one_count_per_window_in_which_anyone_searched,
        the_search_counter_writes_on_its_own,
        change_events_name_the_acting_user,
        exchange_rate_events_say_what_was_replaced_and_deleted,
    ]
);

async fn outbox(pool: &Pool, event_type: &str) -> Vec<OutboxRecord> {
    let events = pool.unpublished_events(10_000).await.unwrap();
    events.into_iter().filter(|e| e.event_type == event_type).collect()
}

fn time_of(data: &serde_json::Value, field: &str) -> OffsetDateTime {
    OffsetDateTime::parse(data[field].as_str().expect("an RFC 3339 string"), &Rfc3339).unwrap()
}

async fn searches_are_written_as_one_count_per_window_in_which_anyone_searched(pool: Pool) {
    let before = OffsetDateTime::now_utc();
    let world = world(pool.clone()).await;
    let c = &world.catalog;
    c.search_hotels(&crate::hotels::stay("Paris", 10, 12)).await.unwrap();
    c.search_hotels(&crate::hotels::stay("Paris", 10, 12)).await.unwrap(); // from the result cache: a search all the same
    c.search_flights(&crate::flights::trip("CDG", "LHR", 10)).await.unwrap();
    invalid_fields(c.search_hotels(&crate::hotels::stay("Paris", 12, 10)).await); // refused: not a search
    assert_eq!(c.flush_search_counts().await.unwrap(), 3);

    let counted = outbox(&pool, SEARCHES_COUNTED).await;
    assert_eq!(counted.len(), 1);
    let data = &counted[0].data.0;
    assert_eq!(
        (data["hotel_searches"].as_u64(), data["flight_searches"].as_u64()),
        (Some(2), Some(1))
    );
    let (start, end) = (time_of(data, "window_start"), time_of(data, "window_end"));
    assert!(
        before <= start && start <= end && end <= OffsetDateTime::now_utc(),
        "{start} {end}"
    );
    let mut fields: Vec<&String> = data.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        ["flight_searches", "hotel_searches", "window_end", "window_start"]
    );

    // Nobody searched: nothing is written. The next window starts where the last one ended.
    assert_eq!(c.flush_search_counts().await.unwrap(), 0);
    assert_eq!(outbox(&pool, SEARCHES_COUNTED).await.len(), 1);
    c.search_flights(&crate::flights::trip("CDG", "LHR", 11)).await.unwrap();
    assert_eq!(c.flush_search_counts().await.unwrap(), 1);
    let counted = outbox(&pool, SEARCHES_COUNTED).await;
    let next = &counted[1].data.0;
    assert_eq!(
        (next["hotel_searches"].as_u64(), next["flight_searches"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(time_of(next, "window_start") >= end);
}

async fn the_search_counter_writes_on_its_own(pool: Pool) {
    let options = Options {
        search_count_flush_secs: 1,
        ..Options::default()
    };
    let world = world_with(pool.clone(), options).await;
    world
        .catalog
        .search_hotels(&crate::hotels::stay("Paris", 10, 12))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(15);
    while outbox(&pool, SEARCHES_COUNTED).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no search count was written");
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    let counted = outbox(&pool, SEARCHES_COUNTED).await;
    assert_eq!(counted[0].data.0["hotel_searches"], 1);
}

async fn change_events_name_the_acting_user(pool: Pool) {
    let world = world(pool.clone()).await;
    let org = chain(&world).await;
    let actor = operator(org);
    let c = &world.catalog;
    let hotel = c.create_hotel(&actor, hotel_input("Paris")).await.unwrap();
    let room = RoomTypeInput {
        name: "Double".into(),
        max_occupancy: 2,
        beds: "1 queen".into(),
        rooms: 3,
    };
    c.create_room_type(&actor, hotel.id, room).await.unwrap();
    c.deactivate_hotel(&actor, hotel.id).await.unwrap();
    let staff = admin();
    c.set_fx_rate(&staff, "EUR", "USD", "1.08").await.unwrap();
    let platform = Principal {
        user_id: Uuid::nil(),
        ..admin()
    };
    c.load_hotels(&platform, Vec::new()).await.unwrap();

    let events = pool.unpublished_events(1_000).await.unwrap();
    let actors: Vec<(&str, &serde_json::Value)> = events
        .iter()
        .map(|e| (e.event_type.as_str(), &e.data.0["actor_id"]))
        .collect();
    let by = |who: &Principal| serde_json::json!(who.user_id);
    assert_eq!(
        actors,
        [
            ("catalog.hotel_created.v1", &by(&actor)),
            ("catalog.room_type_created.v1", &by(&actor)),
            ("catalog.hotel_deactivated.v1", &by(&actor)),
            ("catalog.fx_rate_changed.v1", &by(&staff)),
            ("catalog.hotels_loaded.v1", &serde_json::Value::Null),
        ]
    );
    assert!(events[4].data.0.as_object().unwrap().contains_key("actor_id"));
}

async fn exchange_rate_events_say_what_was_replaced_and_deleted(pool: Pool) {
    let world = world(pool.clone()).await;
    let c = &world.catalog;
    let staff = admin();
    c.set_fx_rate(&staff, "EUR", "USD", "1.08").await.unwrap();
    // The opposite pair replaces it, in the same transaction as its event.
    let set = c.set_fx_rate(&staff, "USD", "EUR", "0.9").await.unwrap();
    assert_eq!(set.replaced_opposite.as_deref(), Some("1.08"));
    c.delete_fx_rate(&staff, "USD", "EUR").await.unwrap();
    // Refusals write nothing.
    assert!(matches!(
        c.delete_fx_rate(&staff, "USD", "EUR").await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        invalid_fields(c.set_fx_rate(&staff, "EUR", "USD", "0.0000000001").await),
        ["rate"]
    );

    let events = pool.unpublished_events(1_000).await.unwrap();
    let written: Vec<(&str, &str, &serde_json::Value)> = events
        .iter()
        .filter(|e| e.event_type.starts_with("catalog.fx_rate"))
        .map(|e| (e.event_type.as_str(), e.subject.as_str(), &e.data.0))
        .collect();
    let by = serde_json::json!(staff.user_id);
    assert_eq!(
        written,
        [
            (
                "catalog.fx_rate_changed.v1",
                "EUR/USD",
                &serde_json::json!({"base": "EUR", "quote": "USD", "rate": "1.08", "replaced_opposite": null,
                                    "actor_id": by})
            ),
            (
                "catalog.fx_rate_changed.v1",
                "USD/EUR",
                &serde_json::json!({"base": "USD", "quote": "EUR", "rate": "0.9", "replaced_opposite": "1.08",
                                    "actor_id": by})
            ),
            (
                "catalog.fx_rate_deleted.v1",
                "USD/EUR",
                &serde_json::json!({"base": "USD", "quote": "EUR", "rate": "0.9", "actor_id": by})
            ),
        ]
    );
    assert!(c.fx_rates(None).is_empty());
}

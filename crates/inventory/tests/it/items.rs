use phoenix_api::Role;
use phoenix_db::Pool;
use phoenix_inventory::{Error, NewItem};
use uuid::Uuid;

use crate::{admin, bucket, events_of, principal, request, service};

phoenix_db::contract_suite!(
    phoenix_inventory::migrations(),
    [
        operators_manage_their_own_buckets_only,
        capacity_cannot_drop_below_what_is_committed,
        a_close_out_after_sales_stays_closed_as_its_units_are_released,
        availability_lists_known_items,
        bad_sizes_and_ids_are_named,
        bulk_creation_skips_existing_buckets_and_names_new_ones_in_the_feed,
        bulk_created_buckets_carry_their_capacities_in_their_event,
    ]
);

async fn operators_manage_their_own_buckets_only(pool: Pool) {
    let inventory = service(pool.clone()).await;
    let airline = Uuid::now_v7();
    let operator = principal(&[Role::Operator], Some(airline));
    let (created, was_new) = inventory.put_item(&operator, "seat:LH1:Y", 180, 5, None).await.unwrap();
    assert!(was_new);
    assert_eq!(created.organization_id, Some(airline));
    assert_eq!(created.available(), 185);
    let (resized, was_new) = inventory.put_item(&operator, "seat:LH1:Y", 200, 0, None).await.unwrap();
    assert!(!was_new);
    assert_eq!((resized.capacity, resized.overbooking_limit), (200, 0));

    let rival = principal(&[Role::Operator], Some(Uuid::now_v7()));
    assert!(matches!(
        inventory.put_item(&rival, "seat:LH1:Y", 1, 0, None).await,
        Err(Error::NotOwner)
    ));
    let orgless = principal(&[Role::Operator], None);
    assert!(matches!(
        inventory.put_item(&orgless, "x", 1, 0, None).await,
        Err(Error::NotOwner)
    ));
    let agent = principal(&[Role::Agent], Some(airline));
    assert!(matches!(
        inventory.put_item(&agent, "y", 1, 0, None).await,
        Err(Error::NotOwner)
    ));
    let staff = admin();
    inventory.put_item(&staff, "seat:LH1:Y", 190, 0, None).await.unwrap();
    assert_eq!(inventory.item("seat:LH1:Y").await.unwrap().capacity, 190);
    assert_eq!(events_of(&pool, "inventory.item_updated.v1").await, 3);
    // Each change names who made it, for the audit log.
    let actors: Vec<String> = pool
        .unpublished_events(100)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == "inventory.item_updated.v1")
        .map(|e| e.data["actor_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let (ops, admin_id) = (operator.user_id.to_string(), staff.user_id.to_string());
    assert_eq!(actors, [ops.clone(), ops, admin_id]);
}

async fn capacity_cannot_drop_below_what_is_committed(pool: Pool) {
    let inventory = service(pool).await;
    bucket(&inventory, "room:1:2026-12-01", 10).await;
    let holder = crate::agent();
    let hold = inventory
        .create_hold(&holder, request(&[("room:1:2026-12-01", 4)]), None)
        .await
        .unwrap();
    let sold = inventory
        .create_hold(&holder, request(&[("room:1:2026-12-01", 3)]), None)
        .await
        .unwrap();
    inventory.confirm(&holder, sold.id).await.unwrap();
    let refused = inventory
        .put_item(&admin(), "room:1:2026-12-01", 5, 1, None)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::BelowCommitted { committed: 7, .. }),
        "{refused:?}"
    );
    // Asked to keep what is committed, a close-out stops at the 7 held and sold (less the overbooking it keeps).
    let (kept, _) = inventory
        .put_item_keeping_committed(&admin(), "room:1:2026-12-01", 0, 1, None)
        .await
        .unwrap();
    assert_eq!((kept.capacity, kept.overbooking_limit, kept.available()), (6, 1, 0));
    let (above, _) = inventory
        .put_item_keeping_committed(&admin(), "room:1:2026-12-01", 9, 0, None)
        .await
        .unwrap();
    assert_eq!(above.capacity, 9, "nothing to keep above what is asked");
    inventory
        .put_item(&admin(), "room:1:2026-12-01", 6, 1, None)
        .await
        .unwrap();
    inventory.release(&holder, hold.id).await.unwrap();
    inventory
        .put_item(&admin(), "room:1:2026-12-01", 3, 0, None)
        .await
        .unwrap();
    let bucket = inventory.item("room:1:2026-12-01").await.unwrap();
    assert_eq!(
        (bucket.capacity, bucket.held, bucket.sold, bucket.available()),
        (3, 0, 3, 0)
    );
}

/// A night closed out after it sold rooms keeps them and sells no more, also once a booking of it is cancelled or a
/// hold lapses: its capacity follows what is still sold down to the close-out, and a restart remembers where to.
async fn a_close_out_after_sales_stays_closed_as_its_units_are_released(pool: Pool) {
    let inventory = service(pool.clone()).await;
    let night = "room:2:2026-12-01";
    bucket(&inventory, night, 10).await;
    let holder = crate::agent();
    let held = inventory
        .create_hold(&holder, request(&[(night, 2)]), None)
        .await
        .unwrap();
    let sold = inventory
        .create_hold(&holder, request(&[(night, 3)]), None)
        .await
        .unwrap();
    inventory.confirm(&holder, sold.id).await.unwrap();
    let (closed, _) = inventory
        .put_item_keeping_committed(&admin(), night, 0, 0, None)
        .await
        .unwrap();
    assert_eq!(
        (closed.capacity, closed.asked_capacity, closed.available()),
        (5, Some(0), 0)
    );

    inventory.release(&holder, sold.id).await.unwrap();
    let fewer = inventory.item(night).await.unwrap();
    assert_eq!(
        (fewer.capacity, fewer.asked_capacity, fewer.available()),
        (2, Some(0), 0)
    );
    let refused = inventory.create_hold(&holder, request(&[(night, 1)]), None).await;
    assert!(matches!(refused, Err(Error::Insufficient(_))), "{refused:?}");

    let restarted = service(pool).await;
    assert_eq!(restarted.item(night).await.unwrap().asked_capacity, Some(0));
    restarted.release(&holder, held.id).await.unwrap();
    let closed = restarted.item(night).await.unwrap();
    assert_eq!(
        (
            closed.capacity,
            closed.held,
            closed.sold,
            closed.asked_capacity,
            closed.available()
        ),
        (0, 0, 0, None, 0)
    );
}

async fn availability_lists_known_items(pool: Pool) {
    let inventory = service(pool).await;
    bucket(&inventory, "a", 3).await;
    bucket(&inventory, "b", 5).await;
    let items: Vec<String> = ["b", "a", "nope", "a"].iter().map(|s| s.to_string()).collect();
    let found = inventory.availability(&items).await.unwrap();
    let ids: Vec<&str> = found.iter().map(|b| b.item_id.as_str()).collect();
    assert_eq!(ids, vec!["a", "b"]);
    assert!(matches!(inventory.availability(&[]).await, Err(Error::Invalid(_))));
    let too_many: Vec<String> = (0..501).map(|i| format!("i{i}")).collect();
    assert!(matches!(
        inventory.availability(&too_many).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(inventory.item("nope").await, Err(Error::ItemNotFound)));
}

async fn bad_sizes_and_ids_are_named(pool: Pool) {
    let inventory = service(pool).await;
    let Err(Error::Invalid(errors)) = inventory.put_item(&admin(), "bad id", -1, 0, None).await else {
        panic!("expected invalid fields");
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["item_id", "capacity"]);
}

fn new_item(id: &str, capacity: i64) -> NewItem {
    NewItem {
        item_id: id.to_owned(),
        capacity,
        overbooking_limit: 0,
        organization_id: None,
    }
}

async fn bulk_creation_skips_existing_buckets_and_names_new_ones_in_the_feed(pool: Pool) {
    let inventory = service(pool.clone()).await;
    let hotel = Uuid::now_v7();
    let operator = principal(&[Role::Operator], Some(hotel));
    inventory.put_item(&operator, "room:a:1", 7, 0, None).await.unwrap();
    inventory
        .create_hold(&crate::agent(), request(&[("room:a:1", 2)]), None)
        .await
        .unwrap();
    let before = inventory.changes(0, 100).await.unwrap().last_seq;

    // 2,500 items: more than one statement's worth, in one transaction.
    let mut items: Vec<NewItem> = (0..2_500).map(|i| new_item(&format!("room:b:{i}"), 3)).collect();
    items.push(new_item("room:a:1", 99));
    let created = inventory.create_items(&operator, &items).await.unwrap();
    assert_eq!(created, 2_500);
    let kept = inventory.item("room:a:1").await.unwrap();
    assert_eq!(
        (kept.capacity, kept.held),
        (7, 2),
        "an existing bucket is neither resized nor reset"
    );
    let made = inventory.item("room:b:2499").await.unwrap();
    assert_eq!(
        (made.capacity, made.held, made.sold, made.organization_id),
        (3, 0, 0, Some(hotel))
    );
    let changes = inventory.changes(before, 1_000).await.unwrap();
    let mut named: Vec<String> = changes.events.into_iter().flat_map(|e| e.item_ids).collect();
    named.sort();
    let mut expected: Vec<String> = (0..2_500).map(|i| format!("room:b:{i}")).collect();
    expected.sort();
    assert_eq!(
        named, expected,
        "every new bucket, and only those, is named in the change feed"
    );
    // A follower that starts now starts at the end: nothing to read, the position to read from.
    let end = inventory.changes(-1, 1_000).await.unwrap();
    assert!(end.events.is_empty());
    assert!(end.last_seq > before);
    assert!(inventory.changes(end.last_seq, 10).await.unwrap().events.is_empty());
    // Again: nothing new.
    assert_eq!(inventory.create_items(&operator, &items).await.unwrap(), 0);

    // Another organization's items, or a bad item anywhere in the list: nothing is written.
    let mut foreign = vec![new_item("room:c:1", 1)];
    foreign[0].organization_id = Some(Uuid::now_v7());
    assert!(matches!(
        inventory.create_items(&operator, &foreign).await,
        Err(Error::NotOwner)
    ));
    let agent = crate::agent();
    assert!(matches!(
        inventory.create_items(&agent, &[new_item("room:c:2", 1)]).await,
        Err(Error::NotOwner)
    ));
    let bad = vec![
        new_item("room:c:3", 1),
        new_item("bad id with spaces", 1),
        new_item("room:c:4", -1),
    ];
    match inventory.create_items(&operator, &bad).await {
        Err(Error::Invalid(errors)) => {
            let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, ["items[1].item_id", "items[2].capacity"]);
        }
        other => panic!("expected invalid fields, got {other:?}"),
    }
    for id in ["room:c:1", "room:c:2", "room:c:3"] {
        assert!(matches!(inventory.item(id).await, Err(Error::ItemNotFound)), "{id}");
    }
}

async fn bulk_created_buckets_carry_their_capacities_in_their_event(pool: Pool) {
    let inventory = service(pool.clone()).await;
    let operator = principal(&[Role::Operator], Some(Uuid::now_v7()));
    inventory.put_item(&operator, "room:a:1", 7, 0, None).await.unwrap();
    let mut items = vec![
        new_item("room:a:1", 99),
        new_item("room:b:1", 3),
        new_item("room:b:2", 5),
    ];
    items[2].overbooking_limit = 1;
    assert_eq!(inventory.create_items(&operator, &items).await.unwrap(), 2);

    let events = pool.unpublished_events(100).await.unwrap();
    let created: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e.event_type == "inventory.items_created.v1")
        .map(|e| &e.data.0)
        .collect();
    assert_eq!(created.len(), 1);
    let sorted = |v: &serde_json::Value| {
        let mut v = v.as_array().unwrap().clone();
        v.sort_by_key(|x| x.get("item_id").unwrap_or(x).to_string());
        serde_json::Value::Array(v)
    };
    assert_eq!(
        sorted(&created[0]["item_ids"]),
        serde_json::json!(["room:b:1", "room:b:2"])
    );
    assert_eq!(
        sorted(&created[0]["items"]),
        serde_json::json!([
            {"item_id": "room:b:1", "capacity": 3, "overbooking_limit": 0},
            {"item_id": "room:b:2", "capacity": 5, "overbooking_limit": 1},
        ]),
        "only the new buckets, with their sizes"
    );
}

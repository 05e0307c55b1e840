use phoenix_api::Role;
use phoenix_db::Pool;
use phoenix_inventory::Error;
use uuid::Uuid;

use crate::{admin, bucket, events_of, principal, request, service};

phoenix_db::contract_suite!(
    phoenix_inventory::migrations(),
    [
        operators_manage_their_own_buckets_only,
        capacity_cannot_drop_below_what_is_committed,
        availability_lists_known_items,
        bad_sizes_and_ids_are_named,
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
    inventory.put_item(&admin(), "seat:LH1:Y", 190, 0, None).await.unwrap();
    assert_eq!(inventory.item("seat:LH1:Y").await.unwrap().capacity, 190);
    assert_eq!(events_of(&pool, "inventory.item_updated.v1").await, 3);
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

use phoenix_db::{OutboxRecord, Pool, Timestamp};
use phoenix_inventory::hold::{Line, NewHold};
use phoenix_inventory::{Error, ItemId, Options, Status, baseline};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use phoenix_api::Role;
use uuid::Uuid;

use crate::{agent, bucket, events_of, principal, request, service, service_with, signed_in_again, stored_counters};

phoenix_db::contract_suite!(
    phoenix_inventory::migrations(),
    [
        hold_confirm_release_move_units_and_write_events,
        confirm_and_release_are_idempotent,
        unknown_items_and_bad_quantities_are_refused,
        a_short_line_refuses_the_whole_hold,
        idempotent_retry_returns_the_same_hold,
        holds_per_holder_are_bounded,
        others_cannot_see_or_touch_a_hold,
        a_holder_moved_to_another_organization_no_longer_sees_what_they_held_for_the_first,
        hold_events_carry_an_rfc3339_expiry_and_their_reference_as_correlation_id,
        the_baseline_writes_the_engines_hold_created_shape,
    ]
);

async fn hold_confirm_release_move_units_and_write_events(pool: Pool) {
    let inventory = service(pool.clone()).await;
    bucket(&inventory, "a", 10).await;
    bucket(&inventory, "b", 10).await;
    let holder = agent();
    let hold = inventory
        .create_hold(&holder, request(&[("a", 2), ("b", 3)]), None)
        .await
        .unwrap();
    assert_eq!(hold.status, Status::Held);
    assert_eq!((hold.expires_at.unix_secs() - hold.created_at.unix_secs()), 900);
    assert_eq!(stored_counters(&pool, "a").await, (10, 2, 0));
    assert_eq!(stored_counters(&pool, "b").await, (10, 3, 0));

    let confirmed = inventory.confirm(&holder, hold.id).await.unwrap();
    assert_eq!(confirmed.status, Status::Confirmed);
    assert_eq!(stored_counters(&pool, "a").await, (10, 0, 2));
    let released = inventory.release(&holder, hold.id).await.unwrap();
    assert_eq!(released.status, Status::Released);
    assert_eq!(stored_counters(&pool, "b").await, (10, 0, 0));
    for event in [
        "inventory.hold_created.v1",
        "inventory.hold_confirmed.v1",
        "inventory.hold_released.v1",
    ] {
        assert_eq!(events_of(&pool, event).await, 1, "{event}");
    }
}

async fn confirm_and_release_are_idempotent(pool: Pool) {
    let inventory = service(pool.clone()).await;
    bucket(&inventory, "a", 10).await;
    let holder = agent();
    let hold = inventory
        .create_hold(&holder, request(&[("a", 2)]), None)
        .await
        .unwrap();
    inventory.confirm(&holder, hold.id).await.unwrap();
    assert_eq!(
        inventory.confirm(&holder, hold.id).await.unwrap().status,
        Status::Confirmed
    );
    assert_eq!(stored_counters(&pool, "a").await, (10, 0, 2));
    inventory.release(&holder, hold.id).await.unwrap();
    assert_eq!(
        inventory.release(&holder, hold.id).await.unwrap().status,
        Status::Released
    );
    assert_eq!(stored_counters(&pool, "a").await, (10, 0, 0));
    assert!(matches!(
        inventory.confirm(&holder, hold.id).await,
        Err(Error::HoldReleased)
    ));
    assert_eq!(events_of(&pool, "inventory.hold_released.v1").await, 1);
}

async fn unknown_items_and_bad_quantities_are_refused(pool: Pool) {
    let inventory = service(pool.clone()).await;
    bucket(&inventory, "a", 10).await;
    let holder = agent();
    let unknown = inventory
        .create_hold(&holder, request(&[("a", 1), ("ghost", 1)]), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&unknown, Error::UnknownItems(items) if items[0].as_str() == "ghost"),
        "{unknown:?}"
    );
    for quantity in [0, -1, 1_000_001] {
        let bad = inventory
            .create_hold(&holder, request(&[("a", quantity)]), None)
            .await
            .unwrap_err();
        assert!(matches!(bad, Error::Invalid(_)), "{quantity}");
    }
    assert_eq!(stored_counters(&pool, "a").await, (10, 0, 0));
}

async fn a_short_line_refuses_the_whole_hold(pool: Pool) {
    let inventory = service(pool.clone()).await;
    bucket(&inventory, "a", 10).await;
    bucket(&inventory, "b", 1).await;
    let holder = agent();
    let short = inventory
        .create_hold(&holder, request(&[("a", 5), ("b", 2)]), None)
        .await
        .unwrap_err();
    let Error::Insufficient(items) = short else {
        panic!("expected a shortage")
    };
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].item_id.as_str(), items[0].requested, items[0].available),
        ("b", 2, 1)
    );
    assert_eq!(stored_counters(&pool, "a").await, (10, 0, 0), "nothing of a was taken");
}

async fn idempotent_retry_returns_the_same_hold(pool: Pool) {
    let inventory = service(pool.clone()).await;
    bucket(&inventory, "a", 100).await;
    let holder = agent();
    let first = inventory
        .create_hold(&holder, request(&[("a", 2)]), Some("key-1"))
        .await
        .unwrap();
    let again = inventory
        .create_hold(&holder, request(&[("a", 2)]), Some("key-1"))
        .await
        .unwrap();
    assert_eq!(again, first);
    let different = inventory
        .create_hold(&holder, request(&[("a", 3)]), Some("key-1"))
        .await
        .unwrap_err();
    assert!(matches!(different, Error::IdempotencyKeyReused), "{different:?}");
    // Another principal's key space is separate.
    let other = agent();
    let theirs = inventory
        .create_hold(&other, request(&[("a", 2)]), Some("key-1"))
        .await
        .unwrap();
    assert_ne!(theirs.id, first.id);

    // Five at once with one key: one hold, taken once.
    let racers: Vec<_> = (0..5)
        .map(|_| {
            let inventory = inventory.clone();
            tokio::spawn(async move {
                inventory
                    .create_hold(&holder, request(&[("a", 1)]), Some("key-2"))
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(hold) => ids.push(hold.id),
            Err(Error::IdempotencyKeyInUse) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(stored_counters(&pool, "a").await.1, 2 + 2 + 1);
}

async fn holds_per_holder_are_bounded(pool: Pool) {
    let options = Options {
        max_open_holds_per_holder: 3,
        ..Options::default()
    };
    let inventory = service_with(pool, options, phoenix_inventory::Clock::System).await;
    bucket(&inventory, "a", 100).await;
    let holder = agent();
    let mut holds = Vec::new();
    for _ in 0..3 {
        holds.push(
            inventory
                .create_hold(&holder, request(&[("a", 1)]), None)
                .await
                .unwrap(),
        );
    }
    let hoarding = inventory
        .create_hold(&holder, request(&[("a", 1)]), None)
        .await
        .unwrap_err();
    assert!(matches!(hoarding, Error::TooManyHolds { limit: 3 }), "{hoarding:?}");
    inventory.confirm(&holder, holds[0].id).await.unwrap();
    inventory
        .create_hold(&holder, request(&[("a", 1)]), None)
        .await
        .unwrap();
    inventory
        .create_hold(&agent(), request(&[("a", 1)]), None)
        .await
        .unwrap();
}

async fn others_cannot_see_or_touch_a_hold(pool: Pool) {
    let inventory = service(pool).await;
    bucket(&inventory, "a", 10).await;
    let holder = agent();
    let hold = inventory
        .create_hold(&holder, request(&[("a", 1)]), None)
        .await
        .unwrap();
    let stranger = agent();
    assert!(matches!(
        inventory.hold(&stranger, hold.id).await,
        Err(Error::HoldNotFound)
    ));
    assert!(matches!(
        inventory.confirm(&stranger, hold.id).await,
        Err(Error::HoldNotFound)
    ));
    assert!(matches!(
        inventory.release(&stranger, hold.id).await,
        Err(Error::HoldNotFound)
    ));
    // A colleague from the same agency can.
    let colleague = crate::principal(&[phoenix_api::Role::Agent], holder.organization_id);
    assert_eq!(inventory.hold(&colleague, hold.id).await.unwrap().id, hold.id);
    assert_eq!(inventory.hold(&crate::admin(), hold.id).await.unwrap().id, hold.id);
    // Refusing the stranger left the hold to those who may touch it.
    let confirmed = inventory.confirm(&colleague, hold.id).await.unwrap();
    assert_eq!(confirmed.status.as_str(), "confirmed");
}

async fn a_holder_moved_to_another_organization_no_longer_sees_what_they_held_for_the_first(pool: Pool) {
    let inventory = service(pool.clone()).await;
    bucket(&inventory, "a", 10).await;
    let holder = agent();
    let colleague = principal(&[Role::Agent], holder.organization_id);
    let hold = inventory
        .create_hold(&holder, request(&[("a", 1)]), None)
        .await
        .unwrap();

    // An admin moves the holder to another agency, or takes the agency away; they sign in again. Confirm finds
    // the hold in the process's cache of the holds it made, release and the second confirm read it.
    let moved = signed_in_again(&holder, &[Role::Agent], Some(Uuid::now_v7()));
    let demoted = signed_in_again(&holder, &[Role::Customer], None);
    for former in [&moved, &demoted] {
        assert!(matches!(
            inventory.hold(former, hold.id).await,
            Err(Error::HoldNotFound)
        ));
        assert!(matches!(
            inventory.confirm(former, hold.id).await,
            Err(Error::HoldNotFound)
        ));
        assert!(matches!(
            inventory.release(former, hold.id).await,
            Err(Error::HoldNotFound)
        ));
    }
    assert_eq!(inventory.hold(&colleague, hold.id).await.unwrap(), hold);
    assert_eq!(stored_counters(&pool, "a").await, (10, 1, 0), "still held");

    // A customer's own hold stays theirs when they join an agency; a member of an organization who holds for their
    // own booking (the saga acts as them) sees and confirms it while a member, and not after.
    let customer = principal(&[Role::Customer], None);
    let own = inventory
        .create_hold(&customer, request(&[("a", 1)]), None)
        .await
        .unwrap();
    let customer_at_agency = signed_in_again(&customer, &[Role::Agent], Some(Uuid::now_v7()));
    assert_eq!(inventory.hold(&customer_at_agency, own.id).await.unwrap(), own);
    let member = principal(&[Role::Customer], holder.organization_id);
    let members = inventory
        .create_hold(&member, request(&[("a", 1)]), None)
        .await
        .unwrap();
    assert_eq!(members.organization_id, holder.organization_id);
    let member_elsewhere = signed_in_again(&member, &[Role::Customer], Some(Uuid::now_v7()));
    assert!(matches!(
        inventory.hold(&member_elsewhere, members.id).await,
        Err(Error::HoldNotFound)
    ));
    assert_eq!(
        inventory.confirm(&member, members.id).await.unwrap().status,
        Status::Confirmed
    );
    assert_eq!(stored_counters(&pool, "a").await, (10, 2, 1));
}

async fn outbox(pool: &Pool, event_type: &str) -> Vec<OutboxRecord> {
    let events = pool.unpublished_events(1_000).await.unwrap();
    events.into_iter().filter(|e| e.event_type == event_type).collect()
}

async fn hold_events_carry_an_rfc3339_expiry_and_their_reference_as_correlation_id(pool: Pool) {
    let inventory = service(pool.clone()).await;
    bucket(&inventory, "a", 10).await;
    let holder = agent();
    let booking_id = uuid::Uuid::now_v7().to_string();
    let mut for_booking = request(&[("a", 2)]);
    for_booking.reference = Some(booking_id.clone());
    let hold = inventory.create_hold(&holder, for_booking, None).await.unwrap();
    inventory.confirm(&holder, hold.id).await.unwrap();
    let unreferenced = inventory
        .create_hold(&holder, request(&[("a", 1)]), None)
        .await
        .unwrap();

    let created = outbox(&pool, "inventory.hold_created.v1").await;
    let expires_at = created[0].data.0["expires_at"].as_str().expect("an RFC 3339 string");
    let expires_at = OffsetDateTime::parse(expires_at, &Rfc3339).unwrap();
    assert_eq!(Timestamp::from_datetime(expires_at), hold.expires_at);
    assert_eq!(created[0].data.0["reference"], booking_id.as_str());
    let confirmed = outbox(&pool, "inventory.hold_confirmed.v1").await;
    assert_eq!(created[0].correlation_id.as_deref(), Some(booking_id.as_str()));
    assert_eq!(confirmed[0].correlation_id.as_deref(), Some(booking_id.as_str()));
    assert_eq!(created[1].subject, unreferenced.id.to_string());
    assert_eq!(created[1].correlation_id, None, "no reference, no correlation");
}

async fn the_baseline_writes_the_engines_hold_created_shape(pool: Pool) {
    let inventory = service(pool.clone()).await;
    bucket(&inventory, "a", 10).await;
    let holder = agent();
    let mut engine_request = request(&[("a", 2)]);
    engine_request.reference = Some("booking-1".to_owned());
    inventory.create_hold(&holder, engine_request, None).await.unwrap();
    let baseline_request = NewHold {
        lines: vec![Line {
            item_id: ItemId::parse("a").unwrap(),
            quantity: 2,
        }],
        ttl_secs: 900,
        reference: Some("booking-2".to_owned()),
        holder_id: holder.user_id,
        organization_id: holder.organization_id,
        managed: false,
    };
    let now = Timestamp::now();
    let id = baseline::hold(&pool, &baseline_request, now).await.unwrap().unwrap();

    let created = outbox(&pool, "inventory.hold_created.v1").await;
    assert_eq!(created.len(), 2);
    let keys = |e: &OutboxRecord| -> Vec<String> { e.data.0.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&created[1]), keys(&created[0]));
    let data = &created[1].data.0;
    assert_eq!(data["hold_id"], id.to_string());
    assert_eq!(data["lines"], serde_json::json!([{"item_id": "a", "quantity": 2}]));
    assert_eq!(data["reference"], "booking-2");
    let expires_at = OffsetDateTime::parse(data["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(Timestamp::from_datetime(expires_at), now + time::Duration::seconds(900));
    assert_eq!(created[1].correlation_id.as_deref(), Some("booking-2"));
}

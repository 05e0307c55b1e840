//! The audit log: one entry per event however often it is delivered, personal data masked, and a chain that
//! verifies until someone edits, deletes or truncates it.

use phoenix_audit::audit::Filter;
use phoenix_audit::{Anchor, Break, Verification};
use phoenix_db::Pool;
use serde_json::json;

use crate::*;

phoenix_db::contract_suite!(
    phoenix_audit::migrations(),
    [
        an_event_delivered_twice_is_one_entry_and_one_count,
        personal_data_is_masked_and_the_actor_named,
        an_edited_entry_breaks_the_chain_where_it_was_edited,
        a_deleted_entry_is_found_missing,
        deleting_the_last_entries_is_detected_by_the_head,
        concurrent_appends_keep_one_gapless_chain,
        only_an_anchor_catches_a_log_rewritten_inside_the_database,
    ]
);

fn confirmed(booking: &str, total_minor: i64) -> CloudEvent {
    event(
        "booking.confirmed.v1",
        booking,
        json!({"booking_id": booking, "customer_id": "cust-1", "created_by": "agent-1", "currency": "EUR",
               "total_minor": total_minor, "contact_email": "ann@example.com"}),
    )
}

fn all() -> Filter {
    Filter {
        limit: 500,
        ..Filter::default()
    }
}

async fn an_event_delivered_twice_is_one_entry_and_one_count(pool: Pool) {
    let world = world(pool);
    let event = confirmed("b-1", 12_000);
    let first = world.deliver(std::slice::from_ref(&event)).await;
    assert_eq!(first.applied, 1);
    let again = world.deliver(&[event.clone(), event.clone()]).await;
    assert_eq!(again.duplicates, 2);
    let entries = world.service.entries(&all()).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].event_id, event.id);
    assert_eq!(world.count("money_daily").await, 1);
    let n: i64 = phoenix_db::dispatch!(&world.pool, conn => {
        sqlx::query_scalar("SELECT n_confirmed FROM money_daily").fetch_one(conn).await
    })
    .unwrap();
    assert_eq!(n, 1, "counted once");
    assert!(world.service.verify().await.unwrap().is_intact());
}

async fn personal_data_is_masked_and_the_actor_named(pool: Pool) {
    let world = world(pool);
    let created = event(
        "booking.created.v1",
        "b-1",
        json!({"booking_id": "b-1", "customer_id": "cust-1", "created_by": "agent-7",
               "contact_email": "jane.doe@example.com", "contact_phone": "+44 7700 900089",
               "travellers": [{"first_name": "Jane", "last_name": "Doe"}], "total_minor": 100, "currency": "EUR"}),
    );
    let refund = event(
        "payment.refunded.v1",
        "p-1",
        json!({"payment_id": "p-1", "owner_id": "cust-1", "currency": "EUR", "refunded_minor": 50,
               "operation": {"kind": "refund", "amount_minor": 50, "actor_id": "support-3"}}),
    );
    let catalog = event("catalog.hotel_created.v1", "h-1", json!({"hotel_id": "h-1"}));
    world.deliver(&[created.clone(), refund, catalog]).await;
    let entries = world.service.entries(&all()).await.unwrap();
    let by_action = |action: &str| entries.iter().find(|e| e.action == action).expect("entry");
    let booking = by_action("booking.created.v1");
    assert_eq!(booking.actor, "agent-7");
    assert_eq!(booking.subject, "b-1");
    assert_eq!(booking.source, "phoenix.booking");
    assert_eq!(booking.correlation_id.as_deref(), Some("req-b-1"));
    assert_eq!(
        booking.occurred_at.unix_micros(),
        created.time.unix_timestamp_nanos() as i64 / 1_000
    );
    let payload: Value = serde_json::from_str(&booking.payload).unwrap();
    assert_eq!(payload["contact_email"], "j***@example.com");
    assert_eq!(payload["contact_phone"], "+44********89");
    assert_eq!(
        payload["travellers"][0],
        json!({"first_name": "J***", "last_name": "D***"})
    );
    assert_eq!(payload["total_minor"], 100);
    assert!(!booking.payload.contains("jane") && !booking.payload.contains("900089"));
    assert_eq!(by_action("payment.refunded.v1").actor, "support-3");
    assert_eq!(by_action("catalog.hotel_created.v1").actor, "phoenix.catalog");
}

async fn deliver_five(world: &World) -> String {
    for n in 1..=5 {
        world.deliver(&[confirmed(&format!("b-{n}"), n * 100)]).await;
    }
    match world.service.verify().await.unwrap() {
        Verification::Intact { entries, head_hash } => {
            assert_eq!(entries, 5);
            head_hash
        }
        broken => panic!("{broken}"),
    }
}

async fn an_edited_entry_breaks_the_chain_where_it_was_edited(pool: Pool) {
    let world = world(pool);
    let head = deliver_five(&world).await;
    let entries = world.service.entries(&all()).await.unwrap();
    assert_eq!(entries[0].hash, head, "the head is the newest entry's hash");
    let edited = world
        .sql("UPDATE audit_entries SET payload = '{\"total_minor\":1}' WHERE position = 3")
        .await;
    assert_eq!(edited, 1);
    let verification = phoenix_audit::verify(&world.pool).await.unwrap();
    assert_eq!(
        verification,
        Verification::Broken {
            position: 3,
            reason: Break::HashMismatch
        }
    );
    assert!(verification.to_string().contains("position 3"), "{verification}");
}

async fn a_deleted_entry_is_found_missing(pool: Pool) {
    let world = world(pool);
    deliver_five(&world).await;
    world.sql("DELETE FROM audit_entries WHERE position = 3").await;
    assert_eq!(
        phoenix_audit::verify(&world.pool).await.unwrap(),
        Verification::Broken {
            position: 3,
            reason: Break::Missing { found: 4 }
        }
    );
}

async fn deleting_the_last_entries_is_detected_by_the_head(pool: Pool) {
    let world = world(pool);
    deliver_five(&world).await;
    world.sql("DELETE FROM audit_entries WHERE position = 5").await;
    let verification = phoenix_audit::verify(&world.pool).await.unwrap();
    assert_eq!(
        verification,
        Verification::Broken {
            position: 5,
            reason: Break::Truncated {
                head_position: 5,
                last_position: 4
            }
        }
    );
    assert!(!verification.is_intact());
}

/// Eight deliverers append at once, in batches of 1 to 7 entries (each batch joins the chain with one move of the
/// head), and each then redelivers another's events while that one may still be appending them.
async fn concurrent_appends_keep_one_gapless_chain(pool: Pool) {
    let world = world(pool);
    let events: Vec<Vec<CloudEvent>> = (0..8)
        .map(|task| (0..50).map(|n| confirmed(&format!("b-{task}-{n}"), 100)).collect())
        .collect();
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let consumer = world.audit.clone();
            let mine = events[task].clone();
            let theirs = events[(task + 1) % 8].clone();
            tokio::spawn(async move {
                let mut applied = 0;
                for batch in mine.chunks(task % 7 + 1) {
                    applied += consumer.apply(batch).await.expect("apply").applied;
                }
                applied += consumer.apply(&theirs).await.expect("redeliver").applied;
                applied
            })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        applied += task.await.expect("task");
    }
    assert_eq!(applied, 400, "each event appended once");
    let positions: Vec<i64> = phoenix_db::dispatch!(&world.pool, conn => {
        sqlx::query_scalar("SELECT position FROM audit_entries ORDER BY position").fetch_all(conn).await
    })
    .unwrap();
    assert_eq!(positions, (1..=400).collect::<Vec<i64>>(), "gapless");
    // Small pages, so the walk crosses many page boundaries.
    let verification = phoenix_audit::verify_in_pages(&world.pool, &[], 7).await.unwrap();
    assert!(
        matches!(verification, Verification::Intact { entries: 400, .. }),
        "{verification}"
    );
}

/// What an attacker who can write the database does: rewrites entries from some position on with every hash
/// recomputed and the head moved to match, or cuts off the last entries and moves the head back. `verify` alone
/// cannot tell; an anchor kept outside the database can.
async fn only_an_anchor_catches_a_log_rewritten_inside_the_database(pool: Pool) {
    let world = world(pool);
    let head = deliver_five(&world).await;
    let anchor = Anchor {
        position: 5,
        hash: head.clone(),
    };
    assert!(
        phoenix_audit::verify_anchored(&world.pool, std::slice::from_ref(&anchor))
            .await
            .unwrap()
            .is_intact()
    );

    // Entry 3 edited, then 3 to 5 re-hashed in order and the head set to the new last hash.
    let mut entries = world.service.entries(&all()).await.unwrap();
    entries.sort_by_key(|e| e.position);
    let mut prev = entries[1].hash.clone();
    for entry in &mut entries[2..] {
        if entry.position == 3 {
            entry.payload = "{\"total_minor\":1}".to_owned();
        }
        entry.prev_hash = prev;
        entry.hash = entry.compute_hash();
        prev = entry.hash.clone();
        let statement = format!(
            "UPDATE audit_entries SET payload = '{}', prev_hash = '{}', hash = '{}' WHERE position = {}",
            entry.payload, entry.prev_hash, entry.hash, entry.position
        );
        assert_eq!(world.sql(&statement).await, 1);
    }
    world
        .sql(&format!("UPDATE audit_head SET hash = '{prev}' WHERE id = 1"))
        .await;
    assert!(
        phoenix_audit::verify(&world.pool).await.unwrap().is_intact(),
        "consistent inside"
    );
    assert_eq!(
        phoenix_audit::verify_anchored(&world.pool, std::slice::from_ref(&anchor))
            .await
            .unwrap(),
        Verification::Broken {
            position: 5,
            reason: Break::AnchorMismatch {
                anchored_hash: head.clone()
            }
        }
    );

    // The last entry cut off and the head moved back onto the one before.
    world.sql("DELETE FROM audit_entries WHERE position = 5").await;
    world
        .sql(&format!(
            "UPDATE audit_head SET position = 4, hash = '{}' WHERE id = 1",
            entries[3].hash
        ))
        .await;
    assert!(
        phoenix_audit::verify(&world.pool).await.unwrap().is_intact(),
        "consistent inside"
    );
    assert_eq!(
        phoenix_audit::verify_anchored(&world.pool, &[anchor]).await.unwrap(),
        Verification::Broken {
            position: 5,
            reason: Break::AnchorBeyondHead { head_position: 4 }
        }
    );
}

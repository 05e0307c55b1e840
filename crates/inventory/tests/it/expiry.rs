use phoenix_db::Pool;
use phoenix_inventory::{Error, Status};

use crate::{agent, bucket, events_of, manual_service, request, stored_counters, units_in};

phoenix_db::contract_suite!(
    phoenix_inventory::migrations(),
    [
        a_lapsed_hold_stops_counting_at_its_expiry,
        expired_holds_cannot_be_confirmed,
        sweep_expires_lapsed_holds_and_writes_events,
        the_sweeper_runs_on_its_own_timer_each_pass_in_a_trace_of_its_own,
        confirm_racing_expiry_has_exactly_one_winner,
    ]
);

async fn a_lapsed_hold_stops_counting_at_its_expiry(pool: Pool) {
    let inventory = manual_service(pool.clone()).await;
    bucket(&inventory, "a", 1).await;
    let first = inventory
        .create_hold(&agent(), request(&[("a", 1)]), None)
        .await
        .unwrap();
    assert!(matches!(
        inventory.create_hold(&agent(), request(&[("a", 1)]), None).await,
        Err(Error::Insufficient(_))
    ));
    inventory.clock().advance(time::Duration::seconds(899));
    assert_eq!(
        inventory.item("a").await.unwrap().available(),
        0,
        "one second before expiry it still counts"
    );
    inventory.clock().advance(time::Duration::seconds(1));
    // Not swept yet: the stored counter still has it, availability does not.
    assert_eq!(stored_counters(&pool, "a").await.1, 1);
    assert_eq!(inventory.item("a").await.unwrap().available(), 1);
    assert_eq!(
        inventory.hold(&crate::admin(), first.id).await.unwrap().status,
        Status::Expired
    );
    // A new hold expires it in the same batch and takes the unit.
    let request_trace = phoenix_api::trace::child_of(None);
    phoenix_api::trace::scope(
        request_trace.clone(),
        inventory.create_hold(&agent(), request(&[("a", 1)]), None),
    )
    .await
    .unwrap();
    assert_eq!(stored_counters(&pool, "a").await, (1, 1, 0));
    assert_eq!(events_of(&pool, "inventory.hold_expired.v1").await, 1);
    // The expiry is no part of the request that met it: it starts a trace of its own, as a sweep pass does.
    let traces: Vec<(String, Option<String>)> = pool
        .events_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event_type, e.traceparent))
        .collect();
    let trace_of = |event_type: &str| {
        let traceparent = traces.iter().rev().find(|(t, _)| t == event_type).unwrap().1.clone();
        traceparent.unwrap_or_else(|| panic!("{event_type} carries a trace"))
    };
    let trace_id = |traceparent: &str| phoenix_api::trace::trace_id(traceparent).unwrap().to_owned();
    assert_eq!(trace_of("inventory.hold_created.v1"), request_trace);
    assert_ne!(
        trace_id(&trace_of("inventory.hold_expired.v1")),
        trace_id(&request_trace)
    );
}

async fn expired_holds_cannot_be_confirmed(pool: Pool) {
    let inventory = manual_service(pool.clone()).await;
    bucket(&inventory, "a", 5).await;
    let holder = agent();
    let hold = inventory
        .create_hold(&holder, request(&[("a", 2)]), None)
        .await
        .unwrap();
    inventory.clock().advance(time::Duration::seconds(900));
    assert!(matches!(
        inventory.confirm(&holder, hold.id).await,
        Err(Error::HoldExpired)
    ));
    assert!(matches!(
        inventory.confirm(&holder, hold.id).await,
        Err(Error::HoldExpired)
    ));
    assert_eq!(
        inventory.release(&holder, hold.id).await.unwrap().status,
        Status::Expired
    );
    assert_eq!(stored_counters(&pool, "a").await, (5, 0, 0));
}

async fn sweep_expires_lapsed_holds_and_writes_events(pool: Pool) {
    let inventory = manual_service(pool.clone()).await;
    bucket(&inventory, "a", 50).await;
    let mut holds = Vec::new();
    for _ in 0..20 {
        holds.push(
            inventory
                .create_hold(&agent(), request(&[("a", 2)]), None)
                .await
                .unwrap(),
        );
    }
    inventory.clock().advance(time::Duration::seconds(600));
    assert_eq!(inventory.sweep().await.unwrap(), 0, "nothing due yet");
    inventory.clock().advance(time::Duration::seconds(300));
    // The sweeper runs each pass in a trace of its own; the expiries carry it.
    let pass = phoenix_api::trace::child_of(None);
    let swept = phoenix_api::trace::scope(pass.clone(), inventory.sweep()).await;
    assert_eq!(swept.unwrap(), 20);
    assert_eq!(stored_counters(&pool, "a").await, (50, 0, 0));
    assert_eq!(events_of(&pool, "inventory.hold_expired.v1").await, 20);
    let expiries: Vec<Option<String>> = pool
        .events_after(0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "inventory.hold_expired.v1")
        .map(|e| e.traceparent)
        .collect();
    assert_eq!(expiries, vec![Some(pass); 20]);
    for hold in holds {
        assert_eq!(
            inventory.hold(&crate::admin(), hold.id).await.unwrap().status,
            Status::Expired
        );
    }
}

async fn confirm_racing_expiry_has_exactly_one_winner(pool: Pool) {
    // Small batches, so the confirms are written in many transactions and the expiry lands between them.
    let options = phoenix_inventory::Options {
        max_batch: 4,
        ..phoenix_inventory::Options::default()
    };
    let clock = phoenix_inventory::Clock::manual(phoenix_db::Timestamp::now());
    let inventory = crate::service_with(pool.clone(), options, clock).await;
    bucket(&inventory, "a", 400).await;
    let holder = agent();
    let mut holds = Vec::new();
    for _ in 0..100 {
        holds.push(
            inventory
                .create_hold(&holder_for(&holder), request(&[("a", 1)]), None)
                .await
                .unwrap(),
        );
    }
    inventory.clock().advance(time::Duration::seconds(899));
    // Half the confirms get answered, then time passes the expiry and the sweeper runs while the other half are
    // still queued or being written: both outcomes happen, and each hold must end exactly one way.
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let halfway = std::sync::Arc::new(tokio::sync::Notify::new());
    let confirms: Vec<_> = holds
        .iter()
        .map(|hold| {
            let inventory = inventory.clone();
            let (answered, halfway) = (answered.clone(), halfway.clone());
            let id = hold.id;
            tokio::spawn(async move {
                let result = inventory.confirm(&crate::admin(), id).await;
                if answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == 50 {
                    halfway.notify_one();
                }
                result
            })
        })
        .collect();
    let clock = inventory.clock().clone();
    let sweeper = {
        let inventory = inventory.clone();
        tokio::spawn(async move {
            halfway.notified().await;
            clock.advance(time::Duration::seconds(1));
            inventory.sweep().await.unwrap()
        })
    };
    let (mut confirmed, mut expired) = (0, 0);
    for confirm in confirms {
        match confirm.await.unwrap() {
            Ok(hold) => {
                assert_eq!(hold.status, Status::Confirmed);
                confirmed += 1;
            }
            Err(Error::HoldExpired) => expired += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    sweeper.await.unwrap();
    inventory.sweep().await.unwrap();
    assert_eq!(confirmed + expired, 100);
    assert!(confirmed >= 50, "the first half was answered before the expiry");
    let (_, held, sold) = stored_counters(&pool, "a").await;
    assert_eq!((held, sold), (0, confirmed), "each hold ended exactly one way");
    assert_eq!(units_in(&pool, "a", "confirmed").await, confirmed);
    assert_eq!(units_in(&pool, "a", "expired").await, expired);
    assert_eq!(events_of(&pool, "inventory.hold_confirmed.v1").await as i64, confirmed);
    assert_eq!(events_of(&pool, "inventory.hold_expired.v1").await as i64, expired);
}

/// A holder per hold, so the open-holds bound does not interfere.
fn holder_for(_: &phoenix_api::Principal) -> phoenix_api::Principal {
    agent()
}

/// The expiries' trace ids, oldest first.
async fn expiry_traces(pool: &Pool) -> Vec<String> {
    pool.events_after(0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "inventory.hold_expired.v1")
        .map(|e| {
            let traceparent = e.traceparent.expect("an expiry carries its pass's trace");
            phoenix_api::trace::trace_id(&traceparent).unwrap().to_owned()
        })
        .collect()
}

/// Waits (at most 30 s, which only a broken timer takes) until `count` holds have expired.
async fn until_expired(pool: &Pool, count: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while events_of(pool, "inventory.hold_expired.v1").await < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweeper did not expire {count} holds on its own"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Nothing here calls `sweep()`: the service's own timer finds lapsed holds, returns their units and writes their
/// events, each pass under a trace of its own.
async fn the_sweeper_runs_on_its_own_timer_each_pass_in_a_trace_of_its_own(pool: Pool) {
    let options = phoenix_inventory::Options {
        sweep_interval_ms: 10,
        ..phoenix_inventory::Options::default()
    };
    let clock = phoenix_inventory::Clock::manual(phoenix_db::Timestamp::now());
    let inventory = crate::service_with(pool.clone(), options, clock).await;
    bucket(&inventory, "a", 10).await;
    for _ in 0..3 {
        inventory
            .create_hold(&agent(), request(&[("a", 2)]), None)
            .await
            .unwrap();
    }
    inventory.clock().advance(time::Duration::seconds(900));
    until_expired(&pool, 3).await;
    assert_eq!(stored_counters(&pool, "a").await, (10, 0, 0), "their units are back");

    for _ in 0..2 {
        inventory
            .create_hold(&agent(), request(&[("a", 1)]), None)
            .await
            .unwrap();
    }
    inventory.clock().advance(time::Duration::seconds(900));
    until_expired(&pool, 5).await;
    assert_eq!(stored_counters(&pool, "a").await, (10, 0, 0));
    let traces = expiry_traces(&pool).await;
    assert_eq!(traces.len(), 5);
    assert!(
        traces[..3].iter().all(|t| *t == traces[0]),
        "one pass, one trace: {traces:?}"
    );
    assert!(traces[3..].iter().all(|t| *t == traces[3]), "{traces:?}");
    assert_ne!(traces[0], traces[3], "each pass a trace of its own");
}

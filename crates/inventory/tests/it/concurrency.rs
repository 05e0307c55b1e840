use std::collections::HashMap;

use phoenix_db::Pool;
use phoenix_inventory::Error;

use crate::{agent, bucket, events_of, request, service, stored_counters, units_in};

phoenix_db::contract_suite!(
    phoenix_inventory::migrations(),
    [
        two_thousand_racing_holds_on_a_bucket_of_100,
        racing_multi_line_holds_never_leave_a_partial_hold,
        a_full_queue_refuses_with_busy,
    ]
);

async fn two_thousand_racing_holds_on_a_bucket_of_100(pool: Pool) {
    let inventory = service(pool.clone()).await;
    bucket(&inventory, "flight:PX1:Y", 100).await;
    let attempts: Vec<_> = (0..2_000)
        .map(|_| {
            let inventory = inventory.clone();
            // Each attempt for a different traveller, so only capacity limits them.
            tokio::spawn(async move {
                inventory
                    .create_hold(&agent(), request(&[("flight:PX1:Y", 1)]), None)
                    .await
            })
        })
        .collect();
    let (mut held, mut refused) = (0, 0);
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => held += 1,
            Err(Error::Insufficient(_)) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((held, refused), (100, 1_900));
    assert_eq!(stored_counters(&pool, "flight:PX1:Y").await, (100, 100, 0));
    assert_eq!(
        units_in(&pool, "flight:PX1:Y", "held").await,
        100,
        "counters add up to the holds"
    );
    assert_eq!(events_of(&pool, "inventory.hold_created.v1").await, 100);
}

async fn racing_multi_line_holds_never_leave_a_partial_hold(pool: Pool) {
    let inventory = service(pool.clone()).await;
    for item in ["a", "b", "c", "d"] {
        bucket(&inventory, item, 60).await;
    }
    let shapes: [&[(&str, i64)]; 5] = [
        &[("a", 1), ("b", 2)],
        &[("b", 1), ("c", 3)],
        &[("c", 2), ("a", 1), ("d", 1)],
        &[("d", 3)],
        &[("a", 2), ("b", 1), ("c", 1), ("d", 1)],
    ];
    let attempts: Vec<_> = (0..400)
        .map(|i| {
            let inventory = inventory.clone();
            let lines = shapes[i % shapes.len()];
            tokio::spawn(async move { (lines, inventory.create_hold(&agent(), request(lines), None).await) })
        })
        .collect();
    let mut expected: HashMap<&str, i64> = HashMap::new();
    for attempt in attempts {
        let (lines, result) = attempt.await.unwrap();
        match result {
            Ok(hold) => {
                assert_eq!(hold.lines.len(), lines.len(), "a hold has all its lines");
                for (item, quantity) in lines {
                    *expected.entry(item).or_default() += quantity;
                }
            }
            Err(Error::Insufficient(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    for item in ["a", "b", "c", "d"] {
        let (capacity, held, sold) = stored_counters(&pool, item).await;
        assert!(held + sold <= capacity, "{item} oversold");
        assert_eq!(
            held,
            expected.get(item).copied().unwrap_or(0),
            "{item}: counter equals successful holds"
        );
        assert_eq!(
            units_in(&pool, item, "held").await,
            held,
            "{item}: lines equal the counter"
        );
    }
    // Every stored hold has as many lines as one of the shapes asked for: none was written in part.
    let line_counts: Vec<i64> = phoenix_db::dispatch!(&pool, conn => {
        sqlx::query_scalar("SELECT count(*) FROM hold_lines GROUP BY hold_id").fetch_all(conn).await
    })
    .unwrap();
    assert!(line_counts.iter().all(|n| [1, 2, 3, 4].contains(n)));
}

/// While the writer is stuck (another transaction holds the bucket), at most one batch and one queued command
/// are accepted; everything else is refused at once with "busy", never queued without bound.
async fn a_full_queue_refuses_with_busy(pool: Pool) {
    let options = phoenix_inventory::Options {
        queue_depth: 1,
        max_batch: 1,
        linger_us: 0,
        ..phoenix_inventory::Options::default()
    };
    let inventory = crate::service_with(pool.clone(), options, phoenix_inventory::Clock::System).await;
    bucket(&inventory, "a", 100).await;
    let mut blocker = pool.begin().await.unwrap();
    phoenix_db::dispatch!(&mut blocker, conn => {
        sqlx::query("UPDATE buckets SET updated_at = updated_at WHERE item_id = 'a'").execute(conn).await.map(|_| ())
    })
    .unwrap();

    let attempts: Vec<_> = (0..50)
        .map(|_| {
            let inventory = inventory.clone();
            tokio::spawn(async move { inventory.create_hold(&agent(), request(&[("a", 1)]), None).await })
        })
        .collect();
    // Answers for refused requests come back while the writer is still stuck; collect until only the accepted
    // (at most two) are outstanding, then let the writer go.
    let mut pending = attempts;
    let mut busy = 0;
    while pending.len() > 2 {
        let (result, _, rest) = futures::future::select_all(pending).await;
        match result.unwrap() {
            Err(Error::Busy) => busy += 1,
            other => panic!("nothing may complete while the writer is stuck: {other:?}"),
        }
        pending = rest;
    }
    drop(blocker);
    let mut held = 0;
    for attempt in pending {
        match attempt.await.unwrap() {
            Ok(_) => held += 1,
            Err(Error::Busy) => busy += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(busy >= 48, "{busy}");
    assert_eq!(busy + held, 50);
    assert_eq!(stored_counters(&pool, "a").await.1, held);
    let problem = phoenix_api::Problem::from(Error::Busy);
    assert_eq!((problem.status.as_u16(), problem.retry_after_secs), (503, Some(1)));
}

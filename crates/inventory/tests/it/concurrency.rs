use std::collections::HashMap;

use phoenix_db::Pool;
use phoenix_inventory::Error;

use crate::{agent, bucket, events_of, request, service, stored_counters, units_in};

phoenix_db::contract_suite!(
    phoenix_inventory::migrations(),
    [
        two_thousand_racing_holds_on_a_bucket_of_100,
        racing_multi_line_holds_never_leave_a_partial_hold,
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

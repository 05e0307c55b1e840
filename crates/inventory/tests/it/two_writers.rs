//! Two inventory services (each with its own pool and writers, as two processes would have) on one database,
//! racing for one bucket.

use phoenix_db::testing::TestDatabase;
use phoenix_db::{Pool, PoolOptions};
use phoenix_inventory::{Clock, Error, Options, Service};

use crate::{agent, bucket, request, stored_counters, units_in};

async fn race(db: TestDatabase) {
    let url = db.url().to_owned();
    let first = Service::new(db.pool(), Options::default(), Clock::System)
        .await
        .unwrap();
    let second_pool = Pool::connect(&url, PoolOptions::default()).await.unwrap();
    let second = Service::new(second_pool, Options::default(), Clock::System)
        .await
        .unwrap();
    bucket(&first, "hot", 150).await;
    let attempts: Vec<_> = (0..1_000)
        .map(|i| {
            let inventory = if i % 2 == 0 { first.clone() } else { second.clone() };
            tokio::spawn(async move { inventory.create_hold(&agent(), request(&[("hot", 1)]), None).await })
        })
        .collect();
    let mut held = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => held += 1,
            Err(Error::Insufficient(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(held, 150);
    let pool = db.pool();
    assert_eq!(stored_counters(&pool, "hot").await, (150, 150, 0));
    assert_eq!(units_in(&pool, "hot", "held").await, 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_sqlite_file_never_oversell() {
    race(TestDatabase::sqlite(phoenix_inventory::migrations()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_postgres_database_never_oversell() {
    race(TestDatabase::postgres(phoenix_inventory::migrations()).await).await;
}

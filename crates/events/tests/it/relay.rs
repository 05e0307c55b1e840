//! The relay and the bus, as one contract: every committed event reaches the consumer exactly once in effect, in
//! order per subject, and nothing from a rolled-back transaction does. Run on SQLite and PostgreSQL, each with the
//! in-process bus and with NATS JetStream.

use std::collections::HashMap;
use std::time::Duration;

use phoenix_db::testing::TestDatabase;
use phoenix_db::{Event, Pool};
use phoenix_events::{Bus, CloudEvent, Consumer, ConsumerOptions, Nats, NatsOptions, Relay, RelayOptions};
use uuid::Uuid;

use crate::consumer::{Tally, create_tally, event, tally};
use crate::migrations::MIGRATIONS;

#[derive(Clone, Copy, Debug)]
pub enum Engine {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy, Debug)]
pub enum BusKind {
    InProcess,
    Nats,
}

pub async fn database(engine: Engine) -> TestDatabase {
    match engine {
        Engine::Sqlite => TestDatabase::sqlite(&MIGRATIONS).await,
        Engine::Postgres => TestDatabase::postgres(&MIGRATIONS).await,
    }
}

/// Options for a NATS bus whose streams no other test shares (the server is shared).
pub fn nats_options() -> NatsOptions {
    let tag = Uuid::new_v4().simple().to_string();
    NatsOptions {
        url: std::env::var("PHOENIX_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned()),
        subject_prefix: format!("t{tag}"),
        stream_prefix: format!("T{}", tag.to_uppercase()),
        max_age_hours: 1,
        ..NatsOptions::default()
    }
}

pub async fn bus(kind: BusKind) -> Bus {
    match kind {
        BusKind::InProcess => Bus::in_process(),
        BusKind::Nats => Bus::Nats(Nats::connect(nats_options()).await.expect("connect to NATS")),
    }
}

/// Removes a test's streams from the shared server.
async fn drop_streams(bus: &Bus) {
    if let Bus::Nats(nats) = bus {
        let url = nats.options().url.clone();
        if let Ok(client) = async_nats::connect(url).await {
            let js = async_nats::jetstream::new(client);
            let _ = js.delete_stream(nats.stream_name("booking")).await;
        }
    }
}

/// Writes `n` events over `subjects` subjects, one transaction per three events; every fifth transaction rolls
/// back. Returns the committed events' ids in write order.
async fn write_events(pool: &Pool, n: usize, subjects: usize) -> Vec<Uuid> {
    let mut committed = Vec::new();
    let mut i = 0;
    let mut round = 0;
    while i < n {
        round += 1;
        let mut tx = pool.begin().await.expect("begin");
        let mut ids = Vec::new();
        for _ in 0..3 {
            let subject = format!("b-{}", i % subjects);
            let event = Event::new(
                "phoenix.booking",
                "booking.confirmed.v1",
                subject,
                &serde_json::json!({ "i": i }),
            )
            .expect("event");
            ids.push(event.id);
            tx.append_event(&event).await.expect("append");
            i += 1;
        }
        if round % 5 == 0 {
            drop(tx); // rolled back: these events never happened
        } else {
            tx.commit().await.expect("commit");
            committed.extend(ids);
        }
    }
    committed
}

/// Waits (bounded) until the consumer has applied `n` events.
async fn until_tallied(pool: &Pool, n: usize) -> Vec<(Uuid, String, i64)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = tally(pool).await;
        if rows.len() >= n || tokio::time::Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each subject's events were applied in outbox order.
fn assert_in_order_per_subject(rows: &[(Uuid, String, i64)]) {
    let mut last: HashMap<&str, i64> = HashMap::new();
    for (_, subject, sequence) in rows {
        let previous = last.insert(subject.as_str(), *sequence);
        assert!(
            previous.is_none_or(|p| p < *sequence),
            "subject {subject} applied out of order"
        );
    }
}

pub async fn committed_events_arrive_once_and_rolled_back_ones_never(engine: Engine, kind: BusKind) {
    let producer = database(engine).await;
    let consumer_db = database(engine).await;
    create_tally(&consumer_db.pool()).await;
    let bus = bus(kind).await;
    let _subscription = bus.subscribe(Consumer::new(
        consumer_db.pool(),
        Tally::new(),
        ConsumerOptions::default(),
    ));
    let relay = Relay::new(
        "booking",
        producer.pool(),
        bus.clone(),
        RelayOptions {
            batch_size: 40,
            ..RelayOptions::default()
        },
    );
    let committed = write_events(&producer.pool(), 300, 7).await;
    while relay.run_once().await.expect("relay") > 0 {}
    let (backlog, _) = producer.pool().unpublished_backlog().await.expect("backlog");
    assert_eq!(backlog, 0, "everything committed is published");

    let rows = until_tallied(&consumer_db.pool(), committed.len()).await;
    let mut applied: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let mut expected = committed.clone();
    applied.sort();
    expected.sort();
    assert_eq!(applied, expected, "exactly the committed events, each once");
    assert_in_order_per_subject(&rows);
    drop_streams(&bus).await;
}

pub async fn a_batch_published_again_has_no_second_effect(engine: Engine, kind: BusKind) {
    let consumer_db = database(engine).await;
    create_tally(&consumer_db.pool()).await;
    let bus = bus(kind).await;
    let _subscription = bus.subscribe(Consumer::new(
        consumer_db.pool(),
        Tally::new(),
        ConsumerOptions::default(),
    ));
    let batch: Vec<CloudEvent> = (1..=25)
        .map(|n| event("booking.confirmed.v1", &format!("b-{}", n % 4), n))
        .collect();
    // A relay that crashed after publishing and before marking publishes the same batch again.
    bus.publish(&batch).await.expect("publish");
    bus.publish(&batch).await.expect("publish again");
    bus.publish(&batch[10..]).await.expect("publish part again");
    let rows = until_tallied(&consumer_db.pool(), batch.len()).await;
    assert_eq!(rows.len(), batch.len());
    // Anything still in flight would arrive now: publish a marker and wait for it, then count again.
    let marker = event("booking.confirmed.v1", "marker", 1_000);
    bus.publish(std::slice::from_ref(&marker))
        .await
        .expect("publish marker");
    let rows = until_tallied(&consumer_db.pool(), batch.len() + 1).await;
    assert_eq!(rows.len(), batch.len() + 1, "one effect per event");
    drop_streams(&bus).await;
}

pub async fn one_relay_at_a_time_publishes_a_database(engine: Engine, kind: BusKind) {
    let producer = database(engine).await;
    let consumer_db = database(engine).await;
    create_tally(&consumer_db.pool()).await;
    let bus = bus(kind).await;
    let _subscription = bus.subscribe(Consumer::new(
        consumer_db.pool(),
        Tally::new(),
        ConsumerOptions::default(),
    ));
    let options = RelayOptions {
        batch_size: 10,
        lease_secs: 60,
        ..RelayOptions::default()
    };
    let first = Relay::new("booking", producer.pool(), bus.clone(), options.clone());
    let second = Relay::new("booking", producer.pool(), bus.clone(), options);
    let committed = write_events(&producer.pool(), 30, 3).await;
    assert_eq!(first.run_once().await.expect("first relay"), 10);
    assert_eq!(
        second.run_once().await.expect("second relay"),
        0,
        "the lease is held by the first"
    );
    while first.run_once().await.expect("first relay") > 0 {}
    let rows = until_tallied(&consumer_db.pool(), committed.len()).await;
    assert_eq!(rows.len(), committed.len());
    drop_streams(&bus).await;
}

macro_rules! bus_suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite_in_process {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $test() { super::$test(super::Engine::Sqlite, super::BusKind::InProcess).await } )*
        }
        mod postgres_in_process {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $test() { super::$test(super::Engine::Postgres, super::BusKind::InProcess).await } )*
        }
        mod sqlite_nats {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $test() { super::$test(super::Engine::Sqlite, super::BusKind::Nats).await } )*
        }
        mod postgres_nats {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $test() { super::$test(super::Engine::Postgres, super::BusKind::Nats).await } )*
        }
    };
}

bus_suite!(
    committed_events_arrive_once_and_rolled_back_ones_never,
    a_batch_published_again_has_no_second_effect,
    one_relay_at_a_time_publishes_a_database,
);

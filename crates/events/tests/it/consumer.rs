//! Consumers apply each event once, retry a refused event a bounded number of times, keep it as a dead letter, and
//! replay dead letters once the cause is fixed: on both database engines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use phoenix_db::{Pool, Tx};
use phoenix_events::{Applied, Bus, CloudEvent, Consumer, ConsumerOptions, Handler, HandlerError};
use uuid::Uuid;

/// A handler that counts each event's effect in a table of its own, and refuses `poison` events until healed.
pub struct Tally {
    healed: AtomicBool,
}

impl Tally {
    pub fn new() -> Arc<Tally> {
        Arc::new(Tally {
            healed: AtomicBool::new(false),
        })
    }
}

#[async_trait]
impl Handler for Tally {
    fn name(&self) -> &'static str {
        "tally"
    }

    fn domains(&self) -> &'static [&'static str] {
        &["booking"]
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type != "booking.ignored.v1"
    }

    async fn apply(&self, tx: &mut Tx, event: &CloudEvent) -> Result<(), HandlerError> {
        if event.event_type == "booking.poison.v1" && !self.healed.load(Ordering::SeqCst) {
            return Err(HandlerError::rejected("poison"));
        }
        phoenix_db::dispatch!(tx, conn => {
            sqlx::query("INSERT INTO tally (event_id, subject, sequence) VALUES ($1, $2, $3)")
                .bind(event.id)
                .bind(&event.subject)
                .bind(event.sequence)
                .execute(conn)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }
}

pub async fn create_tally(pool: &Pool) {
    // `applied` numbers effects in the order they were committed (per engine: its own auto-increment).
    let ddl = match pool.backend() {
        phoenix_db::Backend::Sqlite => {
            "CREATE TABLE tally (applied INTEGER PRIMARY KEY AUTOINCREMENT, event_id BLOB NOT NULL UNIQUE,
                                 subject TEXT NOT NULL, sequence BIGINT NOT NULL)"
        }
        phoenix_db::Backend::Postgres => {
            "CREATE TABLE tally (applied BIGSERIAL PRIMARY KEY, event_id UUID NOT NULL UNIQUE,
                                 subject TEXT NOT NULL, sequence BIGINT NOT NULL)"
        }
    };
    phoenix_db::dispatch!(pool, conn => sqlx::query(ddl).execute(conn).await.map(|_| ())).expect("create tally");
}

/// The consumer's effects, in the order they were applied: (event id, subject, outbox position).
pub async fn tally(pool: &Pool) -> Vec<(Uuid, String, i64)> {
    phoenix_db::dispatch!(pool, conn => {
        sqlx::query_as("SELECT event_id, subject, sequence FROM tally ORDER BY applied").fetch_all(conn).await
    })
    .expect("read tally")
}

pub fn event(event_type: &str, subject: &str, sequence: i64) -> CloudEvent {
    CloudEvent {
        specversion: "1.0".to_owned(),
        id: Uuid::now_v7(),
        source: "phoenix.booking".to_owned(),
        event_type: event_type.to_owned(),
        subject: subject.to_owned(),
        time: time::OffsetDateTime::now_utc(),
        datacontenttype: "application/json".to_owned(),
        data: serde_json::json!({ "n": sequence }),
        correlationid: None,
        traceparent: None,
        sequence,
    }
}

fn options() -> ConsumerOptions {
    ConsumerOptions {
        max_attempts: 3,
        retry_base_ms: 1,
    }
}

async fn an_event_delivered_twice_has_one_effect(pool: Pool) {
    create_tally(&pool).await;
    let consumer = Consumer::new(pool.clone(), Tally::new(), options());
    let batch: Vec<CloudEvent> = (1..=5).map(|n| event("booking.confirmed.v1", "b-1", n)).collect();
    let first = consumer.apply(&batch).await.expect("first delivery");
    assert_eq!(
        first,
        Applied {
            applied: 5,
            ..Applied::default()
        }
    );
    // The bus redelivers part of the batch, and again the whole of it.
    let again = consumer.apply(&batch[2..]).await.expect("redelivery");
    assert_eq!(
        again,
        Applied {
            duplicates: 3,
            ..Applied::default()
        }
    );
    let whole = consumer.apply(&batch).await.expect("redelivery");
    assert_eq!(whole.duplicates, 5);
    let rows = tally(&pool).await;
    assert_eq!(rows.len(), 5, "one effect per event");
    assert_eq!(rows.iter().map(|r| r.2).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    // The same event twice within one batch: one effect.
    let twice = event("booking.confirmed.v1", "b-2", 6);
    let within = consumer
        .apply(&[twice.clone(), twice.clone(), event("booking.confirmed.v1", "b-2", 7)])
        .await
        .expect("a batch holding one event twice");
    assert_eq!(
        within,
        Applied {
            applied: 2,
            duplicates: 1,
            ..Applied::default()
        }
    );
    assert_eq!(tally(&pool).await.len(), 7);
}

/// Many relays publishing to the in-process bus at once (one per service in `phoenix serve`): each publish returns
/// once its events are applied, every event has one effect, and order per subject holds although the consumer's
/// task applies what queued up from different publishers together.
async fn in_process_publishers_racing_reach_the_consumer_once_in_order(pool: Pool) {
    create_tally(&pool).await;
    let bus = Bus::in_process();
    let _subscription = bus.subscribe(Consumer::new(pool.clone(), Tally::new(), options()));
    let publishers: Vec<_> = (0..6)
        .map(|publisher| {
            let bus = bus.clone();
            let pool = pool.clone();
            tokio::spawn(async move {
                let subject = format!("p-{publisher}");
                let mut sequence = 0;
                let mut last = Vec::new();
                for round in 0..25 {
                    let batch: Vec<CloudEvent> = (0..=round % 5)
                        .map(|_| {
                            sequence += 1;
                            event("booking.confirmed.v1", &subject, sequence)
                        })
                        .collect();
                    bus.publish(&batch).await.expect("publish");
                    let mine = tally(&pool).await.into_iter().filter(|r| r.1 == subject).count();
                    assert_eq!(
                        mine,
                        usize::try_from(sequence).expect("count"),
                        "applied when publish returns"
                    );
                    last = batch;
                }
                // A relay that crashed before marking its last batch publishes it again.
                bus.publish(&last).await.expect("publish again");
                sequence
            })
        })
        .collect();
    let mut expected = 0;
    for publisher in publishers {
        expected += publisher.await.expect("publisher");
    }
    let rows = tally(&pool).await;
    assert_eq!(
        rows.len(),
        usize::try_from(expected).expect("count"),
        "one effect per event"
    );
    for publisher in 0..6 {
        let subject = format!("p-{publisher}");
        let order: Vec<i64> = rows.iter().filter(|r| r.1 == subject).map(|r| r.2).collect();
        assert_eq!(
            order,
            (1..=order.len() as i64).collect::<Vec<_>>(),
            "{subject} in order"
        );
    }
}

async fn a_poison_event_is_dead_lettered_without_blocking_the_rest(pool: Pool) {
    create_tally(&pool).await;
    let handler = Tally::new();
    let consumer = Consumer::new(pool.clone(), handler.clone(), options());
    let batch = vec![
        event("booking.confirmed.v1", "b-1", 1),
        event("booking.poison.v1", "b-2", 2),
        event("booking.ignored.v1", "b-3", 3),
        event("booking.confirmed.v1", "b-1", 4),
    ];
    let outcome = consumer.apply(&batch).await.expect("apply");
    assert_eq!(
        outcome,
        Applied {
            applied: 2,
            duplicates: 0,
            ignored: 1,
            dead_lettered: 1
        }
    );
    assert_eq!(tally(&pool).await.iter().map(|r| r.2).collect::<Vec<_>>(), vec![1, 4]);
    let letters = consumer.dead_letters(false, 10).await.expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event_id, batch[1].id);
    assert_eq!(letters[0].attempts, 3, "bounded retries");
    assert_eq!(letters[0].error, "poison");
    // Redelivered, the dead letter is not retried again by the bus: it waits for a replay.
    let again = consumer.apply(&batch[1..2]).await.expect("redelivery");
    assert_eq!(again.duplicates, 1);

    // Still failing: the replay says so and the letter stays open.
    let replay = consumer.replay_dead_letters().await.expect("replay");
    assert_eq!((replay.replayed, replay.still_failing), (0, 1));
    handler.healed.store(true, Ordering::SeqCst);
    let replay = consumer.replay_dead_letters().await.expect("replay");
    assert_eq!((replay.replayed, replay.still_failing), (1, 0));
    // The replayed event's effect comes after the ones that went past it.
    assert_eq!(
        tally(&pool).await.iter().map(|r| r.2).collect::<Vec<_>>(),
        vec![1, 4, 2]
    );
    assert!(consumer.dead_letters(false, 10).await.expect("open letters").is_empty());
    let all = consumer.dead_letters(true, 10).await.expect("all letters");
    assert!(all[0].replayed_at.is_some());
    // A second replay has nothing to do.
    let replay = consumer.replay_dead_letters().await.expect("replay");
    assert_eq!((replay.replayed, replay.still_failing), (0, 0));
}

async fn racing_redeliveries_apply_once(pool: Pool) {
    create_tally(&pool).await;
    let consumer = Consumer::new(pool.clone(), Tally::new(), options());
    let batch: Vec<CloudEvent> = (1..=20)
        .map(|n| event("booking.confirmed.v1", &format!("b-{n}"), n))
        .collect();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let consumer = consumer.clone();
            let batch = batch.clone();
            tokio::spawn(async move { consumer.apply(&batch).await })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        // The inbox key makes a racing transaction wait for the first and then see the event as handled.
        applied += task.await.expect("task").expect("apply").applied;
    }
    let rows = tally(&pool).await;
    assert_eq!(rows.len(), 20, "every event applied exactly once");
    assert_eq!(applied, 20);
}

phoenix_db::contract_suite!(
    &crate::migrations::MIGRATIONS,
    [
        an_event_delivered_twice_has_one_effect,
        a_poison_event_is_dead_lettered_without_blocking_the_rest,
        racing_redeliveries_apply_once,
        in_process_publishers_racing_reach_the_consumer_once_in_order,
    ]
);

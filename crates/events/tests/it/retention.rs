//! Retention deletes published outbox rows and inbox rows past their age, a batch at a time, and nothing else:
//! unpublished events stay however old, recent rows stay, and a recent redelivery is still absorbed.

use phoenix_db::{Event, Pool, Timestamp};
use phoenix_events::{Consumer, ConsumerOptions, Pruned, Retention, RetentionOptions};

use crate::consumer::{Tally, create_tally, event};

phoenix_db::contract_suite!(
    &crate::migrations::MIGRATIONS,
    [old_published_events_and_old_inbox_rows_go]
);

async fn outbox_seqs(pool: &Pool) -> Vec<i64> {
    phoenix_db::dispatch!(pool, conn => {
        sqlx::query_scalar("SELECT seq FROM outbox ORDER BY seq").fetch_all(conn).await
    })
    .expect("outbox")
}

async fn old_published_events_and_old_inbox_rows_go(pool: Pool) {
    let mut tx = pool.begin().await.expect("begin");
    for i in 0..10 {
        let event = Event::new(
            "phoenix.booking",
            "booking.confirmed.v1",
            format!("b-{i}"),
            &serde_json::json!({}),
        )
        .expect("event");
        tx.append_event(&event).await.expect("append");
    }
    tx.commit().await.expect("commit");
    let seqs = outbox_seqs(&pool).await;
    let now = time::OffsetDateTime::now_utc();
    // Four published ten days ago, three published just now, three never published (and written long ago).
    pool.mark_published(&seqs[..4], Timestamp::from_datetime(now - time::Duration::days(10)))
        .await
        .expect("mark old");
    pool.mark_published(&seqs[4..7], Timestamp::now())
        .await
        .expect("mark now");
    phoenix_db::dispatch!(&pool, conn => {
        sqlx::query("UPDATE outbox SET occurred_at = $1 WHERE published_at IS NULL")
            .bind(Timestamp::from_datetime(now - time::Duration::days(30)))
            .execute(conn)
            .await
            .map(|_| ())
    })
    .expect("age the unpublished");

    create_tally(&pool).await;
    let consumer = Consumer::new(
        pool.clone(),
        Tally::new(),
        ConsumerOptions {
            max_attempts: 1,
            retry_base_ms: 1,
        },
    );
    let delivered: Vec<_> = (1..=5).map(|n| event("booking.confirmed.v1", "b-1", n)).collect();
    consumer.apply(&delivered).await.expect("apply");
    phoenix_db::dispatch!(&pool, conn => {
        sqlx::query("UPDATE inbox SET applied_at = $1 WHERE event_id = $2 OR event_id = $3 OR event_id = $4")
            .bind(Timestamp::from_datetime(now - time::Duration::days(9)))
            .bind(delivered[0].id)
            .bind(delivered[1].id)
            .bind(delivered[2].id)
            .execute(conn)
            .await
            .map(|_| ())
    })
    .expect("age three inbox rows");

    let retention = Retention::new(
        vec![pool.clone()],
        vec![consumer.clone()],
        RetentionOptions {
            batch: 2, // smaller than what is to go: the pass repeats
            ..RetentionOptions::default()
        },
    );
    assert_eq!(
        retention.run_once().await.expect("prune"),
        Pruned { outbox: 4, inbox: 3 }
    );
    assert_eq!(
        outbox_seqs(&pool).await,
        seqs[4..].to_vec(),
        "recent and unpublished events stay"
    );
    let inbox: i64 = phoenix_db::dispatch!(&pool, conn => {
        sqlx::query_scalar("SELECT COUNT(*) FROM inbox").fetch_one(conn).await
    })
    .expect("inbox");
    assert_eq!(inbox, 2);
    let again = consumer.apply(&delivered[3..]).await.expect("redeliver");
    assert_eq!(again.duplicates, 2, "recent inbox rows still absorb redeliveries");
    assert_eq!(retention.run_once().await.expect("prune again"), Pruned::default());
}

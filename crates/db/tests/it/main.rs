//! The storage contract, run against SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

use phoenix_db::idempotency::{Record, Replay};
use phoenix_db::{Event, Migrations, Pool, Timestamp, dispatch};
use uuid::Uuid;

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/test_sqlite"),
    postgres: sqlx::migrate!("migrations/test_postgres"),
};

phoenix_db::contract_suite!(
    &MIGRATIONS,
    [
        committed_change_and_its_event_appear_together,
        rolled_back_change_leaves_no_event,
        timestamps_compare_in_time_order,
        unique_violation_is_recognised,
        migrating_twice_changes_nothing,
        events_appended_in_bulk_keep_their_order,
        idempotency_replays_the_same_request_and_refuses_another,
        idempotency_key_is_taken_once_when_racing,
        idempotency_records_expire_after_a_day,
    ]
);

async fn insert_widget(tx: &mut phoenix_db::Tx, name: &str, made_at: Timestamp) -> Result<(), phoenix_db::Error> {
    dispatch!(tx, conn => {
        sqlx::query("INSERT INTO widgets (id, name, made_at) VALUES ($1, $2, $3)")
            .bind(Uuid::now_v7())
            .bind(name)
            .bind(made_at)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
    })?;
    Ok(())
}

async fn count_widgets(pool: &Pool) -> i64 {
    dispatch!(pool, conn => {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM widgets").fetch_one(conn).await
    })
    .unwrap()
}

async fn committed_change_and_its_event_appear_together(pool: Pool) {
    let mut tx = pool.begin().await.unwrap();
    insert_widget(&mut tx, "sprocket", Timestamp::now()).await.unwrap();
    let event = Event::new(
        "phoenix.test",
        "test.widget_made.v1",
        "sprocket",
        &serde_json::json!({"n": 1}),
    )
    .unwrap();
    tx.append_event(&event).await.unwrap();
    assert!(
        pool.unpublished_events(10).await.unwrap().is_empty(),
        "uncommitted event must not be visible"
    );
    tx.commit().await.unwrap();

    let events = pool.unpublished_events(10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id, event.id);
    assert_eq!(events[0].event_type, "test.widget_made.v1");
    assert_eq!(events[0].subject, "sprocket");
    assert_eq!(events[0].data.0, serde_json::json!({"n": 1}));
    assert_eq!(events[0].occurred_at, event.occurred_at);
    assert_eq!(count_widgets(&pool).await, 1);
}

async fn rolled_back_change_leaves_no_event(pool: Pool) {
    let mut tx = pool.begin().await.unwrap();
    insert_widget(&mut tx, "gear", Timestamp::now()).await.unwrap();
    let event = Event::new("phoenix.test", "test.widget_made.v1", "gear", &serde_json::json!({})).unwrap();
    tx.append_event(&event).await.unwrap();
    drop(tx);

    assert!(pool.unpublished_events(10).await.unwrap().is_empty());
    assert_eq!(count_widgets(&pool).await, 0);
}

async fn timestamps_compare_in_time_order(pool: Pool) {
    // Whole seconds and fractional seconds interleaved: text storage would sort these wrongly.
    let base = Timestamp::from_unix_micros(1_800_000_000_000_000);
    let times = [
        base,
        base + time::Duration::microseconds(500_000),
        base + time::Duration::seconds(1),
        base + time::Duration::microseconds(1_250_000),
    ];
    let mut tx = pool.begin().await.unwrap();
    for (i, at) in times.iter().enumerate() {
        insert_widget(&mut tx, &format!("w{i}"), *at).await.unwrap();
    }
    tx.commit().await.unwrap();

    let cutoff = base + time::Duration::microseconds(600_000);
    let later: Vec<String> = dispatch!(&pool, conn => {
        sqlx::query_scalar("SELECT name FROM widgets WHERE made_at > $1 ORDER BY made_at")
            .bind(cutoff)
            .fetch_all(conn)
            .await
    })
    .unwrap();
    assert_eq!(later, vec!["w2", "w3"]);

    let first: Timestamp = dispatch!(&pool, conn => {
        sqlx::query_scalar("SELECT made_at FROM widgets ORDER BY made_at LIMIT 1").fetch_one(conn).await
    })
    .unwrap();
    assert_eq!(first, base);
}

async fn unique_violation_is_recognised(pool: Pool) {
    let mut tx = pool.begin().await.unwrap();
    insert_widget(&mut tx, "cog", Timestamp::now()).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    let err = insert_widget(&mut tx, "cog", Timestamp::now()).await.unwrap_err();
    assert!(err.is_unique_violation(), "{err:?}");
}

async fn migrating_twice_changes_nothing(pool: Pool) {
    pool.migrate(&MIGRATIONS).await.unwrap();
    assert_eq!(count_widgets(&pool).await, 0);
    assert!(pool.ping().await);
}

async fn events_appended_in_bulk_keep_their_order(pool: Pool) {
    let events: Vec<Event> = (0..50)
        .map(|i| {
            Event::new(
                "phoenix.test",
                "test.counted.v1",
                format!("s{}", i % 3),
                &serde_json::json!({"i": i}),
            )
            .unwrap()
            .with_correlation_id((i % 2 == 0).then(|| format!("c{i}")))
        })
        .collect();
    let mut tx = pool.begin().await.unwrap();
    tx.append_events(&events).await.unwrap();
    tx.append_events(&[]).await.unwrap();
    tx.commit().await.unwrap();
    let stored = pool.unpublished_events(100).await.unwrap();
    assert_eq!(stored.len(), 50);
    for (i, (stored, event)) in stored.iter().zip(&events).enumerate() {
        assert_eq!(stored.id, event.id);
        assert_eq!(stored.data.0["i"], i);
        assert_eq!(stored.correlation_id, event.correlation_id);
    }
}

fn record(key: &str, hash: &[u8], at: Timestamp) -> Record {
    Record {
        created_at: at,
        ..Record::new(
            "test:alice".to_owned(),
            key.to_owned(),
            hash.to_vec(),
            201,
            serde_json::json!({"id": 7}),
        )
    }
}

async fn idempotency_replays_the_same_request_and_refuses_another(pool: Pool) {
    assert_eq!(
        pool.idempotency_replay("test:alice", "k1", b"h1").await.unwrap(),
        Replay::New
    );
    let mut tx = pool.begin().await.unwrap();
    assert!(
        tx.save_idempotency(&record("k1", b"h1", Timestamp::now()))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    let Replay::Same(found) = pool.idempotency_replay("test:alice", "k1", b"h1").await.unwrap() else {
        panic!("expected a replay");
    };
    assert_eq!(found.status_code, 201);
    assert_eq!(found.response.0, serde_json::json!({"id": 7}));
    assert_eq!(
        pool.idempotency_replay("test:alice", "k1", b"other").await.unwrap(),
        Replay::Mismatch
    );
    assert_eq!(
        pool.idempotency_replay("test:bob", "k1", b"h1").await.unwrap(),
        Replay::New,
        "scopes are separate"
    );
}

async fn idempotency_key_is_taken_once_when_racing(pool: Pool) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut tx = pool.begin().await.unwrap();
                let saved = tx
                    .save_idempotency(&record("race", b"h", Timestamp::now()))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                saved
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn idempotency_records_expire_after_a_day(pool: Pool) {
    let old = Timestamp::now() - time::Duration::hours(25);
    let mut tx = pool.begin().await.unwrap();
    assert!(tx.save_idempotency(&record("old", b"h1", old)).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(
        pool.idempotency_replay("test:alice", "old", b"h2").await.unwrap(),
        Replay::New
    );
    // A new request may take the expired key.
    let mut tx = pool.begin().await.unwrap();
    assert!(
        tx.save_idempotency(&record("old", b"h2", Timestamp::now()))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(pool.prune_idempotency(Timestamp::now()).await.unwrap(), 0);
    assert_eq!(
        pool.prune_idempotency(Timestamp::now() + time::Duration::hours(25))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn postgres_database_is_created_when_missing() {
    let name = format!("phoenix_test_{}", Uuid::new_v4().simple());
    let url = phoenix_db::testing::TestDatabase::postgres_url_for(&name);
    let pool = Pool::connect(&url, phoenix_db::PoolOptions::default()).await.unwrap();
    pool.migrate(&MIGRATIONS).await.unwrap();
    assert!(pool.ping().await);
    pool.close().await;
    // Opening it again finds it there.
    let again = Pool::connect(&url, phoenix_db::PoolOptions::default()).await.unwrap();
    assert_eq!(count_widgets(&again).await, 0);
    again.close().await;
    let admin = Pool::connect(&phoenix_db::testing::postgres_admin_url(), Default::default())
        .await
        .unwrap();
    dispatch!(&admin, conn => {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE \"{name}\" WITH (FORCE)"))).execute(conn).await.map(|_| ())
    })
    .unwrap();
}

/// Replicas starting together on a new server: every one of them opens the database and migrates it, whichever
/// created it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_all_open_a_missing_postgres_database() {
    let name = format!("phoenix_test_{}", Uuid::new_v4().simple());
    let url = phoenix_db::testing::TestDatabase::postgres_url_for(&name);
    let starts: Vec<_> = (0..16)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let pool = Pool::connect(&url, phoenix_db::PoolOptions::default()).await?;
                pool.migrate(&MIGRATIONS).await?;
                Ok::<_, phoenix_db::Error>(pool)
            })
        })
        .collect();
    for start in starts {
        let pool = start.await.unwrap().expect("every replica starts");
        assert_eq!(count_widgets(&pool).await, 0);
        pool.close().await;
    }
    phoenix_db::testing::drop_postgres_database(&name);
}

#[tokio::test]
async fn unknown_database_scheme_is_refused() {
    let err = Pool::connect("mysql://localhost/x", Default::default())
        .await
        .unwrap_err();
    assert!(matches!(err, phoenix_db::Error::InvalidUrl { .. }), "{err:?}");
}

//! The storage contract, run against SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

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

#[tokio::test]
async fn unknown_database_scheme_is_refused() {
    let err = Pool::connect("mysql://localhost/x", Default::default())
        .await
        .unwrap_err();
    assert!(matches!(err, phoenix_db::Error::InvalidUrl { .. }), "{err:?}");
}

//! The app on PostgreSQL: each service in its own database, created on first start.

use phoenix::config::Secret;
use serde_json::json;

use crate::common::{PostgresDatabases, TestApp, config, spawn_with};

/// Every role in one app, each on its own fresh PostgreSQL database (dropped with the first value).
async fn on_postgres() -> (PostgresDatabases, TestApp) {
    let databases = PostgresDatabases::new();
    let mut config = config();
    config.database_url = Some(Secret::new(databases.url.clone()));
    let app = spawn_with(config).await;
    (databases, app)
}

#[tokio::test]
async fn the_whole_account_flow_runs_on_postgres() {
    let (_databases, app) = on_postgres().await;
    assert_eq!(
        app.identity.as_ref().unwrap().pool().backend(),
        phoenix_db::Backend::Postgres
    );

    app.register("ann@example.com").await;
    let (token, refresh) = app.login("ann@example.com").await;
    assert_eq!(app.get("/api/v1/auth/me", Some(&token)).await.status, 200);
    let rotated = app
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(rotated.status, 200);
    app.post("/api/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await
        .assert_problem(401, "refresh_token_reused");
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.body["checks"]["identity_db"], true);
}

/// Readiness follows the one dependency a role cannot serve without: once identity's database is gone, `/readyz`
/// answers 503 naming it, so an orchestrator takes the process out of rotation.
#[tokio::test]
async fn readiness_fails_when_a_database_is_lost() {
    let (databases, app) = on_postgres().await;
    let ready = app.get("/readyz", None).await;
    assert_eq!(
        (ready.status.as_u16(), &ready.body["status"]),
        (200, &json!("ready")),
        "{ready:?}"
    );

    let identity_db = url::Url::parse(&databases.url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned()
        + "_identity";
    phoenix_db::testing::drop_postgres_database(&identity_db);
    let lost = app.get("/readyz", None).await;
    lost.assert_problem(503, "not_ready");
    assert!(
        lost.body["detail"].as_str().unwrap().contains("identity_db"),
        "{lost:?}"
    );
    assert!(lost.headers.contains_key("retry-after"));
    // Liveness is the process's own: restarting it would not bring the database back.
    assert_eq!(app.get("/healthz", None).await.status, 200);
}

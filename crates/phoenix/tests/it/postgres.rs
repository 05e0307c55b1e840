//! The app on PostgreSQL: each service in its own database, created on first start.

use phoenix::config::Secret;
use serde_json::json;

use crate::common::{PostgresDatabases, config, spawn_with};

#[tokio::test]
async fn the_whole_account_flow_runs_on_postgres() {
    let databases = PostgresDatabases::new();
    let mut config = config();
    config.database_url = Some(Secret::new(databases.url.clone()));
    let app = spawn_with(config).await;
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

//! The app on PostgreSQL: each service in its own database, created on first start.

use phoenix::config::Secret;
use serde_json::json;

use crate::common::{config, spawn_with};

struct DropDatabase(String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let admin = phoenix_db::Pool::connect(&phoenix_db::testing::postgres_admin_url(), Default::default())
                    .await
                    .unwrap();
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let _ = phoenix_db::dispatch!(&admin, conn => {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await.map(|_| ())
                });
            });
        })
        .join();
    }
}

#[tokio::test]
async fn the_whole_account_flow_runs_on_postgres() {
    let base = format!("phoenix_test_{}", uuid::Uuid::new_v4().simple());
    let _cleanup = [
        DropDatabase(format!("{base}_identity")),
        DropDatabase(format!("{base}_inventory")),
    ];
    let mut config = config();
    config.database_url = Some(Secret::new(phoenix_db::testing::TestDatabase::postgres_url_for(&base)));
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

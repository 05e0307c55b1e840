//! Fresh databases for tests, on either engine, and the macro that runs one contract suite against both.
//!
//! PostgreSQL tests reach the server at `PHOENIX_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test gets a database of its own, dropped afterwards.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::{Migrations, Pool, PoolOptions, Sealer};

/// The sealer services under test use: always the same key, so a test may restart a service on its database, as
/// a deployment restarts with its configured key.
pub fn sealer() -> Sealer {
    Sealer::new(&[0x5e; crate::seal::KEY_LEN], &[]).expect("a 32-byte key is valid")
}

/// Where PostgreSQL tests create their databases.
pub fn postgres_admin_url() -> String {
    std::env::var("PHOENIX_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test. SQLite lives in a temporary directory; PostgreSQL gets a database named
/// `phoenix_test_<uuid>`, dropped when this value is dropped.
pub struct TestDatabase {
    pool: Pool,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { name: String },
}

impl TestDatabase {
    pub async fn sqlite(migrations: &Migrations) -> TestDatabase {
        let dir = tempfile::tempdir().expect("create temporary directory");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let pool = Pool::connect(&url, PoolOptions::default())
            .await
            .expect("open sqlite test database");
        pool.migrate(migrations).await.expect("migrate sqlite test database");
        TestDatabase {
            pool,
            url,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    pub async fn postgres(migrations: &Migrations) -> TestDatabase {
        let name = format!("phoenix_test_{}", uuid::Uuid::new_v4().simple());
        let url = Self::postgres_url_for(&name);
        let pool = Pool::connect(&url, PoolOptions::default())
            .await
            .expect("create postgres test database (is PostgreSQL running?)");
        pool.migrate(migrations).await.expect("migrate postgres test database");
        TestDatabase {
            pool,
            url,
            cleanup: Cleanup::Postgres { name },
        }
    }

    /// The URL of a PostgreSQL database called `name` on the test server (not created by this call).
    pub fn postgres_url_for(name: &str) -> String {
        let mut url = url::Url::parse(&postgres_admin_url()).expect("PHOENIX_TEST_DATABASE_URL is a URL");
        url.set_path(name);
        url.to_string()
    }

    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Cleanup::Postgres { name } = &self.cleanup else {
            return;
        };
        drop_postgres_database(name);
    }
}

/// Drops a PostgreSQL database on the test server (if it exists), from a thread of its own so it works anywhere,
/// including in `Drop`.
pub fn drop_postgres_database(name: &str) {
    let name = name.to_owned();
    let _ = std::thread::spawn(move || drop_now(&name)).join();
}

fn drop_now(name: &str) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return;
    };
    runtime.block_on(async {
        let Ok(options) = PgConnectOptions::from_str(&postgres_admin_url()) else {
            return;
        };
        if let Ok(mut conn) = options.connect().await {
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
            let _ = conn.close().await;
        }
    });
}

/// Runs each listed `async fn(Pool)` once on SQLite and once on PostgreSQL, each time on a fresh, migrated database.
///
/// ```text
/// phoenix_db::contract_suite!(phoenix_identity::migrations(), [
///     duplicate_email_is_rejected,
///     refresh_token_rotates,
/// ]);
/// ```
///
/// A test function left out of the list is dead code, which `clippy -D warnings` refuses: none is forgotten.
#[macro_export]
macro_rules! contract_suite {
    ($migrations:expr, [$($test:ident),* $(,)?]) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = $crate::testing::TestDatabase::sqlite($migrations).await;
                    super::$test(db.pool()).await;
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = $crate::testing::TestDatabase::postgres($migrations).await;
                    super::$test(db.pool()).await;
                }
            )*
        }
    };
}

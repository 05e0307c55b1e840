//! Payment's contract suite: every storage test runs against SQLite and against PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http;
mod idempotency;
mod payments;
mod reconcile;
mod resilience;
mod simulator;
mod stripe;
mod tapped;

use std::sync::Arc;
use std::time::Duration;

use phoenix_api::{Credential, Principal, Role, Roles};
use phoenix_db::testing::TestDatabase;
use phoenix_db::{Backend, Pool};
use phoenix_payment::provider::resilient;
use phoenix_payment::provider::simulated::{Entry, EntryKind};
use phoenix_payment::{AuthorizeRequest, Options, Provider, Service, Simulator, simulator_migrations};
use uuid::Uuid;

/// A payment service over a fresh database, calling a simulator with a database of its own.
pub struct Env {
    pub service: Service,
    pub simulator: Simulator,
    pub pool: Pool,
    /// Kept alive for the test: dropping it deletes the simulator's database.
    _simulator_db: TestDatabase,
}

/// Fast retries, a breaker that needs ten calls to open: the settings most tests want.
pub fn options() -> Options {
    Options {
        resilience: resilient::Options {
            timeout_ms: 5_000,
            max_retries: 3,
            backoff_min_ms: 5,
            backoff_max_ms: 20,
            ..resilient::Options::default()
        },
        ..Options::default()
    }
}

pub async fn env(pool: Pool) -> Env {
    env_with(pool, options(), |simulator| Arc::new(simulator)).await
}

/// An environment whose service calls `wrap(simulator)` instead of the simulator itself.
pub async fn env_with(pool: Pool, options: Options, wrap: impl FnOnce(Simulator) -> Arc<dyn Provider>) -> Env {
    let simulator_db = match pool.backend() {
        Backend::Sqlite => TestDatabase::sqlite(simulator_migrations()).await,
        Backend::Postgres => TestDatabase::postgres(simulator_migrations()).await,
    };
    let simulator = Simulator::new(simulator_db.pool());
    let service = Service::new(pool.clone(), options, wrap(simulator.clone()));
    Env {
        service,
        simulator,
        pool,
        _simulator_db: simulator_db,
    }
}

impl Env {
    /// Another service over the same databases: a second process, or this one restarted.
    pub fn restart(&self, options: Options, provider: Arc<dyn Provider>) -> Service {
        Service::new(self.pool.clone(), options, provider)
    }

    pub async fn ledger(&self, kind: EntryKind) -> Vec<Entry> {
        let entries = self.simulator.ledger().await.unwrap();
        entries.into_iter().filter(|e| e.kind == kind).collect()
    }

    pub async fn requests_received(&self) -> i64 {
        self.simulator.requests_received().await.unwrap()
    }
}

pub fn principal(roles: &[Role], organization_id: Option<Uuid>) -> Principal {
    Principal {
        user_id: Uuid::now_v7(),
        roles: Roles::from(roles),
        organization_id,
        credential: Credential::AccessToken {
            token_id: Uuid::now_v7(),
        },
    }
}

/// `who` signed in again after an admin gave them `roles` in `organization_id`: the same user, a new token.
pub fn signed_in_again(who: &Principal, roles: &[Role], organization_id: Option<Uuid>) -> Principal {
    Principal {
        user_id: who.user_id,
        ..principal(roles, organization_id)
    }
}

pub fn customer() -> Principal {
    principal(&[Role::Customer], None)
}

pub fn agent_of(organization_id: Uuid) -> Principal {
    principal(&[Role::Agent], Some(organization_id))
}

pub fn admin() -> Principal {
    principal(&[Role::Admin], None)
}

pub fn request(amount_minor: i64, token: &str) -> AuthorizeRequest {
    AuthorizeRequest {
        amount_minor,
        currency: "EUR".to_owned(),
        payment_token: token.to_owned(),
        reference: Some("booking-1".to_owned()),
    }
}

pub async fn events_of(pool: &Pool, event_type: &str) -> Vec<serde_json::Value> {
    pool.unpublished_events(100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == event_type)
        .map(|e| e.data.0)
        .collect()
}

pub async fn count_rows(pool: &Pool, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    phoenix_db::dispatch!(pool, conn => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(conn).await
    })
    .unwrap()
}

/// Polls `check` every 20 ms until it holds, for at most `limit`: waiting on a state, not for a time.
pub async fn wait_until<F, Fut>(limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the state was not reached in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

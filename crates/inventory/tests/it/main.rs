//! Inventory's contract suite: every test runs against SQLite and against PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod concurrency;
mod expiry;
mod holds;
mod items;
mod two_writers;

use phoenix_api::{Credential, Principal, Role, Roles};
use phoenix_db::{Pool, Timestamp};
use phoenix_inventory::{Clock, HoldRequest, Options, Service};
use uuid::Uuid;

pub async fn service(pool: Pool) -> Service {
    service_with(pool, Options::default(), Clock::System).await
}

pub async fn service_with(pool: Pool, options: Options, clock: Clock) -> Service {
    // Failures log their cause; show it in the test's output.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
    Service::new(pool, options, clock).await.unwrap()
}

/// A service whose clock only moves when the test moves it.
pub async fn manual_service(pool: Pool) -> Service {
    service_with(pool, Options::default(), Clock::manual(Timestamp::now())).await
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

pub fn admin() -> Principal {
    principal(&[Role::Admin], None)
}

pub fn agent() -> Principal {
    principal(&[Role::Agent], Some(Uuid::now_v7()))
}

pub async fn bucket(service: &Service, item: &str, capacity: i64) {
    service.put_item(&admin(), item, capacity, 0, None).await.unwrap();
}

pub fn request(lines: &[(&str, i64)]) -> HoldRequest {
    HoldRequest {
        lines: lines.iter().map(|(i, q)| (i.to_string(), *q)).collect(),
        ttl_secs: None,
        reference: None,
    }
}

/// Sum of the quantities in holds of `status` on `item`, straight from the tables.
pub async fn units_in(pool: &Pool, item: &str, status: &str) -> i64 {
    let n: Option<i64> = phoenix_db::dispatch!(pool, conn => {
        sqlx::query_scalar(
            "SELECT CAST(SUM(l.quantity) AS BIGINT) FROM hold_lines l JOIN holds h ON h.id = l.hold_id
             WHERE l.item_id = $1 AND h.status = $2",
        )
        .bind(item)
        .bind(status)
        .fetch_one(conn)
        .await
    })
    .unwrap();
    n.unwrap_or(0)
}

/// The bucket's stored counters (not net of lapsed holds).
pub async fn stored_counters(pool: &Pool, item: &str) -> (i64, i64, i64) {
    phoenix_db::dispatch!(pool, conn => {
        sqlx::query_as("SELECT capacity, held, sold FROM buckets WHERE item_id = $1")
            .bind(item)
            .fetch_one(conn)
            .await
    })
    .unwrap()
}

pub async fn events_of(pool: &Pool, event_type: &str) -> usize {
    pool.unpublished_events(100_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == event_type)
        .count()
}

//! The audit service's contract suite: every test runs on SQLite and on PostgreSQL, fed hand-made CloudEvents
//! through `phoenix_events::Consumer`, as the bus would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analytics;
mod chain;
mod http;

use std::sync::Arc;

use phoenix_api::{Credential, Principal, Role, Roles};
use phoenix_audit::{Options, Service};
use phoenix_db::Pool;
use phoenix_events::{Applied, CloudEvent, Consumer, ConsumerOptions, Handler};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// The service on `pool` with its two consumers.
pub struct World {
    pub service: Service,
    pub audit: Consumer,
    pub analytics: Consumer,
    pub pool: Pool,
}

pub fn world(pool: Pool) -> World {
    let service = Service::new(pool.clone(), Options::default());
    let handlers = service.handlers();
    let consumer = |name: &str| {
        let handler: Arc<dyn Handler> = handlers.iter().find(|h| h.name() == name).cloned().expect("handler");
        Consumer::new(
            pool.clone(),
            handler,
            ConsumerOptions {
                max_attempts: 2,
                retry_base_ms: 1,
            },
        )
    };
    World {
        audit: consumer("audit"),
        analytics: consumer("analytics"),
        service,
        pool,
    }
}

impl World {
    /// Delivers `events` to both consumers, as the bus would; says what the audit consumer did.
    pub async fn deliver(&self, events: &[CloudEvent]) -> Applied {
        let applied = self.audit.apply(events).await.expect("audit consumer");
        let domain_events: Vec<CloudEvent> = events.iter().filter(|e| self.analytics.reads(e)).cloned().collect();
        let analyzed = self.analytics.apply(&domain_events).await.expect("analytics consumer");
        assert_eq!(analyzed.dead_lettered, 0, "analytics refused an event");
        applied
    }

    /// Runs one statement (to tamper with the log as an attacker with database access would).
    pub async fn sql(&self, statement: &str) -> u64 {
        let statement = statement.to_owned();
        phoenix_db::dispatch!(&self.pool, conn => {
            sqlx::query(sqlx::AssertSqlSafe(statement)).execute(conn).await.map(|done| done.rows_affected())
        })
        .expect("statement")
    }

    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        phoenix_db::dispatch!(&self.pool, conn => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(conn).await
        })
        .expect("count")
    }
}

/// An event from `source` (`phoenix.booking`) at `time`.
pub fn event_at(source: &str, event_type: &str, subject: &str, time: OffsetDateTime, data: Value) -> CloudEvent {
    CloudEvent {
        specversion: "1.0".to_owned(),
        id: Uuid::now_v7(),
        source: source.to_owned(),
        event_type: event_type.to_owned(),
        subject: subject.to_owned(),
        time,
        datacontenttype: "application/json".to_owned(),
        data,
        correlationid: Some(format!("req-{subject}")),
        traceparent: None,
        sequence: 1,
    }
}

/// An event of `event_type` now, from the service its domain names.
pub fn event(event_type: &str, subject: &str, data: Value) -> CloudEvent {
    let source = format!("phoenix.{}", phoenix_events::domain_of(event_type));
    event_at(&source, event_type, subject, OffsetDateTime::now_utc(), data)
}

pub fn principal(roles: &[Role]) -> Principal {
    Principal {
        user_id: Uuid::now_v7(),
        roles: Roles::from(roles),
        organization_id: None,
        credential: Credential::AccessToken {
            token_id: Uuid::now_v7(),
        },
    }
}

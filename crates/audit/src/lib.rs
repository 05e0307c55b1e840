//! Phoenix audit log and analytics: what happened, who did it, and what it added up to, read from every
//! service's events.
//!
//! Owns, in its own database:
//!
//! - the **audit log**: one append-only entry per event (who, what, which object, when, the payload with personal
//!   data masked), hash-chained so that an edited, deleted or truncated log is detected by [`verify`];
//! - the **reporting projections**: bookings and revenue, cancellations and refunds, search-to-booking
//!   conversion, load factor per departure and occupancy per hotel night ([`analytics`]).
//!
//! Both are fed by two event consumers ([`Service::handlers`]) that the bus drives through
//! `phoenix_events::Consumer`, which applies each event effectively once. Support and admins read both over HTTP
//! ([`api`]).
//!
//! It never changes another service's data and calls no other service: everything it knows came in an event.

pub mod analytics;
pub mod audit;
pub mod chain;
mod error;
mod http;
pub mod mask;
pub mod store;

use std::sync::Arc;

use phoenix_db::{Migrations, Pool};
use serde::{Deserialize, Serialize};

pub use chain::{Anchor, Break, Entry, Verification};
pub use error::Error;
pub use http::{PATH_PREFIXES, api};

/// The service's name as an event source, should it ever write events.
pub const SOURCE: &str = "phoenix.audit";

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/sqlite"),
    postgres: sqlx::migrate!("migrations/postgres"),
};

/// The audit service's schema, for `Pool::migrate`.
pub fn migrations() -> &'static Migrations {
    &MIGRATIONS
}

/// Bounds of the audit service's reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Audit entries a page of `GET /api/v1/audit` holds when the client does not say.
    pub default_page: u32,
    /// The most audit entries a page may hold.
    pub max_page: u32,
    /// The longest range of days an analytics report covers.
    pub max_range_days: u32,
    /// The most rows a load-factor or occupancy page holds.
    pub max_report_rows: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            default_page: 50,
            max_page: 500,
            max_range_days: 366,
            max_report_rows: 5_000,
        }
    }
}

impl Options {
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (!(1..=10_000).contains(&self.max_page), "max_page must be 1 to 10000"),
            (
                self.default_page == 0 || self.default_page > self.max_page,
                "default_page must be 1 to max_page",
            ),
            (
                !(1..=3_660).contains(&self.max_range_days),
                "max_range_days must be 1 to 3660",
            ),
            (
                !(1..=100_000).contains(&self.max_report_rows),
                "max_report_rows must be 1 to 100000",
            ),
        ];
        match checks.into_iter().find(|(bad, _)| *bad) {
            Some((_, message)) => Err(message.to_owned()),
            None => Ok(()),
        }
    }
}

/// The audit service: cheap to clone.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    store: store::Store,
    options: Options,
}

impl Service {
    pub fn new(pool: Pool, options: Options) -> Service {
        Service {
            inner: Arc::new(Inner {
                store: store::Store::new(pool),
                options,
            }),
        }
    }

    pub fn pool(&self) -> &Pool {
        self.inner.store.pool()
    }

    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    pub fn store(&self) -> &store::Store {
        &self.inner.store
    }

    /// The two consumers, audit (`audit`) and analytics (`analytics`), to bind to this service's database with
    /// `phoenix_events::Consumer::new(service.pool().clone(), handler, options)`.
    pub fn handlers(&self) -> Vec<Arc<dyn phoenix_events::Handler>> {
        vec![Arc::new(audit::AuditHandler), Arc::new(analytics::AnalyticsHandler)]
    }

    /// Audit entries matching `filter`, newest first.
    pub async fn entries(&self, filter: &audit::Filter) -> Result<Vec<Entry>, Error> {
        self.inner.store.list(filter).await
    }

    /// Walks the whole chain: see [`verify`].
    pub async fn verify(&self) -> Result<Verification, Error> {
        verify(self.pool()).await
    }
}

/// Entries read per page while verifying: bounds the memory a walk takes.
pub const VERIFY_PAGE: u32 = 1_000;

/// Walks the audit chain from the first entry to the head, a page at a time, and reports the first break: an
/// edited entry (its hash), a deleted one (a gap in positions, or a `prev_hash` that no longer links), deleted
/// entries at the end (the head is further on). Entries appended during the walk are not looked at: the walk
/// stops at the head it read first.
pub async fn verify(pool: &Pool) -> Result<Verification, Error> {
    verify_in_pages(pool, &[], VERIFY_PAGE).await
}

/// [`verify`], and also that the entry at each anchor's position still has the anchor's hash: an anchor recorded
/// outside the database catches what no check inside it can, the log rewritten from some entry on with every hash
/// recomputed, or its last entries deleted and the head moved back.
pub async fn verify_anchored(pool: &Pool, anchors: &[chain::Anchor]) -> Result<Verification, Error> {
    verify_in_pages(pool, anchors, VERIFY_PAGE).await
}

/// [`verify_anchored`], reading `page_size` entries at a time (at least one).
pub async fn verify_in_pages(pool: &Pool, anchors: &[chain::Anchor], page_size: u32) -> Result<Verification, Error> {
    let store = store::Store::new(pool.clone());
    let (head_position, head_hash) = store.head().await?;
    let mut walk = chain::Walk::anchored(anchors.to_vec());
    loop {
        let page = store
            .page(walk.last_position(), head_position, page_size.max(1))
            .await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for entry in &page {
            if let Err(broken) = walk.check(entry) {
                return Ok(broken);
            }
        }
        if last >= head_position {
            break;
        }
    }
    Ok(walk.finish(head_position, &head_hash))
}

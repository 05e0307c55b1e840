//! The booking service: its handle and settings, reads, and the waiting and sweeping every operation shares.
//! Creating is in `service/create.rs`, cancelling in `service/cancel.rs`, what the saga calls in `service/saga.rs`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phoenix_api::{Page, PageParams, Principal, Role};
use phoenix_db::{Pool, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::booking::Booking;
use crate::locator::Locator;
use crate::policy::Status;
use crate::store::{ListQuery, Scope, Store};
use crate::waiters::{Waiters, Watch};
use crate::{Error, booking};

mod cancel;
mod create;
mod saga;

pub use create::Created;

/// Booking's settings, with the defaults the platform ships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// How long the saga's inventory hold lives while it takes the payment.
    pub hold_ttl_secs: u64,
    /// How long a create or cancel waits for its saga before answering 202.
    pub confirm_wait_ms: u64,
    /// How often a waiting request re-reads its booking. A saga reporting to this process wakes the request at
    /// once; the re-read only finds outcomes recorded by another booking replica, so it can be slow.
    pub wait_poll_ms: u64,
    /// Items one booking may have (a package is several).
    pub max_items: usize,
    pub max_travellers: usize,
    /// Bookings a list page has when the client does not say.
    pub default_page_size: u32,
    pub max_page_size: u32,
    /// Most saga requests one `saga_requests` call hands over.
    pub max_saga_requests: u32,
    /// How often confirmed bookings whose items have all ended are marked completed.
    pub completion_sweep_interval_secs: u64,
    /// The largest total a booking may have, in minor units: what payment takes in one authorization
    /// (`payment.max_amount_minor`, which the binary copies here; not a setting of its own).
    #[serde(skip)]
    pub max_total_minor: i64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            hold_ttl_secs: 900,
            confirm_wait_ms: 3_000,
            wait_poll_ms: 500,
            max_items: 6,
            max_travellers: 9,
            default_page_size: 20,
            max_page_size: 100,
            max_saga_requests: 100,
            completion_sweep_interval_secs: 60,
            max_total_minor: 100_000_000,
        }
    }
}

impl Options {
    /// Checks the settings, naming the one at fault.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (
                (60..=86_400).contains(&self.hold_ttl_secs),
                "booking.hold_ttl_secs must be between 60 and 86400",
            ),
            (
                self.confirm_wait_ms <= 30_000,
                "booking.confirm_wait_ms must be at most 30000",
            ),
            (
                (10..=10_000).contains(&self.wait_poll_ms),
                "booking.wait_poll_ms must be between 10 and 10000",
            ),
            (
                (1..=20).contains(&self.max_items),
                "booking.max_items must be between 1 and 20",
            ),
            (
                (1..=20).contains(&self.max_travellers),
                "booking.max_travellers must be between 1 and 20",
            ),
            (
                (1..=self.max_page_size).contains(&self.default_page_size) && self.max_page_size <= 500,
                "booking: need 1 <= default_page_size <= max_page_size <= 500",
            ),
            (
                (1..=1_000).contains(&self.max_saga_requests),
                "booking.max_saga_requests must be between 1 and 1000",
            ),
            (
                (1..=86_400).contains(&self.completion_sweep_interval_secs),
                "booking.completion_sweep_interval_secs must be between 1 and 86400",
            ),
        ];
        match checks.into_iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(message.to_owned()),
            None => Ok(()),
        }
    }
}

/// A list's filters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub customer_id: Option<Uuid>,
}

/// The booking service: cheap to clone, one per process. Dropping every clone stops its completion sweeper.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    options: Options,
    catalog: phoenix_catalog::Client,
    /// Whom an agent, partner or admin books for must be a user they may book for.
    identity: phoenix_identity::Client,
    /// (scope, idempotency key) of creates running in this process.
    in_flight: Mutex<HashSet<(String, String)>>,
    waiters: Waiters,
    /// Notified whenever a saga request is written, so an in-process saga follower need not poll.
    saga_wake: Arc<Notify>,
}

impl Service {
    /// Starts the service on `pool` (migrated with [`crate::migrations`]), pricing through `catalog`. Must be
    /// called inside a Tokio runtime: it starts the completion sweeper.
    pub fn new(
        pool: Pool,
        options: Options,
        catalog: phoenix_catalog::Client,
        identity: phoenix_identity::Client,
    ) -> Service {
        let service = Service {
            inner: Arc::new(Inner {
                store: Store::new(pool),
                options,
                catalog,
                identity,
                in_flight: Mutex::new(HashSet::new()),
                waiters: Waiters::default(),
                saga_wake: Arc::new(Notify::new()),
            }),
        };
        service.spawn_sweeper();
        service
    }

    fn spawn_sweeper(&self) {
        let weak = Arc::downgrade(&self.inner);
        let interval = Duration::from_secs(self.inner.options.completion_sweep_interval_secs.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let service = Service { inner };
                // Each pass is a trace of its own: the status changes it writes carry it.
                let pass = phoenix_api::trace::scope(
                    phoenix_api::trace::child_of(None),
                    service.complete_ended(Timestamp::now()),
                );
                if let Err(error) = pass.await {
                    tracing::warn!(error = %phoenix_api::ErrorChain(&error), "booking completion sweep failed");
                }
            }
        });
    }

    pub fn pool(&self) -> &Pool {
        self.inner.store.pool()
    }

    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// Notified whenever a new saga request is written in this process.
    pub fn saga_wake(&self) -> Arc<Notify> {
        self.inner.saga_wake.clone()
    }

    pub async fn ready(&self) -> bool {
        self.pool().ping().await
    }

    /// A booking as `viewer` may see it (see [`Booking::visible_to`]); anything else is "not found".
    pub async fn get(&self, viewer: &Principal, id: Uuid) -> Result<Booking, Error> {
        match self.inner.store.booking(id).await? {
            Some(booking) if booking.visible_to(viewer) => Ok(booking),
            _ => Err(Error::NotFound),
        }
    }

    /// "Manage my booking": a booking by its locator and any traveller's last name, for anyone who knows both.
    pub async fn lookup(&self, locator: &str, last_name: &str) -> Result<Booking, Error> {
        let Some(locator) = Locator::parse(locator) else {
            return Err(Error::NotFound);
        };
        match self.inner.store.by_locator(&locator).await? {
            Some(booking) if last_name.len() <= 200 && booking.has_traveller_named(last_name) => Ok(booking),
            _ => Err(Error::NotFound),
        }
    }

    /// A page of the bookings `viewer` may see, newest first.
    pub async fn list(
        &self,
        viewer: &Principal,
        filter: ListFilter,
        page: &PageParams,
    ) -> Result<Page<Booking>, Error> {
        let before = page
            .cursor
            .as_deref()
            .map(|c| Uuid::try_parse(c).map_err(|_| Error::invalid("cursor", "is not a cursor this list gave")))
            .transpose()?;
        let options = &self.inner.options;
        let limit = page
            .limit_within(options.default_page_size, options.max_page_size)
            .map_err(|e| Error::Invalid(vec![e]))?;
        let query = ListQuery {
            status: filter.status,
            customer_id: filter.customer_id,
            before,
            limit,
        };
        let items = self.inner.store.list(scope_of(viewer), &query).await?;
        let next_cursor = (items.len() == limit as usize)
            .then(|| items.last().map(|b| b.id.to_string()))
            .flatten();
        Ok(Page { items, next_cursor })
    }

    /// Waits until a saga moves `booking` out of pending or cancelling, or `confirm_wait_ms` pass; returns it as it
    /// is then.
    async fn settle(&self, booking: Booking) -> Result<Booking, Error> {
        if !booking.status.is_in_flight() {
            return Ok(booking);
        }
        let watch = self.inner.waiters.watch(booking.id);
        self.wait(&watch, None).await
    }

    /// Waits under `watch` until the booking is no longer in flight or `confirm_wait_ms` has passed. `known` is
    /// the booking as it stood after `watch` began (just written, say); without it, the first look reads it.
    async fn wait(&self, watch: &Watch<'_>, mut known: Option<Booking>) -> Result<Booking, Error> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.inner.options.confirm_wait_ms);
        loop {
            // Registered before the look: an outcome recorded after it still wakes this waiter.
            let woken = watch.notify().notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            // An outcome recorded since the watch began beats what the caller knew from before it.
            let current = match watch.outcome().or_else(|| known.take()) {
                Some(booking) => booking,
                None => self
                    .inner
                    .store
                    .booking(watch.booking_id())
                    .await?
                    .ok_or(Error::NotFound)?,
            };
            let now = tokio::time::Instant::now();
            if !current.status.is_in_flight() || now >= deadline {
                return Ok(current);
            }
            let poll = Duration::from_millis(self.inner.options.wait_poll_ms);
            let _ = tokio::time::timeout((deadline - now).min(poll), woken).await;
        }
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }
}

/// Which bookings `viewer`'s lists show.
fn scope_of(viewer: &Principal) -> Scope {
    if viewer.sees_everything() {
        return Scope::All;
    }
    match viewer.organization_id {
        Some(organization_id) if viewer.has_any(&[Role::Agent, Role::Partner]) => Scope::Organization {
            organization_id,
            user_id: viewer.user_id,
        },
        _ => Scope::Own {
            user_id: viewer.user_id,
        },
    }
}

/// A status entry for the history, now.
fn entry(status: Status, actor_id: Option<Uuid>, reason: Option<String>, at: Timestamp) -> booking::HistoryEntry {
    booking::HistoryEntry {
        status,
        at: at.datetime(),
        actor_id,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::Options;

    #[test]
    fn the_shipped_options_are_valid_and_bad_ones_name_the_setting() {
        assert_eq!(Options::default().validate(), Ok(()));
        let slow = Options {
            confirm_wait_ms: 60_000,
            ..Options::default()
        };
        assert!(slow.validate().unwrap_err().contains("confirm_wait_ms"));
        let pages = Options {
            default_page_size: 200,
            ..Options::default()
        };
        assert!(pages.validate().unwrap_err().contains("page_size"));
    }
}

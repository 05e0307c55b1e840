//! Phoenix saga orchestration: every booking ends confirmed, or undone with nothing held and nothing charged.
//!
//! Owns the durable state of booking and cancellation sagas (in its own database): which step each saga is at,
//! what its steps learned (hold, payment), every attempt of every step, and the timers that drive retries and
//! expiry. It takes work from booking's queue of saga requests, calls inventory, payment and booking through their
//! clients (the same handles in one process or across processes), and reports each saga's outcome back to booking.
//!
//! It never holds the business rules of the steps (prices, policies, availability): those belong to the services
//! it calls. Its own rules are the order of the steps, what undoes each ([`steps`]), and the pivot after which a
//! saga only goes forward.
//!
//! Crash safety: each step's result is saved before the next step starts; each step is idempotent (its calls carry
//! a key made of the saga id and the step); a saga is driven by the instance holding its lease, and a lease that
//! runs out lets any instance resume it from its last saved step.

mod engine;
mod error;
mod http;
pub mod saga;
pub mod steps;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use phoenix_db::{GroupCommit, Migrations, Pool};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use uuid::Uuid;

pub use engine::Driven;
pub use error::Error;
pub use http::{PATH_PREFIXES, SagaView, StepView, api};
pub use saga::{Saga, State};

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/sqlite"),
    postgres: sqlx::migrate!("migrations/postgres"),
};

/// The saga service's schema, for `Pool::migrate`.
pub fn migrations() -> &'static Migrations {
    &MIGRATIONS
}

/// The services a saga calls.
#[derive(Clone)]
pub struct Clients {
    pub booking: phoenix_booking::Client,
    pub inventory: phoenix_inventory::Client,
    pub payment: phoenix_payment::Client,
}

/// Tuning of the orchestrator. Every wait and every count is bounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Attempts of a step before the pivot before the saga gives up and compensates. Undo steps and steps after
    /// the pivot are retried until they succeed (they must: the customer has paid, or is owed their money). A call
    /// answered "still being processed" (an earlier attempt holds its idempotency key) is no attempt: the step waits
    /// as long as the answer asks, before the pivot no later than the saga's deadline.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter, up to `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// How long a lease lasts without renewal: after this, another instance may resume the saga.
    pub lease_secs: u64,
    /// How often booking is polled for new requests when it runs in another process.
    pub poll_interval_ms: u64,
    /// How often due sagas (timers, expired leases) are looked for.
    pub resume_interval_ms: u64,
    pub resume_batch: u32,
    pub request_batch: u32,
    /// Sagas one process drives at once.
    pub max_running: usize,
    /// A saga must reach the pivot this long before its hold expires, or it compensates.
    pub deadline_margin_secs: u64,
    /// Fault injection for crash tests: abort the process right after this step's result is saved
    /// (`hold_inventory`, ..., or `undo:release_hold` for an undo step). Never set in production.
    pub crash_after: Option<String>,
    /// Fault injection for tests: this forward step fails as if its service had refused (`injected_failure`),
    /// without calling the service. Never set in production.
    pub fail_at: Option<String>,
    /// For tests: run every successful action a second time and require the same result, proving each step
    /// idempotent against the real services (a crash between a call and its save replays it).
    pub replay_steps: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_attempts: 4,
            backoff_base_ms: 200,
            backoff_max_ms: 30_000,
            lease_secs: 30,
            poll_interval_ms: 200,
            resume_interval_ms: 1_000,
            resume_batch: 100,
            request_batch: 200,
            max_running: 256,
            deadline_margin_secs: 30,
            crash_after: None,
            fail_at: None,
            replay_steps: false,
        }
    }
}

impl Options {
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (
                self.max_attempts == 0 || self.max_attempts > 100,
                "max_attempts must be 1 to 100",
            ),
            (self.backoff_base_ms == 0, "backoff_base_ms must be positive"),
            (
                self.backoff_max_ms < self.backoff_base_ms,
                "backoff_max_ms must be at least backoff_base_ms",
            ),
            (!(2..=3600).contains(&self.lease_secs), "lease_secs must be 2 to 3600"),
            (self.poll_interval_ms == 0, "poll_interval_ms must be positive"),
            (self.resume_interval_ms == 0, "resume_interval_ms must be positive"),
            (
                !(1..=10_000).contains(&self.resume_batch),
                "resume_batch must be 1 to 10000",
            ),
            (
                !(1..=10_000).contains(&self.request_batch),
                "request_batch must be 1 to 10000",
            ),
            (
                !(1..=100_000).contains(&self.max_running),
                "max_running must be 1 to 100000",
            ),
        ];
        match checks.into_iter().find(|(bad, _)| *bad) {
            Some((_, message)) => Err(message.to_owned()),
            None => Ok(()),
        }
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    /// The wait before attempt `attempt + 1`: exponential, capped, with up to 25 % random jitter so retries of many
    /// sagas do not arrive together.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .backoff_base_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
            .min(self.backoff_max_ms);
        let jitter = (Uuid::new_v4().as_u128() % 1_000) as u64 * exponential / 4_000;
        Duration::from_millis(exponential + jitter)
    }
}

/// The orchestrator: cheap to clone, one per process. Dropping every clone stops its loops.
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

struct Inner {
    store: store::Store,
    /// Every save of a saga's progress goes through here: saves made at the same time share a transaction.
    saver: GroupCommit<store::Save, Result<bool, Error>>,
    clients: Clients,
    options: Options,
    /// This instance, as a lease owner.
    owner: Uuid,
    running: Arc<Semaphore>,
}

impl Orchestrator {
    /// An orchestrator on its database, calling the given services. `start` also runs its background loops. Call
    /// it on a Tokio runtime: the task that saves the sagas' progress starts here.
    pub fn new(pool: Pool, clients: Clients, options: Options) -> Orchestrator {
        let store = store::Store::new(pool);
        Orchestrator {
            inner: Arc::new(Inner {
                saver: engine::saver(store.clone(), options.max_running),
                store,
                running: engine::running(options.max_running),
                clients,
                options,
                owner: Uuid::now_v7(),
            }),
        }
    }

    /// Starts taking requests and resuming due sagas in the background.
    pub fn start(self) -> Orchestrator {
        self.spawn_loops();
        self
    }

    pub fn pool(&self) -> &Pool {
        self.inner.store.pool()
    }

    /// A saga by id.
    pub async fn saga(&self, id: Uuid) -> Result<Option<Saga>, Error> {
        self.inner.store.get(id).await
    }

    /// The sagas of a booking, oldest first.
    pub async fn sagas_of_booking(&self, booking_id: Uuid) -> Result<Vec<Saga>, Error> {
        self.inner.store.of_booking(booking_id).await
    }

    /// Every attempt of a saga's steps, in order.
    pub async fn steps(&self, saga_id: Uuid) -> Result<Vec<saga::StepRecord>, Error> {
        self.inner.store.steps(saga_id).await
    }

    /// How many sagas are in each state.
    pub async fn count_by_state(&self) -> Result<Vec<(String, i64)>, Error> {
        self.inner.store.count_by_state().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let options = Options::default();
        for (attempt, base_ms) in [(1, 200), (2, 400), (3, 800), (8, 25_600), (9, 30_000), (40, 30_000)] {
            for _ in 0..50 {
                let wait = options.backoff(attempt).as_millis() as u64;
                assert!(
                    (base_ms..=base_ms + base_ms / 4).contains(&wait),
                    "attempt {attempt}: {wait} ms"
                );
            }
        }
    }

    #[test]
    fn the_defaults_are_valid_and_bad_settings_are_named() {
        assert_eq!(Options::default().validate(), Ok(()));
        let bad = Options {
            max_attempts: 0,
            ..Options::default()
        };
        assert!(bad.validate().unwrap_err().contains("max_attempts"));
        let bad = Options {
            backoff_max_ms: 10,
            ..Options::default()
        };
        assert!(bad.validate().unwrap_err().contains("backoff_max_ms"));
    }
}

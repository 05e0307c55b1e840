//! Driving sagas: take booking's requests, run each saga step by step under a lease, retry with backoff, switch to
//! compensation when a step before the pivot fails for good, and resume any saga whose owner died.

use std::sync::Arc;
use std::time::Duration;

use phoenix_booking::orchestration::SagaRequest;
use phoenix_db::{GroupCommit, Timestamp};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::saga::{Failure, Saga, State, StepRecord};
use crate::steps::{self, Action, StepError};
use crate::store::{Save, Store};
use crate::{Error, Options, Orchestrator};

/// What one pass of [`Orchestrator::drive`] ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driven {
    /// The saga reached a final state.
    Finished,
    /// A step must wait for its timer; the lease was given up for whichever instance is free then.
    Waiting,
    /// Another instance holds the saga (or it vanished): nothing done here.
    NotOurs,
}

impl Orchestrator {
    /// Takes up to `limit` pending requests from booking, creates their sagas and starts driving the new ones.
    /// Returns how many requests were taken.
    pub async fn take_requests(&self, limit: u32) -> Result<usize, Error> {
        let requests = self.inner.clients.booking.saga_requests(limit).await?;
        if requests.is_empty() {
            return Ok(0);
        }
        let created = self.start_sagas(&requests).await?;
        let taken: Vec<_> = requests.iter().map(|r: &SagaRequest| (r.booking_id, r.kind)).collect();
        self.inner.clients.booking.acknowledge(&taken).await?;
        for saga in created {
            metrics::counter!("phoenix_sagas_started_total").increment(1);
            // Just created and leased here: run it from memory, without reading it back.
            self.spawn(saga.id, self.clone().run(saga));
        }
        Ok(requests.len())
    }

    /// Creates a saga for each request that has none yet (one per booking and kind), leased to this instance, and
    /// returns the ids of those created. Driving them is up to the caller ([`drive`](Self::drive)).
    pub async fn create_sagas(&self, requests: &[SagaRequest]) -> Result<Vec<Uuid>, Error> {
        Ok(self.start_sagas(requests).await?.into_iter().map(|s| s.id).collect())
    }

    async fn start_sagas(&self, requests: &[SagaRequest]) -> Result<Vec<Saga>, Error> {
        let now = Timestamp::now();
        let sagas: Vec<Saga> = requests.iter().cloned().map(|r| Saga::start(r, now)).collect();
        let created = self
            .inner
            .store
            .create(&sagas, self.inner.owner, self.lease_until(now))
            .await?;
        Ok(sagas.into_iter().filter(|s| created.contains(&s.id)).collect())
    }

    /// Leases the sagas whose timers are due and whose owners are gone, and drives them.
    pub async fn resume_due(&self) -> Result<usize, Error> {
        let now = Timestamp::now();
        let ids = self
            .inner
            .store
            .claim_due(
                self.inner.owner,
                now,
                self.lease_until(now),
                self.inner.options.resume_batch,
            )
            .await?;
        for id in &ids {
            self.spawn_drive(*id);
        }
        Ok(ids.len())
    }

    fn spawn_drive(&self, id: Uuid) {
        let orchestrator = self.clone();
        self.spawn(id, async move { orchestrator.drive(id).await });
    }

    /// Runs `work` on a saga in a task of its own, within the bound on sagas driven at once.
    fn spawn(&self, id: Uuid, work: impl Future<Output = Result<Driven, Error>> + Send + 'static) {
        let running = self.inner.running.clone();
        tokio::spawn(async move {
            let Ok(_permit) = running.acquire_owned().await else {
                return;
            };
            if let Err(error) = work.await {
                tracing::warn!(saga_id = %id, error = %phoenix_api::ErrorChain(&error), "driving a saga failed");
                // The lease runs out and the recovery loop resumes it.
            }
        });
    }

    /// Runs a saga as far as it can go now: to its end, or until a step must wait for its timer.
    pub async fn drive(&self, id: Uuid) -> Result<Driven, Error> {
        let owner = self.inner.owner;
        let now = Timestamp::now();
        if !self.inner.store.lease(id, owner, now, self.lease_until(now)).await? {
            return Ok(Driven::NotOurs);
        }
        let Some(saga) = self.inner.store.get(id).await? else {
            return Ok(Driven::NotOurs);
        };
        self.clone().run(saga).await
    }

    /// Drives a saga this instance holds the lease of, from its state in memory. Every save renews the lease.
    async fn run(self, mut saga: Saga) -> Result<Driven, Error> {
        loop {
            if self.past_deadline(&saga) {
                let failure = Failure {
                    code: "hold_expired".to_owned(),
                    detail: "the booking did not complete before its hold expired".to_owned(),
                };
                self.start_compensating(&mut saga, failure, "deadline")?;
                if !self
                    .persist(&saga, "deadline", "do", "failed", Some("hold_expired"))
                    .await?
                {
                    return Ok(Driven::NotOurs);
                }
                continue;
            }
            let Some(action) = saga.next_action() else {
                return Ok(Driven::Finished);
            };
            let started = std::time::Instant::now();
            let result = self.run_action(action, &mut saga).await;
            metrics::histogram!("phoenix_saga_step_seconds", "step" => action.step().name())
                .record(started.elapsed().as_secs_f64());
            match self.after(&mut saga, action, result).await? {
                Some(driven) => return Ok(driven),
                None => continue,
            }
        }
    }

    /// Runs one action, with the fault injection and replay the options ask for.
    async fn run_action(&self, action: Action, saga: &mut Saga) -> Result<(), StepError> {
        let options = &self.inner.options;
        if matches!((action, &options.fail_at), (Action::Do(step), Some(name)) if step.name() == name) {
            return Err(StepError::injected());
        }
        let before = options.replay_steps.then(|| saga.clone());
        // In a span of the trace of the request that asked for the saga, so the calls it makes and the events they
        // write belong to that trace.
        let trace = saga.data.request.traceparent.as_deref();
        let trace = trace.map(|incoming| phoenix_api::trace::child_of(Some(incoming)));
        phoenix_api::trace::within(trace, steps::run(action, saga, &self.inner.clients, options)).await?;
        if let Some(mut replayed) = before {
            // As after a crash between the call and its save: the same step from the same saved state.
            steps::run(action, &mut replayed, &self.inner.clients, options).await?;
            if replayed.data != saga.data {
                return Err(StepError {
                    retryable: false,
                    code: "step_not_idempotent".to_owned(),
                    detail: format!("replaying {} learned something else", action.step().name()),
                    in_progress: None,
                });
            }
        }
        Ok(())
    }

    /// Records an action's result; `Some` ends this pass.
    async fn after(
        &self,
        saga: &mut Saga,
        action: Action,
        result: Result<(), StepError>,
    ) -> Result<Option<Driven>, Error> {
        let step = action.step().name();
        let direction = action.direction();
        let attempt = saga.attempts + 1;
        match result {
            Ok(()) => {
                self.advance(saga, action);
                let saved = self.persist_attempt(saga, step, direction, attempt, "ok", None).await?;
                count_step(saga, action, "ok");
                self.crash_point(action);
                if !saved {
                    return Ok(Some(Driven::NotOurs));
                }
                if saga.state.is_final() {
                    metrics::counter!("phoenix_sagas_finished_total", "saga" => saga.kind.as_str(),
                        "state" => saga.state.as_str())
                    .increment(1);
                    return Ok(Some(Driven::Finished));
                }
                Ok(None)
            }
            Err(error) if !error.retryable && matches!(action, Action::Do(_)) && saga.before_pivot() => {
                count_step(saga, action, "failed");
                let failure = Failure {
                    code: error.code.clone(),
                    detail: error.detail.clone(),
                };
                self.start_compensating(saga, failure, step)?;
                let saved = self
                    .persist_attempt(saga, step, direction, attempt, "failed", Some(&error.to_string()))
                    .await?;
                Ok((!saved).then_some(Driven::NotOurs))
            }
            Err(error) => self.retry_later(saga, action, attempt, error).await,
        }
    }

    /// A step that failed but may succeed later: try again after a backoff, or give up and compensate when the
    /// attempts before the pivot run out. Steps after the pivot, and undo steps, are never given up. A step whose call
    /// is still being processed elsewhere did not fail: it waits (see [`plan_retry`]).
    async fn retry_later(
        &self,
        saga: &mut Saga,
        action: Action,
        attempt: u32,
        error: StepError,
    ) -> Result<Option<Driven>, Error> {
        let step = action.step().name();
        let options = &self.inner.options;
        count_step(saga, action, "retry");
        tracing::info!(saga_id = %saga.id, step, attempt, error = %error, "saga step will be retried");
        let now = Timestamp::now();
        let Retry::After { attempts, next } = plan_retry(saga, action, attempt, &error, options, now) else {
            let failure = Failure {
                code: error.code.clone(),
                detail: error.detail.clone(),
            };
            self.start_compensating(saga, failure, step)?;
            let saved = self
                .persist_attempt(
                    saga,
                    step,
                    action.direction(),
                    attempt,
                    "failed",
                    Some(&error.to_string()),
                )
                .await?;
            return Ok((!saved).then_some(Driven::NotOurs));
        };
        saga.attempts = attempts;
        saga.last_error = Some(error.to_string());
        saga.next_run_at = next;
        let saved = self
            .persist_attempt(
                saga,
                step,
                action.direction(),
                attempt,
                "retry",
                Some(&error.to_string()),
            )
            .await?;
        if !saved {
            return Ok(Some(Driven::NotOurs));
        }
        let wait = Duration::try_from(next.datetime() - now.datetime()).unwrap_or_default();
        if wait <= options.lease() / 4 {
            // Short waits keep the lease and the saga in memory.
            tokio::time::sleep(wait).await;
            return Ok(None);
        }
        self.inner.store.release_lease(saga.id, self.inner.owner).await?;
        Ok(Some(Driven::Waiting))
    }

    fn advance(&self, saga: &mut Saga, action: Action) {
        match action {
            Action::Do(_) => saga.step += 1,
            Action::Undo(_) => saga.undo_step += 1,
        }
        saga.attempts = 0;
        saga.last_error = None;
        // Due now (after a retry's wait it was later). A time already past is kept: the saga is due either way, and
        // an unchanged `next_run_at` (indexed) lets PostgreSQL update the row in place (a HOT update).
        saga.next_run_at = saga.next_run_at.min(Timestamp::now());
        if saga.next_action().is_none() {
            saga.state = match saga.state {
                State::Compensating => State::Compensated,
                _ => State::Completed,
            };
        }
    }

    fn start_compensating(&self, saga: &mut Saga, failure: Failure, step: &str) -> Result<(), Error> {
        tracing::info!(saga_id = %saga.id, booking_id = %saga.booking_id, step, code = %failure.code,
            "saga compensating");
        saga.state = State::Compensating;
        saga.undo_step = 0;
        saga.attempts = 0;
        saga.last_error = Some(format!("{}: {}", failure.code, failure.detail));
        saga.data.failure = Some(failure);
        saga.next_run_at = Timestamp::now();
        Ok(())
    }

    fn past_deadline(&self, saga: &Saga) -> bool {
        saga.before_pivot() && saga.deadline_at.is_some_and(|deadline| Timestamp::now() >= deadline)
    }

    async fn persist(
        &self,
        saga: &Saga,
        step: &str,
        direction: &str,
        outcome: &str,
        error: Option<&str>,
    ) -> Result<bool, Error> {
        self.persist_attempt(saga, step, direction, 1, outcome, error).await
    }

    async fn persist_attempt(
        &self,
        saga: &Saga,
        step: &str,
        direction: &str,
        attempt: u32,
        outcome: &str,
        error: Option<&str>,
    ) -> Result<bool, Error> {
        let mut saga = saga.clone();
        saga.updated_at = Timestamp::now();
        let lease_until = self.lease_until(saga.updated_at);
        let record = StepRecord {
            seq: 0,
            step: step.to_owned(),
            direction: direction.to_owned(),
            attempt,
            outcome: outcome.to_owned(),
            error: error.map(str::to_owned),
            at: saga.updated_at,
        };
        let save = Save {
            saga,
            owner: self.inner.owner,
            lease_until,
            record,
        };
        self.inner.saver.submit(save).await.map_err(|_| Error::SaverStopped)?
    }

    /// Fault injection for crash tests: stop the process dead right after this action's result is durable.
    fn crash_point(&self, action: Action) {
        let Some(crash_after) = &self.inner.options.crash_after else {
            return;
        };
        let name = match action {
            Action::Do(step) => step.name().to_owned(),
            Action::Undo(step) => format!("undo:{}", step.name()),
        };
        if *crash_after == name {
            tracing::error!(step = %name, "crash_after: aborting the process on purpose");
            std::process::abort();
        }
    }

    fn lease_until(&self, now: Timestamp) -> Timestamp {
        now + time::Duration::try_from(self.inner.options.lease()).unwrap_or(time::Duration::SECOND * 30)
    }

    /// Background loops: take booking's requests as they come, resume due sagas.
    pub(crate) fn spawn_loops(&self) {
        let weak = Arc::downgrade(&self.inner);
        let wake = self.inner.clients.booking.wake_signal();
        let poll = Duration::from_millis(self.inner.options.poll_interval_ms);
        tokio::spawn(async move {
            loop {
                if let Some(wake) = &wake {
                    let _ = tokio::time::timeout(poll, wake.notified()).await;
                } else {
                    tokio::time::sleep(poll).await;
                }
                let Some(inner) = weak.upgrade() else { break };
                let orchestrator = Orchestrator { inner };
                let batch = orchestrator.inner.options.request_batch;
                loop {
                    match orchestrator.take_requests(batch).await {
                        Ok(n) if n as u32 >= batch => continue,
                        Ok(_) => break,
                        Err(error) => {
                            tracing::warn!(error = %phoenix_api::ErrorChain(&error), "taking saga requests failed");
                            break;
                        }
                    }
                }
            }
        });
        let weak = Arc::downgrade(&self.inner);
        let every = Duration::from_millis(self.inner.options.resume_interval_ms);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let orchestrator = Orchestrator { inner };
                if let Err(error) = orchestrator.resume_due().await {
                    tracing::warn!(error = %phoenix_api::ErrorChain(&error), "resuming sagas failed");
                }
            }
        });
    }
}

/// What becomes of a step that did not succeed but may later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Out of attempts before the pivot: compensate.
    GiveUp,
    /// Run it again at `next` (durably: the saga's `next_run_at`), with `attempts` attempts spent.
    After { attempts: u32, next: Timestamp },
}

/// When attempt `attempt` of `action` failed with `error`, at `now`: try again after a backoff, or give up once the
/// attempts of a step before the pivot run out.
///
/// A call the other side is still processing (an earlier attempt with the same idempotency key holds it, perhaps for
/// a process that died in the middle of it, until its claim lapses: [`StepError::in_progress`]) is no failed attempt:
/// the step waits, no earlier than the other side asks and never for less than the backoff, and spends no attempt,
/// so that once the claim lapses the same key takes the call over and the saga learns its real answer. Giving up
/// instead would compensate without that answer: nothing to void should the card have been authorized.
///
/// Before the pivot, no retry is later than the saga's deadline (the hold's expiry, less the margin), which then
/// compensates it: that bounds the waits too.
fn plan_retry(
    saga: &Saga,
    action: Action,
    attempt: u32,
    error: &StepError,
    options: &Options,
    now: Timestamp,
) -> Retry {
    let (attempts, wait) = match error.in_progress {
        Some(asked) => (saga.attempts, asked.max(options.backoff(attempt))),
        None if matches!(action, Action::Do(_)) && saga.before_pivot() && attempt >= options.max_attempts => {
            return Retry::GiveUp;
        }
        None => (attempt, options.backoff(attempt)),
    };
    let mut next = now + time::Duration::try_from(wait).unwrap_or(time::Duration::SECOND);
    if let Some(deadline) = saga.deadline_at.filter(|_| saga.before_pivot()) {
        next = next.min(deadline);
    }
    Retry::After { attempts, next }
}

fn count_step(saga: &Saga, action: Action, outcome: &'static str) {
    metrics::counter!("phoenix_saga_steps_total", "saga" => saga.kind.as_str(), "step" => action.step().name(),
        "direction" => action.direction(), "outcome" => outcome)
    .increment(1);
}

/// The group commit of saga saves: every save queued while a batch commits goes into the next one
/// ([`Store::save_batch`]: if the batch fails as a whole, each save is tried on its own).
pub(crate) fn saver(store: Store, max_running: usize) -> GroupCommit<Save, Result<bool, Error>> {
    GroupCommit::start(max_running, max_running * 4, move |saves: Vec<Save>| {
        let store = store.clone();
        async move { store.save_batch(&saves).await }
    })
}

/// How many sagas one process drives at once.
pub(crate) fn running(limit: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(limit))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use phoenix_api::{Credential, Principal, Problem, Role, Roles};
    use phoenix_booking::orchestration::{SagaKind, SagaRequest};

    use super::*;
    use crate::steps::Step;

    fn booking_saga(now: Timestamp) -> Saga {
        let request = SagaRequest {
            booking_id: Uuid::now_v7(),
            kind: SagaKind::Booking,
            actor: Principal {
                user_id: Uuid::now_v7(),
                roles: Roles::from([Role::Customer]),
                organization_id: None,
                credential: Credential::AccessToken {
                    token_id: Uuid::now_v7(),
                },
            },
            lines: Vec::new(),
            hold_ttl_secs: 900,
            currency: "EUR".to_owned(),
            amount_minor: 10_000,
            payment_token: Some("tok_hang".to_owned()),
            refund_minor: 0,
            hold_id: None,
            payment_id: None,
            traceparent: None,
        };
        let mut saga = Saga::start(request, now);
        // Held, deadline set: at the authorization.
        saga.step = 1;
        saga.deadline_at = Some(now + time::Duration::minutes(14));
        saga
    }

    /// Payment's answer while another request with the step's key (an earlier attempt's) is being processed.
    fn still_processing(retry_after_secs: u64) -> StepError {
        Problem::new(
            StatusCode::CONFLICT,
            "idempotency_key_in_use",
            "a request with this idempotency key is still being processed",
        )
        .with_retry_after(retry_after_secs)
        .into()
    }

    fn unavailable() -> StepError {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "provider_unavailable", "try again")
            .with_retry_after(2)
            .into()
    }

    const AUTHORIZE: Action = Action::Do(Step::AuthorizePayment);

    /// The last attempt before the pivot finds the key still claimed (by a process that died in the middle of the
    /// call, say): the saga waits for the claim to lapse, no earlier than asked, instead of giving up.
    #[test]
    fn a_call_still_being_processed_waits_as_asked_and_spends_no_attempt() {
        let options = Options::default();
        let now = Timestamp::now();
        let mut saga = booking_saga(now);
        saga.attempts = options.max_attempts - 1;
        let attempt = saga.attempts + 1;
        let Retry::After { attempts, next } =
            plan_retry(&saga, AUTHORIZE, attempt, &still_processing(53), &options, now)
        else {
            panic!("a step whose call is still being processed is not given up");
        };
        assert_eq!(attempts, options.max_attempts - 1, "no attempt spent");
        assert_eq!(
            next,
            now + time::Duration::seconds(53),
            "no earlier than the claim lapses"
        );
        // As often as the other side asks: still no attempt spent, so nothing given up.
        saga.attempts = attempts;
        for _ in 0..20 {
            let retry = plan_retry(&saga, AUTHORIZE, attempt, &still_processing(1), &options, now);
            assert!(
                matches!(retry, Retry::After { attempts, .. } if attempts == saga.attempts),
                "{retry:?}"
            );
        }
        // A failure of the call itself counts, and the last attempt gives up.
        assert_eq!(
            plan_retry(&saga, AUTHORIZE, attempt, &unavailable(), &options, now),
            Retry::GiveUp
        );
    }

    /// Never sooner than the backoff of the attempt either: a retry-after is a floor.
    #[test]
    fn a_wait_is_at_least_the_backoff() {
        let options = Options {
            backoff_base_ms: 4_000,
            ..Options::default()
        };
        let now = Timestamp::now();
        let saga = booking_saga(now);
        let Retry::After { next, .. } = plan_retry(&saga, AUTHORIZE, 1, &still_processing(1), &options, now) else {
            panic!("not given up");
        };
        assert!(next >= now + time::Duration::seconds(4), "{next:?}");
    }

    /// Before the pivot the saga's deadline bounds the wait (it then compensates, `hold_expired`); after it, and
    /// while undoing, nothing is given up and the saga waits as long as asked.
    #[test]
    fn the_deadline_bounds_a_wait_before_the_pivot() {
        let options = Options::default();
        let now = Timestamp::now();
        let mut saga = booking_saga(now);
        let deadline = now + time::Duration::seconds(5);
        saga.deadline_at = Some(deadline);
        let retry = plan_retry(&saga, AUTHORIZE, 1, &still_processing(53), &options, now);
        assert_eq!(
            retry,
            Retry::After {
                attempts: 0,
                next: deadline
            }
        );

        let asked = now + time::Duration::seconds(53);
        saga.step = saga.definition().pivot;
        saga.attempts = 6;
        let confirm = Action::Do(Step::ConfirmBooking);
        let retry = plan_retry(&saga, confirm, 7, &still_processing(53), &options, now);
        assert_eq!(
            retry,
            Retry::After {
                attempts: 6,
                next: asked
            }
        );

        saga.step = 2;
        saga.state = State::Compensating;
        saga.attempts = 9;
        let void = Action::Undo(Step::VoidPayment);
        let retry = plan_retry(&saga, void, 10, &still_processing(53), &options, now);
        assert_eq!(
            retry,
            Retry::After {
                attempts: 9,
                next: asked
            }
        );
    }
}

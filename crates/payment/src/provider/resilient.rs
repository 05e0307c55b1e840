//! The resilience layer every provider call goes through: a timeout per attempt, retries with exponential backoff
//! and jitter, a circuit breaker, and a bound on calls in flight.
//!
//! Retries are only for calls that carry an idempotency key (authorize, capture, refund, void): the provider
//! deduplicates on the key, so a repeat of a call whose answer was lost never moves money twice. Reads (`fetch`,
//! `find`) are not retried; reconciliation, their caller, simply runs again. Only the provider's failures (timeouts,
//! outages) are retried and counted by the breaker; a decline or a rejection is a healthy provider's answer.

mod breaker;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::Instant;

pub use breaker::{Admission, Breaker, BreakerOptions, Circuit, Refused, Transition};

use super::{Authorization, ListPage, Provider, ProviderError, ProviderPayment};

/// How hard to try a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Longest one attempt may take (and longest it may wait for a free slot). Past it the attempt counts as a
    /// timeout: the call may or may not have happened.
    pub timeout_ms: u64,
    /// Further attempts after a failed one, for calls with an idempotency key.
    pub max_retries: u32,
    /// The first backoff; each next one doubles, up to `backoff_max_ms`, plus up to as much again of jitter.
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// Calls in flight to the provider at once.
    pub max_concurrent: usize,
    pub breaker: BreakerOptions,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            timeout_ms: 5_000,
            max_retries: 3,
            backoff_min_ms: 100,
            backoff_max_ms: 2_000,
            max_concurrent: 10,
            breaker: BreakerOptions::default(),
        }
    }
}

impl Options {
    /// Checks the settings, naming the one at fault.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (
                (1..=300_000).contains(&self.timeout_ms),
                "timeout_ms must be between 1 and 300000",
            ),
            (self.max_retries <= 10, "max_retries must be at most 10"),
            (
                self.backoff_min_ms >= 1 && self.backoff_min_ms <= self.backoff_max_ms && self.backoff_max_ms <= 60_000,
                "need 1 <= backoff_min_ms <= backoff_max_ms <= 60000",
            ),
            (
                (1..=1_000).contains(&self.max_concurrent),
                "max_concurrent must be between 1 and 1000",
            ),
        ];
        if let Some((_, message)) = checks.into_iter().find(|(ok, _)| !ok) {
            return Err(message.to_owned());
        }
        self.breaker.validate().map_err(|m| format!("breaker.{m}"))
    }

    /// The longest one call (all its attempts and backoffs) can take: each attempt may wait `timeout_ms` for a slot
    /// and `timeout_ms` for the answer, and each backoff is at most twice `backoff_max_ms` with jitter.
    pub fn call_budget(&self) -> Duration {
        let attempts = u64::from(self.max_retries) + 1;
        let attempt = 2 * self.timeout_ms;
        let backoff = 2 * self.backoff_max_ms * u64::from(self.max_retries);
        Duration::from_millis(attempts * attempt + backoff)
    }
}

/// A provider call, named for metrics and for the retry rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Authorize,
    Capture,
    Refund,
    Void,
    Fetch,
    Find,
    List,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Authorize => "authorize",
            Operation::Capture => "capture",
            Operation::Refund => "refund",
            Operation::Void => "void",
            Operation::Fetch => "fetch",
            Operation::Find => "find",
            Operation::List => "list",
        }
    }
}

/// A [`Provider`] made safe to call in a hurry. Cheap to share behind an `Arc`.
pub struct Resilient {
    inner: Arc<dyn Provider>,
    options: Options,
    breaker: Mutex<Breaker>,
    slots: Semaphore,
}

impl std::fmt::Debug for Resilient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resilient")
            .field("provider", &self.inner.name())
            .field("options", &self.options)
            .finish()
    }
}

impl Resilient {
    pub fn new(inner: Arc<dyn Provider>, options: Options) -> Resilient {
        metrics::gauge!("phoenix_payment_circuit_open", "provider" => inner.name()).set(0.0);
        Resilient {
            breaker: Mutex::new(Breaker::new(options.breaker.clone())),
            slots: Semaphore::new(options.max_concurrent),
            inner,
            options,
        }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Where the circuit stands now.
    pub fn circuit(&self) -> Circuit {
        self.breaker().circuit(Instant::now())
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // The breaker's state is valid after any panic (every change is one assignment), so poison is ignored.
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.options.backoff_min_ms))
            .with_max_delay(Duration::from_millis(self.options.backoff_max_ms))
            .with_max_times(self.options.max_retries as usize)
            .with_jitter()
    }

    /// Runs `call` against the provider: retried when `idempotency_key` makes that safe.
    async fn call<T, F, Fut>(
        &self,
        operation: Operation,
        idempotency_key: Option<&str>,
        call: F,
    ) -> Result<T, ProviderError>
    where
        F: Fn(Arc<dyn Provider>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let attempt = || self.attempt(operation, &call);
        if idempotency_key.is_none_or(str::is_empty) {
            return attempt().await;
        }
        attempt
            .retry(self.backoff())
            .sleep(tokio::time::sleep)
            .when(ProviderError::is_failure)
            .notify(|error, delay| {
                tracing::debug!(provider = self.inner.name(), operation = operation.as_str(), %error, ?delay,
                    "retrying provider call");
            })
            .await
    }

    /// One attempt: through the breaker, into a slot, under the timeout.
    async fn attempt<T, F, Fut>(&self, operation: Operation, call: &F) -> Result<T, ProviderError>
    where
        F: Fn(Arc<dyn Provider>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let admission = match self.breaker().admit(Instant::now()) {
            Ok(admission) => admission,
            Err(_) => {
                self.count(operation, "circuit_open");
                return Err(ProviderError::CircuitOpen);
            }
        };
        let mut admitted = Admitted {
            resilient: self,
            admission: Some(admission),
        };
        let timeout = Duration::from_millis(self.options.timeout_ms);
        let Ok(Ok(_slot)) = tokio::time::timeout(timeout, self.slots.acquire()).await else {
            // Our own queue is full: not the provider's failure, so the breaker does not hear of it.
            self.count(operation, "saturated");
            return Err(ProviderError::Unavailable(
                "too many provider calls in flight".to_owned(),
            ));
        };
        let started = Instant::now();
        let result = match tokio::time::timeout(timeout, call(self.inner.clone())).await {
            Ok(result) => result,
            Err(_) => Err(ProviderError::Timeout),
        };
        metrics::histogram!("phoenix_payment_provider_call_seconds",
            "provider" => self.inner.name(), "operation" => operation.as_str())
        .record(started.elapsed().as_secs_f64());
        self.count(operation, outcome(&result));
        admitted.record(result.as_ref().err().is_some_and(ProviderError::is_failure));
        result
    }

    fn count(&self, operation: Operation, outcome: &'static str) {
        metrics::counter!("phoenix_payment_provider_calls_total",
            "provider" => self.inner.name(), "operation" => operation.as_str(), "outcome" => outcome)
        .increment(1);
    }

    fn transition(&self, transition: Transition) {
        let provider = self.inner.name();
        match transition {
            Transition::Opened => {
                tracing::warn!(
                    provider,
                    open_secs = self.options.breaker.open_secs,
                    "provider circuit opened"
                );
                metrics::gauge!("phoenix_payment_circuit_open", "provider" => provider).set(1.0);
            }
            Transition::Closed => {
                tracing::info!(provider, "provider circuit closed");
                metrics::gauge!("phoenix_payment_circuit_open", "provider" => provider).set(0.0);
            }
        }
    }
}

fn outcome<T>(result: &Result<T, ProviderError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(ProviderError::Declined { .. }) => "declined",
        Err(ProviderError::Rejected(_)) => "rejected",
        Err(ProviderError::Timeout) => "timeout",
        Err(ProviderError::Unavailable(_)) => "unavailable",
        Err(ProviderError::CircuitOpen) => "circuit_open",
    }
}

/// An admitted attempt. Recorded with its outcome; one that never got an outcome (its caller went away, or no slot
/// was free) is abandoned, so a half-open circuit does not wait forever for a probe that will not report.
struct Admitted<'a> {
    resilient: &'a Resilient,
    admission: Option<Admission>,
}

impl Admitted<'_> {
    fn record(&mut self, failed: bool) {
        if let Some(admission) = self.admission.take() {
            let transition = self.resilient.breaker().record(admission, failed, Instant::now());
            if let Some(transition) = transition {
                self.resilient.transition(transition);
            }
        }
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if let Some(admission) = self.admission.take() {
            self.resilient.breaker().abandon(admission);
        }
    }
}

#[async_trait]
impl Provider for Resilient {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn authorize(&self, authorization: &Authorization) -> Result<ProviderPayment, ProviderError> {
        let key = Some(authorization.idempotency_key.as_str());
        self.call(Operation::Authorize, key, |p| async move {
            p.authorize(authorization).await
        })
        .await
    }

    async fn capture(
        &self,
        reference: &str,
        amount_minor: i64,
        idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        self.call(Operation::Capture, Some(idempotency_key), |p| async move {
            p.capture(reference, amount_minor, idempotency_key).await
        })
        .await
    }

    async fn refund(
        &self,
        reference: &str,
        amount_minor: i64,
        idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        self.call(Operation::Refund, Some(idempotency_key), |p| async move {
            p.refund(reference, amount_minor, idempotency_key).await
        })
        .await
    }

    async fn void(&self, reference: &str, idempotency_key: &str) -> Result<ProviderPayment, ProviderError> {
        self.call(Operation::Void, Some(idempotency_key), |p| async move {
            p.void(reference, idempotency_key).await
        })
        .await
    }

    async fn fetch(&self, reference: &str) -> Result<ProviderPayment, ProviderError> {
        self.call(Operation::Fetch, None, |p| async move { p.fetch(reference).await })
            .await
    }

    async fn find(&self, reference: &str) -> Result<Option<ProviderPayment>, ProviderError> {
        self.call(Operation::Find, None, |p| async move { p.find(reference).await })
            .await
    }

    async fn list(&self, after: Option<&str>) -> Result<ListPage, ProviderError> {
        self.call(Operation::List, None, |p| async move { p.list(after).await })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::provider::{Listed, ProviderStatus};

    /// What the scripted provider does on one call.
    #[derive(Clone)]
    enum Step {
        Answer(Result<ProviderPayment, ProviderError>),
        /// Answers after this long.
        Slow(Duration),
        Hang,
    }

    /// A provider that plays a script, one step per call (the last step repeats), and counts.
    #[derive(Default)]
    struct Script {
        steps: Mutex<VecDeque<Step>>,
        calls: AtomicUsize,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    fn paid() -> ProviderPayment {
        ProviderPayment {
            reference: "p_1".to_owned(),
            status: ProviderStatus::Authorized,
            currency: "EUR".to_owned(),
            authorized_minor: 100,
            captured_minor: 0,
            refunded_minor: 0,
        }
    }

    fn down() -> Step {
        Step::Answer(Err(ProviderError::Unavailable("down".to_owned())))
    }

    fn ok() -> Step {
        Step::Answer(Ok(paid()))
    }

    impl Script {
        fn new(steps: Vec<Step>) -> Arc<Script> {
            Arc::new(Script {
                steps: Mutex::new(steps.into()),
                ..Script::default()
            })
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        async fn play(&self) -> Result<ProviderPayment, ProviderError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let step = {
                let mut steps = self.steps.lock().unwrap();
                if steps.len() > 1 {
                    steps.pop_front().unwrap()
                } else {
                    steps.front().cloned().unwrap()
                }
            };
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            let result = match step {
                Step::Answer(result) => result,
                Step::Slow(delay) => {
                    tokio::time::sleep(delay).await;
                    Ok(paid())
                }
                Step::Hang => std::future::pending().await,
            };
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            result
        }
    }

    #[async_trait]
    impl Provider for Script {
        fn name(&self) -> &'static str {
            "script"
        }
        async fn authorize(&self, _: &Authorization) -> Result<ProviderPayment, ProviderError> {
            self.play().await
        }
        async fn capture(&self, _: &str, _: i64, _: &str) -> Result<ProviderPayment, ProviderError> {
            self.play().await
        }
        async fn refund(&self, _: &str, _: i64, _: &str) -> Result<ProviderPayment, ProviderError> {
            self.play().await
        }
        async fn void(&self, _: &str, _: &str) -> Result<ProviderPayment, ProviderError> {
            self.play().await
        }
        async fn fetch(&self, _: &str) -> Result<ProviderPayment, ProviderError> {
            self.play().await
        }
        async fn find(&self, _: &str) -> Result<Option<ProviderPayment>, ProviderError> {
            self.play().await.map(Some)
        }
        async fn list(&self, _: Option<&str>) -> Result<ListPage, ProviderError> {
            let payment = self.play().await?;
            Ok(ListPage {
                payments: vec![Listed {
                    our_reference: "ours".to_owned(),
                    payment,
                }],
                next: None,
            })
        }
    }

    fn options() -> Options {
        Options {
            timeout_ms: 1_000,
            max_retries: 3,
            backoff_min_ms: 100,
            backoff_max_ms: 10_000,
            max_concurrent: 10,
            breaker: BreakerOptions {
                window_secs: 60,
                min_calls: 100,
                failure_percent: 50,
                open_secs: 30,
            },
        }
    }

    fn authorization() -> Authorization {
        Authorization {
            amount_minor: 100,
            currency: "EUR".to_owned(),
            token: "tok_visa".to_owned(),
            reference: "r".to_owned(),
            idempotency_key: "k".to_owned(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keyed_calls_are_retried_until_they_succeed() {
        let script = Script::new(vec![down(), down(), ok()]);
        let provider = Resilient::new(script.clone(), options());
        assert_eq!(provider.authorize(&authorization()).await, Ok(paid()));
        assert_eq!(script.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_after_max_retries_and_back_off_exponentially_with_jitter() {
        let script = Script::new(vec![down()]);
        let provider = Resilient::new(script.clone(), options());
        let started = Instant::now();
        let result = provider.capture("p_1", 100, "k").await;
        assert!(matches!(result, Err(ProviderError::Unavailable(_))), "{result:?}");
        assert_eq!(script.calls(), 4, "one attempt and three retries");
        // Backoffs of 100, 200 and 400 ms, each plus up to as much again of jitter (time is paused: exact).
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(700) && waited < Duration::from_millis(1_400),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn declines_and_rejections_are_never_retried() {
        let declined = Step::Answer(Err(ProviderError::Declined {
            code: "card_declined".to_owned(),
            message: String::new(),
        }));
        let script = Script::new(vec![declined]);
        let provider = Resilient::new(script.clone(), options());
        assert!(matches!(
            provider.authorize(&authorization()).await,
            Err(ProviderError::Declined { .. })
        ));
        assert_eq!(script.calls(), 1);

        let script = Script::new(vec![Step::Answer(Err(ProviderError::Rejected("no".to_owned())))]);
        let provider = Resilient::new(script.clone(), options());
        assert!(provider.refund("p_1", 5, "k").await.is_err());
        assert_eq!(script.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_and_unkeyed_calls_are_not_retried() {
        let script = Script::new(vec![down(), ok()]);
        let provider = Resilient::new(script.clone(), options());
        assert!(provider.fetch("p_1").await.is_err());
        assert!(provider.find("r").await.is_ok(), "the next call is a new call");
        assert_eq!(script.calls(), 2);

        let script = Script::new(vec![down(), ok()]);
        let provider = Resilient::new(script.clone(), options());
        assert!(
            provider.void("p_1", "").await.is_err(),
            "an empty key makes nothing safe"
        );
        assert_eq!(script.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_attempt_is_cut_by_the_timeout_and_retried() {
        let script = Script::new(vec![Step::Hang, ok()]);
        let provider = Resilient::new(script.clone(), options());
        let started = Instant::now();
        assert_eq!(provider.authorize(&authorization()).await, Ok(paid()));
        assert_eq!(script.calls(), 2);
        assert!(started.elapsed() >= Duration::from_millis(1_000));

        let script = Script::new(vec![Step::Hang]);
        let provider = Resilient::new(script.clone(), options());
        assert_eq!(provider.void("p_1", "k").await, Err(ProviderError::Timeout));
        assert_eq!(script.calls(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_fails_fast_and_a_successful_probe_closes_it() {
        let script = Script::new(vec![down(), down(), down(), down(), ok()]);
        let mut options = options();
        options.max_retries = 0;
        options.breaker.min_calls = 4;
        let provider = Resilient::new(script.clone(), options);
        for _ in 0..4 {
            assert!(provider.capture("p_1", 1, "k").await.is_err());
        }
        assert!(matches!(provider.circuit(), Circuit::Open { .. }));
        assert_eq!(provider.capture("p_1", 1, "k").await, Err(ProviderError::CircuitOpen));
        assert_eq!(script.calls(), 4, "an open circuit does not call the provider");

        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(provider.circuit(), Circuit::HalfOpen);
        assert_eq!(provider.capture("p_1", 1, "k").await, Ok(paid()));
        assert_eq!(provider.circuit(), Circuit::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_circuit_stops_retries_at_once() {
        let script = Script::new(vec![down()]);
        let mut options = options();
        options.breaker.min_calls = 2;
        let provider = Resilient::new(script.clone(), options);
        // The second failed attempt opens the circuit; the third attempt is refused without a call.
        assert_eq!(provider.capture("p_1", 1, "k").await, Err(ProviderError::CircuitOpen));
        assert_eq!(script.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_in_flight_are_bounded() {
        let script = Script::new(vec![Step::Slow(Duration::from_millis(100))]);
        let mut options = options();
        options.max_concurrent = 2;
        let provider = Arc::new(Resilient::new(script.clone(), options));
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let provider = provider.clone();
                tokio::spawn(async move { provider.fetch("p_1").await })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap(), Ok(paid()));
        }
        assert_eq!(script.most_in_flight.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn options_are_checked_and_the_budget_covers_every_attempt() {
        let options = Options::default();
        assert!(options.validate().is_ok());
        // 4 attempts of up to 2 x 5 s, and 3 backoffs of up to 2 x 2 s.
        assert_eq!(options.call_budget(), Duration::from_secs(52));
        let bad = Options {
            max_concurrent: 0,
            ..Options::default()
        };
        assert!(bad.validate().is_err());
    }
}

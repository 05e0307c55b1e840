//! A step whose call payment is still processing is answered 409 `idempotency_key_in_use` with a `Retry-After`:
//! the step reports a wait of that long (the rest of the claim on the key), not a failure, and retried once it has
//! passed it gets the call's real answer. The first attempt runs in one payment instance, the retry reaches another
//! (as after the saga's process died and another resumed it), in process and over payment's internal routes.

use std::sync::Arc;
use std::time::Duration;

use phoenix_api::{Principal, Role};
use phoenix_booking::orchestration::{SagaKind, SagaRequest};
use phoenix_db::testing::TestDatabase;
use phoenix_db::{Backend, Pool, Timestamp};
use phoenix_payment::{Service, Simulator};
use phoenix_saga::steps::{self, Action, Step};
use phoenix_saga::{Options, Saga};
use uuid::Uuid;

use crate::refunds::{clients, principal};

phoenix_db::contract_suite!(
    phoenix_payment::migrations(),
    [a_step_whose_call_is_still_processed_waits_as_asked_then_gets_its_answer]
);

/// One provider attempt of at most 1.5 s and no retry: payment claims an operation for 2 x 1.5 + 1 = 4 s.
const CLAIM_SECS: u64 = 4;

fn options() -> phoenix_payment::Options {
    let mut options = phoenix_payment::Options::default();
    options.resilience.timeout_ms = 1_500;
    options.resilience.max_retries = 0;
    options
}

/// Two payment instances over `pool` (two processes, each with its own claims), calling one simulator with a
/// database of its own (kept alive by the guard).
async fn payment(pool: &Pool) -> ([Service; 2], Simulator, TestDatabase) {
    let simulator_db = match pool.backend() {
        Backend::Sqlite => TestDatabase::sqlite(phoenix_payment::simulator_migrations()).await,
        Backend::Postgres => TestDatabase::postgres(phoenix_payment::simulator_migrations()).await,
    };
    let simulator = Simulator::new(simulator_db.pool());
    let instance = || Service::new(pool.clone(), options(), Arc::new(simulator.clone()));
    ([instance(), instance()], simulator, simulator_db)
}

/// A booking saga that holds its units and is about to authorize a card whose provider never answers.
fn at_the_authorization(payer: &Principal) -> Saga {
    let request = SagaRequest {
        booking_id: Uuid::now_v7(),
        kind: SagaKind::Booking,
        actor: *payer,
        lines: Vec::new(),
        hold_ttl_secs: 900,
        currency: "EUR".to_owned(),
        amount_minor: 10_000,
        payment_token: Some("tok_hang".to_owned()),
        refund_minor: 0,
        hold_id: Some(Uuid::now_v7()),
        payment_id: None,
        traceparent: None,
    };
    let mut saga = Saga::start(request, Timestamp::now());
    saga.step = 1;
    saga
}

async fn a_step_whose_call_is_still_processed_waits_as_asked_then_gets_its_answer(pool: Pool) {
    let ([first, second], simulator, _guard) = payment(&pool).await;
    let authorize = Action::Do(Step::AuthorizePayment);
    let options = Options::default();
    for remote in [false, true] {
        let saga = at_the_authorization(&principal(&[Role::Customer]));
        let received = simulator.requests_received().await.unwrap();
        let attempt = {
            let (mut saga, clients) = (saga.clone(), clients(&first, false).await);
            let options = options.clone();
            tokio::spawn(async move { steps::run(authorize, &mut saga, &clients, &options).await })
        };
        while simulator.requests_received().await.unwrap() == received {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // The authorization is at the provider; the step runs again against the other instance.
        let clients = clients(&second, remote).await;
        let mut retried = saga.clone();
        let waiting = steps::run(authorize, &mut retried, &clients, &options)
            .await
            .unwrap_err();
        assert_eq!(waiting.code, "idempotency_key_in_use", "remote: {remote}");
        assert!(waiting.retryable);
        let wait = waiting.in_progress.expect("a wait for the claim to lapse");
        assert!(
            (2..=CLAIM_SECS).contains(&wait.as_secs()),
            "the rest of the first attempt's claim, remote: {remote}: {wait:?}"
        );
        assert_eq!(retried.data, saga.data, "nothing learned");

        // The first attempt ends: the provider did not answer in time, so the payment failed.
        let answer = attempt.await.unwrap().unwrap_err();
        assert_eq!(answer.code, "provider_unavailable", "{answer}");
        assert!(!answer.retryable);
        assert_eq!(answer.in_progress, None);

        // Retried no earlier than asked, the step gets that answer.
        tokio::time::sleep(wait).await;
        let mut retried = saga.clone();
        let error = steps::run(authorize, &mut retried, &clients, &options)
            .await
            .unwrap_err();
        assert_eq!(error, answer, "remote: {remote}");
    }
}

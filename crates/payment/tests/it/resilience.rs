use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use phoenix_api::Problem;
use phoenix_db::Pool;
use phoenix_payment::provider::resilient::BreakerOptions;
use phoenix_payment::provider::simulated::EntryKind;
use phoenix_payment::{Circuit, Error, ProviderError, Status};

use crate::tapped::{Call, Tap, Tapped};
use crate::{admin, customer, env, env_with, options, request, wait_until};

phoenix_db::contract_suite!(
    phoenix_payment::migrations(),
    [
        a_hanging_provider_times_out_opens_the_circuit_fails_fast_and_recovers,
        a_flaky_provider_succeeds_through_retries_and_charges_once,
        a_capture_during_an_outage_stays_pending_and_its_retry_completes_it,
    ]
);

async fn a_hanging_provider_times_out_opens_the_circuit_fails_fast_and_recovers(pool: Pool) {
    let mut options = options();
    options.resilience.timeout_ms = 200;
    options.resilience.max_retries = 1;
    options.resilience.breaker = BreakerOptions {
        window_secs: 60,
        min_calls: 2,
        failure_percent: 50,
        open_secs: 1,
    };
    let env = env_with(pool, options, |simulator| Arc::new(simulator)).await;
    let payer = customer();

    let hung = env
        .service
        .authorize(&payer, request(1_000, "tok_hang"), "pay-1")
        .await
        .unwrap_err();
    let Error::AuthorizationUnknown { payment_id } = hung else {
        panic!("expected the outcome to be unknown: {hung:?}");
    };
    let failed = env.service.payment(&payer, payment_id).await.unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.failure_code.as_deref(), Some("provider_unavailable"));
    let problem = Problem::from(hung);
    assert_eq!(
        (problem.status.as_u16(), problem.code.as_ref()),
        (503, "provider_unavailable")
    );
    assert!(problem.retry_after_secs.is_some());
    assert_eq!(
        env.requests_received().await,
        2,
        "the attempt and its one retry, each cut by the timeout"
    );

    // Two failed calls of two: the circuit is open, and calls fail without reaching the provider.
    assert!(matches!(env.service.provider().circuit(), Circuit::Open { .. }));
    let fast = env.service.authorize(&payer, request(1_000, "tok_visa"), "pay-2").await;
    assert!(matches!(fast, Err(Error::AuthorizationUnknown { .. })), "{fast:?}");
    assert_eq!(
        env.requests_received().await,
        2,
        "an open circuit does not call the provider"
    );
    assert!(env.ledger(EntryKind::Authorization).await.is_empty());

    // After `open_secs` one probe goes through; its success closes the circuit.
    let service = env.service.clone();
    wait_until(Duration::from_secs(10), || {
        let service = service.clone();
        async move { !matches!(service.provider().circuit(), Circuit::Open { .. }) }
    })
    .await;
    let recovered = env
        .service
        .authorize(&payer, request(1_000, "tok_visa"), "pay-3")
        .await
        .unwrap();
    assert_eq!(recovered.status, Status::Authorized);
    assert_eq!(env.service.provider().circuit(), Circuit::Closed);
    assert_eq!(env.ledger(EntryKind::Authorization).await.len(), 1);
}

async fn a_flaky_provider_succeeds_through_retries_and_charges_once(pool: Pool) {
    let env = env(pool).await;
    let payment = env
        .service
        .authorize(&customer(), request(2_000, "tok_flaky"), "pay-1")
        .await
        .unwrap();
    assert_eq!(payment.status, Status::Authorized);
    assert_eq!(
        env.requests_received().await,
        3,
        "two failed attempts, then the one that worked"
    );
    let captured = env.service.capture(&admin(), payment.id, None, "cap-1").await.unwrap();
    assert_eq!(captured.status, Status::Captured);
    assert_eq!(env.requests_received().await, 6);
    assert_eq!(env.ledger(EntryKind::Authorization).await.len(), 1);
    assert_eq!(env.ledger(EntryKind::Capture).await.len(), 1);
}

/// A switch: while `down`, every call fails as an outage would.
struct Outage {
    down: Arc<AtomicBool>,
}

#[async_trait]
impl Tap for Outage {
    async fn before(&self, _call: Call) -> Result<(), ProviderError> {
        if self.down.load(Ordering::SeqCst) {
            Err(ProviderError::Unavailable("scheduled outage".to_owned()))
        } else {
            Ok(())
        }
    }
}

async fn a_capture_during_an_outage_stays_pending_and_its_retry_completes_it(pool: Pool) {
    let down = Arc::new(AtomicBool::new(false));
    let switch = down.clone();
    let env = env_with(pool, options(), move |inner| {
        Arc::new(Tapped {
            inner,
            tap: Outage { down: switch },
        })
    })
    .await;
    let staff = admin();
    let payment = env
        .service
        .authorize(&customer(), request(4_000, "tok_visa"), "pay-1")
        .await
        .unwrap();

    down.store(true, Ordering::SeqCst);
    let failed = env
        .service
        .capture(&staff, payment.id, Some(3_000), "cap-1")
        .await
        .unwrap_err();
    let problem = Problem::from(failed);
    assert_eq!(
        (problem.status.as_u16(), problem.code.as_ref()),
        (503, "provider_unavailable")
    );
    assert!(problem.retry_after_secs.is_some());
    let unchanged = env.service.payment(&staff, payment.id).await.unwrap();
    assert_eq!((unchanged.status, unchanged.captured_minor), (Status::Authorized, 0));
    let history = env.service.operations(&staff, payment.id).await.unwrap();
    assert_eq!(history.last().unwrap().outcome.as_str(), "pending");

    down.store(false, Ordering::SeqCst);
    let captured = env
        .service
        .capture(&staff, payment.id, Some(3_000), "cap-1")
        .await
        .unwrap();
    assert_eq!((captured.status, captured.captured_minor), (Status::Captured, 3_000));
    assert_eq!(env.ledger(EntryKind::Capture).await.len(), 1);
    let history = env.service.operations(&staff, payment.id).await.unwrap();
    assert_eq!(history.len(), 2, "the retry finished the same operation");
    assert_eq!(history[1].outcome.as_str(), "succeeded");
}

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use phoenix_api::Problem;
use phoenix_db::Pool;
use phoenix_payment::provider::simulated::EntryKind;
use phoenix_payment::{Error, Provider, ProviderError, ProviderPayment, Simulator, Status};

use crate::tapped::{Call, Tap, Tapped};
use crate::{admin, customer, env, env_with, events_of, options, request};

phoenix_db::contract_suite!(
    phoenix_payment::migrations(),
    [
        the_same_key_three_times_authorizes_once_and_answers_the_same,
        the_same_key_five_times_at_once_authorizes_once,
        a_key_reused_for_a_different_request_is_refused,
        a_decline_is_replayed_without_asking_the_provider_again,
        captures_and_refunds_repeated_with_their_key_move_money_once,
        a_crash_after_the_provider_answered_is_completed_on_retry_without_charging_twice,
        another_process_resumes_an_abandoned_authorization_once_its_claim_lapses,
    ]
);

async fn the_same_key_three_times_authorizes_once_and_answers_the_same(pool: Pool) {
    let env = env(pool.clone()).await;
    let payer = customer();
    let first = env
        .service
        .authorize(&payer, request(3_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    for _ in 0..2 {
        let again = env
            .service
            .authorize(&payer, request(3_000, "tok_visa"), "pay-1")
            .await
            .unwrap();
        assert_eq!(again, first);
    }
    assert_eq!(env.ledger(EntryKind::Authorization).await.len(), 1);
    assert_eq!(env.requests_received().await, 1, "replays never reach the provider");
    assert_eq!(crate::count_rows(&pool, "payments").await, 1);
    assert_eq!(events_of(&pool, "payment.authorized.v1").await.len(), 1);
}

async fn the_same_key_five_times_at_once_authorizes_once(pool: Pool) {
    let env = env(pool.clone()).await;
    let payer = customer();
    let racers: Vec<_> = (0..5)
        .map(|_| {
            let service = env.service.clone();
            tokio::spawn(async move { service.authorize(&payer, request(3_000, "tok_visa"), "pay-1").await })
        })
        .collect();
    let mut ids = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(payment) => ids.push(payment.id),
            // The first one is still running: come back later.
            Err(Error::IdempotencyKeyInUse { .. }) => {}
            Err(other) => panic!("unexpected answer: {other:?}"),
        }
    }
    ids.dedup();
    assert!(ids.len() <= 1, "one payment for one key: {ids:?}");
    let after = env
        .service
        .authorize(&payer, request(3_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    assert!(ids.iter().all(|id| *id == after.id));
    assert_eq!(env.ledger(EntryKind::Authorization).await.len(), 1);
    assert_eq!(crate::count_rows(&pool, "payments").await, 1);
}

async fn a_key_reused_for_a_different_request_is_refused(pool: Pool) {
    let env = env(pool).await;
    let payer = customer();
    let first = env
        .service
        .authorize(&payer, request(1_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    let different = env
        .service
        .authorize(&payer, request(2_000, "tok_visa"), "pay-1")
        .await
        .unwrap_err();
    assert!(matches!(different, Error::IdempotencyKeyReused), "{different:?}");
    let problem = Problem::from(different);
    assert_eq!(
        (problem.status.as_u16(), problem.code.as_ref()),
        (422, "idempotency_key_reused")
    );

    // Keys belong to their principal: another payer's "pay-1" is another payment.
    let other = env
        .service
        .authorize(&customer(), request(1_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    assert_ne!(other.id, first.id);

    // A key is one request, whatever the operation.
    let staff = admin();
    env.service
        .capture(&staff, first.id, Some(500), "move-1")
        .await
        .unwrap();
    let refund = env.service.refund(&staff, first.id, Some(100), "r", "move-1").await;
    assert!(matches!(refund, Err(Error::IdempotencyKeyReused)), "{refund:?}");
    let capture = env.service.capture(&staff, first.id, Some(600), "move-1").await;
    assert!(matches!(capture, Err(Error::IdempotencyKeyReused)), "{capture:?}");
    assert_eq!(env.ledger(EntryKind::Authorization).await.len(), 2);
    assert_eq!(env.ledger(EntryKind::Capture).await.len(), 1);
}

async fn a_decline_is_replayed_without_asking_the_provider_again(pool: Pool) {
    let env = env(pool).await;
    let payer = customer();
    let first = env
        .service
        .authorize(&payer, request(1_000, "tok_insufficient_funds"), "pay-1")
        .await
        .unwrap_err();
    let again = env
        .service
        .authorize(&payer, request(1_000, "tok_insufficient_funds"), "pay-1")
        .await
        .unwrap_err();
    let (
        Error::Declined { payment_id: a, .. },
        Error::Declined {
            payment_id: b,
            decline_code,
        },
    ) = (&first, &again)
    else {
        panic!("expected two declines: {first:?}, {again:?}");
    };
    assert_eq!((a, decline_code.as_str()), (b, "insufficient_funds"));
    assert_eq!(env.requests_received().await, 1);
}

async fn captures_and_refunds_repeated_with_their_key_move_money_once(pool: Pool) {
    let env = env(pool.clone()).await;
    let staff = admin();
    let payment = env
        .service
        .authorize(&customer(), request(8_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    let captured = env
        .service
        .capture(&staff, payment.id, Some(5_000), "cap-1")
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(
            env.service
                .capture(&staff, payment.id, Some(5_000), "cap-1")
                .await
                .unwrap(),
            captured
        );
    }
    let refunded = env
        .service
        .refund(&staff, payment.id, Some(1_000), "r", "ref-1")
        .await
        .unwrap();
    for _ in 0..2 {
        let again = env
            .service
            .refund(&staff, payment.id, Some(1_000), "r", "ref-1")
            .await
            .unwrap();
        assert_eq!(again, refunded);
    }
    assert_eq!(env.ledger(EntryKind::Capture).await.len(), 1);
    assert_eq!(env.ledger(EntryKind::Refund).await.len(), 1);
    assert_eq!(events_of(&pool, "payment.captured.v1").await.len(), 1);
    assert_eq!(events_of(&pool, "payment.refunded.v1").await.len(), 1);
    let now = env.service.payment(&staff, payment.id).await.unwrap();
    assert_eq!((now.captured_minor, now.refunded_minor), (5_000, 1_000));
}

/// The process "dies" (the request's task panics) right after the first authorization the provider made, before
/// Phoenix could write its answer down.
struct CrashAfterAuthorizing {
    crashed: AtomicBool,
}

impl Tap for CrashAfterAuthorizing {
    fn after(
        &self,
        call: Call,
        answer: Result<ProviderPayment, ProviderError>,
    ) -> Result<ProviderPayment, ProviderError> {
        if call == Call::Authorize && answer.is_ok() && !self.crashed.swap(true, Ordering::SeqCst) {
            panic!("simulated crash: the provider answered, Phoenix never wrote it down");
        }
        answer
    }
}

pub fn crash_after_authorizing(inner: Simulator) -> Arc<dyn Provider> {
    Arc::new(Tapped {
        inner,
        tap: CrashAfterAuthorizing {
            crashed: AtomicBool::new(false),
        },
    })
}

/// Statuses of every payment row, straight from the table.
pub async fn stored_statuses(pool: &Pool) -> Vec<String> {
    phoenix_db::dispatch!(pool, conn => {
        sqlx::query_scalar("SELECT status FROM payments ORDER BY id").fetch_all(conn).await
    })
    .unwrap()
}

async fn a_crash_after_the_provider_answered_is_completed_on_retry_without_charging_twice(pool: Pool) {
    let env = env_with(pool.clone(), options(), crash_after_authorizing).await;
    let payer = customer();
    let crashed = env.service.authorize(&payer, request(7_000, "tok_visa"), "pay-1").await;
    assert!(matches!(crashed, Err(Error::Interrupted)), "{crashed:?}");
    // Durable first: the payment was written before the call, and the provider did authorize it.
    assert_eq!(stored_statuses(&pool).await, ["pending"]);
    let authorizations = env.ledger(EntryKind::Authorization).await;
    assert_eq!(authorizations.len(), 1);

    let payment = env
        .service
        .authorize(&payer, request(7_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    assert_eq!(payment.status, Status::Authorized);
    assert_eq!(
        payment.provider_reference.as_deref(),
        Some(authorizations[0].reference.as_str())
    );
    assert_eq!(env.ledger(EntryKind::Authorization).await.len(), 1, "charged once");
    assert_eq!(
        env.requests_received().await,
        2,
        "the repeat reached the provider, which answered from its records"
    );
    assert_eq!(events_of(&pool, "payment.authorized.v1").await.len(), 1);
    let replay = env
        .service
        .authorize(&payer, request(7_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    assert_eq!(replay, payment);
}

async fn another_process_resumes_an_abandoned_authorization_once_its_claim_lapses(pool: Pool) {
    // Short timeouts make a short claim: it lasts as long as the longest provider call could.
    let mut options = options();
    options.resilience.timeout_ms = 300;
    options.resilience.max_retries = 0;
    let env = env_with(pool.clone(), options.clone(), crash_after_authorizing).await;
    let payer = customer();
    let crashed = env.service.authorize(&payer, request(7_000, "tok_visa"), "pay-1").await;
    assert!(matches!(crashed, Err(Error::Interrupted)), "{crashed:?}");

    let restarted = env.restart(options, Arc::new(env.simulator.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let payment = loop {
        match restarted.authorize(&payer, request(7_000, "tok_visa"), "pay-1").await {
            // The first process's claim has not lapsed yet: it might still be working.
            Err(Error::IdempotencyKeyInUse { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other.unwrap(),
        }
    };
    assert_eq!(payment.status, Status::Authorized);
    assert_eq!(env.ledger(EntryKind::Authorization).await.len(), 1, "charged once");
    assert_eq!(stored_statuses(&pool).await, ["authorized"]);
}

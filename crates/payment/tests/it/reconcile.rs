use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use phoenix_db::Pool;
use phoenix_payment::provider::simulated::EntryKind;
use phoenix_payment::reconcile::DifferenceKind;
use phoenix_payment::{
    Authorization, Error, Provider, ProviderError, ProviderPayment, ProviderStatus, Status, reconcile,
};

use crate::idempotency::{crash_after_authorizing, stored_statuses};
use crate::tapped::{Call, Tap, Tapped};
use crate::{admin, customer, env, env_with, events_of, options, request, wait_until};

phoenix_db::contract_suite!(
    phoenix_payment::migrations(),
    [
        matching_books_report_no_difference,
        payments_the_provider_holds_and_we_have_no_record_of_are_found,
        a_refund_made_behind_our_back_is_found_and_taken_into_our_books,
        an_authorization_whose_answer_was_lost_is_found_and_voided,
        an_abandoned_pending_authorization_is_finished_as_the_provider_says,
        the_first_pass_compares_several_payments_at_once_within_half_the_slots,
    ]
);

async fn matching_books_report_no_difference(pool: Pool) {
    let env = env(pool).await;
    let staff = admin();
    let payer = customer();
    let a = env
        .service
        .authorize(&payer, request(1_000, "tok_visa"), "a")
        .await
        .unwrap();
    env.service.capture(&staff, a.id, Some(800), "a-cap").await.unwrap();
    env.service.refund(&staff, a.id, Some(300), "r", "a-ref").await.unwrap();
    let b = env
        .service
        .authorize(&payer, request(1_000, "tok_visa"), "b")
        .await
        .unwrap();
    env.service.void(&staff, b.id, "b-void").await.unwrap();
    env.service
        .authorize(&payer, request(1_000, "tok_visa"), "c")
        .await
        .unwrap();
    let _ = env.service.authorize(&payer, request(1_000, "tok_decline"), "d").await;

    let report = reconcile(&env.service, true).await.unwrap();
    assert_eq!(report.checked, 4);
    assert_eq!((report.differences_found, report.repaired, report.unchecked), (0, 0, 0));
    assert!(!report.truncated);
    assert_eq!(
        report.listed, 3,
        "the provider's books, read back: the declined card holds nothing"
    );
    assert!(!report.listing_incomplete);
}

/// Our books lost payments the provider still has (a database restored from an older backup): the provider's listing
/// finds them, over more than one of its pages. Reconciliation voids what is only authorized and leaves captured
/// money to a person; a payment another system made on the same account is not ours to judge.
async fn payments_the_provider_holds_and_we_have_no_record_of_are_found(pool: Pool) {
    let env = env(pool).await;
    let ours = env
        .service
        .authorize(&customer(), request(1_000, "tok_visa"), "kept")
        .await
        .unwrap();
    let authorize = |reference: String, n: usize| Authorization {
        amount_minor: 2_000,
        currency: "EUR".to_owned(),
        token: "tok_visa".to_owned(),
        reference,
        idempotency_key: format!("lost-{n}"),
    };
    // Enough that the listing takes more than one page.
    let pages = usize::try_from(phoenix_payment::provider::simulated::LIST_PAGE).unwrap();
    let mut lost = Vec::new();
    for n in 0..pages {
        let id = uuid::Uuid::now_v7();
        env.simulator.authorize(&authorize(id.to_string(), n)).await.unwrap();
        lost.push(id);
    }
    let captured = uuid::Uuid::now_v7();
    let taken = env
        .simulator
        .authorize(&authorize(captured.to_string(), pages))
        .await
        .unwrap();
    env.simulator
        .capture(&taken.reference, 2_000, "lost-capture")
        .await
        .unwrap();
    env.simulator
        .authorize(&authorize("order-77 of another system".to_owned(), pages + 1))
        .await
        .unwrap();

    let report = reconcile(&env.service, false).await.unwrap();
    assert_eq!(report.listed, pages as u64 + 3, "every page of the provider's books");
    assert_eq!((report.differences_found, report.repaired), (pages as u64 + 1, 0));
    assert!(
        report
            .differences
            .iter()
            .all(|d| d.kind == DifferenceKind::Unrecorded && d.ours.is_none())
    );
    let mut found: Vec<uuid::Uuid> = report.differences.iter().map(|d| d.payment_id).collect();
    found.sort();
    let mut expected = lost.clone();
    expected.push(captured);
    expected.sort();
    assert_eq!(
        found, expected,
        "exactly the unrecorded ones: not ours, nor the other system's"
    );
    assert!(
        env.ledger(EntryKind::Void).await.is_empty(),
        "without repair no money moves"
    );

    let report = reconcile(&env.service, true).await.unwrap();
    assert_eq!(
        (report.differences_found, report.repaired),
        (pages as u64 + 1, pages as u64)
    );
    let captured_difference = report.differences.iter().find(|d| d.payment_id == captured).unwrap();
    assert!(
        !captured_difference.repaired,
        "captured money is for a person to refund"
    );
    let voided: Vec<String> = env
        .ledger(EntryKind::Void)
        .await
        .into_iter()
        .map(|e| e.reference)
        .collect();
    assert_eq!(voided.len(), pages);
    let books = env.simulator.payments().await.unwrap();
    for payment in &books {
        let expected = if lost.iter().any(|id| id.to_string() == payment.our_reference) {
            ProviderStatus::Voided
        } else if payment.our_reference == captured.to_string() {
            ProviderStatus::Captured
        } else {
            ProviderStatus::Authorized
        };
        assert_eq!(payment.payment.status, expected, "{}", payment.our_reference);
    }
    assert!(books.iter().any(|p| p.our_reference == ours.id.to_string()));
    // A voided authorization holds nothing: a third run finds only the captured money, and voids nothing twice.
    let again = reconcile(&env.service, true).await.unwrap();
    assert_eq!((again.differences_found, again.repaired), (1, 0));
    assert_eq!(again.differences[0].payment_id, captured);
    assert_eq!(env.ledger(EntryKind::Void).await.len(), pages);
    // Once a person refunds it in full, it asks nothing more.
    env.simulator
        .refund(&taken.reference, 2_000, "dashboard-refund")
        .await
        .unwrap();
    let settled = reconcile(&env.service, true).await.unwrap();
    assert_eq!(settled.differences_found, 0, "{settled:?}");
}

async fn a_refund_made_behind_our_back_is_found_and_taken_into_our_books(pool: Pool) {
    let env = env(pool.clone()).await;
    let staff = admin();
    let payment = env
        .service
        .authorize(&customer(), request(10_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    env.service.capture(&staff, payment.id, None, "cap-1").await.unwrap();
    // Someone refunds at the provider's dashboard, outside Phoenix.
    let reference = payment.provider_reference.clone().unwrap();
    env.simulator.refund(&reference, 3_000, "dashboard-1").await.unwrap();

    let report = reconcile(&env.service, false).await.unwrap();
    assert_eq!(report.differences_found, 1);
    let difference = &report.differences[0];
    assert_eq!(
        (difference.payment_id, difference.kind),
        (payment.id, DifferenceKind::Mismatch)
    );
    assert_eq!(difference.ours.as_ref().unwrap().refunded_minor, 0);
    assert_eq!(difference.theirs.as_ref().unwrap().refunded_minor, 3_000);
    assert!(!difference.repaired);
    let unchanged = env.service.payment(&staff, payment.id).await.unwrap();
    assert_eq!(unchanged.refunded_minor, 0, "without repair nothing changes");

    let report = reconcile(&env.service, true).await.unwrap();
    assert_eq!((report.differences_found, report.repaired), (1, 1));
    let repaired = env.service.payment(&staff, payment.id).await.unwrap();
    assert_eq!(
        (repaired.status, repaired.refunded_minor),
        (Status::PartiallyRefunded, 3_000)
    );
    let events = events_of(&pool, "payment.refunded.v1").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reconciled"], true);
    assert_eq!(
        env.ledger(EntryKind::Refund).await.len(),
        1,
        "reconciliation moved no money itself"
    );

    let again = reconcile(&env.service, true).await.unwrap();
    assert_eq!(again.differences_found, 0);
    // The rest can still be refunded through Phoenix, and no more.
    let rest = env
        .service
        .refund(&staff, payment.id, None, "r", "ref-1")
        .await
        .unwrap();
    assert_eq!((rest.status, rest.refunded_minor), (Status::Refunded, 10_000));
}

/// Every authorization's answer is lost on the way back (it happens, then times out), and the provider cannot be
/// searched meanwhile, so the service's own best-effort void cannot find it.
struct LostAnswers;

#[async_trait]
impl Tap for LostAnswers {
    async fn before(&self, call: Call) -> Result<(), ProviderError> {
        match call {
            Call::Find => Err(ProviderError::Unavailable("search is down".to_owned())),
            Call::List => Err(ProviderError::Unavailable("listing is down".to_owned())),
            _ => Ok(()),
        }
    }

    fn after(
        &self,
        call: Call,
        answer: Result<ProviderPayment, ProviderError>,
    ) -> Result<ProviderPayment, ProviderError> {
        match (call, answer) {
            (Call::Authorize, Ok(_)) => Err(ProviderError::Timeout),
            (_, answer) => answer,
        }
    }
}

async fn an_authorization_whose_answer_was_lost_is_found_and_voided(pool: Pool) {
    let mut options = options();
    options.resilience.max_retries = 1;
    let env = env_with(pool, options.clone(), |simulator| {
        Arc::new(Tapped {
            inner: simulator,
            tap: LostAnswers,
        })
    })
    .await;
    let payer = customer();
    let lost = env
        .service
        .authorize(&payer, request(6_000, "tok_visa"), "pay-1")
        .await
        .unwrap_err();
    let Error::AuthorizationUnknown { payment_id } = lost else {
        panic!("expected an unknown outcome: {lost:?}");
    };
    assert_eq!(
        env.service.payment(&payer, payment_id).await.unwrap().status,
        Status::Failed
    );
    // The provider holds the money (once: the retry carried the same key).
    let held = env.simulator.payments().await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].our_reference, payment_id.to_string());
    assert_eq!(held[0].payment.status, ProviderStatus::Authorized);

    // This process's provider can neither search nor list: the run says what it could not check.
    let blind = reconcile(&env.service, false).await.unwrap();
    assert_eq!((blind.unchecked, blind.differences_found), (1, 0));
    assert!(blind.listing_incomplete);

    // A run in another process, whose provider answers normally, finds it and voids it.
    let checker = env.restart(options, Arc::new(env.simulator.clone()));
    let report = reconcile(&checker, true).await.unwrap();
    assert_eq!((report.differences_found, report.repaired), (1, 1));
    let difference = &report.differences[0];
    assert_eq!(difference.kind, DifferenceKind::UnknownAuthorization);
    assert_eq!(difference.ours.as_ref().unwrap().status, Status::Failed);
    let voids = env.ledger(EntryKind::Void).await;
    assert_eq!(voids.len(), 1);
    assert_eq!(
        (voids[0].reference.as_str(), voids[0].amount_minor),
        (held[0].payment.reference.as_str(), 6_000)
    );
    assert_eq!(
        env.service.payment(&payer, payment_id).await.unwrap().status,
        Status::Failed
    );
    let again = reconcile(&checker, true).await.unwrap();
    assert_eq!(again.differences_found, 0, "a voided authorization holds nothing");
}

async fn an_abandoned_pending_authorization_is_finished_as_the_provider_says(pool: Pool) {
    let mut options = options();
    options.resilience.timeout_ms = 300;
    options.resilience.max_retries = 0;
    let env = env_with(pool.clone(), options.clone(), crash_after_authorizing).await;
    let payer = customer();
    let crashed = env.service.authorize(&payer, request(7_000, "tok_visa"), "pay-1").await;
    assert!(matches!(crashed, Err(Error::Interrupted)), "{crashed:?}");
    assert_eq!(stored_statuses(&pool).await, ["pending"]);

    let checker = env.restart(options, Arc::new(env.simulator.clone()));
    // While the crashed request's claim lasts it might still be working: reconciliation leaves it alone.
    let checker_ = checker.clone();
    wait_until(Duration::from_secs(15), || {
        let checker = checker_.clone();
        async move { reconcile(&checker, false).await.unwrap().in_progress == 0 }
    })
    .await;
    let report = reconcile(&checker, true).await.unwrap();
    assert_eq!((report.differences_found, report.repaired), (1, 1));
    assert_eq!(report.differences[0].kind, DifferenceKind::UnknownAuthorization);
    assert_eq!(stored_statuses(&pool).await, ["authorized"]);
    assert_eq!(events_of(&pool, "payment.authorized.v1").await.len(), 1);
    // The payer's retry now gets the authorized payment, charged once.
    let payment = env
        .service
        .authorize(&payer, request(7_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    assert_eq!(payment.status, Status::Authorized);
    assert_eq!(env.ledger(EntryKind::Authorization).await.len(), 1);
}

/// Counts the lookups in flight at once and the most ever.
struct Watching {
    in_flight: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

#[async_trait]
impl Tap for Watching {
    async fn before(&self, call: Call) -> Result<(), ProviderError> {
        if call == Call::Fetch {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
        }
        Ok(())
    }

    fn after(
        &self,
        call: Call,
        answer: Result<ProviderPayment, ProviderError>,
    ) -> Result<ProviderPayment, ProviderError> {
        if call == Call::Fetch {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        answer
    }
}

/// A large book is compared several payments at a time, but with no more than half the provider's call slots: the
/// bookings being paid for meanwhile keep the rest.
async fn the_first_pass_compares_several_payments_at_once_within_half_the_slots(pool: Pool) {
    let options = options();
    let half = options.resilience.max_concurrent / 2;
    let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let watching = {
        let (in_flight, most) = (in_flight.clone(), most.clone());
        move |simulator| -> Arc<dyn Provider> {
            Arc::new(Tapped {
                inner: simulator,
                tap: Watching { in_flight, most },
            })
        }
    };
    let env = env_with(pool, options, watching).await;
    let payer = customer();
    let n = 3 * half + 1;
    for i in 0..n {
        env.service
            .authorize(&payer, request(1_000, "tok_visa"), &format!("pay-{i}"))
            .await
            .unwrap();
    }
    let report = reconcile(&env.service, false).await.unwrap();
    assert_eq!((report.checked, report.differences_found), (n as u64, 0));
    assert_eq!(most.load(Ordering::SeqCst), half, "{half} of {n} compared at once");
    assert_eq!(in_flight.load(Ordering::SeqCst), 0);
}

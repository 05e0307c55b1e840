//! The cancellation saga's refund step against the real payment service (with its simulated provider), through the
//! local client and through payment's internal routes as a saga in another process calls them: what it reports as
//! its own refund, after a goodwill refund made directly on the payment or none, and again when the step is retried
//! with the same key after the payment has moved on.

use std::sync::Arc;
use std::time::Duration;

use phoenix_api::{Credential, Principal, Role, Roles, remote};
use phoenix_booking::orchestration::{Outcome, SagaKind, SagaRequest};
use phoenix_db::testing::TestDatabase;
use phoenix_db::{Backend, Pool, Timestamp};
use phoenix_payment::provider::simulated::EntryKind;
use phoenix_payment::{AuthorizeRequest, Service, Simulator};
use phoenix_saga::steps::{self, Action, Step};
use phoenix_saga::{Clients, Options, Saga};
use uuid::Uuid;

phoenix_db::contract_suite!(
    phoenix_payment::migrations(),
    [
        a_cancellation_after_a_goodwill_refund_reports_only_what_it_returned,
        a_cancellation_with_nothing_refunded_before_reports_the_policys_refund,
        a_retried_refund_step_reports_what_its_first_attempt_returned,
    ]
);

const TOKEN: &str = "an-internal-token-of-at-least-32-characters";

/// A payment service over `pool`, calling a simulator with a database of its own (kept alive by the guard).
async fn payment(pool: &Pool) -> (Service, Simulator, TestDatabase) {
    let simulator_db = match pool.backend() {
        Backend::Sqlite => TestDatabase::sqlite(phoenix_payment::simulator_migrations()).await,
        Backend::Postgres => TestDatabase::postgres(phoenix_payment::simulator_migrations()).await,
    };
    let simulator = Simulator::new(simulator_db.pool());
    let service = Service::new(
        pool.clone(),
        phoenix_payment::Options::default(),
        Arc::new(simulator.clone()),
    );
    (service, simulator, simulator_db)
}

/// A client of a service that is never called: the refund step calls payment only.
fn nowhere() -> remote::Client {
    remote::Client::new("http://127.0.0.1:9", TOKEN, Duration::from_secs(1)).unwrap()
}

/// The saga's clients with payment reached in process, or over payment's internal routes (served on a free port
/// behind the internal layer, as a saga in another process reaches them).
pub async fn clients(service: &Service, remote: bool) -> Clients {
    let payment = if remote {
        let router = phoenix_payment::internal_router(service.clone()).layer(phoenix_api::internal::Layer::new(TOKEN));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let client = remote::Client::new(&format!("http://{address}"), TOKEN, Duration::from_secs(30)).unwrap();
        phoenix_payment::Client::Remote(client)
    } else {
        phoenix_payment::Client::Local(service.clone())
    };
    Clients {
        booking: phoenix_booking::Client::Remote(nowhere()),
        inventory: phoenix_inventory::Client::Remote(nowhere()),
        payment,
    }
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

/// A payment of `total` by `payer`, captured as the booking saga captures it.
async fn paid(service: &Service, payer: &Principal, total: i64) -> Uuid {
    let request = AuthorizeRequest {
        amount_minor: total,
        currency: "EUR".to_owned(),
        payment_token: "tok_visa".to_owned(),
        reference: Some(Uuid::now_v7().to_string()),
    };
    let key = Uuid::now_v7();
    let payment = service.authorize(payer, request, &format!("pay-{key}")).await.unwrap();
    service
        .capture(payer, payment.id, None, &format!("cap-{key}"))
        .await
        .unwrap();
    payment.id
}

/// Support's goodwill refund, made on the payment directly.
async fn goodwill(service: &Service, payment_id: Uuid, amount_minor: i64) {
    let key = Uuid::now_v7().to_string();
    service
        .refund(
            &principal(&[Role::Support]),
            payment_id,
            Some(amount_minor),
            "goodwill",
            &key,
        )
        .await
        .unwrap();
}

/// A cancellation saga, as booking asks for it: refund at most `policy_minor` of `payment_id`, acting for `payer`.
fn cancellation(payer: &Principal, payment_id: Uuid, policy_minor: i64) -> Saga {
    let request = SagaRequest {
        booking_id: Uuid::now_v7(),
        kind: SagaKind::Cancellation,
        actor: *payer,
        lines: Vec::new(),
        hold_ttl_secs: 0,
        currency: "EUR".to_owned(),
        amount_minor: 0,
        payment_token: None,
        refund_minor: policy_minor,
        hold_id: Some(Uuid::now_v7()),
        payment_id: Some(payment_id),
        traceparent: None,
    };
    Saga::start(request, Timestamp::now())
}

/// Runs the refund step on `saga` and returns the outcome the saga then reports to booking.
async fn refund(saga: &mut Saga, clients: &Clients) -> Outcome {
    let step = Action::Do(Step::RefundPayment);
    steps::run(step, saga, clients, &Options::default()).await.unwrap();
    steps::cancelled(&saga.data)
}

fn cancelled(refunded_minor: i64, refund_minor: i64) -> Outcome {
    Outcome::Cancelled {
        refunded_minor,
        refund_minor: Some(refund_minor),
    }
}

async fn refunds_in_ledger(simulator: &Simulator) -> Vec<i64> {
    let entries = simulator.ledger().await.unwrap();
    entries
        .into_iter()
        .filter(|e| e.kind == EntryKind::Refund)
        .map(|e| e.amount_minor)
        .collect()
}

/// 5,000 of a 20,000 payment was refunded on goodwill; the cancellation's policy gives all 20,000 back. The saga
/// refunds the 15,000 left and reports that as its own refund, and 20,000 as the payment's refunds in all.
async fn a_cancellation_after_a_goodwill_refund_reports_only_what_it_returned(pool: Pool) {
    let (service, simulator, _guard) = payment(&pool).await;
    for remote in [false, true] {
        let clients = clients(&service, remote).await;
        let payer = principal(&[Role::Customer]);
        let payment_id = paid(&service, &payer, 20_000).await;
        goodwill(&service, payment_id, 5_000).await;
        let mut saga = cancellation(&payer, payment_id, 20_000);
        assert_eq!(
            refund(&mut saga, &clients).await,
            cancelled(20_000, 15_000),
            "remote: {remote}"
        );
        assert_eq!(saga.data.refund_made_minor, Some(15_000));
    }
    assert_eq!(refunds_in_ledger(&simulator).await, [5_000, 15_000, 5_000, 15_000]);
}

/// Nothing refunded before: the saga's refund is the policy's, whole or with a fee kept; a policy that gives nothing
/// back reports 0 without asking payment anything.
async fn a_cancellation_with_nothing_refunded_before_reports_the_policys_refund(pool: Pool) {
    let (service, simulator, _guard) = payment(&pool).await;
    for remote in [false, true] {
        let clients = clients(&service, remote).await;
        for (policy, refunded) in [(20_000, 20_000), (12_000, 12_000), (0, 0)] {
            let payer = principal(&[Role::Customer]);
            let payment_id = paid(&service, &payer, 20_000).await;
            let mut saga = cancellation(&payer, payment_id, policy);
            let outcome = refund(&mut saga, &clients).await;
            assert_eq!(
                outcome,
                cancelled(refunded, policy),
                "remote: {remote}, policy {policy}"
            );
        }
    }
    assert_eq!(refunds_in_ledger(&simulator).await, [20_000, 12_000, 20_000, 12_000]);
}

/// A step retried with the same key (its answer was lost, or the saga crashed before saving it) gets payment's first
/// answer again: the same refund, reported the same, even though the payment has been refunded further since. Read
/// afresh, the payment would say otherwise. Also when the first attempt found nothing left.
async fn a_retried_refund_step_reports_what_its_first_attempt_returned(pool: Pool) {
    let (service, simulator, _guard) = payment(&pool).await;
    for remote in [false, true] {
        let clients = clients(&service, remote).await;
        // (goodwill before, the policy's refund, goodwill between the attempts, what the saga reports)
        for (before, policy, between, reported) in [
            (5_000, 8_000, 2_000, cancelled(13_000, 8_000)),
            (5_000, 20_000, 0, cancelled(20_000, 15_000)),
            (20_000, 20_000, 0, cancelled(20_000, 0)),
        ] {
            let payer = principal(&[Role::Customer]);
            let payment_id = paid(&service, &payer, 20_000).await;
            goodwill(&service, payment_id, before).await;
            let saved = cancellation(&payer, payment_id, policy);
            let mut first = saved.clone();
            assert_eq!(refund(&mut first, &clients).await, reported, "remote: {remote}");
            if between > 0 {
                goodwill(&service, payment_id, between).await;
            }
            // The same step again from the state saved before it: the same key, the same data learned.
            let mut retried = saved.clone();
            assert_eq!(refund(&mut retried, &clients).await, reported, "remote: {remote}");
            assert_eq!(retried.data, first.data);
        }
    }
    let once = [5_000, 8_000, 2_000, 5_000, 15_000, 20_000];
    assert_eq!(refunds_in_ledger(&simulator).await, [once, once].concat());
}

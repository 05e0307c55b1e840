//! The simulated provider on its own: it must refuse what a real provider refuses and deduplicate like one, since
//! payment's own tests trust it to.

use phoenix_db::testing::TestDatabase;
use phoenix_db::{Pool, PoolOptions};
use phoenix_payment::provider::simulated::EntryKind;
use phoenix_payment::{Authorization, Provider, ProviderError, ProviderStatus, Simulator, simulator_migrations};

phoenix_db::contract_suite!(
    simulator_migrations(),
    [
        the_simulator_refuses_what_it_does_not_hold,
        the_simulator_answers_a_repeated_key_from_its_records,
        the_simulators_books_outlive_its_process,
        racing_settlements_of_one_payment_move_money_once,
    ]
);

fn authorization(key: &str, token: &str) -> Authorization {
    Authorization {
        amount_minor: 1_000,
        currency: "EUR".to_owned(),
        token: token.to_owned(),
        reference: "our-1".to_owned(),
        idempotency_key: key.to_owned(),
    }
}

fn rejected<T: std::fmt::Debug>(result: Result<T, ProviderError>) {
    assert!(matches!(result, Err(ProviderError::Rejected(_))), "{result:?}");
}

async fn the_simulator_refuses_what_it_does_not_hold(pool: Pool) {
    let simulator = Simulator::new(pool);
    let payment = simulator.authorize(&authorization("a", "tok_visa")).await.unwrap();
    let reference = payment.reference.as_str();
    rejected(simulator.capture(reference, 1_001, "c-0").await);
    rejected(simulator.refund(reference, 1, "r-0").await);
    let captured = simulator.capture(reference, 600, "c-1").await.unwrap();
    assert_eq!(
        (captured.status, captured.captured_minor),
        (ProviderStatus::Captured, 600)
    );
    rejected(simulator.capture(reference, 100, "c-2").await);
    rejected(simulator.void(reference, "v-1").await);
    rejected(simulator.refund(reference, 601, "r-1").await);
    simulator.refund(reference, 600, "r-2").await.unwrap();
    rejected(simulator.refund(reference, 1, "r-3").await);
    rejected(simulator.capture("sim_nothing", 1, "c-3").await);
    rejected(simulator.fetch("sim_nothing").await);
    assert_eq!(simulator.find("nobody's").await.unwrap(), None);
    assert_eq!(simulator.find("our-1").await.unwrap().unwrap().refunded_minor, 600);

    let other = simulator.authorize(&authorization("b", "tok_visa")).await.unwrap();
    let voided = simulator.void(&other.reference, "v-2").await.unwrap();
    assert_eq!(voided.status, ProviderStatus::Voided);
    rejected(simulator.capture(&other.reference, 1, "c-4").await);
    let kinds: Vec<(EntryKind, i64)> = simulator
        .ledger()
        .await
        .unwrap()
        .iter()
        .map(|e| (e.kind, e.amount_minor))
        .collect();
    assert_eq!(
        kinds,
        [
            (EntryKind::Authorization, 1_000),
            (EntryKind::Capture, 600),
            (EntryKind::Refund, 600),
            (EntryKind::Authorization, 1_000),
            (EntryKind::Void, 1_000),
        ]
    );
}

async fn the_simulator_answers_a_repeated_key_from_its_records(pool: Pool) {
    let simulator = Simulator::new(pool);
    let first = simulator.authorize(&authorization("a", "tok_visa")).await.unwrap();
    assert_eq!(
        simulator.authorize(&authorization("a", "tok_visa")).await.unwrap(),
        first
    );
    let mut different = authorization("a", "tok_visa");
    different.amount_minor = 2_000;
    rejected(simulator.authorize(&different).await);
    rejected(simulator.capture(&first.reference, 1_000, "a").await);

    let declined = simulator.authorize(&authorization("d", "tok_decline")).await;
    assert_eq!(simulator.authorize(&authorization("d", "tok_decline")).await, declined);

    for attempt in 1..=2 {
        let flaky = simulator.authorize(&authorization("f", "tok_flaky")).await;
        assert!(
            matches!(flaky, Err(ProviderError::Unavailable(_))),
            "attempt {attempt}: {flaky:?}"
        );
    }
    let flaky = simulator.authorize(&authorization("f", "tok_flaky")).await.unwrap();
    assert_eq!(flaky.status, ProviderStatus::Authorized);
    let authorizations = simulator.ledger().await.unwrap();
    assert_eq!(
        authorizations
            .iter()
            .filter(|e| e.kind == EntryKind::Authorization)
            .count(),
        2
    );
    // Settlements answer a repeated key as the first time, and refuse its reuse for other parameters.
    let captured = simulator.capture(&first.reference, 400, "c").await.unwrap();
    assert_eq!(
        (captured.status, captured.captured_minor),
        (ProviderStatus::Captured, 400)
    );
    assert_eq!(simulator.capture(&first.reference, 400, "c").await.unwrap(), captured);
    rejected(simulator.capture(&first.reference, 300, "c").await);
    let refunded = simulator.refund(&first.reference, 100, "r").await.unwrap();
    assert_eq!(refunded.refunded_minor, 100);
    assert_eq!(simulator.refund(&first.reference, 100, "r").await.unwrap(), refunded);
    let other = simulator.authorize(&authorization("b", "tok_visa")).await.unwrap();
    let voided = simulator.void(&other.reference, "v").await.unwrap();
    assert_eq!(voided.status, ProviderStatus::Voided);
    assert_eq!(simulator.void(&other.reference, "v").await.unwrap(), voided);
    let settlements: Vec<(EntryKind, i64)> = simulator
        .ledger()
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind != EntryKind::Authorization)
        .map(|e| (e.kind, e.amount_minor))
        .collect();
    assert_eq!(
        settlements,
        [
            (EntryKind::Capture, 400),
            (EntryKind::Refund, 100),
            (EntryKind::Void, 1_000)
        ]
    );
    // Each key counts its requests, replays included; refused reuses of a key count for nothing.
    assert_eq!(simulator.requests_received().await.unwrap(), 2 + 2 + 3 + 2 + 2 + 1 + 2);
}

/// Many captures of one payment at once: with one key each, one wins and the others are refused; with one key
/// shared, every request gets the one answer. Either way one capture is booked.
async fn racing_settlements_of_one_payment_move_money_once(pool: Pool) {
    const RACERS: usize = 16;
    let simulator = Simulator::new(pool);
    let payment = simulator.authorize(&authorization("a", "tok_visa")).await.unwrap();
    let results = race(&simulator, &payment.reference, |n| format!("own-{n}")).await;
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert_eq!(won[0].captured_minor, 1_000);
    for result in results.iter().filter(|r| r.is_err()) {
        rejected(result.clone());
    }

    let shared = simulator.authorize(&authorization("b", "tok_visa")).await.unwrap();
    let results = race(&simulator, &shared.reference, |_| "shared".to_owned()).await;
    let first = results[0].clone().unwrap();
    assert_eq!(first.status, ProviderStatus::Captured);
    assert!(results.iter().all(|r| r.as_ref() == Ok(&first)), "{results:?}");

    let captures: Vec<String> = simulator
        .ledger()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EntryKind::Capture)
        .map(|e| e.reference)
        .collect();
    assert_eq!(captures, [payment.reference, shared.reference]);
    // Two authorizations, every racer of both rounds (refused ones included: their keys were new).
    assert_eq!(simulator.requests_received().await.unwrap(), 2 + 2 * RACERS as i64);

    async fn race(
        simulator: &Simulator,
        reference: &str,
        key: impl Fn(usize) -> String,
    ) -> Vec<Result<phoenix_payment::ProviderPayment, ProviderError>> {
        let racers: Vec<_> = (0..RACERS)
            .map(|n| {
                let (simulator, reference, key) = (simulator.clone(), reference.to_owned(), key(n));
                tokio::spawn(async move { simulator.capture(&reference, 1_000, &key).await })
            })
            .collect();
        let mut results = Vec::with_capacity(RACERS);
        for racer in racers {
            results.push(racer.await.unwrap());
        }
        results
    }
}

async fn the_simulators_books_outlive_its_process(pool: Pool) {
    let simulator = Simulator::new(pool.clone());
    let payment = simulator
        .authorize(&authorization("a", "tok_mastercard"))
        .await
        .unwrap();
    simulator.capture(&payment.reference, 1_000, "c").await.unwrap();
    let ledger = simulator.ledger().await.unwrap();
    drop(simulator);

    // Another connection to the same database, as a test process would open it after the server was killed.
    let reopened = reopen(&pool).await;
    let again = Simulator::new(reopened);
    assert_eq!(again.ledger().await.unwrap(), ledger);
    let books = again.payments().await.unwrap();
    assert_eq!(books.len(), 1);
    assert_eq!(
        (books[0].card.as_str(), books[0].our_reference.as_str()),
        ("mastercard", "our-1")
    );
    assert_eq!(books[0].payment.captured_minor, 1_000);
}

/// A second pool on the database behind `pool`.
async fn reopen(pool: &Pool) -> Pool {
    let url = match pool {
        Pool::Sqlite(sqlite) => {
            let options = sqlite.connect_options();
            format!("sqlite://{}", options.get_filename().display())
        }
        Pool::Postgres(postgres) => {
            let options = postgres.connect_options();
            TestDatabase::postgres_url_for(options.get_database().unwrap())
        }
    };
    Pool::connect(&url, PoolOptions::default()).await.unwrap()
}

//! The saga against the real services, on SQLite and on PostgreSQL: a failure injected at each step before the
//! capture undoes everything done so far; every step replayed (as after a crash between a call and its save)
//! changes nothing; a saga that cannot reach the capture before its hold expires compensates; a hanging provider
//! times out, the booking is undone, the circuit opens and fails fast, then recovers.

use phoenix::Config;
use phoenix_payment::provider::simulated::EntryKind;
use reqwest::Method;
use serde_json::json;

use crate::bookings::{World, finished_sagas, night, world};
use crate::common::{PostgresDatabases, TestApp, config, spawn_with};

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The app on `backend` with `config`; the PostgreSQL databases live as long as the returned guard.
async fn spawn(backend: Backend, mut config: Config) -> (TestApp, Option<PostgresDatabases>) {
    let databases = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let databases = PostgresDatabases::new();
            config.database_url = Some(phoenix::config::Secret::new(databases.url.clone()));
            Some(databases)
        }
    };
    (spawn_with(config).await, databases)
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_failure_at_each_step_before_the_capture_undoes_everything,
    every_step_replayed_books_holds_and_charges_once,
    a_saga_that_cannot_finish_before_its_hold_expires_compensates,
    a_hanging_provider_times_out_opens_the_circuit_and_recovers,
);

/// What the simulated provider did, by kind: (authorized, captured, refunded, voids).
async fn provider(app: &TestApp) -> (i64, i64, i64, usize) {
    let entries = app.simulator().ledger().await.unwrap();
    let sum = |kind: EntryKind| {
        entries
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.amount_minor)
            .sum::<i64>()
    };
    let voids = entries.iter().filter(|e| e.kind == EntryKind::Void).count();
    (
        sum(EntryKind::Authorization),
        sum(EntryKind::Capture),
        sum(EntryKind::Refund),
        voids,
    )
}

/// One night from day `from` for a new customer, paid with `token`.
async fn book(app: &TestApp, world: &World, token: &str, from: i64) -> crate::common::Reply {
    let (_, ann) = app
        .customer(&format!("ann-{}@example.com", uuid::Uuid::new_v4().simple()))
        .await;
    crate::bookings::book(
        app,
        &ann,
        vec![world.stay(&world.flexible_plan, from, 1, 1, 1)],
        1,
        token,
    )
    .await
}

async fn a_failure_at_each_step_before_the_capture_undoes_everything(backend: Backend) {
    for (step, undone) in [
        ("hold_inventory", vec!["fail_booking"]),
        ("authorize_payment", vec!["release_hold", "fail_booking"]),
        ("confirm_hold", vec!["void_payment", "release_hold", "fail_booking"]),
        ("capture_payment", vec!["release_hold", "void_payment", "fail_booking"]),
    ] {
        let mut config = config();
        config.saga.fail_at = Some(step.to_owned());
        let (app, _databases) = spawn(backend, config).await;
        let world = world(&app, app.admin().await).await;
        let failed = book(&app, &world, "tok_visa", 10).await;
        failed.assert_problem(422, "injected_failure");
        let id = failed.body["booking_id"].as_str().unwrap();
        let sagas = finished_sagas(&app, &world.admin, id).await;
        let saga = &sagas.body["items"][0];
        assert_eq!(saga["state"], "compensated", "{step}: {saga}");
        let undos: Vec<&str> = saga["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["direction"] == "undo")
            .map(|s| s["step"].as_str().unwrap())
            .collect();
        assert_eq!(undos, undone, "{step}");
        let counters = night(&app, &world, 10).await;
        assert_eq!(
            (counters["held"].as_i64(), counters["sold"].as_i64()),
            (Some(0), Some(0)),
            "{step}"
        );
        let (authorized, captured, _, voids) = provider(&app).await;
        assert_eq!(captured, 0, "{step}: nothing is captured");
        assert_eq!(voids, usize::from(authorized > 0), "{step}: an authorization is voided");
    }
}

async fn every_step_replayed_books_holds_and_charges_once(backend: Backend) {
    let mut config = config();
    config.saga.replay_steps = true;
    let (app, _databases) = spawn(backend, config).await;
    let world = world(&app, app.admin().await).await;
    let made = book(&app, &world, "tok_visa", 10).await;
    assert_eq!(made.status, 201, "{made:?}");
    let total = made.body["total_minor"].as_i64().unwrap();
    assert_eq!(night(&app, &world, 10).await["sold"], 1);
    assert_eq!(provider(&app).await, (total, total, 0, 0));

    let id = made.body["id"].as_str().unwrap();
    let cancelled = app
        .call(
            Method::PUT,
            &format!("/api/v1/bookings/{id}/cancel"),
            Some(&world.admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(cancelled.body["status"], "cancelled", "{cancelled:?}");
    assert_eq!(provider(&app).await, (total, total, total, 0), "refunded once");
    assert_eq!(night(&app, &world, 10).await["sold"], 0);

    let declined = book(&app, &world, "tok_decline", 11).await;
    declined.assert_problem(402, "payment_declined");
    let counters = night(&app, &world, 11).await;
    assert_eq!(
        (counters["held"].as_i64(), counters["sold"].as_i64()),
        (Some(0), Some(0))
    );
}

async fn a_saga_that_cannot_finish_before_its_hold_expires_compensates(backend: Backend) {
    let mut config = config();
    // A hold lives a minute and the saga must reach the capture two minutes before that: it never can.
    config.booking.hold_ttl_secs = 60;
    config.saga.deadline_margin_secs = 120;
    let (app, _databases) = spawn(backend, config).await;
    let world = world(&app, app.admin().await).await;
    let expired = book(&app, &world, "tok_visa", 10).await;
    expired.assert_problem(409, "hold_expired");
    let counters = night(&app, &world, 10).await;
    assert_eq!(
        (counters["held"].as_i64(), counters["sold"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(provider(&app).await.1, 0);
}

async fn a_hanging_provider_times_out_opens_the_circuit_and_recovers(backend: Backend) {
    let mut config = config();
    let resilience = &mut config.payment.resilience;
    resilience.timeout_ms = 200;
    resilience.max_retries = 0;
    resilience.breaker.min_calls = 2;
    resilience.breaker.open_secs = 1;
    config.saga.max_attempts = 2;
    config.saga.backoff_base_ms = 10;
    let (app, _databases) = spawn(backend, config).await;
    let world = world(&app, app.admin().await).await;

    for from in [10, 11] {
        let hung = book(&app, &world, "tok_hang", from).await;
        hung.assert_problem(503, "provider_unavailable");
        let counters = night(&app, &world, from).await;
        assert_eq!(
            (counters["held"].as_i64(), counters["sold"].as_i64()),
            (Some(0), Some(0))
        );
        // Payment failed the authorization the provider never answered, so the saga did not try it again with the
        // same key (which would only replay that answer): it undid the hold at once.
        let id = hung.body["booking_id"].as_str().unwrap();
        let sagas = finished_sagas(&app, &world.admin, id).await;
        let steps: Vec<(&str, &str)> = sagas.body["items"][0]["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["step"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
            .collect();
        assert_eq!(
            steps,
            [
                ("hold_inventory", "ok"),
                ("authorize_payment", "failed"),
                ("release_hold", "ok"),
                ("fail_booking", "ok")
            ]
        );
        let booking = app.get(&format!("/api/v1/bookings/{id}"), Some(&world.admin)).await;
        assert_eq!(
            booking.body["failure"],
            json!({"code": "provider_unavailable",
                   "detail": "the card provider did not answer in time, so nothing was charged"})
        );
    }
    // Two timeouts out of two calls: the circuit is open, and a good card is refused without calling the provider.
    let calls_before = app.simulator().requests_received().await.unwrap();
    let refused = book(&app, &world, "tok_visa", 12).await;
    refused.assert_problem(503, "provider_unavailable");
    assert_eq!(
        app.simulator().requests_received().await.unwrap(),
        calls_before,
        "the call failed fast"
    );

    // After `open_secs` the circuit lets a probe through, and it succeeds.
    let mut recovered = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let reply = book(&app, &world, "tok_visa", 13).await;
        if reply.status == 201 {
            recovered = Some(reply);
            break;
        }
        reply.assert_problem(503, "provider_unavailable");
    }
    let recovered = recovered.expect("the circuit closes again once the provider answers");
    assert_eq!(recovered.body["status"], "confirmed");
}

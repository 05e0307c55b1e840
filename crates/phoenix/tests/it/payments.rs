//! Payments through the gateway and `phoenix payments reconcile` as an operator runs it: money moved at the
//! provider behind our back is reported, repaired with `--repair`, and then reconciles clean.

use phoenix::config::Secret;
use phoenix_payment::Provider;
use serde_json::json;

use crate::common::{PostgresDatabases, config, spawn_with};
use crate::process::phoenix;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_move_money_only_within_what_was_authorized_and_captured() {
    let app = spawn_with(config()).await;
    let admin = app.admin().await;
    let desk = app.agent(&admin, "desk@agency.example").await;
    let rival = app.agent(&admin, "desk@rival.example").await;
    let (_, ann) = app.customer("ann@example.com").await;
    let authorize = |token: &str| json!({"amount_minor": 10_000, "currency": "EUR", "payment_token": token});

    // Customers pay through their bookings: a stand-alone authorization is the agency desk's.
    app.post_keyed("/api/v1/payments", Some(&ann), "pay-0", authorize("tok_visa"))
        .await
        .assert_problem(403, "forbidden");
    let paid = app
        .post_keyed("/api/v1/payments", Some(&desk), "pay-1", authorize("tok_visa"))
        .await;
    assert_eq!(paid.status, 201, "{paid:?}");
    assert_eq!(paid.body["status"], "authorized");
    let id = paid.body["id"].as_str().unwrap();
    let again = app
        .post_keyed("/api/v1/payments", Some(&desk), "pay-1", authorize("tok_visa"))
        .await;
    assert_eq!(again.body["id"], id, "the same key answers the same payment");
    app.get(&format!("/api/v1/payments/{id}"), Some(&rival))
        .await
        .assert_problem(404, "not_found");
    app.get(&format!("/api/v1/payments/{id}"), Some(&ann))
        .await
        .assert_problem(404, "not_found");
    app.post_keyed(
        &format!("/api/v1/payments/{id}/capture"),
        Some(&rival),
        "cap-1",
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");

    let captured = app
        .post_keyed(
            &format!("/api/v1/payments/{id}/capture"),
            Some(&admin),
            "cap-1",
            json!({"amount_minor": 6_000}),
        )
        .await;
    assert_eq!(captured.body["captured_minor"], 6_000, "{captured:?}");
    app.post_keyed(
        &format!("/api/v1/payments/{id}/refund"),
        Some(&admin),
        "ref-1",
        json!({"amount_minor": 7_000, "reason": "too much"}),
    )
    .await
    .assert_problem(422, "amount_exceeds_captured");
    let refunded = app
        .post_keyed(
            &format!("/api/v1/payments/{id}/refund"),
            Some(&admin),
            "ref-2",
            json!({"amount_minor": 2_500, "reason": "late check-in"}),
        )
        .await;
    assert_eq!(refunded.body["refunded_minor"], 2_500, "{refunded:?}");

    app.post_keyed(
        "/api/v1/payments",
        Some(&desk),
        "pay-2",
        authorize("tok_insufficient_funds"),
    )
    .await
    .assert_problem(402, "payment_declined");
    app.post_keyed(
        "/api/v1/payments",
        Some(&desk),
        "pay-3",
        authorize("4111-1111-1111-1111"),
    )
    .await
    .assert_problem(422, "card_number_not_allowed");
    app.post("/api/v1/payments", Some(&desk), authorize("tok_visa"))
        .await
        .assert_problem(400, "idempotency_key_required");
}

/// Books through a real process, moves money at the provider behind the platform's back, and reconciles.
async fn reconcile_finds_and_repairs_what_the_provider_did_alone(database_url: Option<&str>) {
    let data = tempfile::tempdir().unwrap();
    let mut config = config();
    config.data_dir = data.path().to_owned();
    config.database_url = database_url.map(Secret::new);
    let app = spawn_with(config.clone()).await;
    let admin = app.admin().await;
    let desk = app.agent(&admin, "desk@agency.example").await;
    let paid = app
        .post_keyed(
            "/api/v1/payments",
            Some(&desk),
            "pay-1",
            json!({"amount_minor": 10_000, "currency": "EUR", "payment_token": "tok_visa"}),
        )
        .await;
    let id = paid.body["id"].as_str().unwrap().to_owned();
    let captured = app
        .post_keyed(
            &format!("/api/v1/payments/{id}/capture"),
            Some(&admin),
            "cap-1",
            json!({}),
        )
        .await;
    let reference = captured.body["provider_reference"].as_str().unwrap().to_owned();
    // Someone refunds at the provider's own dashboard.
    app.simulator()
        .refund(&reference, 4_000, "dashboard-refund")
        .await
        .unwrap();
    drop(app);

    let run = |args: &[&str]| {
        let mut command = phoenix(data.path());
        if let Some(url) = database_url {
            command.env("PHOENIX_DATABASE_URL", url);
        }
        command.args(["payments", "reconcile"]).args(args).output().unwrap()
    };
    let found = run(&[]);
    assert!(!found.status.success(), "a difference remains: exit non-zero");
    let report: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(report["differences_found"], 1, "{report}");
    assert_eq!(report["differences"][0]["payment_id"], id.as_str());
    assert_eq!(report["differences"][0]["theirs"]["refunded_minor"], 4_000);

    let repaired = run(&["--repair"]);
    assert!(
        repaired.status.success(),
        "{}",
        String::from_utf8_lossy(&repaired.stderr)
    );
    let clean = run(&[]);
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stdout));
    let report: serde_json::Value = serde_json::from_slice(&clean.stdout).unwrap();
    assert_eq!(
        (report["checked"].as_u64(), report["differences_found"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        (report["listed"].as_u64(), report["listing_incomplete"].as_bool()),
        (Some(1), Some(false)),
        "the provider's books were read back too"
    );

    let app = spawn_with(config).await;
    let admin = app.admin().await;
    let payment = app.get(&format!("/api/v1/payments/{id}"), Some(&admin)).await;
    assert_eq!(
        payment.body["refunded_minor"], 4_000,
        "our books follow the provider: {payment:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_and_repairs_what_the_provider_did_alone_on_sqlite() {
    reconcile_finds_and_repairs_what_the_provider_did_alone(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_and_repairs_what_the_provider_did_alone_on_postgres() {
    let databases = PostgresDatabases::new();
    reconcile_finds_and_repairs_what_the_provider_did_alone(Some(&databases.url)).await;
}

//! The booking saga survives its process dying at every step: a real `phoenix serve` aborts (the saga's
//! fault-injection setting) right after each step's result is saved, forward and in the middle of compensation.
//! After a restart every booking ends confirmed with its money captured and its unit sold, or failed with its hold
//! released and nothing captured, counted at the provider's ledger and at inventory.

use serde_json::{Value, json};

use phoenix_payment::provider::simulated::{Entry, EntryKind};

use crate::bookings::{World, booking, key, night, world};
use crate::common::{Api, PostgresDatabases};
use crate::process::{PASSWORD, Server, phoenix};

const ENV: &[(&str, &str)] = &[
    ("PHOENIX_GATEWAY__RATE_LIMIT_PER_USER_PER_MIN", "1000000"),
    ("PHOENIX_GATEWAY__RATE_LIMIT_PER_IP_PER_MIN", "1000000"),
    // A dead owner's lease must run out quickly for the restarted process to resume its sagas.
    ("PHOENIX_SAGA__LEASE_SECS", "2"),
    ("PHOENIX_SAGA__RESUME_INTERVAL_MS", "200"),
];

/// Creates the admin `root@example.com` in `data` with the CLI, as an operator would before the first start.
pub(crate) fn bootstrap_admin(data: &std::path::Path, env: &[(&str, &str)]) {
    let output = phoenix(data)
        .envs(env.iter().copied())
        .args(["user", "create", "--email", "root@example.com", "--role", "admin"])
        .env("PHOENIX_USER_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// A token of the admin `bootstrap_admin` made.
pub(crate) async fn admin_token(api: &Api) -> String {
    let reply = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "root@example.com", "password": PASSWORD}),
        )
        .await;
    reply.body["access_token"].as_str().unwrap().to_owned()
}

/// Polls (the saga runs in another process) until the booking is no longer in flight.
async fn settled(api: &Api, token: &str, id: &str) -> Value {
    for _ in 0..600 {
        let reply = api.get(&format!("/api/v1/bookings/{id}"), Some(token)).await;
        if let Some(status) = reply.body["status"].as_str()
            && !matches!(status, "pending" | "cancelling")
        {
            return reply.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("booking {id} never settled");
}

/// The simulator's ledger for one of our payments, read from its own database after the test.
async fn provider_entries(data: &std::path::Path, database_url: Option<&str>) -> Vec<Entry> {
    let mut config = phoenix::Config::default();
    config.data_dir = data.to_owned();
    config.database_url = database_url.map(phoenix::config::Secret::new);
    let pool = phoenix::app::simulator_database(&config).await.unwrap();
    let entries = phoenix_payment::Simulator::new(pool.clone()).ledger().await.unwrap();
    pool.close().await;
    entries
}

/// Books once with the process set to abort after `step`, restarts it, and checks the booking ended whole.
async fn crash_after(step: &str, payment_token: &str, database_url: Option<&str>) {
    let mut env: Vec<(&str, &str)> = ENV.to_vec();
    if let Some(url) = database_url {
        env.push(("PHOENIX_DATABASE_URL", url));
        env.push(("PHOENIX_SECRETS_KEY", crate::process::SECRETS_KEY));
    }
    let data = tempfile::tempdir().unwrap();
    bootstrap_admin(data.path(), &env);
    let server = Server::start_with(data.path(), &env);
    let api = Api::new(&server.address);
    let admin = admin_token(&api).await;
    let world: World = world(&api, admin.clone()).await;
    drop(server);

    let mut crashing = env.clone();
    crashing.push(("PHOENIX_SAGA__CRASH_AFTER", step));
    let mut server = Server::start_with(data.path(), &crashing);
    let api = Api::new(&server.address);
    let (_, ann) = api.customer("ann@example.com").await;
    let body = booking(vec![world.stay(&world.flexible_plan, 10, 1, 1, 1)], 1, payment_token);
    // The process dies while the request waits for the saga, or (after the last step) just as it answers: what
    // the client got is not the point; what the system holds after the restart is.
    let _ = api
        .http
        .post(format!("{}/api/v1/bookings", api.base))
        .bearer_auth(&ann)
        .header("idempotency-key", key())
        .json(&body)
        .send()
        .await;
    let status = server.child.wait().unwrap();
    assert!(!status.success(), "the process must have aborted after {step}");

    let server = Server::start_with(data.path(), &env);
    let api = Api::new(&server.address);
    let (ann, _) = api.login("ann@example.com").await;
    let mine = api.get("/api/v1/bookings", Some(&ann)).await;
    let items = mine.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one booking was made: {mine:?}");
    let id = items[0]["id"].as_str().unwrap();
    let ended = settled(&api, &ann, id).await;
    let counters = night(&api, &world, 10).await;
    drop(server);
    let entries = provider_entries(data.path(), database_url).await;
    let sum = |kind: EntryKind| -> i64 { entries.iter().filter(|e| e.kind == kind).map(|e| e.amount_minor).sum() };
    let (authorized, captured) = (sum(EntryKind::Authorization), sum(EntryKind::Capture));
    let voided = entries.iter().filter(|e| e.kind == EntryKind::Void).count();
    let total = ended["total_minor"].as_i64().unwrap();
    match ended["status"].as_str().unwrap() {
        "confirmed" => {
            assert_eq!(captured, total, "a confirmed booking is paid exactly once: {entries:?}");
            assert_eq!(
                (counters["sold"].as_i64(), counters["held"].as_i64()),
                (Some(1), Some(0)),
                "{counters}"
            );
        }
        "failed" => {
            assert_eq!(captured, 0, "a failed booking is never charged: {entries:?}");
            assert!(
                authorized == 0 || voided == 1,
                "an authorization is voided: {entries:?}"
            );
            assert_eq!(
                (counters["sold"].as_i64(), counters["held"].as_i64()),
                (Some(0), Some(0)),
                "{counters}"
            );
        }
        other => panic!("booking ended {other}: {ended}"),
    }
}

macro_rules! crash_points {
    ($($name:ident: $step:literal with $token:literal),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::crash_after($step, $token, None).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let database = super::PostgresDatabases::new();
                    super::crash_after($step, $token, Some(&database.url)).await;
                }
            )*
        }
    };
}

crash_points!(
    after_holding: "hold_inventory" with "tok_visa",
    after_authorizing: "authorize_payment" with "tok_visa",
    after_confirming_the_hold: "confirm_hold" with "tok_visa",
    after_capturing: "capture_payment" with "tok_visa",
    after_confirming_the_booking: "confirm_booking" with "tok_visa",
    in_the_middle_of_compensation: "undo:release_hold" with "tok_decline",
    after_compensating: "undo:fail_booking" with "tok_decline",
);

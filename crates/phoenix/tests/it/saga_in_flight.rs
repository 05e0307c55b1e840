//! A booking whose card authorization is at the provider when its `phoenix serve` is killed (SIGKILL). Payment keeps
//! the pending authorization claimed by the dead process until the claim lapses, and answers the restarted saga 409
//! `idempotency_key_in_use` meanwhile: the saga waits as asked (spending no attempt), then the same key takes the
//! authorization over and the saga learns the provider's own answer. Here the provider never answers (`tok_hang`):
//! the booking fails for that reason, its payment is failed (not left pending for an operator), and its hold is
//! released. On SQLite and on PostgreSQL.

use serde_json::Value;
use uuid::Uuid;

use crate::bookings::{World, booking, key, night, world};
use crate::common::{Api, PostgresDatabases};
use crate::process::{SECRETS_KEY, Server};
use crate::saga_crash::{admin_token, bootstrap_admin};

const ENV: &[(&str, &str)] = &[
    ("PHOENIX_GATEWAY__RATE_LIMIT_PER_USER_PER_MIN", "1000000"),
    ("PHOENIX_GATEWAY__RATE_LIMIT_PER_IP_PER_MIN", "1000000"),
    // The dead owner's lease runs out quickly for the restarted process to resume its saga.
    ("PHOENIX_SAGA__LEASE_SECS", "2"),
    ("PHOENIX_SAGA__RESUME_INTERVAL_MS", "200"),
    // One provider attempt of at most 2 s and no retry: payment claims an authorization for 2 x 2 + 1 = 5 s.
    ("PHOENIX_PAYMENT__RESILIENCE__TIMEOUT_MS", "2000"),
    ("PHOENIX_PAYMENT__RESILIENCE__MAX_RETRIES", "0"),
];

/// The deployment's configuration as the test reads its databases.
fn config(data: &std::path::Path, database_url: Option<&str>) -> phoenix::Config {
    let mut config = phoenix::Config::default();
    config.data_dir = data.to_owned();
    config.database_url = database_url.map(phoenix::config::Secret::new);
    config
}

/// How many requests reached the simulated provider, read from its own database.
async fn provider_requests(config: &phoenix::Config) -> i64 {
    let pool = phoenix::app::simulator_database(config).await.unwrap();
    let received = phoenix_payment::Simulator::new(pool.clone())
        .requests_received()
        .await
        .unwrap();
    pool.close().await;
    received
}

/// The payment made for a booking (payment records the booking as the payment's reference), read from payment's
/// database: the saga that failed never learned its id.
async fn payment_of(config: &phoenix::Config, booking_id: &str) -> Uuid {
    let pool = phoenix::app::open_database(config, phoenix::config::Role::Payment, phoenix_payment::migrations())
        .await
        .unwrap();
    let ids: Vec<Uuid> = phoenix_db::dispatch!(&pool, conn => {
        sqlx::query_scalar("SELECT id FROM payments WHERE reference = $1")
            .bind(booking_id)
            .fetch_all(conn)
            .await
    })
    .unwrap();
    pool.close().await;
    assert_eq!(ids.len(), 1, "one payment for booking {booking_id}");
    ids[0]
}

async fn killed_while_authorizing(database_url: Option<&str>) {
    let mut env: Vec<(&str, &str)> = ENV.to_vec();
    if let Some(url) = database_url {
        env.push(("PHOENIX_DATABASE_URL", url));
        env.push(("PHOENIX_SECRETS_KEY", SECRETS_KEY));
    }
    let data = tempfile::tempdir().unwrap();
    let config = config(data.path(), database_url);
    bootstrap_admin(data.path(), &env);
    let mut server = Server::start_with(data.path(), &env);
    let api = Api::new(&server.address);
    let admin = admin_token(&api).await;
    let world: World = world(&api, admin.clone()).await;
    let before = night(&api, &world, 10).await;
    let (_, ann) = api.customer("ann@example.com").await;

    // The booking request waits for its saga, which waits for a provider that never answers: the process dies
    // under both.
    let received = provider_requests(&config).await;
    let request = api
        .http
        .post(format!("{}/api/v1/bookings", api.base))
        .bearer_auth(&ann)
        .header("idempotency-key", key())
        .json(&booking(
            vec![world.stay(&world.flexible_plan, 10, 1, 1, 1)],
            1,
            "tok_hang",
        ))
        .send();
    let request = tokio::spawn(request);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while provider_requests(&config).await == received {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the authorization never reached the provider"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.child.kill().unwrap(); // SIGKILL: the authorization's claim stays with the dead process
    server.child.wait().unwrap();
    let _ = request.await;
    drop(server);

    let server = Server::start_with(data.path(), &env);
    let api = Api::new(&server.address);
    let (ann, _) = api.login("ann@example.com").await;
    let admin = admin_token(&api).await;
    let mine = api.get("/api/v1/bookings", Some(&ann)).await;
    let items = mine.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one booking was made: {mine:?}");
    let id = items[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/bookings/{id}");
    let ended = api
        .until(&path, &ann, "the booking ends", |b| b["status"] != "pending")
        .await;

    // Failed for the provider's own reason, not because the saga gave up on a key still in use.
    assert_eq!(ended["status"], "failed", "{ended}");
    assert_eq!(ended["failure"]["code"], "provider_unavailable", "{ended}");
    // The restarted saga did meet the dead process's claim, and waited for it without spending its attempts.
    let sagas = api.get(&format!("/api/v1/sagas?booking_id={id}"), Some(&admin)).await;
    let history: Vec<Value> = sagas.body["items"][0]["history"].as_array().unwrap().clone();
    let authorizations: Vec<&Value> = history.iter().filter(|s| s["step"] == "authorize_payment").collect();
    assert!(
        authorizations
            .iter()
            .any(|s| s["outcome"] == "retry" && s["error"].as_str().unwrap().starts_with("idempotency_key_in_use")),
        "{history:?}"
    );
    let last = authorizations.last().unwrap();
    assert_eq!(last["outcome"], "failed", "{history:?}");
    assert!(
        last["error"].as_str().unwrap().starts_with("provider_unavailable"),
        "{history:?}"
    );

    // The payment failed (and payment voids it should the network have authorized it after all): nothing pending.
    let payment_id = payment_of(&config, &id).await;
    let payment = api.get(&format!("/api/v1/payments/{payment_id}"), Some(&admin)).await;
    assert_eq!(payment.status, 200, "{payment:?}");
    assert_eq!(payment.body["status"], "failed", "{payment:?}");
    // The hold was released: the night's counters are as before the booking.
    let after = night(&api, &world, 10).await;
    for counter in ["held", "sold", "available"] {
        assert_eq!(after[counter], before[counter], "{counter}: {before} then {after}");
    }
    assert_eq!(after["held"], 0, "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_killed_while_authorizing_ends_with_the_providers_answer_on_sqlite() {
    killed_while_authorizing(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_killed_while_authorizing_ends_with_the_providers_answer_on_postgres() {
    let database = PostgresDatabases::new();
    killed_while_authorizing(Some(&database.url)).await;
}

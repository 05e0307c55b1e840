//! Real processes: `kill -9` in the middle of a stream of holds, and two processes on one PostgreSQL database.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::common::PostgresDatabases;
use crate::process::{PASSWORD, Server, phoenix};

/// Limits out of the way: these tests are about durability and races, not quotas.
const ENV: &[(&str, &str)] = &[
    ("PHOENIX_GATEWAY__RATE_LIMIT_PER_USER_PER_MIN", "1000000"),
    ("PHOENIX_GATEWAY__RATE_LIMIT_PER_IP_PER_MIN", "1000000"),
    ("PHOENIX_INVENTORY__MAX_OPEN_HOLDS_PER_HOLDER", "100000"),
];

fn env_with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    ENV.iter().copied().chain(extra.iter().copied()).collect()
}

/// Creates an admin with the CLI, as an operator bootstrapping would.
fn bootstrap_admin(data: &std::path::Path, env: &[(&str, &str)]) {
    let output = phoenix(data)
        .envs(env.iter().copied())
        .args(["user", "create", "--email", "root@example.com", "--role", "admin"])
        .env("PHOENIX_USER_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

async fn login(http: &reqwest::Client, address: &str) -> String {
    let reply: Value = http
        .post(format!("http://{address}/api/v1/auth/login"))
        .json(&json!({"email": "root@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["access_token"].as_str().unwrap().to_owned()
}

async fn get_json(http: &reqwest::Client, url: String, token: &str) -> Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn put_item(http: &reqwest::Client, address: &str, token: &str, item: &str, capacity: i64) {
    let status = http
        .put(format!("http://{address}/api/v1/inventory/items/{item}"))
        .bearer_auth(token)
        .json(&json!({"capacity": capacity}))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
}

/// One hold attempt: Some(hold id) when acknowledged (201), None when refused or the server is gone.
async fn try_hold(
    http: &reqwest::Client,
    address: &str,
    token: &str,
    item: &str,
    key: &str,
) -> Result<Option<String>, u16> {
    let response = http
        .post(format!("http://{address}/api/v1/inventory/holds"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"lines": [{"item_id": item, "quantity": 1}]}))
        .send()
        .await;
    let Ok(response) = response else { return Ok(None) };
    let status = response.status().as_u16();
    if status != 201 {
        return Err(status);
    }
    let Ok(body) = response.json::<Value>().await else {
        return Ok(None);
    };
    Ok(body["hold_id"].as_str().map(str::to_owned))
}

async fn crash_during_a_stream_of_holds(extra_env: &[(&str, &str)]) {
    let env = env_with(extra_env);
    let data = tempfile::tempdir().unwrap();
    bootstrap_admin(data.path(), &env);
    let mut server = Server::start_with(data.path(), &env);
    let http = reqwest::Client::new();
    let token = login(&http, &server.address).await;
    put_item(&http, &server.address, &token, "seat:CRASH:Y", 400).await;

    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let enough = Arc::new(Notify::new());
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let (http, address, token) = (http.clone(), server.address.clone(), token.clone());
            let (acknowledged, enough) = (acknowledged.clone(), enough.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    match try_hold(&http, &address, &token, "seat:CRASH:Y", &format!("w{worker}-{i}")).await {
                        Ok(Some(id)) => {
                            let mut acked = acknowledged.lock().unwrap();
                            acked.push(id);
                            if acked.len() == 250 {
                                enough.notify_one();
                            }
                        }
                        // The process is gone.
                        Ok(None) => return,
                        Err(status) => assert_eq!(status, 409, "only sold out may refuse a hold"),
                    }
                }
            })
        })
        .collect();
    enough.notified().await;
    server.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    server.child.wait().unwrap();
    for worker in workers {
        worker.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 250);

    let server = Server::start_with(data.path(), &env);
    let token = login(&http, &server.address).await;
    for id in &acknowledged {
        let hold = get_json(
            &http,
            format!("http://{}/api/v1/inventory/holds/{id}", server.address),
            &token,
        )
        .await;
        assert_eq!(hold["status"], "held", "acknowledged hold {id} must survive: {hold}");
    }
    let item = get_json(
        &http,
        format!("http://{}/api/v1/inventory/items/seat:CRASH:Y", server.address),
        &token,
    )
    .await;
    let held = item["held"].as_i64().unwrap();
    assert!(held >= acknowledged.len() as i64, "{item}");
    assert!(
        held + item["sold"].as_i64().unwrap() <= 400,
        "oversold after the crash: {item}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_holds_survive_kill_9_on_sqlite() {
    crash_during_a_stream_of_holds(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_holds_survive_kill_9_on_postgres() {
    let database = PostgresDatabases::new();
    crash_during_a_stream_of_holds(&[
        ("PHOENIX_DATABASE_URL", &database.url),
        ("PHOENIX_SECRETS_KEY", crate::process::SECRETS_KEY),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_database_never_oversell() {
    let database = PostgresDatabases::new();
    // Every process of one deployment has the same secrets key, as identity's stored signing key needs.
    let key = phoenix_db::Sealer::generate_key().unwrap();
    let env = env_with(&[("PHOENIX_DATABASE_URL", &database.url), ("PHOENIX_SECRETS_KEY", &key)]);
    let (first_data, second_data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    bootstrap_admin(first_data.path(), &env);
    let first = Server::start_with(first_data.path(), &env);
    let second = Server::start_with(second_data.path(), &env);
    let http = reqwest::Client::new();
    let token = login(&http, &first.address).await;
    put_item(&http, &first.address, &token, "seat:TWIN:Y", 200).await;

    let attempts: Vec<_> = (0..1_000)
        .map(|i| {
            let address = if i % 2 == 0 {
                first.address.clone()
            } else {
                second.address.clone()
            };
            let (http, token) = (http.clone(), token.clone());
            tokio::spawn(async move { try_hold(&http, &address, &token, "seat:TWIN:Y", &format!("twin-{i}")).await })
        })
        .collect();
    let (mut held, mut refused) = (0, 0);
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(Some(_)) => held += 1,
            Err(409) => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((held, refused), (200, 800));
    for address in [&first.address, &second.address] {
        let item = get_json(
            &http,
            format!("http://{address}/api/v1/inventory/items/seat:TWIN:Y"),
            &token,
        )
        .await;
        assert_eq!(
            (item["held"].as_i64(), item["available"].as_i64()),
            (Some(200), Some(0)),
            "{item}"
        );
    }
}

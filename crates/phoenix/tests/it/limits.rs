use serde_json::json;

use crate::common::{config, spawn_with};

fn redis_url() -> String {
    std::env::var("PHOENIX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

async fn per_user_limit_is_429_with_retry_after(redis: bool) {
    let mut config = config();
    config.gateway.rate_limit_per_user_per_min = 5;
    if redis {
        config.redis_url = Some(phoenix::config::Secret::new(redis_url()));
    }
    let app = spawn_with(config).await;
    // A new account (a new user id), so a count left in a shared Redis by an earlier run cannot interfere.
    let token = app.admin().await;
    // One budget for the user, whichever credential calls: a session and two API keys share the five requests.
    let mut keys = Vec::new();
    for name in ["first", "second"] {
        let made = app.post("/api/v1/api-keys", Some(&token), json!({"name": name})).await;
        assert_eq!(made.status, 201, "{made:?}");
        keys.push(made.body["key"].as_str().unwrap().to_owned());
    }
    for credential in [&token, &keys[0], &keys[1]] {
        assert_eq!(app.get("/api/v1/auth/me", Some(credential)).await.status, 200);
    }
    for credential in [&keys[0], &keys[1], &token] {
        app.get("/api/v1/auth/me", Some(credential))
            .await
            .assert_problem(429, "rate_limited");
    }
    let limited = app.get("/api/v1/auth/me", Some(&token)).await;
    limited.assert_problem(429, "rate_limited");
    let retry_after: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Another user is unaffected.
    let other = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let (_, token) = app.customer(&other).await;
    assert_eq!(app.get("/api/v1/auth/me", Some(&token)).await.status, 200);
}

#[tokio::test]
async fn per_user_limit_in_memory() {
    per_user_limit_is_429_with_retry_after(false).await;
}

#[tokio::test]
async fn per_user_limit_in_redis() {
    per_user_limit_is_429_with_retry_after(true).await;
}

#[tokio::test]
async fn per_ip_limit_counts_unauthenticated_requests() {
    let mut config = config();
    config.gateway.rate_limit_per_ip_per_min = 8;
    let app = spawn_with(config).await;
    for _ in 0..8 {
        assert_eq!(app.get("/api/v1/nothing", None).await.status, 404);
    }
    let limited = app.get("/api/v1/nothing", None).await;
    limited.assert_problem(429, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    // Liveness is never rate limited: orchestrators must always reach it.
    assert_eq!(app.get("/healthz", None).await.status, 200);
}

/// Requests from 127.0.0.1 claiming, by `X-Forwarded-For`, to come from `clients` in turn, `rounds` times over:
/// the statuses of the last round.
async fn forwarded_for(app: &crate::common::TestApp, clients: &[&str], rounds: usize) -> Vec<u16> {
    let mut last = Vec::new();
    for _ in 0..rounds {
        last.clear();
        for client in clients {
            let reply = app
                .http
                .get(format!("{}/api/v1/nothing", app.base))
                .header("x-forwarded-for", format!("192.0.2.200, {client}"))
                .send()
                .await
                .unwrap();
            last.push(reply.status().as_u16());
        }
    }
    last
}

#[tokio::test]
async fn per_ip_limits_follow_forwarded_addresses_only_from_trusted_proxies() {
    let clients = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];
    // Behind a trusted proxy (this test, on loopback), each client the proxy names has its own count: three each.
    let mut trusting = config();
    trusting.gateway.rate_limit_per_ip_per_min = 3;
    trusting.gateway.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    let behind_proxy = spawn_with(trusting).await;
    assert_eq!(forwarded_for(&behind_proxy, &clients, 3).await, [404, 404, 404]);
    assert_eq!(forwarded_for(&behind_proxy, &clients, 1).await, [429, 429, 429]);

    // From a peer that is not a trusted proxy the header is ignored: all nine requests count against 127.0.0.1.
    let mut other_proxies = config();
    other_proxies.gateway.rate_limit_per_ip_per_min = 3;
    other_proxies.gateway.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    let direct = spawn_with(other_proxies).await;
    assert_eq!(forwarded_for(&direct, &clients, 1).await, [404, 404, 404]);
    assert_eq!(forwarded_for(&direct, &clients, 1).await, [429, 429, 429]);
}

#[tokio::test]
async fn repeated_login_failures_are_throttled() {
    let mut config = config();
    config.identity.login_failures_per_account = 3;
    let app = spawn_with(config).await;
    app.register("ann@example.com").await;
    for _ in 0..3 {
        app.post(
            "/api/v1/auth/login",
            None,
            json!({"email": "ann@example.com", "password": "guess guess guess"}),
        )
        .await
        .assert_problem(401, "invalid_credentials");
    }
    let throttled = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "ann@example.com", "password": crate::common::PASSWORD}),
        )
        .await;
    throttled.assert_problem(429, "login_throttled");
    assert!(throttled.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn login_failures_per_ip_are_throttled() {
    let mut config = config();
    config.identity.login_failures_per_ip = 4;
    let app = spawn_with(config).await;
    for i in 0..4 {
        app.post(
            "/api/v1/auth/login",
            None,
            json!({"email": format!("u{i}@example.com"), "password": "guess guess"}),
        )
        .await
        .assert_problem(401, "invalid_credentials");
    }
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": "u9@example.com", "password": "guess guess"}),
    )
    .await
    .assert_problem(429, "login_throttled");
}

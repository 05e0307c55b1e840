//! Roles in separate processes: identity on its own listener, the gateway reaching it over HTTP.

use phoenix::config::{Role, Secret};
use serde_json::json;

use crate::common::{config, create_admin, read, spawn_with};

const TOKEN: &str = "an-internal-token-of-at-least-32-characters";

#[tokio::test]
async fn gateway_reaches_a_remote_identity() {
    let mut identity_config = config();
    identity_config.roles = vec![Role::Identity];
    identity_config.internal_token = Some(Secret::new(TOKEN));
    let identity = spawn_with(identity_config).await;

    let mut gateway_config = config();
    gateway_config.roles = vec![Role::Gateway, Role::Inventory, Role::Catalog];
    gateway_config.internal_token = Some(Secret::new(TOKEN));
    gateway_config.services.identity = Some(identity.base.clone());
    let gateway = spawn_with(gateway_config).await;
    assert!(
        gateway.identity.is_none(),
        "identity does not run in the gateway's process"
    );

    // Through the gateway: the whole flow, with JWKS and API keys fetched from the remote identity.
    gateway.register("ann@example.com").await;
    let (token, refresh) = gateway.login("ann@example.com").await;
    let me = gateway.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["email"], "ann@example.com");
    let rotated = gateway
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(rotated.status, 200);
    gateway
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "ann@example.com", "password": "x", "name": "y"}),
        )
        .await
        .assert_problem(422, "invalid_fields");
    let ready = gateway.get("/readyz", None).await;
    assert_eq!(ready.body["checks"]["identity"], true, "{ready:?}");

    let admin_email = create_admin(identity.identity.as_ref().unwrap()).await;
    let (admin, _) = gateway.login(&admin_email).await;
    let org = gateway
        .post(
            "/api/v1/admin/organizations",
            Some(&admin),
            json!({"name": "Remote Co", "kind": "agency"}),
        )
        .await;
    assert_eq!(org.status, 201, "{org:?}");
}

#[tokio::test]
async fn a_service_refuses_requests_that_bypass_the_gateway() {
    let mut identity_config = config();
    identity_config.roles = vec![Role::Identity];
    identity_config.internal_token = Some(Secret::new(TOKEN));
    let identity = spawn_with(identity_config).await;

    identity
        .get("/api/v1/auth/me", None)
        .await
        .assert_problem(401, "unauthenticated");
    let forged = identity
        .http
        .get(format!("{}/api/v1/admin/users", identity.base))
        .header("x-phoenix-internal-token", "wrong-token-wrong-token-wrong-token")
        .header("x-phoenix-principal", "e30")
        .send()
        .await
        .unwrap();
    read(forged).await.assert_problem(401, "unauthenticated");
    // Liveness stays reachable for the orchestrator.
    assert_eq!(identity.get("/healthz", None).await.status, 200);
}

#[tokio::test]
async fn a_remote_role_without_an_address_is_a_startup_error() {
    let mut gateway_config = config();
    gateway_config.roles = vec![Role::Gateway, Role::Inventory, Role::Catalog];
    gateway_config.internal_token = Some(Secret::new(TOKEN));
    let data = tempfile::tempdir().unwrap();
    gateway_config.data_dir = data.path().to_owned();
    let error = phoenix::App::build(gateway_config).await.err().unwrap().to_string();
    assert!(error.contains("services.identity"), "{error}");
}

#[tokio::test]
async fn a_service_that_never_answers_times_out_as_a_problem() {
    // A "service" that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mut gateway_config = config();
    gateway_config.roles = vec![Role::Gateway, Role::Inventory, Role::Catalog];
    gateway_config.internal_token = Some(Secret::new(TOKEN));
    gateway_config.services.identity = Some(format!("http://{address}"));
    gateway_config.gateway.request_timeout_secs = 1;
    let gateway = spawn_with(gateway_config).await;
    let reply = gateway
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "a@example.com", "password": "whatever"}),
        )
        .await;
    assert!(matches!(reply.status.as_u16(), 503 | 504), "{reply:?}");
    assert_eq!(reply.headers["content-type"], "application/problem+json");
}

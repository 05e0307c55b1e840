//! Roles in separate processes: identity or inventory on its own listener, the gateway and the catalog reaching
//! it over HTTP.

use phoenix::config::{Role, Secret};
use serde_json::json;

use crate::bookings::{assert_events_traced, book_a_confirmed_night, finished_sagas, night, world};
use crate::common::{config, create_admin, read, spawn_on, spawn_with};

const TOKEN: &str = "an-internal-token-of-at-least-32-characters";

/// Every role but `missing`, which runs elsewhere.
fn all_but(missing: Role) -> Vec<Role> {
    Role::ALL.into_iter().filter(|role| *role != missing).collect()
}

/// A process running only `roles`, sharing the internal token with the others.
fn apart(roles: &[Role]) -> phoenix::Config {
    let mut config = config();
    config.roles = roles.to_vec();
    config.internal_token = Some(Secret::new(TOKEN));
    config
}

#[tokio::test]
async fn gateway_reaches_a_remote_identity() {
    let identity_config = apart(&[Role::Identity]);
    let identity = spawn_with(identity_config).await;

    let mut gateway_config = apart(&all_but(Role::Identity));
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
    // Signing out everywhere at the remote identity: the gateway learns of it by polling and refuses the token.
    let token = rotated.body["access_token"].as_str().unwrap().to_owned();
    let everywhere = gateway
        .call(reqwest::Method::DELETE, "/api/v1/auth/sessions", Some(&token), None)
        .await;
    assert_eq!(everywhere.status, 204, "{everywhere:?}");
    gateway
        .until_refused("/api/v1/auth/me", &token, 401, "session_ended")
        .await;

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

    // The catalog, here with the gateway, checks organization kinds with the remote identity.
    let chain = gateway
        .post(
            "/api/v1/admin/organizations",
            Some(&admin),
            json!({"name": "Remote Inns", "kind": "hotel_chain"}),
        )
        .await;
    let hotel = |org: &serde_json::Value| {
        json!({"organization_id": org, "name": "Inn", "address": "1 St", "city": "Oslo", "country": "NO",
               "latitude": 59.9, "longitude": 10.7, "stars": 3, "time_zone": "Europe/Oslo"})
    };
    let made = gateway
        .post("/api/v1/catalog/hotels", Some(&admin), hotel(&chain.body["id"]))
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    gateway
        .post("/api/v1/catalog/hotels", Some(&admin), hotel(&org.body["id"]))
        .await
        .assert_problem(422, "invalid_fields");
}

#[tokio::test]
async fn a_service_refuses_requests_that_bypass_the_gateway() {
    let identity_config = apart(&[Role::Identity]);
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
    let mut gateway_config = apart(&all_but(Role::Identity));
    let data = tempfile::tempdir().unwrap();
    gateway_config.data_dir = data.path().to_owned();
    let error = phoenix::App::build(gateway_config).await.err().unwrap().to_string();
    assert!(error.contains("services.identity"), "{error}");
}

/// A remote role that is down makes the gateway degraded, not unready: it keeps serving the other roles, and
/// answers 503 for the missing one's routes.
#[tokio::test]
async fn a_remote_role_down_degrades_the_gateway_without_taking_it_out_of_rotation() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let mut gateway_config = apart(&all_but(Role::Audit));
    gateway_config.services.audit = Some(format!("http://{address}"));
    let gateway = spawn_with(gateway_config).await;

    let ready = gateway.get("/readyz", None).await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(ready.body["status"], "degraded");
    assert_eq!(ready.body["checks"]["audit"], false);
    assert_eq!(ready.body["checks"]["identity_db"], true);
    // The roles that are up still serve; the one that is down is a problem, not a hang.
    gateway.register("ann@example.com").await;
    let (token, _) = gateway.login("ann@example.com").await;
    assert_eq!(gateway.get("/api/v1/auth/me", Some(&token)).await.status, 200);
    let admin = gateway.admin().await;
    let audit = gateway.get("/api/v1/audit", Some(&admin)).await;
    assert_eq!(audit.status, 503, "{audit:?}");
    assert_eq!(audit.headers["content-type"], "application/problem+json");
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
    let mut gateway_config = apart(&all_but(Role::Identity));
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

/// The catalog with inventory elsewhere: buckets are created, read and followed over inventory's HTTP API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_works_with_a_remote_inventory() {
    let inventory_config = apart(&[Role::Inventory]);
    let inventory = spawn_with(inventory_config).await;

    let mut gateway_config = apart(&all_but(Role::Inventory));
    gateway_config.services.inventory = Some(inventory.base.clone());
    let gateway = spawn_with(gateway_config).await;
    let catalog = gateway.catalog.clone().expect("the catalog runs with the gateway");

    let admin = gateway.admin().await;
    let (org_id, operator) = gateway.operator(&admin, "ops@chain.example", "hotel_chain").await;
    let hotel = gateway
        .post(
            "/api/v1/catalog/hotels",
            Some(&admin),
            json!({"organization_id": org_id, "name": "Remote Inn", "address": "1 Main St",
                   "city": "Oslo", "country": "NO", "latitude": 59.91, "longitude": 10.75, "stars": 3,
                   "time_zone": "Europe/Oslo"}),
        )
        .await;
    assert_eq!(hotel.status, 201, "{hotel:?}");
    let id = hotel.body["id"].as_str().unwrap();
    let room = gateway
        .post(
            &format!("/api/v1/catalog/hotels/{id}/room-types"),
            Some(&admin),
            json!({"name": "Single", "max_occupancy": 1, "rooms": 1}),
        )
        .await;
    let plan = gateway
        .post(
            &format!("/api/v1/catalog/hotels/{id}/rate-plans"),
            Some(&admin),
            json!({"room_type_id": room.body["id"], "name": "Saver", "meal_plan": "room_only",
                   "refundable": false, "currency": "NOK"}),
        )
        .await;
    let today = time::OffsetDateTime::now_utc().date();
    let night = |n: i64| (today + time::Duration::days(n)).to_string();
    let priced = gateway
        .call(
            reqwest::Method::PUT,
            &format!(
                "/api/v1/catalog/hotels/{id}/rate-plans/{}/prices",
                plan.body["id"].as_str().unwrap()
            ),
            Some(&admin),
            Some(json!({"from": night(3), "to": night(6), "amount_minor": 90_000})),
        )
        .await;
    assert_eq!(priced.status, 200, "{priced:?}");
    // The hotel sells in NOK; the default fixed fees are in EUR.
    let rate = gateway
        .call(
            reqwest::Method::PUT,
            "/api/v1/catalog/fx-rates/EUR/NOK",
            Some(&admin),
            Some(json!({"rate": "11.6"})),
        )
        .await;
    assert_eq!(rate.status, 200, "{rate:?}");
    let search = format!(
        "/api/v1/search/hotels?city=Oslo&guests=1&check_in={}&check_out={}",
        night(3),
        night(5)
    );
    let found = gateway.get(&search, None).await;
    assert_eq!(found.body["total"], 1, "{found:?}");

    // The only room of night 4 is held through the gateway, in the inventory process.
    let item = format!(
        "room:{}:{}",
        room.body["id"].as_str().unwrap().replace('-', ""),
        night(4)
    );
    let request = gateway
        .http
        .post(format!("{}/api/v1/inventory/holds", gateway.base))
        .bearer_auth(&admin)
        .header("idempotency-key", "split-hold-1")
        .json(&json!({"lines": [{"item_id": item, "quantity": 1}]}));
    let held = read(request.send().await.unwrap()).await;
    assert_eq!(held.status, 201, "{held:?}");
    catalog.follow_inventory().await.unwrap();
    assert_eq!(gateway.get(&search, None).await.body["total"], 0);

    // The chain's operator adds rooms to night 5 through the catalog, which sizes its bucket in the inventory
    // process on the operator's behalf (a route operators themselves may not use for the catalog's buckets).
    let room_type = room.body["id"].as_str().unwrap();
    let more = gateway
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/catalog/hotels/{id}/room-types/{room_type}/capacity"),
            Some(&operator),
            Some(json!({"from": night(5), "to": night(5), "rooms": 3})),
        )
        .await;
    assert_eq!(more.status, 200, "{more:?}");
    let bucket = format!(
        "/api/v1/inventory/items/room:{}:{}",
        room_type.replace('-', ""),
        night(5)
    );
    assert_eq!(gateway.get(&bucket, Some(&operator)).await.body["capacity"], 3);
    gateway
        .call(
            reqwest::Method::PUT,
            &bucket,
            Some(&operator),
            Some(json!({"capacity": 300})),
        )
        .await
        .assert_problem(403, "catalog_item");
}

/// The booking saga across processes: payment and the saga each in their own, the rest with the gateway. The saga
/// takes booking's requests, holds, confirms and records over internal HTTP routes, exactly as in one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_completes_and_cancels_with_payment_and_the_saga_in_other_processes() {
    let gateway_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let saga_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway_url = format!("http://{}", gateway_listener.local_addr().unwrap());
    let saga_url = format!("http://{}", saga_listener.local_addr().unwrap());

    let payment_config = apart(&[Role::Payment]);
    let payment = spawn_with(payment_config).await;

    let mut gateway_config = apart(&[
        Role::Gateway,
        Role::Identity,
        Role::Inventory,
        Role::Catalog,
        Role::Booking,
        Role::Notification,
        Role::Audit,
    ]);
    gateway_config.services.payment = Some(payment.base.clone());
    gateway_config.services.saga = Some(saga_url);
    let gateway = spawn_on(gateway_config, gateway_listener).await;

    let mut saga_config = apart(&[Role::Saga]);
    saga_config.services.booking = Some(gateway_url.clone());
    saga_config.services.inventory = Some(gateway_url);
    saga_config.services.payment = Some(payment.base.clone());
    let _saga = spawn_on(saga_config, saga_listener).await;

    let world = world(&gateway, gateway.admin().await).await;
    let (_, ann) = gateway.customer("ann@example.com").await;
    let made = book_a_confirmed_night(&gateway, &ann, &world).await;
    // The trace of the booking request reaches the saga's process and, through it, payment's.
    assert_events_traced(&[&gateway, &payment], &made).await;
    let id = made.body["id"].as_str().unwrap();
    assert_eq!(night(&gateway, &world, 10).await["sold"], 1);
    let paid = gateway
        .get(
            &format!("/api/v1/payments/{}", made.body["payment_id"].as_str().unwrap()),
            Some(&world.admin),
        )
        .await;
    assert_eq!(paid.body["status"], "captured", "{paid:?}");

    let cancelled = gateway
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/bookings/{id}/cancel"),
            Some(&ann),
            Some(json!({"reason": "plans changed"})),
        )
        .await;
    assert_eq!(cancelled.body["status"], "cancelled", "{cancelled:?}");
    assert_eq!(night(&gateway, &world, 10).await["sold"], 0);
    let sagas = finished_sagas(&gateway, &world.admin, id).await;
    let states: Vec<(&str, &str)> = sagas.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["kind"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("booking", "completed"), ("cancellation", "completed")]);
}

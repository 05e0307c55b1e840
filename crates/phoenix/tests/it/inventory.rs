//! Inventory over HTTP, through the gateway.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Reply, TestApp, config, spawn, spawn_with};

/// An operator of a new airline: (organization id, token).
async fn operator(app: &TestApp, admin: &str, email: &str) -> (String, String) {
    app.operator(admin, email, "airline").await
}

async fn put_item(app: &TestApp, token: &str, item: &str, body: Value) -> Reply {
    app.call(
        Method::PUT,
        &format!("/api/v1/inventory/items/{item}"),
        Some(token),
        Some(body),
    )
    .await
}

async fn hold(app: &TestApp, token: &str, key: Option<&str>, body: Value) -> Reply {
    let mut request = app
        .http
        .post(format!("{}/api/v1/inventory/holds", app.base))
        .bearer_auth(token)
        .json(&body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    crate::common::read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn operators_manage_their_organizations_buckets() {
    let app = spawn().await;
    let admin = app.admin().await;
    let (org_id, operator_token) = operator(&app, &admin, "ops@skyways.example").await;
    let lounge = "lounge:SW:2026-12-01";
    let created = put_item(
        &app,
        &operator_token,
        lounge,
        json!({"capacity": 180, "overbooking_limit": 4}),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["organization_id"], org_id);
    assert_eq!(created.body["available"], 184);
    let updated = put_item(&app, &operator_token, lounge, json!({"capacity": 170})).await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.body["capacity"], 170);
    assert_eq!(updated.body["overbooking_limit"], 0);

    let (_, rival) = operator(&app, &admin, "ops@rival.example").await;
    put_item(&app, &rival, lounge, json!({"capacity": 1}))
        .await
        .assert_problem(403, "forbidden");
    let (_, customer) = app.customer("ann@example.com").await;
    put_item(&app, &customer, "x", json!({"capacity": 1}))
        .await
        .assert_problem(403, "forbidden");

    let read = app
        .get(&format!("/api/v1/inventory/items/{lounge}"), Some(&customer))
        .await;
    assert_eq!(read.body["capacity"], 170);
    app.get("/api/v1/inventory/items/nothing", Some(&customer))
        .await
        .assert_problem(404, "not_found");
    let many = app
        .post(
            "/api/v1/inventory/availability",
            Some(&customer),
            json!({"item_ids": [lounge, "nothing"]}),
        )
        .await;
    assert_eq!(many.body["items"].as_array().unwrap().len(), 1);
}

/// The catalog names its buckets after room types and departures, whose ids anyone can read in search results. An
/// operator who could create one first would decide another supplier's capacity (0 closes its night, 500 oversells
/// its ten rooms) and own it: only the catalog, following the supplier's rooms and schedules, sizes them.
#[tokio::test]
async fn only_the_catalog_sizes_the_catalogs_buckets() {
    let app = spawn().await;
    let admin = app.admin().await;
    let (_, squatter) = operator(&app, &admin, "ops@squatter.example").await;
    for item in [
        "room:0193a1b2c3d4e5f60718293a4b5c6d7e:2027-01-21",
        "seat:PX1-2027-01-21:economy",
        "fare:PX1-2027-01-21:M",
    ] {
        let refused = put_item(&app, &squatter, item, json!({"capacity": 500, "overbooking_limit": 50})).await;
        refused.assert_problem(403, "catalog_item");
        app.get(&format!("/api/v1/inventory/items/{item}"), Some(&squatter))
            .await
            .assert_problem(404, "not_found");
    }
    // An admin may still set one by hand.
    let set = put_item(&app, &admin, "seat:PX1-2027-01-21:economy", json!({"capacity": 120})).await;
    assert_eq!(set.status, 201, "{set:?}");
}

#[tokio::test]
async fn holds_over_http_with_idempotency_and_every_refusal_a_problem() {
    let app = spawn().await;
    let admin = app.admin().await;
    put_item(&app, &admin, "room:9:2026-12-24", json!({"capacity": 3})).await;
    put_item(&app, &admin, "room:9:2026-12-25", json!({"capacity": 1})).await;
    let agent = app.agent(&admin, "desk@agency.example").await;
    let stay = json!({"lines": [{"item_id": "room:9:2026-12-24", "quantity": 1}, {"item_id": "room:9:2026-12-25", "quantity": 1}],
                      "reference": "booking-42"});

    hold(&app, &agent, None, stay.clone())
        .await
        .assert_problem(400, "idempotency_key_required");
    let first = hold(&app, &agent, Some("stay-1"), stay.clone()).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.body["status"], "held");
    assert_eq!(first.body["reference"], "booking-42");
    let retry = hold(&app, &agent, Some("stay-1"), stay.clone()).await;
    assert_eq!(retry.status, 201);
    assert_eq!(retry.body, first.body, "a retry gets the first answer");
    hold(
        &app,
        &agent,
        Some("stay-1"),
        json!({"lines": [{"item_id": "room:9:2026-12-24", "quantity": 2}]}),
    )
    .await
    .assert_problem(422, "idempotency_key_reused");

    let sold_out = hold(&app, &agent, Some("stay-2"), stay.clone()).await;
    sold_out.assert_problem(409, "insufficient_inventory");
    assert_eq!(sold_out.body["short_items"][0]["item_id"], "room:9:2026-12-25");
    assert_eq!(sold_out.body["short_items"][0]["available"], 0);
    // Closing a night with a room held: refused as asked, kept at what is held when asked to keep it.
    put_item(&app, &admin, "room:9:2026-12-25", json!({"capacity": 0}))
        .await
        .assert_problem(409, "capacity_below_committed");
    let kept = put_item(
        &app,
        &admin,
        "room:9:2026-12-25",
        json!({"capacity": 0, "keep_committed": true}),
    )
    .await;
    assert_eq!((kept.status.as_u16(), kept.body["capacity"].as_i64()), (200, Some(1)));

    let bad_inputs = [
        (
            json!({"lines": [{"item_id": "ghost", "quantity": 1}]}),
            422,
            "unknown_item",
        ),
        (
            json!({"lines": [{"item_id": "room:9:2026-12-24", "quantity": 0}]}),
            422,
            "invalid_fields",
        ),
        (
            json!({"lines": [{"item_id": "room:9:2026-12-24", "quantity": -2}]}),
            422,
            "invalid_fields",
        ),
        (
            json!({"lines": [{"item_id": "room:9:2026-12-24", "quantity": 99999999}]}),
            422,
            "invalid_fields",
        ),
        (
            json!({"lines": [{"item_id": "room:9:2026-12-24", "quantity": 1e40}]}),
            422,
            "invalid_fields",
        ),
        (
            json!({"lines": [{"item_id": "room:9:2026-12-24", "quantity": 1}], "ttl_secs": 999999}),
            422,
            "invalid_fields",
        ),
        (json!({"lines": []}), 422, "invalid_fields"),
        (json!({"lines": "all"}), 422, "invalid_fields"),
    ];
    for (i, (body, status, code)) in bad_inputs.into_iter().enumerate() {
        hold(&app, &agent, Some(&format!("bad-{i}")), body)
            .await
            .assert_problem(status, code);
    }
    let malformed = app
        .http
        .post(format!("{}/api/v1/inventory/holds", app.base))
        .bearer_auth(&agent)
        .header("idempotency-key", "m")
        .header("content-type", "application/json")
        .body("{\"lines\": [")
        .send()
        .await
        .unwrap();
    crate::common::read(malformed)
        .await
        .assert_problem(400, "malformed_json");

    let id = first.body["hold_id"].as_str().unwrap();
    let confirm = format!("/api/v1/inventory/holds/{id}/confirm");
    let release = format!("/api/v1/inventory/holds/{id}/release");
    assert_eq!(
        app.post(&confirm, Some(&agent), json!({})).await.body["status"],
        "confirmed"
    );
    assert_eq!(
        app.post(&confirm, Some(&agent), json!({})).await.status,
        200,
        "confirming twice is fine"
    );
    let item = app.get("/api/v1/inventory/items/room:9:2026-12-25", Some(&agent)).await;
    assert_eq!(
        (item.body["held"].as_i64(), item.body["sold"].as_i64()),
        (Some(0), Some(1))
    );
    assert_eq!(
        app.post(&release, Some(&agent), json!({})).await.body["status"],
        "released"
    );
    app.post(&confirm, Some(&agent), json!({}))
        .await
        .assert_problem(409, "hold_released");
    // The night was closed out while this room was sold: released, the room goes with the close-out rather than
    // back on sale.
    let item = app.get("/api/v1/inventory/items/room:9:2026-12-25", Some(&agent)).await;
    assert_eq!(
        (item.body["capacity"].as_i64(), item.body["available"].as_i64()),
        (Some(0), Some(0)),
        "{item:?}"
    );
    assert!(item.body.get("asked_capacity").is_none(), "{item:?}");
    let open_night = app.get("/api/v1/inventory/items/room:9:2026-12-24", Some(&agent)).await;
    assert_eq!(open_night.body["available"], 3, "a night not closed gets its room back");

    let stranger = app.agent(&admin, "other@agency.example").await;
    app.get(&format!("/api/v1/inventory/holds/{id}"), Some(&stranger))
        .await
        .assert_problem(404, "not_found");
    app.post(&release, Some(&stranger), json!({}))
        .await
        .assert_problem(404, "not_found");
    let (_, customer) = app.customer("c@example.com").await;
    hold(&app, &customer, Some("c"), stay)
        .await
        .assert_problem(403, "forbidden");
    app.get("/api/v1/inventory/holds/not-a-uuid", Some(&agent))
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn racing_http_holds_sell_exactly_the_capacity() {
    let mut config = config();
    config.inventory.max_open_holds_per_holder = 10_000;
    let app = spawn_with(config).await;
    let admin = app.admin().await;
    put_item(&app, &admin, "seat:FLASH:Y", json!({"capacity": 50})).await;
    let agent = app.agent(&admin, "flash@agency.example").await;
    let attempts: Vec<_> = (0..500)
        .map(|i| {
            let (http, base, agent) = (app.http.clone(), app.base.clone(), agent.clone());
            tokio::spawn(async move {
                let reply = http
                    .post(format!("{base}/api/v1/inventory/holds"))
                    .bearer_auth(agent)
                    .header("idempotency-key", format!("flash-{i}"))
                    .json(&json!({"lines": [{"item_id": "seat:FLASH:Y", "quantity": 1}]}))
                    .send()
                    .await
                    .unwrap();
                reply.status().as_u16()
            })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for attempt in attempts {
        *statuses.entry(attempt.await.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(statuses, [(201, 50), (409, 450)].into_iter().collect());
    let item = app.get("/api/v1/inventory/items/seat:FLASH:Y", Some(&agent)).await;
    assert_eq!(
        (item.body["held"].as_i64(), item.body["available"].as_i64()),
        (Some(50), Some(0))
    );
}

//! The HTTP API in process: the router with the principal set as the gateway sets it.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use phoenix_api::Principal;
use phoenix_booking::orchestration::Outcome;
use phoenix_db::Pool;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

use crate::*;

phoenix_db::contract_suite!(
    phoenix_booking::migrations(),
    [
        create_answers_202_while_pending_then_201_once_confirmed,
        a_failed_booking_answers_with_its_failure_and_names_the_booking,
        lookup_is_public_and_not_mistaken_for_a_booking_id,
        cancel_answers_202_while_refunding_then_200,
        routes_declare_who_may_call_them,
    ]
);

struct Reply {
    status: StatusCode,
    location: Option<String>,
    body: Value,
}

fn router(world: &World) -> Router {
    phoenix_booking::api()
        .with_state(world.booking.clone())
        .split_for_parts()
        .0
}

async fn call(
    world: &World,
    method: Method,
    uri: &str,
    principal: Option<&Principal>,
    key: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let mut request = request.body(body).unwrap();
    if let Some(principal) = principal {
        request.extensions_mut().insert(*principal);
    }
    let response = router(world).oneshot(request).await.unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Reply { status, location, body }
}

fn body(world: &World, token: &str) -> Value {
    json!({
        "items": [world.stay(world.hotel.flexible, 10, 1, 1, 1)],
        "travellers": adults(1),
        "contact": {"email": "ann@example.com"},
        "payment_token": token,
    })
}

async fn create_answers_202_while_pending_then_201_once_confirmed(pool: Pool) {
    let world = world(pool).await;
    let ann = customer();
    let key = key();
    let post = |body| {
        call(
            &world,
            Method::POST,
            "/api/v1/bookings",
            Some(&ann),
            Some(&key),
            Some(body),
        )
    };
    let pending = post(body(&world, "tok_visa")).await;
    assert_eq!(pending.status, StatusCode::ACCEPTED, "{:?}", pending.body);
    let id = pending.body["id"].as_str().unwrap().to_owned();
    assert_eq!(pending.location, Some(format!("/api/v1/bookings/{id}")));
    assert_eq!(pending.body["status"], "pending");
    assert_eq!(pending.body["history"][0]["status"], "pending");
    assert!(pending.body["items"][0]["cancellation"]["free_until"].is_string());
    assert!(pending.body.get("payment_token").is_none());
    world.confirm_all().await;
    let confirmed = post(body(&world, "tok_visa")).await;
    assert_eq!(confirmed.status, StatusCode::CREATED);
    assert_eq!(confirmed.body["id"], id.as_str());
    assert_eq!(confirmed.body["status"], "confirmed");
    let reused = post(body(&world, "tok_other")).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.body["code"], "idempotency_key_reused");
    let card = call(
        &world,
        Method::POST,
        "/api/v1/bookings",
        Some(&ann),
        Some(&crate::key()),
        Some(body(&world, "4242 4242 4242 4242")),
    )
    .await;
    assert_eq!(
        (card.status.as_u16(), card.body["code"].as_str()),
        (422, Some("card_number_not_allowed"))
    );
    let keyless = call(
        &world,
        Method::POST,
        "/api/v1/bookings",
        Some(&ann),
        None,
        Some(body(&world, "tok_visa")),
    )
    .await;
    assert_eq!(keyless.body["code"], "idempotency_key_required");
}

async fn a_failed_booking_answers_with_its_failure_and_names_the_booking(pool: Pool) {
    let world = world(pool).await;
    let ann = customer();
    let key = key();
    let post = || {
        call(
            &world,
            Method::POST,
            "/api/v1/bookings",
            Some(&ann),
            Some(&key),
            Some(body(&world, "tok_visa")),
        )
    };
    let id: Uuid = post().await.body["id"].as_str().unwrap().parse().unwrap();
    for (code, status) in [
        ("payment_declined", 402),
        ("insufficient_inventory", 409),
        ("provider_unavailable", 503),
        ("something_else", 422),
    ] {
        let mut booking = world.booking.get(&ann, id).await.unwrap();
        booking.status = phoenix_booking::Status::Failed;
        booking.failure = Some(phoenix_booking::Failure {
            code: code.into(),
            detail: String::new(),
        });
        let problem = phoenix_booking::failed_problem(&booking);
        assert_eq!(problem.status.as_u16(), status, "{code}");
        if code == "provider_unavailable" {
            let detail = problem.detail.clone().unwrap_or_default();
            assert!(
                detail.contains("book again") && !detail.contains("authorize"),
                "{detail}"
            );
        }
    }
    let declined = Outcome::Failed {
        code: "payment_declined".into(),
        detail: "the card was declined".into(),
    };
    world.client.record_outcome(id, &declined).await.unwrap();
    let failed = post().await;
    assert_eq!(failed.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(failed.body["code"], "payment_declined");
    assert_eq!(failed.body["booking_id"], id.to_string());
    assert_eq!(failed.body["locator"].as_str().map(str::len), Some(6));
    let fetched = call(
        &world,
        Method::GET,
        &format!("/api/v1/bookings/{id}"),
        Some(&ann),
        None,
        None,
    )
    .await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body["failure"]["code"], "payment_declined");
}

async fn lookup_is_public_and_not_mistaken_for_a_booking_id(pool: Pool) {
    let world = world(pool).await;
    let booking = world
        .book(&customer(), vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], 1)
        .await;
    let uri = format!(
        "/api/v1/bookings/lookup?locator={}&last_name=lee",
        booking.locator.as_str().to_lowercase()
    );
    let found = call(&world, Method::GET, &uri, None, None, None).await;
    assert_eq!(found.status, StatusCode::OK, "{:?}", found.body);
    assert_eq!(found.body["id"], booking.id.to_string());
    let uri = format!("/api/v1/bookings/lookup?locator={}&last_name=Smith", booking.locator);
    let missing = call(&world, Method::GET, &uri, None, None, None).await;
    assert_eq!(
        (missing.status.as_u16(), missing.body["code"].as_str()),
        (404, Some("not_found"))
    );
    let incomplete = call(
        &world,
        Method::GET,
        "/api/v1/bookings/lookup?locator=ABCDEF",
        None,
        None,
        None,
    )
    .await;
    assert_eq!(incomplete.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn cancel_answers_202_while_refunding_then_200(pool: Pool) {
    let world = world(pool).await;
    let ann = customer();
    let booking = world
        .confirmed(&ann, vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)])
        .await;
    let uri = format!("/api/v1/bookings/{}/cancel", booking.id);
    // An array is not the object the document asks for, even one serde could read as the fields in order.
    let array = call(&world, Method::PUT, &uri, Some(&ann), None, Some(json!([]))).await;
    assert_eq!(
        (array.status, &array.body["errors"][0]["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("body"))
    );
    let reason = json!({"reason": "plans changed"});
    let cancelling = call(&world, Method::PUT, &uri, Some(&ann), None, Some(reason.clone())).await;
    assert_eq!(cancelling.status, StatusCode::ACCEPTED, "{:?}", cancelling.body);
    let total = booking.total_minor;
    let cancellation = &cancelling.body["cancellation"];
    assert_eq!(
        (&cancellation["refund_minor"], &cancellation["policy_refund_minor"]),
        (&json!(total), &json!(total))
    );
    assert_eq!(
        cancellation["refunded_before_minor"],
        Value::Null,
        "not known while cancelling"
    );
    let outcome = Outcome::Cancelled {
        refunded_minor: total,
        refund_minor: Some(total),
    };
    world.client.record_outcome(booking.id, &outcome).await.unwrap();
    let cancelled = call(&world, Method::PUT, &uri, Some(&ann), None, Some(reason.clone())).await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.body["refunded_minor"], total);
    let cancellation = &cancelled.body["cancellation"];
    assert_eq!(
        cancellation,
        &json!({
            "requested_at": cancellation["requested_at"], "requested_by": ann.user_id, "reason": "plans changed",
            "refund_minor": total, "policy_refund_minor": total, "fee_minor": 0, "refunded_before_minor": 0,
            "fees_waived": false,
        })
    );
    let stranger = call(&world, Method::PUT, &uri, Some(&customer()), None, Some(reason)).await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
}

async fn routes_declare_who_may_call_them(pool: Pool) {
    let world = world(pool).await;
    let anonymous = call(&world, Method::GET, "/api/v1/bookings", None, None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let id = Uuid::now_v7();
    let anonymous = call(&world, Method::GET, &format!("/api/v1/bookings/{id}"), None, None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let support = support();
    let post = call(
        &world,
        Method::POST,
        "/api/v1/bookings",
        Some(&support),
        Some(&key()),
        Some(body(&world, "tok_visa")),
    )
    .await;
    assert_eq!(post.status, StatusCode::FORBIDDEN);
    let listed = call(
        &world,
        Method::GET,
        "/api/v1/bookings?status=pending&limit=5",
        Some(&support),
        None,
        None,
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["items"], json!([]));
    let not_an_id = call(
        &world,
        Method::GET,
        "/api/v1/bookings/not-an-id",
        Some(&support),
        None,
        None,
    )
    .await;
    assert_eq!(not_an_id.status, StatusCode::NOT_FOUND);
    let openapi = phoenix_booking::api().split_for_parts().1;
    let paths: Vec<&String> = openapi.paths.paths.keys().collect();
    for path in [
        "/api/v1/bookings",
        "/api/v1/bookings/lookup",
        "/api/v1/bookings/{id}",
        "/api/v1/bookings/{id}/cancel",
    ] {
        assert!(paths.iter().any(|p| *p == path), "{path} in {paths:?}");
    }
    assert!(
        phoenix_booking::PATH_PREFIXES
            .iter()
            .all(|p| p.starts_with("/api/v1/bookings"))
    );
}

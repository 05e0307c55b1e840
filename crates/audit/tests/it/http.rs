//! The HTTP API in process: the router with the principal set as the gateway sets it.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use phoenix_db::Pool;
use serde_json::json;
use tower::ServiceExt;

use crate::*;

phoenix_db::contract_suite!(
    phoenix_audit::migrations(),
    [
        support_pages_through_the_log_with_filters,
        reports_answer_json_and_csv,
        only_support_and_admins_may_read,
        bad_filters_are_422_naming_the_field,
        admins_see_dead_letters_per_consumer,
    ]
);

struct Reply {
    status: StatusCode,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

fn router(world: &World) -> Router {
    phoenix_audit::api()
        .with_state(world.service.clone())
        .split_for_parts()
        .0
}

async fn get(world: &World, uri: &str, principal: Option<&Principal>, accept: Option<&str>) -> Reply {
    let mut request = Request::builder().uri(uri);
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    let mut request = request.body(Body::empty()).unwrap();
    if let Some(principal) = principal {
        request.extensions_mut().insert(*principal);
    }
    let response = router(world).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

fn confirmed(booking: &str, actor: &str, day: &str) -> CloudEvent {
    let at = OffsetDateTime::parse(
        &format!("{day}T12:00:00Z"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    event_at(
        "phoenix.booking",
        "booking.confirmed.v1",
        booking,
        at,
        json!({"booking_id": booking, "created_by": actor, "currency": "EUR", "total_minor": 1_000,
               "contact_email": "ann@example.com"}),
    )
}

async fn support_pages_through_the_log_with_filters(pool: Pool) {
    let world = world(pool);
    let support = principal(&[Role::Support]);
    let events: Vec<CloudEvent> = (1..=5)
        .map(|n| confirmed(&format!("b-{n}"), if n % 2 == 0 { "even" } else { "odd" }, "2026-12-01"))
        .collect();
    world.deliver(&events).await;

    let first = get(&world, "/api/v1/audit?actor=odd&limit=2", Some(&support), None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let body = first.json();
    let subjects: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["b-5", "b-3"], "newest first");
    assert_eq!(body["items"][0]["payload"]["contact_email"], "a***@example.com");
    assert_eq!(body["items"][0]["action"], "booking.confirmed.v1");
    let cursor = body["next_cursor"].as_str().expect("a next page").to_owned();
    let second = get(
        &world,
        &format!("/api/v1/audit?actor=odd&limit=2&cursor={cursor}"),
        Some(&support),
        None,
    )
    .await
    .json();
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["subject"], "b-1");
    assert!(second.get("next_cursor").is_none());

    let by_subject = get(
        &world,
        "/api/v1/audit?subject=b-4&action=booking.confirmed.v1",
        Some(&support),
        None,
    )
    .await;
    assert_eq!(by_subject.json()["items"].as_array().unwrap().len(), 1);
    let in_window = get(
        &world,
        "/api/v1/audit?from=2026-12-01T00:00:00Z&to=2026-12-01T12:00:00Z",
        Some(&support),
        None,
    )
    .await;
    assert_eq!(
        in_window.json()["items"].as_array().unwrap().len(),
        0,
        "to is exclusive"
    );
    let later = get(
        &world,
        "/api/v1/audit?from=2026-12-01T12:00:00%2B00:00",
        Some(&support),
        None,
    )
    .await;
    assert_eq!(later.json()["items"].as_array().unwrap().len(), 5);
}

async fn reports_answer_json_and_csv(pool: Pool) {
    let world = world(pool);
    let admin = principal(&[Role::Admin]);
    world
        .deliver(&[confirmed("b-1", "a", "2026-12-01"), confirmed("b-2", "a", "2026-12-03")])
        .await;
    let json = get(
        &world,
        "/api/v1/analytics/bookings?from=2026-12-01&to=2026-12-02&currency=EUR",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(json.status, StatusCode::OK, "{}", json.text);
    assert_eq!(
        json.json()["rows"],
        json!([{"day": "2026-12-01", "currency": "EUR", "confirmed": 1, "total_minor": 1000}])
    );
    let csv = get(
        &world,
        "/api/v1/analytics/bookings?from=2026-12-01&to=2026-12-31",
        Some(&admin),
        Some("text/csv"),
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.content_type.starts_with("text/csv"), "{}", csv.content_type);
    assert_eq!(
        csv.text,
        "day,currency,confirmed,total_minor\r\n2026-12-01,EUR,1,1000\r\n2026-12-03,EUR,1,1000\r\n"
    );
    let support = principal(&[Role::Support]);
    for path in ["cancellations", "conversion", "load-factor", "occupancy"] {
        let reply = get(
            &world,
            &format!("/api/v1/analytics/{path}?from=2026-12-01&to=2026-12-31&format=csv"),
            Some(&support),
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
        assert!(reply.text.ends_with("\r\n"), "{path}: a header line at least");
    }
    let conversion = get(
        &world,
        "/api/v1/analytics/conversion?from=2026-12-01&to=2026-12-01",
        Some(&support),
        None,
    )
    .await;
    assert_eq!(conversion.json()["rows"][0]["confirmed"], 1);
    assert_eq!(conversion.json()["rows"][0]["confirmed_per_search"], Value::Null);
}

async fn only_support_and_admins_may_read(pool: Pool) {
    let world = world(pool);
    for roles in [
        &[Role::Customer][..],
        &[Role::Agent],
        &[Role::Operator],
        &[Role::Partner],
    ] {
        let caller = principal(roles);
        for uri in [
            "/api/v1/audit",
            "/api/v1/analytics/bookings",
            "/api/v1/analytics/occupancy",
        ] {
            let reply = get(&world, uri, Some(&caller), None).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{roles:?} {uri}");
            assert_eq!(reply.json()["code"], "forbidden");
            assert!(reply.content_type.starts_with("application/problem+json"));
        }
    }
    let anonymous = get(&world, "/api/v1/audit", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    for roles in [&[Role::Support][..], &[Role::Admin]] {
        let reply = get(&world, "/api/v1/audit", Some(&principal(roles)), None).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
}

async fn bad_filters_are_422_naming_the_field(pool: Pool) {
    let world = world(pool);
    let admin = principal(&[Role::Admin]);
    let cases = [
        ("/api/v1/audit?from=yesterday", "from"),
        ("/api/v1/audit?to=2026-12-01", "to"),
        ("/api/v1/audit?limit=501", "limit"),
        ("/api/v1/audit?limit=0", "limit"),
        ("/api/v1/audit?cursor=abc", "cursor"),
        ("/api/v1/audit?limit=many", "limit"),
        ("/api/v1/audit?colour=blue", ""),
        ("/api/v1/analytics/bookings?from=2026-02-30", "from"),
        ("/api/v1/analytics/bookings?from=2025-01-01&to=2026-12-31", "from"),
        ("/api/v1/analytics/bookings?from=2026-12-02&to=2026-12-01", "to"),
        ("/api/v1/analytics/bookings?currency=euro", "currency"),
        ("/api/v1/analytics/cancellations?format=xml", "format"),
        ("/api/v1/analytics/load-factor?limit=100000", "limit"),
        ("/api/v1/analytics/occupancy?hotel_id=nope", "hotel_id"),
        ("/api/v1/analytics/occupancy?cursor=abc", "cursor"),
    ];
    for (uri, field) in cases {
        let reply = get(&world, uri, Some(&admin), None).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {}", reply.text);
        let body = reply.json();
        assert_eq!(body["code"], "invalid_fields", "{uri}");
        if !field.is_empty() {
            assert_eq!(body["errors"][0]["field"], field, "{uri}: {body}");
        }
    }
}

/// An event analytics refuses becomes a dead letter that admins (only) see, per consumer, open or all.
async fn admins_see_dead_letters_per_consumer(pool: Pool) {
    let world = world(pool);
    let mut poison = confirmed("b-poison", "user-1", "2026-12-01");
    poison.data = json!({"currency": "EUR"});
    let applied = world.analytics.apply(std::slice::from_ref(&poison)).await.unwrap();
    assert_eq!(applied.dead_lettered, 1);
    let admin = principal(&[Role::Admin]);

    let reply = get(
        &world,
        "/api/v1/audit/dead-letters?consumer=analytics",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["consumer"], "analytics");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["event_id"], poison.id.to_string());
    assert_eq!(items[0]["event"]["type"], "booking.confirmed.v1");
    assert_eq!(items[0]["attempts"], 2);
    assert!(items[0]["error"].as_str().unwrap().contains("total_minor"));

    let audit = get(
        &world,
        "/api/v1/audit/dead-letters?consumer=audit&all=true",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(audit.status, StatusCode::OK);
    assert_eq!(audit.json()["items"], json!([]), "the audit consumer has none");

    for roles in [&[Role::Support][..], &[Role::Customer]] {
        let reply = get(
            &world,
            "/api/v1/audit/dead-letters?consumer=analytics",
            Some(&principal(roles)),
            None,
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{roles:?}: whole events carry personal data"
        );
    }
    for (uri, field) in [
        ("/api/v1/audit/dead-letters", "consumer"),
        ("/api/v1/audit/dead-letters?consumer=notification", "consumer"),
        ("/api/v1/audit/dead-letters?consumer=audit&limit=0", "limit"),
        ("/api/v1/audit/dead-letters?consumer=audit&limit=501", "limit"),
    ] {
        let reply = get(&world, uri, Some(&admin), None).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {}", reply.text);
        assert_eq!(reply.json()["errors"][0]["field"], field, "{uri}");
    }
}

//! Webhooks: signed the Standard Webhooks way (checked with the reference `standardwebhooks` crate, not our
//! code), retried with backoff, dead after `max_attempts`, replayed with the same `webhook-id`.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use phoenix_api::{Principal, Role};
use phoenix_db::Pool;
use phoenix_notification::{Channel, Delivery, Options, Service, Status};
use serde_json::json;

use crate::{Booking, call, consumer, deliver_until, options, principal, service};

phoenix_db::contract_suite!(
    phoenix_notification::migrations(),
    [
        a_partner_receives_signed_events_it_can_verify,
        a_failing_endpoint_is_retried_then_dead_then_replayed,
        endpoints_are_validated_and_belong_to_their_organization,
        endpoints_on_the_platforms_own_network_are_never_called,
        an_allowed_private_network_is_called_and_no_other,
        secrets_are_stored_sealed_and_one_kept_in_clear_is_sealed_at_start,
        support_pages_through_dead_deliveries_newest_first,
        event_types_count_once_and_descriptions_count_characters,
        an_endpoint_gone_or_deleted_is_named_and_not_replayed,
        endpoint_and_template_changes_are_events_naming_who,
        racing_registrations_never_pass_the_cap,
    ]
);

/// Notification's own events, oldest first: (type, data).
async fn outbox(pool: &Pool) -> Vec<(String, serde_json::Value)> {
    pool.events_after(0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|record| (record.event_type, record.data.0))
        .collect()
}

/// What the receiver saw: each call's headers and body, and whether the signature verified.
#[derive(Default)]
struct Received {
    calls: Vec<(HeaderMap, Bytes, bool)>,
}

#[derive(Clone)]
struct Receiver {
    answer: Arc<AtomicU16>,
    verifier: Arc<Mutex<Option<standardwebhooks::Webhook>>>,
    received: Arc<Mutex<Received>>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let verified = receiver
        .verifier
        .lock()
        .unwrap()
        .as_ref()
        .is_some_and(|v| v.verify(&body, &headers).is_ok());
    receiver.received.lock().unwrap().calls.push((headers, body, verified));
    if !verified {
        return StatusCode::BAD_REQUEST;
    }
    StatusCode::from_u16(receiver.answer.load(Ordering::SeqCst)).unwrap()
}

/// A webhook receiver on a free port; returns it and its URL.
async fn start_receiver(answer: u16) -> (Receiver, String) {
    let receiver = Receiver {
        answer: Arc::new(AtomicU16::new(answer)),
        verifier: Arc::default(),
        received: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, format!("http://{address}/hooks"))
}

/// Registers `url` for the booking's organization as one of its agents; gives the receiver the secret.
async fn register(service: &Service, booking: &Booking, receiver: &Receiver, url: &str, types: &[&str]) -> String {
    let agent = principal(&[Role::Agent], booking.organization_id);
    let body = json!({ "url": url, "event_types": types, "description": "test" });
    let (status, created) = call(service, &agent, "POST", "/api/v1/webhooks", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    *receiver.verifier.lock().unwrap() = Some(standardwebhooks::Webhook::new(&secret).unwrap());
    secret
}

async fn a_partner_receives_signed_events_it_can_verify(pool: Pool) {
    let (receiver, url) = start_receiver(204).await;
    let service = service(pool, options()).await.start();
    let booking = Booking::new();
    register(&service, &booking, &receiver, &url, &["booking.confirmed.v1"]).await;
    let confirmed = booking.event("booking.confirmed.v1", 0);
    // An event type the endpoint did not subscribe to goes nowhere.
    consumer(&service)
        .apply(&[booking.event("booking.created.v1", 0), confirmed.clone()])
        .await
        .unwrap();

    // The worker loop sends it: wait for the call, bounded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while receiver.received.lock().unwrap().calls.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no webhook call arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (headers, body, verified) = receiver.received.lock().unwrap().calls[0].clone();
    assert!(verified, "the reference implementation verifies the signature");
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (event["id"].as_str(), event["type"].as_str()),
        (Some(&*confirmed.id.to_string()), Some("booking.confirmed.v1"))
    );
    assert_eq!(event["data"]["locator"], booking.locator);

    // A tampered body (or a wrong secret) does not verify.
    let verifier = receiver.verifier.lock().unwrap().take().unwrap();
    let tampered = String::from_utf8_lossy(&body).replace(&booking.locator, "ZZZZZZ");
    assert!(verifier.verify(tampered.as_bytes(), &headers).is_err());
    let other = standardwebhooks::Webhook::new(&phoenix_notification::webhook::new_secret().unwrap()).unwrap();
    assert!(other.verify(&body, &headers).is_err());

    let deliveries = service.deliveries_of_booking(booking.id).await.unwrap();
    let hook = deliveries.iter().find(|d| d.channel == Channel::Webhook).unwrap();
    assert_eq!(
        headers["webhook-id"],
        phoenix_notification::webhook::message_id(hook.id)
    );
    assert_eq!(deliveries.iter().filter(|d| d.channel == Channel::Webhook).count(), 1);
}

async fn a_failing_endpoint_is_retried_then_dead_then_replayed(pool: Pool) {
    let (receiver, url) = start_receiver(500).await;
    let service = service(pool, options()).await;
    let booking = Booking::new();
    register(&service, &booking, &receiver, &url, &["booking.cancelled.v1"]).await;
    consumer(&service)
        .apply(&[booking.event("booking.cancelled.v1", 0)])
        .await
        .unwrap();
    let hook = service
        .deliveries_of_booking(booking.id)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.channel == Channel::Webhook)
        .unwrap();

    let dead = delivered_dead(&service, &hook).await;
    assert_eq!((dead.attempts, dead.response_code), (3, Some(500)));
    assert_eq!(dead.last_error.as_deref(), Some("endpoint answered 500"));
    assert_eq!(
        receiver.received.lock().unwrap().calls.len(),
        3,
        "max_attempts calls, no more"
    );
    {
        let calls = &receiver.received.lock().unwrap().calls;
        assert!(calls.iter().all(|c| c.2), "every retry is signed");
    }
    // The log shows it to support; a customer of another booking cannot replay.
    let support = principal(&[Role::Support], None);
    let shown = logged(&service, &support, &booking, &hook).await;
    assert_eq!((&shown["status"], &shown["attempts"]), (&json!("dead"), &json!(3)));
    let customer = principal(&[Role::Customer], None);
    let (status, _) = call(
        &service,
        &customer,
        "POST",
        &format!("/api/v1/notifications/{}/replay", hook.id),
        None,
    )
    .await;
    assert_eq!(status, 403);

    // The endpoint recovers; support replays; it is delivered with the same webhook-id.
    receiver.answer.store(200, Ordering::SeqCst);
    let (status, replayed) = call(
        &service,
        &support,
        "POST",
        &format!("/api/v1/notifications/{}/replay", hook.id),
        None,
    )
    .await;
    assert_eq!(
        (status, replayed["status"].as_str()),
        (202, Some("pending")),
        "{replayed}"
    );
    crate::deliver_until(&service, "the replay", async || {
        service.delivery(hook.id).await.unwrap().unwrap().status == Status::Delivered
    })
    .await;
    let calls = receiver.received.lock().unwrap().calls.clone();
    assert_eq!(calls.len(), 4);
    let ids: Vec<_> = calls
        .iter()
        .map(|c| c.0["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one webhook-id across retries and the replay: {ids:?}"
    );
    let delivered = service.delivery(hook.id).await.unwrap().unwrap();
    assert_eq!(
        (delivered.replays, delivered.attempts, delivered.response_code),
        (1, 1, Some(200))
    );
    // Every attempt is in the log, those before the replay included.
    let shown = logged(&service, &support, &booking, &hook).await;
    let history: Vec<(i64, i64, &str, i64, &str)> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let (replay, attempt) = (a["replay"].as_i64().unwrap(), a["attempt"].as_i64().unwrap());
            let code = a["response_code"].as_i64().unwrap();
            (
                replay,
                attempt,
                a["outcome"].as_str().unwrap(),
                code,
                a["error"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let failed = |attempt| (0, attempt, "failed", 500, "endpoint answered 500");
    assert_eq!(history, [failed(1), failed(2), failed(3), (1, 1, "delivered", 200, "")]);
}

/// The delivery as the booking's delivery log shows it to `viewer`.
async fn logged(service: &Service, viewer: &Principal, booking: &Booking, delivery: &Delivery) -> serde_json::Value {
    let uri = format!("/api/v1/notifications?booking_id={}", booking.id);
    let (status, log) = call(service, viewer, "GET", &uri, None).await;
    assert_eq!(status, 200, "{log}");
    let found = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == json!(delivery.id));
    found.expect("the delivery in the log").clone()
}

async fn endpoints_are_validated_and_belong_to_their_organization(pool: Pool) {
    let service = service(pool, options()).await;
    let organization = Some(uuid::Uuid::now_v7());
    let partner = principal(&[Role::Partner], organization);
    for (body, field) in [
        (
            json!({ "url": "ftp://example.com/x", "event_types": ["booking.confirmed.v1"] }),
            "url",
        ),
        (
            json!({ "url": "https://example.com/x", "event_types": ["booking.unknown.v1"] }),
            "event_types",
        ),
        (
            json!({ "url": "https://example.com/x", "event_types": [] }),
            "event_types",
        ),
    ] {
        let (status, problem) = call(&service, &partner, "POST", "/api/v1/webhooks", Some(body)).await;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (422, Some(field)),
            "{problem}"
        );
    }
    let body = json!({ "url": "https://partner.example.com/hooks", "event_types": ["payment.refunded.v1"] });
    let (status, created) = call(&service, &partner, "POST", "/api/v1/webhooks", Some(body)).await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, list) = call(&service, &partner, "GET", "/api/v1/webhooks", None).await;
    assert_eq!((status, list["items"].as_array().unwrap().len()), (200, 1));
    assert!(
        list["items"][0].get("secret").is_none(),
        "the secret is shown once only"
    );
    let customer = principal(&[Role::Customer], None);
    assert_eq!(call(&service, &customer, "GET", "/api/v1/webhooks", None).await.0, 403);
    let stranger = principal(&[Role::Agent], Some(uuid::Uuid::now_v7()));
    assert_eq!(
        call(&service, &stranger, "DELETE", &format!("/api/v1/webhooks/{id}"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&service, &partner, "DELETE", &format!("/api/v1/webhooks/{id}"), None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&service, &partner, "DELETE", &format!("/api/v1/webhooks/{id}"), None)
            .await
            .0,
        404
    );
}

/// Runs the worker until `hook` is dead; it as it is then.
async fn delivered_dead(service: &Service, hook: &Delivery) -> Delivery {
    crate::deliver_until(service, "a dead delivery", async || {
        service.delivery(hook.id).await.unwrap().unwrap().status == Status::Dead
    })
    .await;
    service.delivery(hook.id).await.unwrap().unwrap()
}

/// The webhook delivery of `booking`.
async fn webhook_delivery(service: &Service, booking: &Booking) -> Delivery {
    service
        .deliveries_of_booking(booking.id)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.channel == Channel::Webhook)
        .unwrap()
}

async fn endpoints_on_the_platforms_own_network_are_never_called(pool: Pool) {
    let (receiver, url) = start_receiver(204).await;
    let guarded = Options {
        webhook_private_targets: false,
        ..options()
    };
    let service = service(pool.clone(), guarded.clone()).await;
    let booking = Booking::new();
    // An address named literally, in any of its spellings: refused at registration.
    let spellings = [
        url.clone(),
        url.replace("127.0.0.1", "[::ffff:127.0.0.1]"),
        url.replace("127.0.0.1", "2130706433"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        // Site-local, 6to4 around 127.0.0.1, Teredo.
        url.replace("127.0.0.1", "[fec0::1]"),
        url.replace("127.0.0.1", "[2002:7f00:1::]"),
        url.replace("127.0.0.1", "[2001::1]"),
    ];
    assert_refused(&service, &booking, &spellings).await;

    // A name that resolves to loopback only: taken (names can change), but never called.
    let by_name = url.replace("127.0.0.1", "localhost");
    register(&service, &booking, &receiver, &by_name, &["booking.cancelled.v1"]).await;
    consumer(&service)
        .apply(&[booking.event("booking.cancelled.v1", 0)])
        .await
        .unwrap();
    let hook = webhook_delivery(&service, &booking).await;
    let dead = delivered_dead(&service, &hook).await;
    assert_eq!((dead.attempts, dead.response_code), (3, None));
    let error = dead.last_error.unwrap_or_default();
    assert!(error.contains("localhost has no public address"), "{error}");
    assert!(receiver.received.lock().unwrap().calls.is_empty());

    // An endpoint registered while private targets were allowed is not called once they are not.
    let other = Booking::new();
    let open = crate::service(pool, options()).await;
    register(&open, &other, &receiver, &url, &["booking.cancelled.v1"]).await;
    consumer(&service)
        .apply(&[other.event("booking.cancelled.v1", 0)])
        .await
        .unwrap();
    let hook = webhook_delivery(&service, &other).await;
    let refused = delivered_dead(&service, &hook).await;
    assert_eq!(refused.attempts, 1, "refusing is permanent: no retries");
    assert!(receiver.received.lock().unwrap().calls.is_empty());
}

/// An operator may open one private network to webhooks (a partner system inside it) and no other address: the
/// loopback network here, where the receiver listens.
async fn an_allowed_private_network_is_called_and_no_other(pool: Pool) {
    let (receiver, url) = start_receiver(204).await;
    let options = Options {
        webhook_private_targets: false,
        webhook_allowed_networks: vec!["127.0.0.0/8".parse().unwrap()],
        ..options()
    };
    let service = service(pool, options).await;
    let booking = Booking::new();
    let elsewhere = [
        url.replace("127.0.0.1", "[::1]"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.5/hooks".to_owned(),
    ];
    assert_refused(&service, &booking, &elsewhere).await;
    // Named literally or by a name that resolves into the network: both are called.
    register(&service, &booking, &receiver, &url, &["booking.cancelled.v1"]).await;
    let (named, other_url) = start_receiver(204).await;
    let by_name = other_url.replace("127.0.0.1", "localhost");
    register(&service, &booking, &named, &by_name, &["booking.cancelled.v1"]).await;
    consumer(&service)
        .apply(&[booking.event("booking.cancelled.v1", 0)])
        .await
        .unwrap();
    let verified = |receiver: &Receiver| receiver.received.lock().unwrap().calls.iter().any(|call| call.2);
    crate::deliver_until(&service, "a signed call at each endpoint", async || {
        verified(&receiver) && verified(&named)
    })
    .await;
}

/// Registering each of `urls` for the booking's organization is refused: 422 naming `url`.
async fn assert_refused(service: &Service, booking: &Booking, urls: &[String]) {
    let agent = principal(&[Role::Agent], booking.organization_id);
    for url in urls {
        let body = json!({ "url": url, "event_types": ["booking.cancelled.v1"] });
        let (status, problem) = call(service, &agent, "POST", "/api/v1/webhooks", Some(body)).await;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (422, Some("url")),
            "{url}: {problem}"
        );
    }
}

async fn stored_secrets(pool: &Pool) -> Vec<(uuid::Uuid, String)> {
    phoenix_db::dispatch!(pool, conn => {
        sqlx::query_as("SELECT id, secret FROM webhook_endpoints").fetch_all(conn).await
    })
    .unwrap()
}

async fn secrets_are_stored_sealed_and_one_kept_in_clear_is_sealed_at_start(pool: Pool) {
    let (receiver, url) = start_receiver(204).await;
    let booking = Booking::new();
    let service = service(pool.clone(), options()).await;
    let secret = register(&service, &booking, &receiver, &url, &["booking.confirmed.v1"]).await;
    let sealer = phoenix_db::testing::sealer();
    let [(id, stored)] = <[_; 1]>::try_from(stored_secrets(&pool).await).unwrap();
    assert!(stored.starts_with(&sealer.current_text_prefix()), "{stored}");
    assert!(!stored.contains(secret.trim_start_matches("whsec_")));
    drop(service);

    // As an older release left it: the secret in clear. The next start seals it.
    phoenix_db::dispatch!(&pool, conn => {
        sqlx::query("UPDATE webhook_endpoints SET secret = $1 WHERE id = $2")
            .bind(&secret)
            .bind(id)
            .execute(conn)
            .await
            .map(|_| ())
    })
    .unwrap();
    let restarted = crate::service(pool.clone(), options()).await;
    let [(_, resealed)] = <[_; 1]>::try_from(stored_secrets(&pool).await).unwrap();
    assert!(resealed.starts_with(&sealer.current_text_prefix()), "{resealed}");

    // Deliveries are signed with the secret the partner holds.
    consumer(&restarted)
        .apply(&[booking.event("booking.confirmed.v1", 0)])
        .await
        .unwrap();
    deliver_until(&restarted, "the webhook call", async || {
        !receiver.received.lock().unwrap().calls.is_empty()
    })
    .await;
    let verified = receiver.received.lock().unwrap().calls[0].2;
    assert!(verified, "signed with the endpoint's secret");

    // A process without the key that sealed it refuses to start.
    let wrong = phoenix_db::Sealer::new(&[9; 32], &[]).unwrap();
    let refused = Service::new(pool.clone(), options(), wrong).await.err().unwrap();
    assert!(
        matches!(&refused, phoenix_notification::Error::Sealed(phoenix_db::SealError::UnknownKey(key))
            if *key == sealer.key_id()),
        "{refused:?}"
    );
}

async fn support_pages_through_dead_deliveries_newest_first(pool: Pool) {
    let (failing, failing_url) = start_receiver(500).await;
    let (working, working_url) = start_receiver(204).await;
    let service = service(pool, options()).await;
    // Three bookings whose partners' endpoints keep failing, and one whose endpoint works.
    let mut dead = Vec::new();
    for _ in 0..3 {
        let booking = Booking::new();
        register(&service, &booking, &failing, &failing_url, &["booking.cancelled.v1"]).await;
        consumer(&service)
            .apply(&[booking.event("booking.cancelled.v1", 0)])
            .await
            .unwrap();
        dead.push(
            delivered_dead(&service, &webhook_delivery(&service, &booking).await)
                .await
                .id,
        );
    }
    let fine = Booking::new();
    register(&service, &fine, &working, &working_url, &["booking.cancelled.v1"]).await;
    consumer(&service)
        .apply(&[fine.event("booking.cancelled.v1", 0)])
        .await
        .unwrap();
    let fine_hook = webhook_delivery(&service, &fine).await;
    crate::deliver_until(&service, "the working endpoint", async || {
        service.delivery(fine_hook.id).await.unwrap().unwrap().status == Status::Delivered
    })
    .await;

    let support = principal(&[Role::Support], None);
    let page = |query: &str| {
        let (service, support) = (service.clone(), support);
        let uri = format!("/api/v1/notifications/dead-deliveries{query}");
        async move { call(&service, &support, "GET", &uri, None).await }
    };
    let ids = |page: &serde_json::Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let newest_first: Vec<String> = dead.iter().rev().map(|id| id.to_string()).collect();

    let (status, first) = page("?limit=2").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(ids(&first), newest_first[..2]);
    let item = &first["items"][0];
    assert_eq!((&item["status"], &item["channel"]), (&json!("dead"), &json!("webhook")));
    assert_eq!(item["history"].as_array().unwrap().len(), 3, "every attempt: {item}");
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = page(&format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&second), newest_first[2..]);
    assert!(second.get("next_cursor").is_none(), "{second}");
    assert_eq!(second["items"][0]["history"].as_array().unwrap().len(), 3);
    let (_, emails) = page("?channel=email").await;
    assert_eq!(ids(&emails), Vec::<String>::new());

    // A replayed delivery leaves the queue: it is pending again.
    let (status, _) = call(
        &service,
        &support,
        "POST",
        &format!("/api/v1/notifications/{}/replay", dead[2]),
        None,
    )
    .await;
    assert_eq!(status, 202);
    let (_, after) = page("").await;
    assert_eq!(ids(&after), newest_first[1..], "pending again, so no longer dead");

    // Support and admins only; bad pages are refused.
    for role in [Role::Customer, Role::Agent] {
        let viewer = principal(&[role], Some(uuid::Uuid::now_v7()));
        let (status, _) = call(&service, &viewer, "GET", "/api/v1/notifications/dead-deliveries", None).await;
        assert_eq!(status, 403, "{role:?}");
    }
    for bad in ["?limit=0", "?limit=201", "?cursor=nope", "?channel=fax", "?status=dead"] {
        let (status, problem) = page(bad).await;
        assert_eq!(status, 422, "{bad}: {problem}");
    }
}

async fn event_types_count_once_and_descriptions_count_characters(pool: Pool) {
    let service = service(pool, options()).await;
    let partner = principal(&[Role::Partner], Some(uuid::Uuid::now_v7()));
    let create = async |event_types: serde_json::Value, description: &str| {
        let body = json!({ "url": "https://partner.example.com/hooks", "event_types": event_types,
            "description": description });
        call(&service, &partner, "POST", "/api/v1/webhooks", Some(body)).await
    };
    let twelve_times = vec!["booking.confirmed.v1"; 12];
    let (status, created) = create(json!(twelve_times), "twelve times one type").await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["event_types"], json!(["booking.confirmed.v1"]));
    let types = ["booking.confirmed.v1", "booking.cancelled.v1", "payment.refunded.v1"];
    let (status, created) = create(json!([types, types, types, types].concat()), "each four times").await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["event_types"],
        json!(["booking.cancelled.v1", "booking.confirmed.v1", "payment.refunded.v1"])
    );
    let accents = "é".repeat(500);
    let (status, created) = create(json!(["payment.refunded.v1"]), &accents).await;
    assert_eq!(status, 201, "500 characters of two bytes each: {created}");
    assert_eq!(created["description"], json!(accents));

    for (event_types, description, field, message) in [
        (json!([]), "none", "event_types", "name at least one event type"),
        (
            json!(["booking.nothing.v1", "booking.nothing.v1"]),
            "unknown",
            "event_types",
            "unknown event type booking.nothing.v1",
        ),
        (
            json!(["payment.refunded.v1"]),
            &"é".repeat(501),
            "description",
            "must be at most 500 characters",
        ),
        (
            json!(["payment.refunded.v1"]),
            "two\nlines",
            "description",
            "must not contain control characters",
        ),
        (
            json!(["payment.refunded.v1"]),
            "orders \u{202e}lanretni",
            "description",
            phoenix_api::text::INVISIBLE_FORMAT,
        ),
    ] {
        let (status, problem) = create(event_types, description).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        assert_eq!(problem["errors"][0]["message"], message, "{problem}");
    }
}

async fn an_endpoint_gone_or_deleted_is_named_and_not_replayed(pool: Pool) {
    let (receiver, url) = start_receiver(410).await;
    // One delivery a pass: the first call's 410 disables the endpoint before the second is taken.
    let one_at_a_time = Options {
        batch_size: 1,
        ..options()
    };
    let service = service(pool, one_at_a_time).await;
    let first = Booking::new();
    let second = Booking {
        organization_id: first.organization_id,
        ..Booking::new()
    };
    register(&service, &first, &receiver, &url, &["booking.cancelled.v1"]).await;
    for booking in [&first, &second] {
        consumer(&service)
            .apply(&[booking.event("booking.cancelled.v1", 0)])
            .await
            .unwrap();
    }
    let (gone, queued) = (
        webhook_delivery(&service, &first).await,
        webhook_delivery(&service, &second).await,
    );
    crate::deliver_until(&service, "the queued call skipped", async || {
        service.delivery(queued.id).await.unwrap().unwrap().status == Status::Skipped
    })
    .await;
    let gone = service.delivery(gone.id).await.unwrap().unwrap();
    assert_eq!(
        (gone.status, gone.last_error.as_deref()),
        (Status::Dead, Some("endpoint answered 410 Gone"))
    );
    let skipped = service.delivery(queued.id).await.unwrap().unwrap();
    assert_eq!(
        skipped.last_error.as_deref(),
        Some("the endpoint was disabled after answering 410 Gone")
    );
    assert_eq!(receiver.received.lock().unwrap().calls.len(), 1);

    // Replaying either would only skip it again: refused, saying why.
    let support = principal(&[Role::Support], None);
    for delivery in [gone.id, skipped.id] {
        let uri = format!("/api/v1/notifications/{delivery}/replay");
        let (status, problem) = call(&service, &support, "POST", &uri, None).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (409, Some("endpoint_unavailable")),
            "{problem}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("disabled after answering 410 Gone"),
            "{problem}"
        );
    }

    // An endpoint its organization deleted is named as deleted.
    let (live, live_url) = start_receiver(500).await;
    let third = Booking {
        organization_id: Some(uuid::Uuid::now_v7()),
        ..Booking::new()
    };
    register(&service, &third, &live, &live_url, &["booking.cancelled.v1"]).await;
    consumer(&service)
        .apply(&[third.event("booking.cancelled.v1", 0)])
        .await
        .unwrap();
    let hook = webhook_delivery(&service, &third).await;
    let dead = delivered_dead(&service, &hook).await;
    let agent = principal(&[Role::Agent], third.organization_id);
    let (_, list) = call(&service, &agent, "GET", "/api/v1/webhooks", None).await;
    let endpoint = list["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &service,
        &agent,
        "DELETE",
        &format!("/api/v1/webhooks/{endpoint}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, problem) = call(
        &service,
        &support,
        "POST",
        &format!("/api/v1/notifications/{}/replay", dead.id),
        None,
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("endpoint_unavailable")),
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("the endpoint was deleted"),
        "{problem}"
    );
}

/// Registering and deleting an endpoint, the receiver's 410 and a template edit each write one event naming who did
/// it, in the change's transaction; a URL's path and query (where receivers keep tokens) never leave the service.
async fn endpoint_and_template_changes_are_events_naming_who(pool: Pool) {
    let service = service(pool.clone(), options()).await;
    let organization = Some(uuid::Uuid::now_v7());
    let partner = principal(&[Role::Partner], organization);
    let body = json!({
        "url": "https://hooks.partner.example/in/T0K3N-abc?sig=s3cret",
        "event_types": ["booking.confirmed.v1"],
    });
    let (status, created) = call(&service, &partner, "POST", "/api/v1/webhooks", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    for _ in 0..2 {
        call(&service, &partner, "DELETE", &format!("/api/v1/webhooks/{id}"), None).await;
    }
    let admin = principal(&[Role::Admin], None);
    let template =
        json!({ "subject": "Booked: {{ locator }}", "text": "Total {{ total }}", "html": "<p>{{ locator }}</p>" });
    let uri = "/api/v1/notifications/templates/confirmed/email/en";
    assert_eq!(call(&service, &admin, "PUT", uri, Some(template)).await.0, 200);
    let refused = json!({ "subject": "{{ nope", "text": "x", "html": "<p>x</p>" });
    assert_eq!(call(&service, &admin, "PUT", uri, Some(refused)).await.0, 422);

    let events = outbox(&pool).await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "notification.webhook_endpoint_created.v1",
            "notification.webhook_endpoint_disabled.v1",
            "notification.template_changed.v1",
        ],
        "one event a change; the second delete and the refused template change nothing"
    );
    let (created, disabled, template) = (&events[0].1, &events[1].1, &events[2].1);
    assert_eq!(created["endpoint_id"], id.as_str());
    assert_eq!(created["url_host"], "hooks.partner.example");
    assert_eq!(created["created_by"], partner.user_id.to_string());
    assert_eq!(created["event_types"], json!(["booking.confirmed.v1"]));
    assert_eq!(
        (disabled["reason"].as_str(), disabled["actor_id"].as_str()),
        (Some("deleted"), Some(partner.user_id.to_string().as_str()))
    );
    assert_eq!(
        (
            template["kind"].as_str(),
            template["channel"].as_str(),
            template["locale"].as_str()
        ),
        (Some("confirmed"), Some("email"), Some("en"))
    );
    assert_eq!(template["changed_by"], admin.user_id.to_string());
    let everything = serde_json::to_string(&events).unwrap();
    for secret in ["T0K3N", "s3cret", secret.as_str()] {
        assert!(!everything.contains(secret), "{secret} leaked into {everything}");
    }

    // The receiver's 410 Gone disables its endpoint: an event with no actor.
    let (receiver, url) = start_receiver(410).await;
    let booking = Booking::new();
    register(&service, &booking, &receiver, &url, &["booking.cancelled.v1"]).await;
    consumer(&service)
        .apply(&[booking.event("booking.cancelled.v1", 0)])
        .await
        .unwrap();
    let hook = webhook_delivery(&service, &booking).await;
    delivered_dead(&service, &hook).await;
    let events = outbox(&pool).await;
    let (last_type, gone) = events.last().unwrap();
    assert_eq!(last_type, "notification.webhook_endpoint_disabled.v1");
    assert_eq!(
        (
            gone["reason"].as_str(),
            gone["actor_id"].is_null(),
            gone["url_host"].as_str()
        ),
        (Some("gone"), true, Some("127.0.0.1"))
    );
}

/// Thirty registrations for one organization at once: exactly twenty endpoints, the rest refused with 422, never
/// a 500 and never a twenty-first.
async fn racing_registrations_never_pass_the_cap(pool: Pool) {
    let service = service(pool.clone(), options()).await;
    let organization = Some(uuid::Uuid::now_v7());
    let partner = principal(&[Role::Partner], organization);
    let attempts = (0..30).map(|i| {
        let service = service.clone();
        tokio::spawn(async move {
            let body =
                json!({ "url": format!("https://hooks{i}.example.com/in"), "event_types": ["booking.confirmed.v1"] });
            call(&service, &partner, "POST", "/api/v1/webhooks", Some(body)).await.0
        })
    });
    let mut statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [vec![201; 20], vec![422; 10]].concat());
    let (_, list) = call(&service, &partner, "GET", "/api/v1/webhooks", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 20);
    let created = outbox(&pool)
        .await
        .into_iter()
        .filter(|(t, _)| t == "notification.webhook_endpoint_created.v1")
        .count();
    assert_eq!(created, 20, "an event for each endpoint made, none for the refused");
}

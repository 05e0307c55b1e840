//! The notification contract suite: the handler, worker and API on SQLite and PostgreSQL, against a real SMTP
//! server (aiosmtpd), a webhook receiver verifying signatures independently, and a mocked SMS provider.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod handler;
mod password_reset;
mod sms;
mod smtp;
mod webhooks;

use std::time::Duration;

use axum::body::Body;
use http::Request;
use phoenix_api::{Credential, Principal, Role, Roles};
use phoenix_db::Pool;
use phoenix_events::{CloudEvent, Consumer, ConsumerOptions};
use phoenix_notification::{Options, Service};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;
use uuid::Uuid;

/// Options for tests: tiny backoff, fast polling.
pub fn options() -> Options {
    Options {
        backoff_base_ms: 10,
        backoff_max_ms: 40,
        poll_interval_ms: 20,
        send_timeout_ms: 2_000,
        claim_secs: 10,
        max_attempts: 3,
        // The tests' webhook receivers listen on loopback.
        webhook_private_targets: true,
        ..Options::default()
    }
}

/// [`options`], sending email through the test SMTP server `smtp`.
pub fn with_smtp(smtp: &phoenix_notification::testing::SmtpServer) -> Options {
    Options {
        smtp: Some(phoenix_notification::SmtpOptions {
            host: "127.0.0.1".to_owned(),
            port: smtp.port,
            tls: phoenix_notification::SmtpTls::None,
            username: None,
            password: None,
            from: "Phoenix <noreply@phoenix.test>".to_owned(),
        }),
        ..options()
    }
}

pub fn consumer(service: &Service) -> Consumer {
    Consumer::new(
        service.pool().clone(),
        service.handler(),
        ConsumerOptions {
            max_attempts: 2,
            retry_base_ms: 1,
        },
    )
}

/// A booking as booking's events describe it.
#[derive(Clone)]
pub struct Booking {
    pub id: Uuid,
    pub locator: String,
    pub customer_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub email: String,
    pub phone: Option<String>,
    pub starts_at: OffsetDateTime,
}

impl Default for Booking {
    fn default() -> Booking {
        Booking::new()
    }
}

impl Booking {
    pub fn new() -> Booking {
        Booking {
            id: Uuid::now_v7(),
            locator: format!("L{}", &Uuid::new_v4().simple().to_string()[..5].to_uppercase()),
            customer_id: Uuid::now_v7(),
            organization_id: Some(Uuid::now_v7()),
            email: "jane.doe@example.com".to_owned(),
            phone: None,
            starts_at: OffsetDateTime::now_utc() + time::Duration::days(10),
        }
    }

    pub fn event(&self, event_type: &str, refunded_minor: i64) -> CloudEvent {
        let data = json!({
            "booking_id": self.id,
            "locator": self.locator,
            "status": event_type.split('.').nth(1).unwrap_or("pending"),
            "customer_id": self.customer_id,
            "organization_id": self.organization_id,
            "created_by": self.customer_id,
            "contact_email": self.email,
            "contact_phone": self.phone,
            "currency": "EUR",
            "total_minor": 123_450,
            "refunded_minor": refunded_minor,
            "starts_at": self.starts_at.format(&time::format_description::well_known::Rfc3339).unwrap(),
            "ends_at": (self.starts_at + time::Duration::days(3))
                .format(&time::format_description::well_known::Rfc3339).unwrap(),
        });
        cloud_event(event_type, &self.id.to_string(), data)
    }

    pub fn refund_event(&self, amount_minor: i64) -> CloudEvent {
        let payment_id = Uuid::now_v7();
        let data = json!({
            "payment_id": payment_id,
            "owner_id": self.customer_id,
            "organization_id": self.organization_id,
            "status": "refunded",
            "amount_minor": 123_450,
            "currency": "EUR",
            "captured_minor": 123_450,
            "refunded_minor": amount_minor,
            "provider": "simulated",
            "reference": self.id.to_string(),
            "operation": { "id": Uuid::now_v7(), "kind": "refund", "amount_minor": amount_minor },
        });
        cloud_event("payment.refunded.v1", &payment_id.to_string(), data)
    }
}

pub fn cloud_event(event_type: &str, subject: &str, data: Value) -> CloudEvent {
    CloudEvent {
        specversion: "1.0".to_owned(),
        id: Uuid::now_v7(),
        source: format!("phoenix.{}", event_type.split('.').next().unwrap_or("x")),
        event_type: event_type.to_owned(),
        subject: subject.to_owned(),
        time: OffsetDateTime::now_utc(),
        datacontenttype: "application/json".to_owned(),
        data,
        correlationid: Some("req-1".to_owned()),
        traceparent: None,
        sequence: 1,
    }
}

pub fn principal(roles: &[Role], organization_id: Option<Uuid>) -> Principal {
    principal_for(Uuid::now_v7(), roles, organization_id)
}

pub fn principal_for(user_id: Uuid, roles: &[Role], organization_id: Option<Uuid>) -> Principal {
    Principal {
        user_id,
        roles: Roles::from(roles),
        organization_id,
        credential: Credential::AccessToken {
            token_id: Uuid::now_v7(),
        },
    }
}

/// Calls the service's API in process as `principal`; returns status and JSON body.
pub async fn call(
    service: &Service,
    principal: &Principal,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let router = phoenix_notification::api()
        .with_state(service.clone())
        .split_for_parts()
        .0;
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let mut request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    request.extensions_mut().insert(*principal);
    let response = router.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, json)
}

/// Saves a customer's preferences (`{"locale", "opt_out"}`) as they would over the API.
pub async fn set_preferences(service: &Service, user_id: Uuid, body: Value) {
    let customer = principal_for(user_id, &[Role::Customer], None);
    let (status, answer) = call(
        service,
        &customer,
        "PUT",
        "/api/v1/notifications/preferences",
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

/// Runs the worker's passes until `done` holds, for at most 10 seconds.
pub async fn deliver_until(service: &Service, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        service.deliver_due().await.expect("deliver");
        if done().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn service(pool: Pool, options: Options) -> Service {
    Service::new(pool, options, phoenix_db::testing::sealer())
        .await
        .expect("service")
}

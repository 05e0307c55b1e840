//! From events to deliveries: once per event, reminders scheduled and cancelled, opt-outs honoured, refunds found
//! through the booking's projection.

use phoenix_api::Role;
use phoenix_db::Pool;
use phoenix_notification::{Channel, Status};
use serde_json::json;
use uuid::Uuid;

use crate::{Booking, call, consumer, options, principal, service};

phoenix_db::contract_suite!(
    phoenix_notification::migrations(),
    [
        the_same_event_twice_makes_one_set_of_deliveries,
        a_confirmation_schedules_a_reminder_before_the_start,
        opting_out_suppresses_reminders_but_not_confirmations,
        a_cancelled_booking_cancels_its_pending_reminder,
        a_refund_notice_reaches_the_bookings_contact,
        a_payment_naming_someone_elses_booking_notifies_no_one,
    ]
);

async fn the_same_event_twice_makes_one_set_of_deliveries(pool: Pool) {
    let service = service(pool, options()).await;
    let consumer = consumer(&service);
    let booking = Booking::new();
    let confirmed = booking.event("booking.confirmed.v1", 0);
    consumer.apply(std::slice::from_ref(&confirmed)).await.unwrap();
    let again = consumer.apply(&[confirmed.clone(), confirmed]).await.unwrap();
    assert_eq!(again.duplicates, 2);
    let deliveries = service.deliveries_of_booking(booking.id).await.unwrap();
    let kinds: Vec<_> = deliveries.iter().map(|d| (d.kind.as_str(), d.channel)).collect();
    assert_eq!(kinds, vec![("confirmed", Channel::Email), ("reminder", Channel::Email)]);
}

async fn a_confirmation_schedules_a_reminder_before_the_start(pool: Pool) {
    let service = service(pool, options()).await;
    let consumer = consumer(&service);
    let booking = Booking::new();
    consumer
        .apply(&[booking.event("booking.confirmed.v1", 0)])
        .await
        .unwrap();
    let deliveries = service.deliveries_of_booking(booking.id).await.unwrap();
    let reminder = deliveries.iter().find(|d| d.kind == "reminder").expect("reminder");
    let due = booking.starts_at - time::Duration::hours(24);
    assert!((reminder.next_attempt_at.datetime() - due).abs() < time::Duration::seconds(1));
    assert_eq!(reminder.status, Status::Pending);
    // Not due yet: a pass sends the confirmation only.
    let pass = service.deliver_due().await.unwrap();
    assert_eq!(pass.claimed, 1);
    assert_eq!(
        service.delivery(reminder.id).await.unwrap().unwrap().status,
        Status::Pending
    );

    // A booking starting within the lead gets no reminder.
    let soon = Booking {
        starts_at: time::OffsetDateTime::now_utc() + time::Duration::hours(2),
        ..Booking::new()
    };
    consumer.apply(&[soon.event("booking.confirmed.v1", 0)]).await.unwrap();
    let deliveries = service.deliveries_of_booking(soon.id).await.unwrap();
    assert_eq!(
        deliveries.iter().map(|d| d.kind.as_str()).collect::<Vec<_>>(),
        vec!["confirmed"]
    );
}

async fn opting_out_suppresses_reminders_but_not_confirmations(pool: Pool) {
    let service = service(pool, options()).await;
    let consumer = consumer(&service);
    let booking = Booking::new();
    let body = serde_json::json!({ "locale": "de", "opt_out": [{ "kind": "reminder", "channel": "email" }] });
    crate::set_preferences(&service, booking.customer_id, body).await;
    consumer
        .apply(&[booking.event("booking.confirmed.v1", 0)])
        .await
        .unwrap();
    let deliveries = service.deliveries_of_booking(booking.id).await.unwrap();
    assert_eq!(deliveries.len(), 1, "no reminder");
    assert_eq!(
        (deliveries[0].kind.as_str(), deliveries[0].locale.as_str()),
        ("confirmed", "de")
    );
}

async fn a_cancelled_booking_cancels_its_pending_reminder(pool: Pool) {
    let service = service(pool, options()).await;
    let consumer = consumer(&service);
    let booking = Booking::new();
    consumer
        .apply(&[booking.event("booking.confirmed.v1", 0)])
        .await
        .unwrap();
    consumer
        .apply(&[booking.event("booking.cancelled.v1", 23_450)])
        .await
        .unwrap();
    // Confirmed and cancelled in one delivered batch: the same log.
    let together = Booking::new();
    consumer
        .apply(&[
            together.event("booking.confirmed.v1", 0),
            together.event("booking.cancelled.v1", 23_450),
        ])
        .await
        .unwrap();
    for booking in [&booking, &together] {
        let deliveries = service.deliveries_of_booking(booking.id).await.unwrap();
        assert_eq!(deliveries.len(), 3, "{deliveries:?}");
        let by_kind = |kind: &str| deliveries.iter().find(|d| d.kind == kind).expect(kind).status;
        assert_eq!(by_kind("reminder"), Status::Cancelled);
        assert_eq!(by_kind("cancelled"), Status::Pending);
        assert_eq!(by_kind("confirmed"), Status::Pending);
    }
}

async fn a_refund_notice_reaches_the_bookings_contact(pool: Pool) {
    let service = service(pool, options()).await;
    let consumer = consumer(&service);
    let booking = Booking::new();
    consumer
        .apply(&[booking.event("booking.confirmed.v1", 0), booking.refund_event(5_000)])
        .await
        .unwrap();
    let deliveries = service.deliveries_of_booking(booking.id).await.unwrap();
    let refund = deliveries.iter().find(|d| d.kind == "refunded").expect("refund notice");
    assert_eq!(refund.recipient, booking.email);
    assert_eq!(refund.payload["amount_minor"], 5_000);
    // Without SMTP the email is logged.
    crate::deliver_until(&service, "logged", async || {
        service.delivery(refund.id).await.unwrap().unwrap().status == Status::Logged
    })
    .await;
}

/// A payment's reference is free text: a stranger's payment naming someone else's booking (its id is shown to whoever
/// has the locator and last name) neither writes to that booking's customer nor puts the stranger's webhook calls in
/// that booking's delivery log. The booking's own payment still does both.
async fn a_payment_naming_someone_elses_booking_notifies_no_one(pool: Pool) {
    let service = service(pool, options()).await;
    let consumer = consumer(&service);
    let booking = Booking::new();
    let stranger_org = Uuid::now_v7();
    let stranger = principal(&[Role::Partner], Some(stranger_org));
    let hooks = json!({ "url": "https://stranger.example.com/hooks", "event_types": ["payment.refunded.v1"] });
    let (status, _) = call(&service, &stranger, "POST", "/api/v1/webhooks", Some(hooks)).await;
    assert_eq!(status, 201);
    let mut spoof = booking.refund_event(99_999);
    spoof.data["owner_id"] = json!(stranger.user_id);
    spoof.data["organization_id"] = json!(stranger_org);
    consumer
        .apply(&[booking.event("booking.confirmed.v1", 0), spoof])
        .await
        .unwrap();
    let kinds = async || -> Vec<String> {
        let deliveries = service.deliveries_of_booking(booking.id).await.unwrap();
        deliveries.into_iter().map(|d| d.kind).collect()
    };
    assert_eq!(kinds().await, ["confirmed", "reminder"]);

    consumer.apply(&[booking.refund_event(5_000)]).await.unwrap();
    assert_eq!(kinds().await, ["confirmed", "reminder", "refunded"]);
}

//! Password reset emails: identity's request becomes one email with the link, through a real SMTP server; the
//! token stays sealed in the store and out of the log; transactional, never to webhooks; expired, unsealed or
//! unopenable tokens are not mailed; the template is admins' to edit like the others.

use phoenix_api::Role;
use phoenix_db::{Pool, Sealer, dispatch};
use phoenix_events::CloudEvent;
use phoenix_notification::testing::SmtpServer;
use phoenix_notification::{Delivery, Options, Service, Status};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{call, cloud_event, consumer, deliver_until, options, principal, service};

phoenix_db::contract_suite!(
    phoenix_notification::migrations(),
    [
        a_reset_request_becomes_one_email_with_the_link,
        the_stored_delivery_keeps_the_token_sealed,
        a_reset_email_is_transactional_and_never_goes_to_webhooks,
        an_expired_or_unsealed_reset_request_is_not_mailed,
        a_link_that_expires_before_it_is_sent_is_skipped,
        a_token_sealed_with_another_key_or_for_another_user_is_not_mailed,
        an_admins_reset_template_is_used_and_must_use_the_links_variables,
    ]
);

const RESET_URL: &str = "https://travel.example.com/reset-password";

/// A token as identity issues them (43 URL-safe characters), unique per call.
fn new_token() -> String {
    format!(
        "tok{}{}",
        Uuid::new_v4().simple(),
        &Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Identity's `identity.password_reset_requested.v1` for `user_id`, its token sealed by `sealer` for `sealed_for`.
fn requested_with(
    sealer: &Sealer,
    user_id: Uuid,
    sealed_for: Uuid,
    token: &str,
    expires_in: time::Duration,
) -> CloudEvent {
    let expires_at = OffsetDateTime::now_utc() + expires_in;
    let data = json!({
        "user_id": user_id,
        "email": "ann.lee@example.com",
        "name": "Ann Lee",
        "expires_at": expires_at.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "sealed_token": sealer.seal_text(&format!("identity.password_reset:{sealed_for}"), token),
    });
    cloud_event("identity.password_reset_requested.v1", &user_id.to_string(), data)
}

fn requested(user_id: Uuid, token: &str) -> CloudEvent {
    requested_with(
        &phoenix_db::testing::sealer(),
        user_id,
        user_id,
        token,
        time::Duration::minutes(30),
    )
}

fn with_smtp(smtp: &SmtpServer) -> Options {
    Options {
        password_reset_url: RESET_URL.to_owned(),
        ..crate::with_smtp(smtp)
    }
}

/// Every password reset delivery, oldest first.
async fn reset_deliveries(service: &Service) -> Vec<Delivery> {
    let ids: Vec<Uuid> = dispatch!(service.pool(), conn => {
        sqlx::query_scalar("SELECT id FROM deliveries WHERE kind = 'password_reset' ORDER BY created_at, id")
            .fetch_all(conn)
            .await
    })
    .unwrap();
    let mut deliveries = Vec::new();
    for id in ids {
        deliveries.push(service.delivery(id).await.unwrap().unwrap());
    }
    deliveries
}

/// Every column of every delivery and attempt, as stored, as text.
async fn stored_text(pool: &Pool) -> String {
    let deliveries: Vec<(String, String, Option<String>)> = dispatch!(pool, conn => {
        sqlx::query_as("SELECT recipient, CAST(payload AS TEXT), last_error FROM deliveries").fetch_all(conn).await
    })
    .unwrap();
    let attempts: Vec<(String, Option<String>)> = dispatch!(pool, conn => {
        sqlx::query_as("SELECT outcome, error FROM delivery_attempts").fetch_all(conn).await
    })
    .unwrap();
    format!("{deliveries:?} {attempts:?}")
}

/// The email's text with quoted-printable soft line breaks and `=3D` undone, and the HTML part's escaped `/`, as a
/// mail reader shows them.
fn readable(mail: &str) -> String {
    mail.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
        .replace("&#x2f;", "/")
}

async fn a_reset_request_becomes_one_email_with_the_link(pool: Pool) {
    let smtp = SmtpServer::start().await;
    let service = service(pool, with_smtp(&smtp)).await;
    let (user_id, token) = (Uuid::now_v7(), new_token());
    let event = requested(user_id, &token);
    let consumer = consumer(&service);
    consumer.apply(std::slice::from_ref(&event)).await.unwrap();
    let again = consumer.apply(&[event]).await.unwrap();
    assert_eq!(again.duplicates, 1);

    let deliveries = reset_deliveries(&service).await;
    assert_eq!(deliveries.len(), 1, "one email, once");
    let delivery = &deliveries[0];
    assert_eq!(
        (
            delivery.channel,
            delivery.recipient.as_str(),
            delivery.customer_id,
            delivery.booking_id
        ),
        (
            phoenix_notification::Channel::Email,
            "ann.lee@example.com",
            Some(user_id),
            None
        )
    );
    deliver_until(&service, "the reset email in the mailbox", async || {
        !smtp.messages().is_empty()
    })
    .await;

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let mail = readable(&messages[0]);
    assert!(mail.contains("Subject: Reset your password"), "{mail}");
    assert!(mail.contains("To: ann.lee@example.com"), "{mail}");
    assert!(mail.contains("Hello Ann Lee"), "{mail}");
    assert!(mail.contains("text/plain") && mail.contains("text/html"), "{mail}");
    let link = format!("{RESET_URL}#token={token}");
    assert!(mail.contains(&format!("\n{link}")), "the link in the text: {mail}");
    assert!(
        mail.contains(&format!("<a href=\"{link}\">")),
        "the link in the HTML: {mail}"
    );
    assert!(mail.contains("for 30 minutes"), "{mail}");
    let sent = service.delivery(delivery.id).await.unwrap().unwrap();
    assert_eq!((sent.status, sent.attempts), (Status::Delivered, 1));
}

/// What the store keeps is identity's sealed token, before and after sending: no row, no attempt, no error holds
/// the token in clear; opened with the shared key, the sealed one is the token.
async fn the_stored_delivery_keeps_the_token_sealed(pool: Pool) {
    let smtp = SmtpServer::start().await;
    let service = service(pool.clone(), with_smtp(&smtp)).await;
    let (user_id, token) = (Uuid::now_v7(), new_token());
    let event = requested(user_id, &token);
    consumer(&service).apply(std::slice::from_ref(&event)).await.unwrap();

    let delivery = reset_deliveries(&service).await.remove(0);
    let sealed = delivery.payload["sealed_token"].as_str().unwrap();
    assert_eq!(
        sealed,
        event.data["sealed_token"].as_str().unwrap(),
        "kept as identity sealed it"
    );
    let opened = phoenix_db::testing::sealer()
        .open_text(&format!("identity.password_reset:{user_id}"), sealed)
        .unwrap();
    assert_eq!(opened.value, token);
    assert!(
        !stored_text(&pool).await.contains(&token),
        "no clear token before sending"
    );

    deliver_until(&service, "the email", async || !smtp.messages().is_empty()).await;
    assert!(readable(&smtp.messages()[0]).contains(&token), "the email carries it");
    assert!(
        !stored_text(&pool).await.contains(&token),
        "no clear token after sending"
    );
}

/// A reset email cannot be opted out of and follows the user's locale; an organization's endpoints never get
/// account events (they cannot even subscribe to them).
async fn a_reset_email_is_transactional_and_never_goes_to_webhooks(pool: Pool) {
    let service = service(pool, options()).await;
    let user_id = Uuid::now_v7();
    let customer = crate::principal_for(user_id, &[Role::Customer], None);
    let opt_out = json!({ "locale": "de", "opt_out": [{ "kind": "password_reset", "channel": "email" }] });
    let (status, problem) = call(
        &service,
        &customer,
        "PUT",
        "/api/v1/notifications/preferences",
        Some(opt_out),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("transactional_message")),
        "{problem}"
    );
    crate::set_preferences(&service, user_id, json!({ "locale": "de", "opt_out": [] })).await;

    let partner = principal(&[Role::Partner], Some(Uuid::now_v7()));
    let hooks = json!({ "url": "https://partner.example.com/hooks",
        "event_types": ["identity.password_reset_requested.v1"] });
    let (status, problem) = call(&service, &partner, "POST", "/api/v1/webhooks", Some(hooks)).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "event_types", "{problem}");

    consumer(&service)
        .apply(&[requested(user_id, &new_token())])
        .await
        .unwrap();
    let deliveries = reset_deliveries(&service).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].locale, "de");
    let all: i64 = dispatch!(service.pool(), conn => {
        sqlx::query_scalar("SELECT COUNT(*) FROM deliveries").fetch_one(conn).await
    })
    .unwrap();
    assert_eq!(all, 1, "no webhook call, no SMS");
    deliver_until(&service, "the German email logged", async || {
        service.delivery(deliveries[0].id).await.unwrap().unwrap().status == Status::Logged
    })
    .await;
}

/// A request read after its link expired (old events replayed, a long outage), or one whose token came unsealed,
/// writes nothing.
async fn an_expired_or_unsealed_reset_request_is_not_mailed(pool: Pool) {
    let service = service(pool.clone(), options()).await;
    let user_id = Uuid::now_v7();
    let sealer = phoenix_db::testing::sealer();
    let expired = requested_with(&sealer, user_id, user_id, &new_token(), time::Duration::seconds(-1));
    let token = new_token();
    let mut unsealed = requested(user_id, &token);
    unsealed.data["sealed_token"] = json!(token);
    let outcome = consumer(&service).apply(&[expired, unsealed]).await.unwrap();
    assert_eq!(outcome.duplicates, 0);
    assert!(reset_deliveries(&service).await.is_empty());
    assert!(!stored_text(&pool).await.contains(&token));
    let dead: i64 = dispatch!(&pool, conn => {
        sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters").fetch_one(conn).await
    })
    .unwrap();
    assert_eq!(dead, 0, "handled, not refused: no copy kept as a dead letter");
}

/// Retries stop when the link expires, and a delivery still pending then (or replayed) is skipped, not sent.
async fn a_link_that_expires_before_it_is_sent_is_skipped(pool: Pool) {
    let service = service(pool.clone(), options()).await;
    let user_id = Uuid::now_v7();
    consumer(&service)
        .apply(&[requested(user_id, &new_token())])
        .await
        .unwrap();
    let delivery = reset_deliveries(&service).await.remove(0);
    let expires_at = OffsetDateTime::parse(
        delivery.payload["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(delivery.give_up_at.datetime() <= expires_at, "no retry past the expiry");

    let mut payload = delivery.payload.clone();
    let past = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    payload["expires_at"] = json!(past.format(&time::format_description::well_known::Rfc3339).unwrap());
    dispatch!(&pool, conn => {
        sqlx::query("UPDATE deliveries SET payload = $1 WHERE id = $2")
            .bind(sqlx::types::Json(&payload))
            .bind(delivery.id)
            .execute(conn)
            .await
            .map(drop)
    })
    .unwrap();
    let pass = service.deliver_due().await.unwrap();
    assert_eq!((pass.claimed, pass.skipped, pass.sent), (1, 1, 0));
    let skipped = service.delivery(delivery.id).await.unwrap().unwrap();
    assert_eq!(skipped.status, Status::Skipped);
    assert_eq!(skipped.last_error.as_deref(), Some("the reset link has expired"));
}

/// A token sealed with a key this process lacks (identity given another `secrets_key`), or sealed for another
/// user, does not open: the email is not sent, and the log says why without the token.
async fn a_token_sealed_with_another_key_or_for_another_user_is_not_mailed(pool: Pool) {
    let service = service(pool.clone(), options()).await;
    let other_key = Sealer::new(&[0x11; 32], &[]).unwrap();
    let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let token = new_token();
    consumer(&service)
        .apply(&[
            requested_with(&other_key, ann, ann, &token, time::Duration::minutes(30)),
            requested_with(
                &phoenix_db::testing::sealer(),
                bob,
                ann,
                &token,
                time::Duration::minutes(30),
            ),
        ])
        .await
        .unwrap();
    let deliveries = reset_deliveries(&service).await;
    assert_eq!(deliveries.len(), 2);
    deliver_until(&service, "both given up", async || {
        let mut dead = 0;
        for delivery in &deliveries {
            dead += usize::from(service.delivery(delivery.id).await.unwrap().unwrap().status == Status::Dead);
        }
        dead == 2
    })
    .await;
    for delivery in &deliveries {
        let given_up = service.delivery(delivery.id).await.unwrap().unwrap();
        let error = given_up.last_error.unwrap_or_default();
        assert!(error.contains("secrets_key"), "{error}");
        assert_eq!(given_up.attempts, 1, "not retried: it would not open next time either");
    }
    assert!(!stored_text(&pool).await.contains(&token));
}

async fn an_admins_reset_template_is_used_and_must_use_the_links_variables(pool: Pool) {
    let smtp = SmtpServer::start().await;
    let service = service(pool, with_smtp(&smtp)).await;
    let admin = principal(&[Role::Admin], None);
    let uri = "/api/v1/notifications/templates/password_reset/email/en";
    let booking_words = json!({ "subject": "Booking {{ locator }}", "text": "x", "html": "<p>x</p>" });
    let (status, problem) = call(&service, &admin, "PUT", uri, Some(booking_words)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("template_invalid")),
        "{problem}"
    );
    let sms = "/api/v1/notifications/templates/password_reset/sms/en";
    let (status, _) = call(&service, &admin, "PUT", sms, Some(json!({ "text": "{{ reset_url }}" }))).await;
    assert_eq!(status, 404, "no reset by SMS");
    let ours = json!({
        "subject": "Your Phoenix Travel password",
        "text": "Dear {{ name }}, follow {{ reset_url }} within {{ valid_minutes }} minutes.",
        "html": "<p><a href=\"{{ reset_url }}\">Reset</a> by {{ expires_at }}</p>",
    });
    assert_eq!(call(&service, &admin, "PUT", uri, Some(ours)).await.0, 200);
    let (_, list) = call(&service, &admin, "GET", "/api/v1/notifications/templates", None).await;
    let kinds: Vec<(Value, Value, Value)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "password_reset")
        .map(|t| (t["channel"].clone(), t["locale"].clone(), t["customized"].clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (json!("email"), json!("en"), json!(true)),
            (json!("email"), json!("de"), json!(false))
        ]
    );

    let token = new_token();
    consumer(&service)
        .apply(&[requested(Uuid::now_v7(), &token)])
        .await
        .unwrap();
    deliver_until(&service, "the email", async || !smtp.messages().is_empty()).await;
    let mail = readable(&smtp.messages()[0]);
    assert!(mail.contains("Subject: Your Phoenix Travel password"), "{mail}");
    assert!(
        mail.contains(&format!(
            "Dear Ann Lee, follow {RESET_URL}#token={token} within 30 minutes."
        )),
        "{mail}"
    );
}

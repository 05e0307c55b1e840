//! Email through a real SMTP server: Python's aiosmtpd on a free loopback port, writing a maildir.

use phoenix_db::Pool;
use phoenix_notification::Status;
use phoenix_notification::testing::SmtpServer;

use phoenix_api::Role;
use serde_json::json;

use crate::{Booking, call, consumer, principal, service, with_smtp};

phoenix_db::contract_suite!(
    phoenix_notification::migrations(),
    [
        the_confirmation_email_reaches_a_real_smtp_server_with_both_parts,
        the_next_email_uses_each_customers_locale_and_the_template_edited_since,
    ]
);

async fn the_confirmation_email_reaches_a_real_smtp_server_with_both_parts(pool: Pool) {
    let smtp = SmtpServer::start().await;
    let service = service(pool, with_smtp(&smtp)).await;
    let booking = Booking::new();
    consumer(&service)
        .apply(&[booking.event("booking.confirmed.v1", 0)])
        .await
        .unwrap();
    let confirmation = service.deliveries_of_booking(booking.id).await.unwrap().remove(0);
    crate::deliver_until(&service, "the email in the mailbox", async || {
        !smtp.messages().is_empty()
    })
    .await;

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "one email: the reminder is not due");
    let mail = &messages[0];
    assert!(
        mail.contains(&format!("Subject: Your booking {} is confirmed", booking.locator)),
        "{mail}"
    );
    assert!(mail.contains("To: jane.doe@example.com"), "{mail}");
    assert!(mail.contains("multipart/alternative"), "{mail}");
    assert!(mail.contains("text/plain") && mail.contains("text/html"), "{mail}");
    assert!(mail.contains("EUR 1,234.50"), "the total as money: {mail}");
    assert!(
        mail.contains(&format!("<strong>{}</strong>", booking.locator)),
        "{mail}"
    );
    let delivered = service.delivery(confirmation.id).await.unwrap().unwrap();
    assert_eq!(
        (delivered.status, delivered.attempts, delivered.response_code),
        (Status::Delivered, 1, Some(250))
    );
}

/// Two customers' confirmations in one batch of events, one of them German: each email is in its customer's
/// locale; a template an admin edits applies to the emails sent after the edit.
async fn the_next_email_uses_each_customers_locale_and_the_template_edited_since(pool: Pool) {
    let smtp = SmtpServer::start().await;
    let service = service(pool, with_smtp(&smtp)).await;
    let (english, german) = (Booking::new(), Booking::new());
    crate::set_preferences(&service, german.customer_id, json!({ "locale": "de", "opt_out": [] })).await;
    consumer(&service)
        .apply(&[
            english.event("booking.confirmed.v1", 0),
            german.event("booking.confirmed.v1", 0),
        ])
        .await
        .unwrap();
    crate::deliver_until(&service, "both emails", async || smtp.messages().len() == 2).await;
    let messages = smtp.messages();
    let mail_of = |booking: &Booking| -> String {
        let found = messages.iter().find(|m| m.contains(&booking.locator));
        found.expect("an email per booking").clone()
    };
    let (in_english, in_german) = (mail_of(&english), mail_of(&german));
    assert!(
        in_english.contains(&format!("Subject: Your booking {} is confirmed", english.locator)),
        "{in_english}"
    );
    assert!(in_english.contains("EUR 1,234.50"), "{in_english}");
    assert!(
        in_german.contains("1.234,50 EUR"),
        "the built-in German email: {in_german}"
    );

    let admin = principal(&[Role::Admin], None);
    let edited =
        json!({ "subject": "Bestaetigt {{ locator }}", "text": "Summe {{ total }}", "html": "<p>{{ total }}</p>" });
    let uri = "/api/v1/notifications/templates/confirmed/email/de";
    assert_eq!(call(&service, &admin, "PUT", uri, Some(edited)).await.0, 200);
    let later = Booking {
        customer_id: german.customer_id,
        ..Booking::new()
    };
    consumer(&service)
        .apply(&[later.event("booking.confirmed.v1", 0)])
        .await
        .unwrap();
    crate::deliver_until(&service, "the third email", async || smtp.messages().len() == 3).await;
    let messages = smtp.messages();
    let newest = messages
        .iter()
        .find(|m| m.contains(&later.locator))
        .expect("the later booking's email");
    assert!(
        newest.contains(&format!("Subject: Bestaetigt {}", later.locator)),
        "{newest}"
    );
    assert!(newest.contains("1.234,50 EUR"), "German money: {newest}");
}

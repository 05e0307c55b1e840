//! Email through a real SMTP server: Python's aiosmtpd on a free loopback port, writing a maildir.

use phoenix_db::Pool;
use phoenix_notification::testing::SmtpServer;
use phoenix_notification::{SmtpOptions, SmtpTls, Status};

use crate::{Booking, consumer, options, service};

phoenix_db::contract_suite!(
    phoenix_notification::migrations(),
    [the_confirmation_email_reaches_a_real_smtp_server_with_both_parts,]
);

async fn the_confirmation_email_reaches_a_real_smtp_server_with_both_parts(pool: Pool) {
    let smtp = SmtpServer::start().await;
    let options = phoenix_notification::Options {
        smtp: Some(SmtpOptions {
            host: "127.0.0.1".to_owned(),
            port: smtp.port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "Phoenix <bookings@phoenix.test>".to_owned(),
        }),
        ..options()
    };
    let service = service(pool, options);
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

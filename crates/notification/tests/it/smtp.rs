//! Email through a real SMTP server: Python's aiosmtpd on a free loopback port, writing a maildir.

use std::path::{Path, PathBuf};
use std::time::Duration;

use phoenix_db::Pool;
use phoenix_notification::{SmtpOptions, SmtpTls, Status};

use crate::{Booking, consumer, options, service};

phoenix_db::contract_suite!(
    phoenix_notification::migrations(),
    [the_confirmation_email_reaches_a_real_smtp_server_with_both_parts,]
);

/// An aiosmtpd process, killed when dropped.
struct SmtpServer {
    port: u16,
    maildir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = tempfile::tempdir().unwrap();
        let child = tokio::process::Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            // Maildir creates the directory (with tmp/, new/, cur/) only when it does not exist yet.
            .arg(maildir.path().join("mail"))
            .kill_on_drop(true)
            .spawn()
            .expect("start aiosmtpd (pip install aiosmtpd)");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "aiosmtpd did not start listening"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        SmtpServer {
            port,
            maildir,
            _child: child,
        }
    }

    fn messages(&self) -> Vec<PathBuf> {
        let new = self.maildir.path().join("mail").join("new");
        std::fs::read_dir(&new)
            .map(|dir| dir.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}

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
    let mail = read(&messages[0]);
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

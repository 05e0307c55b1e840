//! Events end to end: a booking made over HTTP reaches the audit log, the analytics and the customer's inbox (a
//! real SMTP server on loopback), through the outbox relays and the bus: in-process on SQLite and PostgreSQL, and
//! NATS JetStream on PostgreSQL. Then `phoenix audit verify` passes, and fails once an audit row is edited.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::bookings::{book, world};
use crate::common::{Api, TestApp};

/// An aiosmtpd process writing what it receives to a maildir; killed when dropped.
pub struct SmtpServer {
    pub port: u16,
    maildir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let maildir = tempfile::tempdir().expect("maildir");
        let child = tokio::process::Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
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

    pub fn messages(&self) -> Vec<String> {
        let new: PathBuf = self.maildir.path().join("mail").join("new");
        std::fs::read_dir(new)
            .map(|dir| {
                dir.flatten()
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The test configuration with notifications sent through `smtp`, and the delivery worker polling briskly.
pub fn config_with_smtp(smtp: &SmtpServer) -> phoenix::Config {
    let mut config = crate::common::config();
    config.notification.smtp = Some(phoenix_notification::SmtpOptions {
        host: "127.0.0.1".to_owned(),
        port: smtp.port,
        tls: phoenix_notification::SmtpTls::None,
        username: None,
        password: None,
        from: "Phoenix <bookings@phoenix.test>".to_owned(),
    });
    config.notification.poll_interval_ms = 50;
    config
}

/// Polls `path` as `token` until `done` holds for the reply body (bounded: events are asynchronous).
async fn until(api: &Api, path: &str, token: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let reply = api.get(path, Some(token)).await;
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        if done(&reply.body) {
            return reply.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: never happened; last {:?}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_booking_reaches_audit_analytics_and_the_customers_inbox(app: &TestApp, smtp: &SmtpServer) {
    let admin = app.admin().await;
    let world = world(app, admin.clone()).await;
    let (_, ann) = app.customer("ann@example.com").await;
    let made = book(
        app,
        &ann,
        vec![world.stay(&world.flexible_plan, 10, 2, 1, 2)],
        2,
        "tok_visa",
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    let booking_id = made.body["id"].as_str().expect("id").to_owned();
    let locator = made.body["locator"].as_str().expect("locator").to_owned();
    let total = made.body["total_minor"].as_i64().expect("total");

    // The customer's inbox: the confirmation, naming the locator, in text and HTML.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mail = loop {
        if let Some(mail) = smtp.messages().into_iter().find(|m| m.contains(&locator)) {
            break mail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no confirmation email for {locator}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        mail.contains(&format!("Subject: Your booking {locator} is confirmed")),
        "{mail}"
    );
    assert!(mail.contains("To: ann@example.com"), "{mail}");
    assert!(mail.contains("text/plain") && mail.contains("text/html"), "{mail}");

    // The delivery log, as the customer sees it.
    let log = until(
        app,
        &format!("/api/v1/notifications?booking_id={booking_id}"),
        &ann,
        "the email is logged as delivered",
        |body| {
            body["items"].as_array().is_some_and(|items| {
                items
                    .iter()
                    .any(|d| d["channel"] == "email" && d["status"] == "delivered")
            })
        },
    )
    .await;
    assert!(
        log.to_string().contains("a***@example.com"),
        "recipients are masked: {log}"
    );

    // The audit log: the booking's own events, in order, with the contact masked.
    let audit = until(
        app,
        &format!("/api/v1/audit?subject={booking_id}"),
        &admin,
        "the booking's events are audited",
        |body| body["items"].as_array().is_some_and(|items| items.len() >= 2),
    )
    .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .rev() // newest first
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["booking.created.v1", "booking.confirmed.v1"]);
    assert!(
        !audit.to_string().contains("ann@example.com"),
        "personal data is masked: {audit}"
    );
    let customers_view = app.get("/api/v1/audit", Some(&ann)).await;
    customers_view.assert_problem(403, "forbidden");

    // Analytics: today's confirmed bookings and revenue.
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let path = format!("/api/v1/analytics/bookings?from={today}&to={today}");
    let analytics = until(app, &path, &admin, "the booking is counted", |body| {
        body.to_string().contains(&total.to_string())
    })
    .await;
    assert!(analytics.to_string().contains("EUR"), "{analytics}");
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_process() {
        let smtp = super::SmtpServer::start().await;
        let app = crate::common::spawn_with(super::config_with_smtp(&smtp)).await;
        super::a_booking_reaches_audit_analytics_and_the_customers_inbox(&app, &smtp).await;
    }
}

mod postgres {
    use crate::common::PostgresDatabases;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_process() {
        let smtp = super::SmtpServer::start().await;
        let databases = PostgresDatabases::new();
        let mut config = super::config_with_smtp(&smtp);
        config.database_url = Some(phoenix::config::Secret::new(databases.url.clone()));
        let app = crate::common::spawn_with(config).await;
        super::a_booking_reaches_audit_analytics_and_the_customers_inbox(&app, &smtp).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats() {
        let smtp = super::SmtpServer::start().await;
        let databases = PostgresDatabases::new();
        let mut config = super::config_with_smtp(&smtp);
        config.database_url = Some(phoenix::config::Secret::new(databases.url.clone()));
        let tag = uuid::Uuid::new_v4().simple().to_string();
        config.bus = phoenix::config::Bus::Nats(phoenix_events::NatsOptions {
            url: std::env::var("PHOENIX_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned()),
            subject_prefix: format!("t{tag}"),
            stream_prefix: format!("T{}", tag.to_uppercase()),
            max_age_hours: 1,
            ..phoenix_events::NatsOptions::default()
        });
        let app = crate::common::spawn_with(config).await;
        super::a_booking_reaches_audit_analytics_and_the_customers_inbox(&app, &smtp).await;
    }
}

/// `phoenix audit verify` on the log a real booking wrote: intact, then broken once a row is edited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_detects_an_edited_row() {
    let smtp = SmtpServer::start().await;
    let data = tempfile::tempdir().expect("data dir");
    let mut config = config_with_smtp(&smtp);
    config.data_dir = data.path().to_owned();
    let app = crate::common::spawn_with(config).await;
    a_booking_reaches_audit_analytics_and_the_customers_inbox(&app, &smtp).await;

    let verify = || {
        crate::process::phoenix(data.path())
            .args(["audit", "verify"])
            .output()
            .expect("run phoenix audit verify")
    };
    let intact = verify();
    let printed = String::from_utf8_lossy(&intact.stdout).into_owned();
    assert!(
        intact.status.success(),
        "{printed} {}",
        String::from_utf8_lossy(&intact.stderr)
    );
    assert!(printed.contains("audit log intact"), "{printed}");

    let pool = phoenix_db::Pool::open_in_dir(data.path(), "audit", phoenix_db::PoolOptions::default())
        .await
        .expect("audit database");
    phoenix_db::dispatch!(&pool, conn => {
        sqlx::query("UPDATE audit_entries SET actor = 'mallory' WHERE position = 2")
            .execute(conn)
            .await
            .map(|_| ())
    })
    .expect("edit an audit row");
    pool.close().await;
    let broken = verify();
    let printed = String::from_utf8_lossy(&broken.stdout).into_owned();
    assert!(!broken.status.success(), "tampering must fail verification: {printed}");
    assert!(printed.contains("broken at position 2"), "{printed}");
}

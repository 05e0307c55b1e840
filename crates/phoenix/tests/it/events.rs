//! Events end to end: a booking made over HTTP reaches the audit log, the analytics and the customer's inbox (a
//! real SMTP server on loopback), through the outbox relays and the bus: in-process on SQLite and PostgreSQL, and
//! NATS JetStream on PostgreSQL. Then `phoenix audit verify` passes, and fails once an audit row is edited.

use std::time::Duration;

use phoenix_notification::testing::SmtpServer;
use serde_json::Value;

use crate::bookings::{book, book_a_confirmed_night, world};
use crate::common::Api;

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

/// `admin` is an administrator's access token on `app`.
pub async fn a_booking_reaches_audit_analytics_and_the_customers_inbox(app: &Api, admin: String, smtp: &SmtpServer) {
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
    let log = app
        .until(
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
    let audit = app
        .until(
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
    let analytics = app
        .until(&path, &admin, "the booking is counted", |body| {
            body.to_string().contains(&total.to_string())
        })
        .await;
    assert!(analytics.to_string().contains("EUR"), "{analytics}");

    // A goodwill refund made on the booking's payment reaches the booking through payment's event.
    let payment_id = made.body["payment_id"].as_str().expect("payment id");
    let refunded = app
        .post_keyed(
            &format!("/api/v1/payments/{payment_id}/refund"),
            Some(&admin),
            "goodwill",
            serde_json::json!({"amount_minor": 1_000, "reason": "late check-in"}),
        )
        .await;
    assert_eq!(refunded.status, 200, "{refunded:?}");
    let booking = app
        .until(
            &format!("/api/v1/bookings/{booking_id}"),
            &ann,
            "the booking shows the refund",
            |b| b["refunded_minor"] == 1_000,
        )
        .await;
    assert_eq!(booking["status"], "confirmed");

    // An admin rewords a template: notification's own event puts it in the audit log, naming the admin.
    let template = serde_json::json!({
        "subject": "Bald geht es los: {{ locator }}",
        "text": "Ihre Reise {{ locator }} beginnt am {{ starts_on }}.",
        "html": "<p>{{ locator }}</p>",
    });
    let uri = "/api/v1/notifications/templates/reminder/email/de";
    let put = app.call(reqwest::Method::PUT, uri, Some(&admin), Some(template)).await;
    assert_eq!(put.status, 200, "{put:?}");
    let admin_id = app.get("/api/v1/auth/me", Some(&admin)).await.body["id"].clone();
    let audited = app
        .until(
            "/api/v1/audit?action=notification.template_changed.v1",
            &admin,
            "the template change is audited",
            |b| b["items"].as_array().is_some_and(|items| !items.is_empty()),
        )
        .await;
    assert_eq!(
        (&audited["items"][0]["actor"], &audited["items"][0]["subject"]),
        (&admin_id, &serde_json::json!("reminder/email/de"))
    );
}

/// NATS goes away under a running process: `/readyz` stays 200 and says `degraded` (the process is not taken out
/// of rotation), bookings go on with their events kept in the outboxes, and once NATS is back the process is
/// ready again and the booking's events reach the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_outage_degrades_readiness_while_bookings_go_on() {
    let mut nats = crate::common::NatsServer::start();
    let mut config = crate::common::config();
    config.bus = crate::common::nats_bus(nats.url());
    let app = crate::common::spawn_with(config).await;
    let readiness = |expected: &'static str| {
        let app = &app;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let ready = app.get("/readyz", None).await;
                assert_eq!(ready.status, 200, "{ready:?}");
                if ready.body["status"] == expected {
                    return ready.body;
                }
                assert!(tokio::time::Instant::now() < deadline, "never {expected}: {ready:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    readiness("ready").await;
    let admin = app.admin().await;
    let world = world(&app, admin.clone()).await;

    nats.kill();
    let degraded = readiness("degraded").await;
    assert_eq!(degraded["checks"]["event_bus"], false, "{degraded}");
    let (_, ann) = app.customer("ann@example.com").await;
    let made = book_a_confirmed_night(&app, &ann, &world).await;

    nats.run();
    readiness("ready").await;
    let booking_id = made.body["id"].as_str().expect("id");
    app.until(
        &format!("/api/v1/audit?subject={booking_id}"),
        &admin,
        "the booking's events reach the audit log once the bus is back",
        |body| {
            body["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|e| e["action"] == "booking.confirmed.v1"))
        },
    )
    .await;
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_process() {
        let smtp = super::SmtpServer::start().await;
        let app = crate::common::spawn_with(super::config_with_smtp(&smtp)).await;
        super::a_booking_reaches_audit_analytics_and_the_customers_inbox(&app, app.admin().await, &smtp).await;
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
        super::a_booking_reaches_audit_analytics_and_the_customers_inbox(&app, app.admin().await, &smtp).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats() {
        let smtp = super::SmtpServer::start().await;
        let databases = PostgresDatabases::new();
        let mut config = super::config_with_smtp(&smtp);
        config.database_url = Some(phoenix::config::Secret::new(databases.url.clone()));
        config.bus = crate::common::nats_bus(crate::common::nats_url());
        let app = crate::common::spawn_with(config).await;
        super::a_booking_reaches_audit_analytics_and_the_customers_inbox(&app, app.admin().await, &smtp).await;
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
    a_booking_reaches_audit_analytics_and_the_customers_inbox(&app, app.admin().await, &smtp).await;

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
    // The anchor it prints, passed back, holds; one that is not an anchor is refused, naming the option.
    let anchor = printed
        .lines()
        .find_map(|line| line.strip_prefix("anchor: "))
        .expect("an anchor to keep")
        .to_owned();
    let anchored = crate::process::phoenix(data.path())
        .args(["audit", "verify", "--anchor", &anchor])
        .output()
        .expect("run phoenix audit verify --anchor");
    assert!(
        anchored.status.success(),
        "{}",
        String::from_utf8_lossy(&anchored.stderr)
    );
    let refused = crate::process::phoenix(data.path())
        .args(["audit", "verify", "--anchor", "3:nothex"])
        .output()
        .expect("run phoenix audit verify --anchor");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--anchor"));

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

/// `phoenix events dead-letters list|replay`: an event the analytics consumer refuses becomes a dead letter; the
/// CLI lists it, a replay that still fails exits non-zero and keeps it open, and once the event is corrected the
/// replay applies it (the projection counts it) and marks it replayed. An unknown consumer is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_from_the_command_line() {
    let data = tempfile::tempdir().expect("data dir");
    let cli = |args: &[&str]| {
        let output = crate::process::phoenix(data.path())
            .args(["events", "dead-letters"])
            .args(args)
            .output()
            .expect("run phoenix events dead-letters");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), stdout, stderr)
    };
    let listed = |args: &[&str]| -> Vec<Value> {
        let (ok, stdout, stderr) = cli(args);
        assert!(ok, "{stdout} {stderr}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    };
    // The first call creates and migrates the audit service's database; nothing is dead yet.
    assert!(listed(&["list", "--consumer", "analytics"]).is_empty());

    let pool = phoenix_db::Pool::open_in_dir(data.path(), "audit", phoenix_db::PoolOptions::default())
        .await
        .expect("audit database");
    let handler = phoenix_audit::Service::new(pool.clone(), phoenix_audit::Options::default())
        .handlers()
        .into_iter()
        .find(|h| h.name() == "analytics")
        .expect("analytics handler");
    let consumer = phoenix_events::Consumer::new(
        pool.clone(),
        handler,
        phoenix_events::ConsumerOptions {
            max_attempts: 2,
            retry_base_ms: 1,
        },
    );
    let day = time::OffsetDateTime::now_utc();
    let poison = phoenix_events::CloudEvent {
        specversion: "1.0".into(),
        id: uuid::Uuid::now_v7(),
        source: "phoenix.booking".into(),
        event_type: "booking.confirmed.v1".into(),
        subject: uuid::Uuid::now_v7().to_string(),
        time: day,
        datacontenttype: "application/json".into(),
        data: serde_json::json!({"currency": "EUR"}),
        correlationid: None,
        traceparent: None,
        sequence: 1,
    };
    let applied = consumer.apply(std::slice::from_ref(&poison)).await.expect("apply");
    assert_eq!(applied.dead_lettered, 1, "{applied:?}");

    let open = listed(&["list", "--consumer", "analytics"]);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["event_id"], poison.id.to_string());
    assert_eq!(open[0]["attempts"], 2);
    assert!(
        open[0]["error"].as_str().is_some_and(|e| e.contains("total_minor")),
        "{open:?}"
    );
    assert!(
        listed(&["list", "--consumer", "audit"]).is_empty(),
        "dead letters are per consumer"
    );

    let (ok, stdout, _) = cli(&["replay", "--consumer", "analytics"]);
    assert!(!ok, "a replay that still fails must exit non-zero: {stdout}");
    assert!(stdout.contains("\"still_failing\": 1"), "{stdout}");
    assert_eq!(listed(&["list", "--consumer", "analytics"]).len(), 1, "still open");

    // The operator corrects the event; the replay applies it.
    let mut fixed = poison.clone();
    fixed.data = serde_json::json!({"currency": "EUR", "total_minor": 12_345});
    phoenix_db::dispatch!(&pool, conn => {
        sqlx::query("UPDATE dead_letters SET event = $1 WHERE event_id = $2")
            .bind(sqlx::types::Json(serde_json::to_value(&fixed).expect("event json")))
            .bind(poison.id)
            .execute(conn)
            .await
            .map(|_| ())
    })
    .expect("correct the dead letter");
    let (ok, stdout, stderr) = cli(&["replay", "--consumer", "analytics"]);
    assert!(ok, "{stdout} {stderr}");
    assert!(stdout.contains("\"replayed\": 1"), "{stdout}");
    assert!(listed(&["list", "--consumer", "analytics"]).is_empty());
    let all = listed(&["list", "--consumer", "analytics", "--all"]);
    assert_eq!(all.len(), 1);
    assert!(all[0]["replayed_at"].is_string(), "{all:?}");
    let rows = phoenix_audit::Service::new(pool.clone(), phoenix_audit::Options::default())
        .store()
        .bookings(
            phoenix_audit::analytics::Days {
                from: day.date(),
                to: day.date(),
            },
            None,
        )
        .await
        .expect("bookings report");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].n_confirmed, rows[0].total_minor), (1, 12_345), "{rows:?}");
    pool.close().await;

    let (ok, _, stderr) = cli(&["list", "--consumer", "nope"]);
    assert!(!ok);
    assert!(stderr.contains("no consumer called"), "{stderr}");
}

//! "Forgot my password" end to end, through the gateway: the reset link reaches a real SMTP server (identity's
//! event, relayed to notification over the bus: in-process on SQLite and PostgreSQL, NATS JetStream on
//! PostgreSQL), its token sets a new password once, the old password stops working and a session from before the
//! reset is refused at the gateway.

use std::time::Duration;

use phoenix_notification::testing::SmtpServer;
use serde_json::{Value, json};

use crate::common::{Api, PASSWORD};

const NEW_PASSWORD: &str = "seven purple lanterns drift";
const RESET_URL: &str = "https://travel.phoenix.test/reset-password";

fn config(smtp: &SmtpServer) -> phoenix::Config {
    let mut config = crate::events::config_with_smtp(smtp);
    config.notification.password_reset_url = RESET_URL.to_owned();
    config
}

/// The first email to `to` the SMTP server received, as a mail reader shows it (quoted-printable undone).
async fn mail_to(smtp: &SmtpServer, to: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let found = smtp
            .messages()
            .into_iter()
            .map(|m| m.replace("=\r\n", "").replace("=\n", "").replace("=3D", "="))
            .find(|m| m.contains(&format!("To: {to}")));
        if let Some(mail) = found {
            return mail;
        }
        assert!(tokio::time::Instant::now() < deadline, "no email to {to}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The token of the first reset link in `mail`.
fn token_in(mail: &str) -> String {
    let link = format!("{RESET_URL}#token=");
    let start = mail.find(&link).unwrap_or_else(|| panic!("no reset link in {mail}")) + link.len();
    mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

async fn sign_in(app: &Api, password: &str) -> crate::common::Reply {
    app.post(
        "/api/v1/auth/login",
        None,
        json!({ "email": "ann@example.com", "password": password }),
    )
    .await
}

async fn a_forgotten_password_is_reset_through_the_emailed_link(app: &Api, smtp: &SmtpServer) {
    app.register("ann@example.com").await;
    let (before, refresh_before) = app.login("ann@example.com").await;
    assert_eq!(app.get("/api/v1/auth/me", Some(&before)).await.status, 200);

    // The same answer for an address without an account.
    let mut answers = Vec::new();
    for email in ["nobody@example.com", "ann@example.com"] {
        let reply = app
            .post("/api/v1/auth/password-reset", None, json!({ "email": email }))
            .await;
        answers.push((reply.status.as_u16(), reply.body));
    }
    assert_eq!(answers, [(202, Value::Null), (202, Value::Null)]);

    let mail = mail_to(smtp, "ann@example.com").await;
    assert!(mail.contains("Subject: Reset your password"), "{mail}");
    let token = token_in(&mail);
    assert_eq!(token.len(), 43, "{mail}");

    let confirm = async |new_password: &str| {
        app.post(
            "/api/v1/auth/password-reset/confirm",
            None,
            json!({ "token": token, "new_password": new_password }),
        )
        .await
    };
    let weak = confirm("short").await;
    weak.assert_problem(422, "invalid_fields");
    assert_eq!(weak.body["errors"][0]["field"], "new_password", "{weak:?}");
    assert_eq!(confirm(NEW_PASSWORD).await.status, 204);
    confirm("yet another long passphrase")
        .await
        .assert_problem(400, "invalid_reset_token");

    sign_in(app, PASSWORD).await.assert_problem(401, "invalid_credentials");
    let after = sign_in(app, NEW_PASSWORD).await;
    assert_eq!(after.status, 200, "{after:?}");
    let after = after.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/api/v1/auth/me", Some(&after)).await.status, 200);

    // The session from before the reset is over: its refresh token at once, its access token at the gateway.
    app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": refresh_before }))
        .await
        .assert_problem(401, "invalid_refresh_token");
    app.until_refused("/api/v1/auth/me", &before, 401, "session_ended")
        .await;
    assert_eq!(smtp.messages().len(), 1, "no email for the address without an account");
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_process() {
        let smtp = super::SmtpServer::start().await;
        let app = crate::common::spawn_with(super::config(&smtp)).await;
        super::a_forgotten_password_is_reset_through_the_emailed_link(&app, &smtp).await;
    }
}

mod postgres {
    use crate::common::PostgresDatabases;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_process() {
        let smtp = super::SmtpServer::start().await;
        let databases = PostgresDatabases::new();
        let mut config = super::config(&smtp);
        config.database_url = Some(phoenix::config::Secret::new(databases.url.clone()));
        let app = crate::common::spawn_with(config).await;
        super::a_forgotten_password_is_reset_through_the_emailed_link(&app, &smtp).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats() {
        let smtp = super::SmtpServer::start().await;
        let databases = PostgresDatabases::new();
        let mut config = super::config(&smtp);
        config.database_url = Some(phoenix::config::Secret::new(databases.url.clone()));
        config.bus = crate::common::nats_bus(crate::common::nats_url());
        let app = crate::common::spawn_with(config).await;
        super::a_forgotten_password_is_reset_through_the_emailed_link(&app, &smtp).await;
    }
}

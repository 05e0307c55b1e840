//! The real `phoenix` executable: configuration errors, bootstrap commands, JSON logs and graceful shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::process::{PASSWORD, PHOENIX, Server, http, phoenix};

#[test]
fn serve_logs_json_with_request_ids_and_stops_cleanly_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let response = http(
        &server.address,
        "GET /api/v1/auth/me HTTP/1.1\r\nHost: x\r\nX-Request-Id: log-me-42\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    let logged = server.wait_for(|log| log["request_id"] == "log-me-42" || log["span"]["request_id"] == "log-me-42");
    assert_eq!(logged["level"], "INFO");
    assert_eq!(server.terminate().code(), Some(0));
}

#[test]
fn in_flight_requests_finish_after_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let body = r#"{"email": "ann@example.com", "password": "not the right password"}"#;
    let mut stream = TcpStream::connect(&server.address).unwrap();
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body.as_bytes()[..10]).unwrap();
    stream.flush().unwrap();
    // The signal must come once the server is serving the request (accepted, head read), not while the connection
    // still waits in the listen backlog: /metrics counts it in flight, beside the /metrics request itself.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = in_flight(&server.address);
        if now >= 2.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the request never started ({now} in flight)"
        );
    }

    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    server.wait_for(|log| log["message"].as_str().is_some_and(|m| m.starts_with("shutting down")));
    // The request started before the signal: it is answered, not cut off.
    stream.write_all(&body.as_bytes()[10..]).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert_eq!(server.child.wait().unwrap().code(), Some(0));
}

#[test]
fn user_create_bootstraps_an_admin_and_keys_rotate_keeps_both_keys_published() {
    let data = tempfile::tempdir().unwrap();
    let created = phoenix(data.path())
        .args(["user", "create", "--email", "root@example.com", "--role", "admin"])
        .env("PHOENIX_USER_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let user: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(user["roles"], serde_json::json!(["admin"]));

    // The password may come on standard input instead.
    let mut piped = phoenix(data.path())
        .args([
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--role",
            "support",
            "--name",
            "Ops",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    piped
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(piped.wait_with_output().unwrap().status.success());

    let weak = phoenix(data.path())
        .args(["user", "create", "--email", "x@example.com", "--role", "admin"])
        .env("PHOENIX_USER_PASSWORD", "short")
        .output()
        .unwrap();
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"));

    let rotated = phoenix(data.path()).args(["keys", "rotate"]).output().unwrap();
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));

    let server = Server::start(data.path());
    let body = format!(r#"{{"email":"root@example.com","password":"{PASSWORD}"}}"#);
    let login = http(
        &server.address,
        &format!(
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(login.starts_with("HTTP/1.1 200"), "{login}");
    let jwks = http(
        &server.address,
        "GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let keys: Value = serde_json::from_str(jwks.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        keys["keys"].as_array().unwrap().len(),
        2,
        "the key made at first start and the rotated one"
    );
}

#[test]
fn stored_secrets_open_only_with_their_key_and_move_to_a_new_one() {
    let data = tempfile::tempdir().unwrap();
    // The first start makes the key file and seals identity's signing key with it.
    let first = phoenix(data.path()).args(["keys", "rotate"]).output().unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let file_key = std::fs::read_to_string(data.path().join("secrets.key")).unwrap();
    let file_key = file_key.trim();

    let made = phoenix(data.path()).args(["keys", "new-secrets-key"]).output().unwrap();
    assert!(made.status.success());
    let new_key = String::from_utf8(made.stdout).unwrap().trim().to_owned();
    assert_eq!(new_key.len(), 44, "base64 of 32 bytes: {new_key}");
    assert_ne!(new_key, file_key);

    // Another key alone cannot open them: the process stops, naming what is missing, and stores nothing.
    let refused = phoenix(data.path())
        .args(["keys", "rotate"])
        .env("PHOENIX_SECRETS_KEY", &new_key)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("not configured") && !error.contains(&new_key), "{error}");

    // With the old key as a previous one, it starts and seals everything again under the new key, which is then
    // enough on its own.
    for previous in [Some(file_key), None] {
        let mut command = phoenix(data.path());
        command.args(["keys", "rotate"]).env("PHOENIX_SECRETS_KEY", &new_key);
        if let Some(previous) = previous {
            command.env("PHOENIX_PREVIOUS_SECRETS_KEYS", previous);
        }
        let rotated = command.output().unwrap();
        assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    }
}

#[test]
fn bad_configuration_names_the_setting_and_exits_nonzero() {
    let data = tempfile::tempdir().unwrap();
    let output = phoenix(data.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("PHOENIX_GATEWAY__BODY_LIMIT_BYTES", "12")
        .env("PHOENIX_INTERNAL_TOKEN", "do-not-print-this-secret-value-1234567890")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("gateway.body_limit_bytes"), "{stderr}");
    assert!(!stderr.contains("do-not-print-this-secret"), "{stderr}");
}

#[test]
fn migrate_creates_each_service_database_on_postgres() {
    let name = format!("phoenix_test_{}", uuid::Uuid::new_v4().simple());
    let url = phoenix_db::testing::TestDatabase::postgres_url_for(&name);
    let data = tempfile::tempdir().unwrap();
    let output = phoenix(data.path())
        .arg("migrate")
        .env("PHOENIX_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("identity: migrated") && stdout.contains("inventory: migrated"),
        "{stdout}"
    );
    let identity_db = phoenix_db::testing::TestDatabase::postgres_url_for(&format!("{name}_identity"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = phoenix_db::Pool::connect(&identity_db, Default::default())
            .await
            .unwrap();
        let n: i64 = phoenix_db::dispatch!(&pool, conn => {
            sqlx::query_scalar("SELECT count(*) FROM signing_keys").fetch_one(conn).await
        })
        .unwrap();
        assert_eq!(n, 0, "migrate creates the schema only");
        pool.close().await;
        let admin = phoenix_db::Pool::connect(&phoenix_db::testing::postgres_admin_url(), Default::default())
            .await
            .unwrap();
        for service in ["identity", "inventory"] {
            let sql = format!("DROP DATABASE \"{name}_{service}\" WITH (FORCE)");
            phoenix_db::dispatch!(&admin, conn => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await.map(|_| ())
            })
            .unwrap();
        }
    });
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["user", "create", "--help"],
        vec!["keys", "rotate", "--help"],
        vec!["bench", "gateway", "--help"],
        vec!["openapi", "--help"],
    ] {
        let output = Command::new(PHOENIX).args(&args).output().unwrap();
        assert!(output.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("Usage: phoenix"), "{args:?}: {text}");
    }
    let serve = Command::new(PHOENIX).args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&serve.stdout);
    for flag in [
        "--listen",
        "--role",
        "--data-dir",
        "--config",
        "--log-format",
        "PHOENIX_LISTEN",
    ] {
        assert!(text.contains(flag), "serve --help lacks {flag}");
    }
}

/// `http_requests_in_flight` from the server's `/metrics` (this request included).
fn in_flight(address: &str) -> f64 {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .lines()
        .find_map(|line| line.strip_prefix("http_requests_in_flight "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

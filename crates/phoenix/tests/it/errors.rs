use reqwest::Method;
use serde_json::json;

use crate::common::{read, spawn};

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problems() {
    let app = spawn().await;
    app.get("/api/v1/nothing-here", None)
        .await
        .assert_problem(404, "not_found");
    app.get("/no/such/page", None).await.assert_problem(404, "not_found");
    let wrong = app.call(Method::DELETE, "/api/v1/auth/login", None, None).await;
    wrong.assert_problem(405, "method_not_allowed");
    assert!(wrong.headers.contains_key("allow"));
}

#[tokio::test]
async fn malformed_json_is_400_and_bad_fields_422_naming_them() {
    let app = spawn().await;
    let malformed = app
        .http
        .post(format!("{}/api/v1/auth/register", app.base))
        .header("content-type", "application/json")
        .body("{\"email\": \"a@b.c\",")
        .send()
        .await
        .unwrap();
    read(malformed).await.assert_problem(400, "malformed_json");

    let wrong_type = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": 5, "password": "x", "name": "y"}),
        )
        .await;
    wrong_type.assert_problem(422, "invalid_fields");
    assert_eq!(wrong_type.body["errors"][0]["field"], "email");

    let unknown_field = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "a@b.c", "password": "x", "pasword": "y"}),
        )
        .await;
    unknown_field.assert_problem(422, "invalid_fields");

    let weak = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "nope", "password": "short", "name": ""}),
        )
        .await;
    weak.assert_problem(422, "invalid_fields");
    let fields: Vec<&str> = weak.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["email", "name", "password"]);

    let not_json = app
        .http
        .post(format!("{}/api/v1/auth/login", app.base))
        .header("content-type", "text/plain")
        .body("email=a")
        .send()
        .await
        .unwrap();
    read(not_json).await.assert_problem(415, "unsupported_media_type");
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let app = spawn().await;
    let big = format!(
        "{{\"email\": \"{}\", \"password\": \"x\", \"name\": \"y\"}}",
        "a".repeat(2 * 1024 * 1024)
    );
    let chunked = app
        .http
        .post(format!("{}/api/v1/auth/register", app.base))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(vec![Ok::<
            _,
            std::io::Error,
        >(
            big.clone()
        )])))
        .send()
        .await
        .unwrap();
    read(chunked).await.assert_problem(413, "payload_too_large");
    let sized = app
        .http
        .post(format!("{}/api/v1/auth/register", app.base))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    read(sized).await.assert_problem(413, "payload_too_large");
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = spawn().await;
    let given = app
        .http
        .get(format!("{}/api/v1/nothing", app.base))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    let given = read(given).await;
    assert_eq!(given.headers["x-request-id"], "trace-me-123");
    assert_eq!(given.body["request_id"], "trace-me-123");

    let invalid = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "x".repeat(300))
        .send()
        .await
        .unwrap();
    let made = invalid.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(made, "x".repeat(300));
    assert!(uuid::Uuid::parse_str(&made).is_ok());
}

#[tokio::test]
async fn the_callers_trace_continues_into_the_response_and_the_events_of_the_request() {
    let app = spawn().await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let registered = app
        .http
        .post(format!("{}/api/v1/auth/register", app.base))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(
            &serde_json::json!({"email": "traced@example.com", "password": "correct horse battery staple",
                                   "name": "Traced"}),
        )
        .send()
        .await
        .unwrap();
    let registered = read(registered).await;
    assert_eq!(registered.status, 201, "{registered:?}");
    let answered = registered.headers["traceparent"].to_str().unwrap().to_owned();
    assert!(answered.starts_with(&format!("00-{trace}-")), "{answered}");

    let identity = app.identity.as_ref().expect("identity runs here");
    let events = identity.pool().events_after(0, 100).await.unwrap();
    let event = events
        .iter()
        .find(|e| e.event_type == "identity.user_registered.v1")
        .expect("the registration's event");
    assert_eq!(event.traceparent.as_deref(), Some(answered.as_str()));

    // Without one, a request starts a trace of its own.
    let fresh = app.get("/healthz", None).await;
    let started = fresh.headers["traceparent"].to_str().unwrap();
    assert_eq!(
        phoenix_api::trace::trace_id(started).map(str::len),
        Some(32),
        "{started}"
    );
    assert!(!started.contains(trace));
}

#[tokio::test]
async fn security_headers_on_every_response() {
    let app = spawn().await;
    for path in ["/healthz", "/api/v1/nothing"] {
        let reply = app.get(path, None).await;
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
        assert_eq!(reply.headers["x-frame-options"], "DENY");
        assert!(
            reply.headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        assert_eq!(reply.headers["cache-control"], "no-store");
    }
}

#[tokio::test]
async fn client_cannot_smuggle_an_internal_principal() {
    let app = spawn().await;
    let (user_id, _) = app.customer("ann@example.com").await;
    let forged = json!({"user_id": user_id, "roles": ["admin"], "organization_id": null,
        "credential": {"kind": "access_token", "token_id": uuid::Uuid::now_v7()}});
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
    let reply = app
        .http
        .get(format!("{}/api/v1/admin/users", app.base))
        .header("x-phoenix-principal", header)
        .header("x-phoenix-internal-token", "guess")
        .send()
        .await
        .unwrap();
    read(reply).await.assert_problem(401, "unauthenticated");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn().await;
    assert_eq!(app.get("/healthz", None).await.body["status"], "ok");
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["checks"]["identity_db"], true);

    app.get("/api/v1/auth/me", None).await;
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains("route=\"/api/v1/auth/me\"")
            && l.contains("status=\"401\"")),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "latency histogram"
    );
    assert!(text.contains("process_resident_memory_bytes"), "process metrics");
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let mut config = crate::common::config();
    config.gateway.cors_allowed_origins = vec!["https://app.example.com".to_owned()];
    let app = crate::common::spawn_with(config).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(Method::OPTIONS, format!("{}/api/v1/auth/login", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let refused = preflight("https://evil.example.com").await.unwrap();
    assert!(!refused.headers().contains_key("access-control-allow-origin"));
}

/// PostgreSQL cannot store a NUL character in text: one sent in a body, a query or a path is refused at the edge,
/// never a 500 from the database, on a public route and on staff's filters alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_character_is_refused_before_it_reaches_postgres() {
    let databases = crate::common::PostgresDatabases::new();
    let mut config = crate::common::config();
    config.database_url = Some(phoenix::config::Secret::new(databases.url.clone()));
    let app = crate::common::spawn_with(config).await;
    let admin = app.admin().await;
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "ann\u{0}@example.com", "password": "correct horse battery"}),
        )
        .await;
    login.assert_problem(422, "invalid_fields");
    assert_eq!(login.body["errors"][0]["field"], "body");
    for (path, field) in [
        ("/api/v1/admin/users?email=%00", "email"),
        ("/api/v1/audit?actor=a%00b", "actor"),
        ("/api/v1/audit?subject=%00", "subject"),
    ] {
        let refused = app.get(path, Some(&admin)).await;
        refused.assert_problem(422, "invalid_fields");
        assert_eq!(refused.body["errors"][0]["field"], field, "{path}");
    }
    app.get("/api/v1/inventory/items/seat%00x", Some(&admin))
        .await
        .assert_problem(404, "not_found");
}

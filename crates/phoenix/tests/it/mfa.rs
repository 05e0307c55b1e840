use serde_json::json;
use totp_rs::{Algorithm, Builder, Secret};

use crate::common::{PASSWORD, spawn};

fn code(secret: &str, offset_secs: i64) -> String {
    let at = time::OffsetDateTime::now_utc().unix_timestamp() + offset_secs;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
        .generate(at as u64)
        .to_string()
}

#[tokio::test]
async fn totp_enable_then_login_with_code_or_recovery_code() {
    let app = spawn().await;
    let (_, token) = app.customer("ann@example.com").await;

    let setup = app.post("/api/v1/auth/mfa/totp/setup", Some(&token), json!({})).await;
    assert_eq!(setup.status, 200, "{setup:?}");
    let secret = setup.body["secret"].as_str().unwrap().to_owned();
    assert!(
        setup.body["otpauth_url"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Phoenix:ann%40example.com")
    );

    app.post(
        "/api/v1/auth/mfa/totp/enable",
        Some(&token),
        json!({"code": code(&secret, 3_600)}),
    )
    .await
    .assert_problem(422, "invalid_mfa_code");
    let enabled = app
        .post(
            "/api/v1/auth/mfa/totp/enable",
            Some(&token),
            json!({"code": code(&secret, 0)}),
        )
        .await;
    assert_eq!(enabled.status, 200, "{enabled:?}");
    let recovery: Vec<String> = serde_json::from_value(enabled.body["recovery_codes"].clone()).unwrap();
    assert_eq!(recovery.len(), 10);
    assert_eq!(app.get("/api/v1/auth/me", Some(&token)).await.body["mfa_enabled"], true);

    let login = |code: Option<String>| {
        let mut body = json!({"email": "ann@example.com", "password": PASSWORD});
        if let Some(code) = code {
            body["totp_code"] = json!(code);
        }
        app.post("/api/v1/auth/login", None, body)
    };
    login(None).await.assert_problem(401, "mfa_required");
    login(Some("000000".to_owned()))
        .await
        .assert_problem(401, "invalid_mfa_code");
    let with_code = login(Some(code(&secret, 30))).await;
    assert_eq!(with_code.status, 200, "{with_code:?}");
    login(Some(code(&secret, 30)))
        .await
        .assert_problem(401, "invalid_mfa_code");
    assert_eq!(login(Some(recovery[0].clone())).await.status, 200);
    login(Some(recovery[0].clone()))
        .await
        .assert_problem(401, "invalid_mfa_code");

    let disabled = app
        .post(
            "/api/v1/auth/mfa/totp/disable",
            Some(&token),
            json!({"code": recovery[1]}),
        )
        .await;
    assert_eq!(disabled.status, 204, "{disabled:?}");
    assert_eq!(login(None).await.status, 200);
}

use std::net::{IpAddr, Ipv4Addr};

use phoenix_api::{Credential, Principal, Role};
use phoenix_db::Pool;
use phoenix_identity::{Error, Login, Options, Service};
use uuid::Uuid;

use crate::{PASSWORD, code_at, now, serve_as, service, service_with};

phoenix_db::contract_suite!(
    phoenix_identity::migrations(),
    [
        totp_login_needs_a_fresh_code,
        recovery_codes_work_once,
        enabling_needs_setup_and_a_valid_code,
        disabling_needs_a_code,
        wrong_codes_on_disabling_are_throttled_like_sign_in,
        wrong_codes_on_enabling_are_throttled_like_sign_in,
    ]
);

/// Enables TOTP for `user_id` with the code of the current step; returns the secret, the recovery codes and the time
/// whose code enabled it (its step is spent).
async fn enable(identity: &Service, user_id: Uuid) -> (String, Vec<String>, u64) {
    let setup = identity.setup_totp(user_id).await.unwrap();
    assert!(
        setup.otpauth_url.starts_with("otpauth://totp/"),
        "{}",
        setup.otpauth_url
    );
    assert!(setup.otpauth_url.contains("issuer=Phoenix"));
    let enabled_at = now();
    let codes = identity
        .enable_totp(user_id, &code_at(&setup.secret, enabled_at), None)
        .await
        .unwrap();
    (setup.secret, codes, enabled_at)
}

fn with_code<'a>(email: &'a str, code: Option<&'a str>) -> Login<'a> {
    Login {
        email,
        password: PASSWORD,
        totp_code: code,
        client_ip: None,
    }
}

async fn totp_login_needs_a_fresh_code(pool: Pool) {
    let identity = service(pool).await;
    let user = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let (secret, codes, enabled_at) = enable(&identity, user.id).await;
    assert_eq!(codes.len(), 10);
    assert!(identity.user(user.id).await.unwrap().totp_enabled);

    let missing = identity.login(with_code("ann@example.com", None)).await.unwrap_err();
    assert!(matches!(missing, Error::MfaRequired), "{missing:?}");
    let wrong = identity.login(with_code("ann@example.com", Some("000000"))).await;
    // The enabling code's step is spent, even if the clock has moved on to the next step since (the code is still
    // within the one-step skew window then). Taken from the enabling time, not the clock: a step boundary passing
    // during the sign-ins above would otherwise make this a fresh code.
    let same_step = identity
        .login(with_code("ann@example.com", Some(&code_at(&secret, enabled_at))))
        .await;
    assert!(matches!(same_step, Err(Error::InvalidMfaCode)), "{same_step:?}");
    // A wrong code never works (unless it happens to be right: vanishingly rare).
    assert!(wrong.is_err());

    // The step after the enabling one (current, or one ahead within the skew window) is fresh: accepted once, then
    // not again.
    let next = code_at(&secret, enabled_at + 30);
    identity.login(with_code("ann@example.com", Some(&next))).await.unwrap();
    let replay = identity
        .login(with_code("ann@example.com", Some(&next)))
        .await
        .unwrap_err();
    assert!(matches!(replay, Error::InvalidMfaCode), "{replay:?}");
}

async fn recovery_codes_work_once(pool: Pool) {
    let identity = service(pool).await;
    let user = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let (_, codes, _) = enable(&identity, user.id).await;
    let typed = codes[3].to_uppercase().replace('-', " ");
    identity
        .login(with_code("ann@example.com", Some(&typed)))
        .await
        .unwrap();
    let again = identity
        .login(with_code("ann@example.com", Some(&codes[3])))
        .await
        .unwrap_err();
    assert!(matches!(again, Error::InvalidMfaCode));
    identity
        .login(with_code("ann@example.com", Some(&codes[4])))
        .await
        .unwrap();
}

async fn enabling_needs_setup_and_a_valid_code(pool: Pool) {
    let identity = service(pool).await;
    let user = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    assert!(matches!(
        identity.enable_totp(user.id, "123456", None).await.unwrap_err(),
        Error::MfaNotSetUp
    ));
    let setup = identity.setup_totp(user.id).await.unwrap();
    let wrong = code_at(&setup.secret, now() + 3_600);
    assert!(matches!(
        identity.enable_totp(user.id, &wrong, None).await.unwrap_err(),
        Error::CodeRejected
    ));
    identity
        .enable_totp(user.id, &code_at(&setup.secret, now()), None)
        .await
        .unwrap();
    assert!(matches!(
        identity.setup_totp(user.id).await.unwrap_err(),
        Error::MfaAlreadyEnabled
    ));
}

async fn disabling_needs_a_code(pool: Pool) {
    let identity = service(pool).await;
    let user = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    assert!(matches!(
        identity.disable_totp(user.id, "123456", None).await.unwrap_err(),
        Error::MfaNotEnabled
    ));
    let (_, codes, _) = enable(&identity, user.id).await;
    assert!(matches!(
        identity.disable_totp(user.id, "nonsense", None).await.unwrap_err(),
        Error::CodeRejected
    ));
    identity.disable_totp(user.id, &codes[0], None).await.unwrap();
    assert!(!identity.user(user.id).await.unwrap().totp_enabled);
    identity.login(with_code("ann@example.com", None)).await.unwrap();
}

/// Three failures per account before sign-in (and any other code check) is throttled.
fn three_failures() -> Options {
    Options {
        login_failures_per_account: 3,
        ..Options::default()
    }
}

fn signed_in(user_id: Uuid) -> Principal {
    Principal {
        user_id,
        roles: [Role::Customer].into(),
        organization_id: None,
        credential: Credential::AccessToken {
            token_id: Uuid::now_v7(),
        },
    }
}

async fn wrong_codes_on_disabling_are_throttled_like_sign_in(pool: Pool) {
    let identity = service_with(pool, three_failures()).await;
    let user = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let (secret, codes, _) = enable(&identity, user.id).await;
    let url = serve_as(&identity, signed_in(user.id), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))).await;
    let http = reqwest::Client::new();
    let disable = async |code: &str| {
        http.post(format!("{url}/api/v1/auth/mfa/totp/disable"))
            .json(&serde_json::json!({ "code": code }))
            .send()
            .await
            .unwrap()
    };
    // A code of an hour ahead is wrong now (unless it happens to match: vanishingly rare).
    let wrong = code_at(&secret, now() + 3_600);
    for _ in 0..3 {
        assert_eq!(disable(&wrong).await.status(), 422);
    }
    let throttled = disable(&codes[0]).await;
    assert_eq!(throttled.status(), 429);
    let retry_after: u64 = throttled.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=15 * 60).contains(&retry_after), "{retry_after}");
    let problem: serde_json::Value = throttled.json().await.unwrap();
    assert_eq!(problem["code"], "mfa_throttled", "{problem}");
    assert!(identity.user(user.id).await.unwrap().totp_enabled);
    // The failures count against the account's one budget: sign-in waits too, right password and code or not.
    let login = identity
        .login(with_code("ann@example.com", Some(&codes[1])))
        .await
        .unwrap_err();
    assert!(matches!(login, Error::LoginThrottled { .. }), "{login:?}");
}

async fn wrong_codes_on_enabling_are_throttled_like_sign_in(pool: Pool) {
    let identity = service_with(pool, three_failures()).await;
    let user = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let setup = identity.setup_totp(user.id).await.unwrap();
    let wrong = code_at(&setup.secret, now() + 3_600);
    for _ in 0..3 {
        let error = identity.enable_totp(user.id, &wrong, None).await.unwrap_err();
        assert!(matches!(error, Error::CodeRejected), "{error:?}");
    }
    let right = code_at(&setup.secret, now());
    let error = identity.enable_totp(user.id, &right, None).await.unwrap_err();
    let Error::CodeThrottled { retry_after_secs } = error else {
        panic!("expected throttling, got {error:?}");
    };
    assert!((1..=15 * 60).contains(&retry_after_secs));
    assert!(!identity.user(user.id).await.unwrap().totp_enabled);
}

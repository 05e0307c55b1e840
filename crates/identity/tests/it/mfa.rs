use phoenix_db::Pool;
use phoenix_identity::{Error, Login, Service};
use uuid::Uuid;

use crate::{PASSWORD, code_at, now, service};

phoenix_db::contract_suite!(
    phoenix_identity::migrations(),
    [
        totp_login_needs_a_fresh_code,
        recovery_codes_work_once,
        enabling_needs_setup_and_a_valid_code,
        disabling_needs_a_code,
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
        .enable_totp(user_id, &code_at(&setup.secret, enabled_at))
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
        identity.enable_totp(user.id, "123456").await.unwrap_err(),
        Error::MfaNotSetUp
    ));
    let setup = identity.setup_totp(user.id).await.unwrap();
    let wrong = code_at(&setup.secret, now() + 3_600);
    assert!(matches!(
        identity.enable_totp(user.id, &wrong).await.unwrap_err(),
        Error::CodeRejected
    ));
    identity
        .enable_totp(user.id, &code_at(&setup.secret, now()))
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
        identity.disable_totp(user.id, "123456").await.unwrap_err(),
        Error::MfaNotEnabled
    ));
    let (_, codes, _) = enable(&identity, user.id).await;
    assert!(matches!(
        identity.disable_totp(user.id, "nonsense").await.unwrap_err(),
        Error::CodeRejected
    ));
    identity.disable_totp(user.id, &codes[0]).await.unwrap();
    assert!(!identity.user(user.id).await.unwrap().totp_enabled);
    identity.login(with_code("ann@example.com", None)).await.unwrap();
}

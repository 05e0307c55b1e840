use std::net::{IpAddr, Ipv4Addr};

use phoenix_api::{Credential, Principal};
use phoenix_db::Pool;
use phoenix_identity::{Error, Login, Options, Service};
use uuid::Uuid;

use crate::{PASSWORD, code_at, events_of, login, now, principal_of, refreshes, serve_as, service, service_with};

phoenix_db::contract_suite!(
    phoenix_identity::migrations(),
    [
        totp_login_needs_a_fresh_code,
        recovery_codes_work_once,
        enabling_needs_setup_and_a_valid_code,
        disabling_needs_a_code,
        wrong_codes_on_disabling_are_throttled_like_sign_in,
        wrong_codes_on_enabling_are_throttled_like_sign_in,
        enabling_totp_ends_every_other_session,
        an_api_key_cannot_set_up_enable_or_disable_totp,
    ]
);

/// Enables TOTP for `user_id` with the code of the current step; returns the secret, the recovery codes and the time
/// whose code enabled it (its step is spent).
async fn enable(identity: &Service, user_id: Uuid) -> (String, Vec<String>, u64) {
    let email = identity.user(user_id).await.unwrap().email.clone();
    enable_as(identity, &principal_of(&login(identity, &email).await)).await
}

/// [`enable`], from the session of `principal`.
pub async fn enable_as(identity: &Service, principal: &Principal) -> (String, Vec<String>, u64) {
    let setup = identity.setup_totp(principal).await.unwrap();
    assert!(
        setup.otpauth_url.starts_with("otpauth://totp/"),
        "{}",
        setup.otpauth_url
    );
    assert!(setup.otpauth_url.contains("issuer=Phoenix"));
    let enabled_at = now();
    let codes = identity
        .enable_totp(principal, &code_at(&setup.secret, enabled_at), None)
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
    let identity = service(pool.clone()).await;
    let user = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let (_, codes, _) = enable(&identity, user.id).await;
    assert!(
        codes.iter().all(|c| c.len() == 23),
        "twenty characters in four groups: {codes:?}"
    );
    // A ten-character code, as handed out before codes grew to twenty, stays good: once.
    let old = "abcde-fghjk";
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"abcdefghjk");
    phoenix_db::dispatch!(&pool, conn => {
        sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
            .bind(user.id)
            .bind(digest.as_ref())
            .execute(conn)
            .await
            .map(|_| ())
    })
    .unwrap();
    identity.login(with_code("ann@example.com", Some(old))).await.unwrap();
    let spent = identity
        .login(with_code("ann@example.com", Some(old)))
        .await
        .unwrap_err();
    assert!(matches!(spent, Error::InvalidMfaCode), "{spent:?}");
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
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let me = principal_of(&login(&identity, "ann@example.com").await);
    assert!(matches!(
        identity.enable_totp(&me, "123456", None).await.unwrap_err(),
        Error::MfaNotSetUp
    ));
    let setup = identity.setup_totp(&me).await.unwrap();
    let wrong = code_at(&setup.secret, now() + 3_600);
    assert!(matches!(
        identity.enable_totp(&me, &wrong, None).await.unwrap_err(),
        Error::CodeRejected
    ));
    identity
        .enable_totp(&me, &code_at(&setup.secret, now()), None)
        .await
        .unwrap();
    assert!(matches!(
        identity.setup_totp(&me).await.unwrap_err(),
        Error::MfaAlreadyEnabled
    ));
}

async fn disabling_needs_a_code(pool: Pool) {
    let identity = service(pool).await;
    let user = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let me = principal_of(&login(&identity, "ann@example.com").await);
    assert!(matches!(
        identity.disable_totp(&me, "123456", None).await.unwrap_err(),
        Error::MfaNotEnabled
    ));
    let (_, codes, _) = enable_as(&identity, &me).await;
    assert!(matches!(
        identity.disable_totp(&me, "nonsense", None).await.unwrap_err(),
        Error::CodeRejected
    ));
    identity.disable_totp(&me, &codes[0], None).await.unwrap();
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

async fn wrong_codes_on_disabling_are_throttled_like_sign_in(pool: Pool) {
    let identity = service_with(pool, three_failures()).await;
    let user = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let me = principal_of(&login(&identity, "ann@example.com").await);
    let (secret, codes, _) = enable_as(&identity, &me).await;
    let url = serve_as(&identity, me, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))).await;
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
    let me = principal_of(&login(&identity, "ann@example.com").await);
    let setup = identity.setup_totp(&me).await.unwrap();
    let wrong = code_at(&setup.secret, now() + 3_600);
    for _ in 0..3 {
        let error = identity.enable_totp(&me, &wrong, None).await.unwrap_err();
        assert!(matches!(error, Error::CodeRejected), "{error:?}");
    }
    let right = code_at(&setup.secret, now());
    let error = identity.enable_totp(&me, &right, None).await.unwrap_err();
    let Error::CodeThrottled { retry_after_secs } = error else {
        panic!("expected throttling, got {error:?}");
    };
    assert!((1..=15 * 60).contains(&retry_after_secs));
    assert!(!identity.user(user.id).await.unwrap().totp_enabled);
}

async fn enabling_totp_ends_every_other_session(pool: Pool) {
    let identity = service(pool.clone()).await;
    let user = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    identity.register("bob@example.com", PASSWORD, "Bob").await.unwrap();
    let here = login(&identity, "ann@example.com").await;
    let stolen = login(&identity, "ann@example.com").await;
    let elsewhere = identity
        .refresh(&login(&identity, "ann@example.com").await.refresh_token)
        .await
        .unwrap();
    let bobs = login(&identity, "bob@example.com").await;

    enable_as(&identity, &principal_of(&here)).await;

    assert!(
        !refreshes(&identity, &stolen).await,
        "a stolen session does not survive MFA being turned on"
    );
    assert!(!refreshes(&identity, &elsewhere).await);
    assert!(
        refreshes(&identity, &here).await,
        "the session that turned it on continues"
    );
    assert!(refreshes(&identity, &bobs).await, "other users are not touched");
    let enabled = events_of(&pool, "identity.mfa_enabled.v1").await;
    assert_eq!(enabled.len(), 1);
    assert_eq!(enabled[0]["user_id"], user.id.to_string());
}

async fn an_api_key_cannot_set_up_enable_or_disable_totp(pool: Pool) {
    let identity = service(pool).await;
    let user = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let me = principal_of(&login(&identity, "ann@example.com").await);
    let by_key = Principal {
        credential: Credential::ApiKey { key_id: Uuid::new_v4() },
        ..me
    };
    let setup = identity.setup_totp(&by_key).await.unwrap_err();
    assert!(matches!(setup, Error::SessionRequired), "{setup:?}");
    // With a secret set up from a session, a key still cannot turn it on (nor off, once on).
    let secret = identity.setup_totp(&me).await.unwrap().secret;
    let enabling = identity
        .enable_totp(&by_key, &code_at(&secret, now()), None)
        .await
        .unwrap_err();
    assert!(matches!(enabling, Error::SessionRequired), "{enabling:?}");
    assert!(!identity.user(user.id).await.unwrap().totp_enabled);
    let (_, codes, _) = enable(&identity, user.id).await;

    let url = serve_as(&identity, by_key, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))).await;
    let answer = reqwest::Client::new()
        .post(format!("{url}/api/v1/auth/mfa/totp/disable"))
        .json(&serde_json::json!({ "code": codes[0] }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    let problem: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(problem["code"], "session_required", "{problem}");
    assert!(identity.user(user.id).await.unwrap().totp_enabled);
}

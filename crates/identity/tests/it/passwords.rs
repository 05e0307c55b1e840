use std::net::{IpAddr, Ipv4Addr};

use phoenix_api::{Credential, Principal};
use phoenix_db::{Backend, Pool};
use phoenix_identity::{Error, Options, PasswordChange};
use uuid::Uuid;

use crate::mfa::enable_as;
use crate::{
    PASSWORD, code_at, events_of, login, now, principal_of, refreshes, serve_as, service, service_with, sign_in,
    sign_in_with_code,
};

phoenix_db::contract_suite!(
    phoenix_identity::migrations(),
    [
        a_changed_password_signs_in_and_the_old_one_no_longer_does,
        changing_the_password_ends_every_other_session_but_the_callers,
        an_ended_session_can_no_longer_change_the_account,
        a_wrong_current_password_is_refused_and_throttled_like_sign_in,
        a_weak_or_unchanged_new_password_is_refused,
        an_api_key_cannot_change_the_password,
        a_totp_account_needs_its_code_to_change_the_password,
        a_failed_event_write_leaves_password_and_sessions_as_they_were,
    ]
);

const NEW_PASSWORD: &str = "seven purple lanterns drift";

fn change<'a>(current: &'a str, new: &'a str) -> PasswordChange<'a> {
    PasswordChange {
        current_password: current,
        new_password: new,
        totp_code: None,
        client_ip: None,
    }
}

/// `PUT /api/v1/auth/password` on the router served at `url`.
async fn put_password(url: &str, current: &str, new: &str) -> reqwest::Response {
    reqwest::Client::new()
        .put(format!("{url}/api/v1/auth/password"))
        .json(&serde_json::json!({ "current_password": current, "new_password": new }))
        .send()
        .await
        .unwrap()
}

async fn a_changed_password_signs_in_and_the_old_one_no_longer_does(pool: Pool) {
    let identity = service(pool.clone()).await;
    let user = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let session = login(&identity, "ann@example.com").await;
    let url = serve_as(
        &identity,
        principal_of(&session),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    )
    .await;
    let answer = put_password(&url, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(answer.status(), 204);

    let old = sign_in(&identity, PASSWORD).await.unwrap_err();
    assert!(matches!(old, Error::InvalidCredentials), "{old:?}");
    sign_in(&identity, NEW_PASSWORD).await.unwrap();
    assert!(
        identity
            .user(user.id)
            .await
            .unwrap()
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "hashed as at registration"
    );

    let changed = events_of(&pool, "identity.password_changed.v1").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["changed_by"], user.id.to_string());
    let data = changed[0].to_string();
    for secret in [PASSWORD, NEW_PASSWORD, "argon2"] {
        assert!(!data.contains(secret), "no password or hash in the event: {data}");
    }
}

async fn changing_the_password_ends_every_other_session_but_the_callers(pool: Pool) {
    let identity = service(pool).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    identity.register("bob@example.com", PASSWORD, "Bob").await.unwrap();
    let here = login(&identity, "ann@example.com").await;
    // The caller's access token is the one issued at sign-in; the session has been refreshed since.
    let here_now = identity.refresh(&here.refresh_token).await.unwrap();
    let phone = login(&identity, "ann@example.com").await;
    let laptop = identity
        .refresh(&login(&identity, "ann@example.com").await.refresh_token)
        .await
        .unwrap();
    let bobs = login(&identity, "bob@example.com").await;

    identity
        .change_password(&principal_of(&here), change(PASSWORD, NEW_PASSWORD))
        .await
        .unwrap();

    assert!(!refreshes(&identity, &phone).await);
    assert!(!refreshes(&identity, &laptop).await);
    assert!(refreshes(&identity, &here_now).await, "the caller stays signed in");
    assert!(refreshes(&identity, &bobs).await, "other users are not touched");
}

/// A stolen session ended by the owner (a password change here) keeps its access token until it expires, but that
/// token can no longer change the account: no password change, no second factor, no API key, no signing out. A
/// token that names no session at all is refused alike.
async fn an_ended_session_can_no_longer_change_the_account(pool: Pool) {
    let identity = service(pool).await;
    let user = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let owner = principal_of(&login(&identity, "ann@example.com").await);
    let thief = principal_of(&login(&identity, "ann@example.com").await);
    identity
        .change_password(&owner, change(PASSWORD, NEW_PASSWORD))
        .await
        .unwrap();
    for principal in [thief, crate::signed_in(user.id)] {
        let ended = |result: Result<(), Error>| matches!(result, Err(Error::SessionEnded));
        assert!(ended(identity.setup_totp(&principal).await.map(|_| ())));
        assert!(ended(
            identity.enable_totp(&principal, "123456", None).await.map(|_| ())
        ));
        assert!(ended(
            identity
                .create_api_key(&principal, "left behind", None)
                .await
                .map(|_| ())
        ));
        assert!(ended(
            identity
                .change_password(&principal, change(NEW_PASSWORD, "a third passphrase, long"))
                .await
        ));
        assert!(ended(identity.revoke_sessions(&principal).await));
    }
    let problem = phoenix_api::Problem::from(Error::SessionEnded);
    assert_eq!((problem.status.as_u16(), problem.code.as_ref()), (401, "session_ended"));
    // The owner's session goes on, and nothing the thief tried happened.
    let me = identity.user(user.id).await.unwrap();
    assert!(!me.totp_enabled);
    assert!(identity.api_keys(&owner).await.unwrap().is_empty());
    identity.setup_totp(&owner).await.unwrap();
}

async fn a_wrong_current_password_is_refused_and_throttled_like_sign_in(pool: Pool) {
    let options = Options {
        login_failures_per_account: 3,
        ..Options::default()
    };
    let identity = service_with(pool.clone(), options).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let session = login(&identity, "ann@example.com").await;
    let url = serve_as(
        &identity,
        principal_of(&session),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    )
    .await;
    let put = async |current: &str| put_password(&url, current, NEW_PASSWORD).await;
    for _ in 0..3 {
        let wrong = put("not the password at all").await;
        assert_eq!(wrong.status(), 422);
        let problem: serde_json::Value = wrong.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_current_password", "{problem}");
    }
    let throttled = put(PASSWORD).await;
    assert_eq!(throttled.status(), 429);
    let retry_after: u64 = throttled.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=15 * 60).contains(&retry_after), "{retry_after}");
    let problem: serde_json::Value = throttled.json().await.unwrap();
    assert_eq!(problem["code"], "login_throttled", "{problem}");

    // The failures count against the account's one budget: sign-in waits too, and nothing changed.
    let blocked = sign_in(&identity, PASSWORD).await.unwrap_err();
    assert!(matches!(blocked, Error::LoginThrottled { .. }), "{blocked:?}");
    let direct = identity
        .change_password(&principal_of(&session), change(PASSWORD, NEW_PASSWORD))
        .await
        .unwrap_err();
    assert!(matches!(direct, Error::LoginThrottled { .. }), "{direct:?}");
    assert!(events_of(&pool, "identity.password_changed.v1").await.is_empty());
    assert!(refreshes(&identity, &session).await);
}

async fn a_weak_or_unchanged_new_password_is_refused(pool: Pool) {
    let identity = service(pool.clone()).await;
    identity
        .register("ann.lee@example.com", PASSWORD, "Ann Lee")
        .await
        .unwrap();
    let session = login(&identity, "ann.lee@example.com").await;
    let other = login(&identity, "ann.lee@example.com").await;
    for new in [
        "short",
        "password1234",
        "ann lee forever 1",
        "ann.lee-is-here",
        PASSWORD,
    ] {
        let error = identity
            .change_password(&principal_of(&session), change(PASSWORD, new))
            .await
            .unwrap_err();
        let Error::Invalid(fields) = &error else {
            panic!("{new:?}: expected a field error, got {error:?}");
        };
        assert_eq!(fields[0].field, "new_password", "{new:?}");
    }
    let url = serve_as(
        &identity,
        principal_of(&session),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    )
    .await;
    let answer = put_password(&url, PASSWORD, PASSWORD).await;
    assert_eq!(answer.status(), 422);
    let problem: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "new_password", "{problem}");

    assert!(events_of(&pool, "identity.password_changed.v1").await.is_empty());
    assert!(refreshes(&identity, &other).await, "a refused change ends no session");
    login(&identity, "ann.lee@example.com").await;
}

async fn an_api_key_cannot_change_the_password(pool: Pool) {
    let identity = service(pool.clone()).await;
    let user = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let me = principal_of(&login(&identity, "ann@example.com").await);
    let session = login(&identity, "ann@example.com").await;
    let by_key = Principal {
        credential: Credential::ApiKey { key_id: Uuid::new_v4() },
        ..me
    };
    let url = serve_as(&identity, by_key, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))).await;
    let http = reqwest::Client::new();
    let answers = [
        put_password(&url, PASSWORD, NEW_PASSWORD).await,
        http.delete(format!("{url}/api/v1/auth/sessions")).send().await.unwrap(),
    ];
    for answer in answers {
        assert_eq!(answer.status(), 403);
        let problem: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(problem["code"], "session_required", "{problem}");
    }
    let on_behalf = Principal {
        credential: Credential::OnBehalf { of: user.id },
        ..me
    };
    let refused = identity
        .change_password(&on_behalf, change(PASSWORD, NEW_PASSWORD))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::SessionRequired), "{refused:?}");

    sign_in(&identity, PASSWORD).await.unwrap();
    assert!(refreshes(&identity, &session).await);
    assert!(events_of(&pool, "identity.password_changed.v1").await.is_empty());
    assert!(events_of(&pool, "identity.sessions_revoked.v1").await.is_empty());
}

async fn a_totp_account_needs_its_code_to_change_the_password(pool: Pool) {
    let options = Options {
        login_failures_per_account: 3,
        ..Options::default()
    };
    let identity = service_with(pool, options).await;
    let user = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let session = login(&identity, "ann@example.com").await;
    let caller = principal_of(&session);
    let (secret, recovery_codes, enabled_at) = enable_as(&identity, &caller).await;
    let hash = identity.user(user.id).await.unwrap().password_hash;

    let missing = identity
        .change_password(&caller, change(PASSWORD, NEW_PASSWORD))
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::MfaCodeRequired), "{missing:?}");
    // A code of an hour ahead is wrong now (unless it happens to match: vanishingly rare); each counts as a failure.
    let wrong = code_at(&secret, now() + 3_600);
    for _ in 0..2 {
        let refused = identity
            .change_password(
                &caller,
                PasswordChange {
                    totp_code: Some(&wrong),
                    ..change(PASSWORD, NEW_PASSWORD)
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(refused, Error::CodeRejected), "{refused:?}");
    }
    assert_eq!(identity.user(user.id).await.unwrap().password_hash, hash, "unchanged");

    // The step after the enabling one is fresh (see mfa::totp_login_needs_a_fresh_code).
    let fresh = code_at(&secret, enabled_at + 30);
    identity
        .change_password(
            &caller,
            PasswordChange {
                totp_code: Some(&fresh),
                ..change(PASSWORD, NEW_PASSWORD)
            },
        )
        .await
        .unwrap();

    // Both factors right clears the account's failures, as a sign-in does: one more wrong sign-in would be the
    // third failure otherwise, and the next sign-in would wait.
    assert!(matches!(
        sign_in(&identity, PASSWORD).await.unwrap_err(),
        Error::InvalidCredentials
    ));
    sign_in_with_code(&identity, NEW_PASSWORD, &recovery_codes[0])
        .await
        .unwrap();
}

/// Makes the outbox refuse `event_type`, as a full disk or a broken constraint would.
async fn refuse_events(pool: &Pool, event_type: &str) {
    let sql = match pool.backend() {
        Backend::Sqlite => format!(
            "CREATE TRIGGER refuse BEFORE INSERT ON outbox WHEN NEW.event_type = '{event_type}'
             BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ),
        Backend::Postgres => format!("ALTER TABLE outbox ADD CONSTRAINT refuse CHECK (event_type <> '{event_type}')"),
    };
    phoenix_db::dispatch!(pool, conn => {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).execute(conn).await.map(drop)
    })
    .unwrap();
}

async fn a_failed_event_write_leaves_password_and_sessions_as_they_were(pool: Pool) {
    let identity = service(pool.clone()).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let here = login(&identity, "ann@example.com").await;
    let elsewhere = login(&identity, "ann@example.com").await;
    refuse_events(&pool, "identity.password_changed.v1").await;

    let failed = identity
        .change_password(&principal_of(&here), change(PASSWORD, NEW_PASSWORD))
        .await
        .unwrap_err();
    assert!(matches!(failed, Error::Db(_)), "{failed:?}");

    sign_in(&identity, PASSWORD).await.unwrap();
    assert!(sign_in(&identity, NEW_PASSWORD).await.is_err());
    assert!(
        refreshes(&identity, &elsewhere).await,
        "the revocation rolled back with the change"
    );
}

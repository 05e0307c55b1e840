//! "Forgot my password": requests that reveal nothing, throttled per client and per address; a token that is
//! sealed in its event, works once, expires and is replaced by a newer one; a reset that ends every session and
//! keeps the second factor; racing confirmations with one winner.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use phoenix_db::{Pool, Timestamp, dispatch};
use phoenix_identity::{Error, Options, PASSWORD_RESET, PASSWORD_RESET_REQUESTED, Service, reset_token_context};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::mfa::enable_as;
use crate::{
    PASSWORD, ended_since, events_of, login, principal_of, refreshes, serve_as, service, service_with, sign_in,
    sign_in_with_code, signed_in,
};

phoenix_db::contract_suite!(
    phoenix_identity::migrations(),
    [
        a_reset_for_an_unknown_address_is_answered_the_same_and_mails_nothing,
        the_mailed_token_is_sealed_and_opens_only_for_its_user,
        a_reset_token_sets_the_password_once,
        an_expired_reset_token_is_refused,
        a_new_request_replaces_the_earlier_token,
        a_weak_new_password_is_refused_and_leaves_the_token_good,
        a_reset_ends_every_session_and_lists_them_for_the_gateway,
        a_reset_keeps_two_factor_authentication_on,
        a_reset_clears_the_accounts_failed_sign_ins,
        racing_confirmations_of_one_token_have_one_winner,
        an_address_over_its_quota_is_answered_the_same_and_mailed_nothing_more,
        a_client_over_its_quota_is_refused_with_retry_after,
    ]
);

const NEW_PASSWORD: &str = "seven purple lanterns drift";

/// Asks for a reset of `email` and waits until its token (if any) is issued.
async fn request(identity: &Service, email: &str) {
    identity
        .request_password_reset(email, None)
        .await
        .unwrap()
        .issued()
        .await
        .unwrap();
}

/// The token of the newest reset mail of `user_id`, opened as notification opens it.
async fn mailed_token(pool: &Pool, user_id: Uuid) -> String {
    let requested = events_of(pool, PASSWORD_RESET_REQUESTED).await;
    let newest = requested
        .iter()
        .rev()
        .find(|e| e["user_id"] == user_id.to_string())
        .expect("a reset mail for the user");
    let sealed = newest["sealed_token"].as_str().unwrap();
    phoenix_db::testing::sealer()
        .open_text(&reset_token_context(user_id), sealed)
        .unwrap()
        .value
}

async fn post(url: &str, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Polls the outbox until it holds `n` events of `event_type` (the token is issued after the answer), for at most
/// ten seconds.
async fn until_events(pool: &Pool, event_type: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = events_of(pool, event_type).await;
        if events.len() >= n {
            return events;
        }
        assert!(tokio::time::Instant::now() < deadline, "{n} {event_type} never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn a_reset_for_an_unknown_address_is_answered_the_same_and_mails_nothing(pool: Pool) {
    let identity = service(pool.clone()).await;
    let ann = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let url = serve_as(
        &identity,
        signed_in(Uuid::now_v7()),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    )
    .await;
    let mut answers = Vec::new();
    for email in ["nobody@example.com", "Ann@Example.com"] {
        let answer = post(&url, "/api/v1/auth/password-reset", json!({ "email": email })).await;
        answers.push((answer.status().as_u16(), answer.text().await.unwrap()));
    }
    assert_eq!(answers[0], answers[1], "the same answer with an account or without");
    assert_eq!(answers[0].0, 202);

    // Ann's mail is issued after the answer; nobody's never is.
    let requested = until_events(&pool, PASSWORD_RESET_REQUESTED, 1).await;
    request(&identity, "nobody@example.com").await;
    request(&identity, "someone.else@example.com").await;
    let requested_now = events_of(&pool, PASSWORD_RESET_REQUESTED).await;
    assert_eq!(requested_now, requested, "no event for an address without an account");
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0]["user_id"], ann.id.to_string());
    assert_eq!(requested[0]["email"], "ann@example.com", "the account's own address");
    assert_eq!(requested[0]["name"], "Ann");

    let malformed = post(
        &url,
        "/api/v1/auth/password-reset",
        json!({ "email": "not an address" }),
    )
    .await;
    assert_eq!(malformed.status(), 422);
    let problem: Value = malformed.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "email", "{problem}");
}

/// The token leaves identity sealed only, bound to its user, and what is stored is its digest: the clear token is
/// in no event, no row; opened with the shared key, it sets the password.
async fn the_mailed_token_is_sealed_and_opens_only_for_its_user(pool: Pool) {
    let identity = service(pool.clone()).await;
    let ann = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let bob = identity.register("bob@example.com", PASSWORD, "Bob").await.unwrap();
    request(&identity, "ann@example.com").await;

    let requested = events_of(&pool, PASSWORD_RESET_REQUESTED).await;
    let sealed = requested[0]["sealed_token"].as_str().unwrap();
    assert!(sealed.starts_with("pxs1."), "{sealed}");
    let sealer = phoenix_db::testing::sealer();
    assert!(
        sealer.open_text(&reset_token_context(bob.id), sealed).is_err(),
        "sealed for Ann's event only"
    );
    let token = sealer.open_text(&reset_token_context(ann.id), sealed).unwrap().value;
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    let expires_at = time::OffsetDateTime::parse(
        requested[0]["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires_at - time::OffsetDateTime::now_utc();
    assert!(
        (time::Duration::minutes(29)..=time::Duration::minutes(30)).contains(&left),
        "{left}"
    );

    let outbox: Vec<String> = pool
        .unpublished_events(1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.data.0.to_string())
        .collect();
    assert!(
        outbox.iter().all(|data| !data.contains(&token)),
        "no clear token in any event"
    );
    let rows: Vec<(Uuid, Vec<u8>)> = dispatch!(&pool, conn => {
        sqlx::query_as("SELECT user_id, token_hash FROM password_resets").fetch_all(conn).await
    })
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, ann.id);
    assert_eq!(rows[0].1.len(), 32, "a SHA-256 digest");
    assert!(!String::from_utf8_lossy(&rows[0].1).contains(&token));

    identity.confirm_password_reset(&token, NEW_PASSWORD).await.unwrap();
    sign_in(&identity, NEW_PASSWORD).await.unwrap();
}

async fn a_reset_token_sets_the_password_once(pool: Pool) {
    let identity = service(pool.clone()).await;
    let ann = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    request(&identity, "ann@example.com").await;
    let token = mailed_token(&pool, ann.id).await;

    let url = serve_as(
        &identity,
        signed_in(Uuid::now_v7()),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    )
    .await;
    let confirm = async |token: &str, password: &str| {
        post(
            &url,
            "/api/v1/auth/password-reset/confirm",
            json!({ "token": token, "new_password": password }),
        )
        .await
    };
    assert_eq!(confirm(&token, NEW_PASSWORD).await.status(), 204);
    let old = sign_in(&identity, PASSWORD).await.unwrap_err();
    assert!(matches!(old, Error::InvalidCredentials), "{old:?}");
    sign_in(&identity, NEW_PASSWORD).await.unwrap();
    assert!(
        identity
            .user(ann.id)
            .await
            .unwrap()
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "hashed as at registration"
    );

    // Used, and never issued: the same answer.
    for (token, password) in [
        (token.as_str(), "another passphrase entirely"),
        ("no-such-token-was-ever-issued", "another passphrase entirely"),
        ("", "another passphrase entirely"),
    ] {
        let refused = confirm(token, password).await;
        assert_eq!(refused.status(), 400);
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_reset_token", "{problem}");
    }
    sign_in(&identity, NEW_PASSWORD).await.unwrap();

    let reset = events_of(&pool, PASSWORD_RESET).await;
    assert_eq!(reset.len(), 1);
    assert_eq!(reset[0], json!({ "user_id": ann.id }));
}

async fn an_expired_reset_token_is_refused(pool: Pool) {
    let identity = service(pool.clone()).await;
    let ann = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    request(&identity, "ann@example.com").await;
    let token = mailed_token(&pool, ann.id).await;
    dispatch!(&pool, conn => {
        sqlx::query("UPDATE password_resets SET expires_at = $1")
            .bind(Timestamp::now() - time::Duration::seconds(1))
            .execute(conn)
            .await
            .map(drop)
    })
    .unwrap();

    let refused = identity.confirm_password_reset(&token, NEW_PASSWORD).await.unwrap_err();
    assert!(matches!(refused, Error::InvalidResetToken), "{refused:?}");
    sign_in(&identity, PASSWORD).await.unwrap();
    assert!(events_of(&pool, PASSWORD_RESET).await.is_empty());
}

async fn a_new_request_replaces_the_earlier_token(pool: Pool) {
    let identity = service(pool.clone()).await;
    let ann = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    request(&identity, "ann@example.com").await;
    let first = mailed_token(&pool, ann.id).await;
    request(&identity, "ann@example.com").await;
    let second = mailed_token(&pool, ann.id).await;
    assert_ne!(first, second);

    let refused = identity.confirm_password_reset(&first, NEW_PASSWORD).await.unwrap_err();
    assert!(matches!(refused, Error::InvalidResetToken), "{refused:?}");
    identity.confirm_password_reset(&second, NEW_PASSWORD).await.unwrap();
    sign_in(&identity, NEW_PASSWORD).await.unwrap();
}

async fn a_weak_new_password_is_refused_and_leaves_the_token_good(pool: Pool) {
    let identity = service(pool.clone()).await;
    let ann = identity
        .register("ann.lee@example.com", PASSWORD, "Ann Lee")
        .await
        .unwrap();
    request(&identity, "ann.lee@example.com").await;
    let token = mailed_token(&pool, ann.id).await;
    for weak in ["short", "password1234", "ann lee forever 1", "ann.lee-is-here"] {
        let error = identity.confirm_password_reset(&token, weak).await.unwrap_err();
        let Error::Invalid(fields) = &error else {
            panic!("{weak:?}: expected a field error, got {error:?}");
        };
        assert_eq!(fields[0].field, "new_password", "{weak:?}");
    }
    assert!(events_of(&pool, PASSWORD_RESET).await.is_empty());
    identity.confirm_password_reset(&token, NEW_PASSWORD).await.unwrap();
}

/// Every session ends, refresh tokens at once; every access token of them (rotated-from ones included) is listed
/// for the gateway, and a gateway in this process is told at once.
async fn a_reset_ends_every_session_and_lists_them_for_the_gateway(pool: Pool) {
    let identity = service(pool.clone()).await;
    let ann = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    identity.register("bob@example.com", PASSWORD, "Bob").await.unwrap();
    let phone = login(&identity, "ann@example.com").await;
    let rotated = identity.refresh(&phone.refresh_token).await.unwrap();
    let laptop = login(&identity, "ann@example.com").await;
    let bobs = login(&identity, "bob@example.com").await;
    let start = identity.revocations(None, 100).await.unwrap();
    assert!(start.tokens.is_empty());
    let mut told = identity.revocations_changed();
    told.mark_unchanged();

    request(&identity, "ann@example.com").await;
    let token = mailed_token(&pool, ann.id).await;
    identity.confirm_password_reset(&token, NEW_PASSWORD).await.unwrap();

    assert!(told.has_changed().unwrap(), "the gateway in this process is told");
    assert!(!refreshes(&identity, &rotated).await);
    assert!(!refreshes(&identity, &laptop).await);
    assert!(refreshes(&identity, &bobs).await, "other users are not touched");
    let ended: HashSet<Uuid> = ended_since(&identity, start.next).await.into_iter().collect();
    assert_eq!(
        ended,
        HashSet::from([phone.token_id, rotated.token_id, laptop.token_id]),
        "every access token of every session of Ann's"
    );
    let ended_session = identity.revoke_sessions(&principal_of(&laptop)).await.unwrap_err();
    assert!(matches!(ended_session, Error::SessionEnded), "{ended_session:?}");
}

async fn a_reset_keeps_two_factor_authentication_on(pool: Pool) {
    let identity = service(pool.clone()).await;
    let ann = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let session = login(&identity, "ann@example.com").await;
    let (_, recovery_codes, _) = enable_as(&identity, &principal_of(&session)).await;

    request(&identity, "ann@example.com").await;
    let token = mailed_token(&pool, ann.id).await;
    identity.confirm_password_reset(&token, NEW_PASSWORD).await.unwrap();

    assert!(identity.user(ann.id).await.unwrap().totp_enabled);
    let without_code = sign_in(&identity, NEW_PASSWORD).await.unwrap_err();
    assert!(matches!(without_code, Error::MfaRequired), "{without_code:?}");
    sign_in_with_code(&identity, NEW_PASSWORD, &recovery_codes[0])
        .await
        .unwrap();
}

async fn a_reset_clears_the_accounts_failed_sign_ins(pool: Pool) {
    let options = Options {
        login_failures_per_account: 3,
        ..Options::default()
    };
    let identity = service_with(pool.clone(), options).await;
    let ann = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    for _ in 0..3 {
        assert!(matches!(
            sign_in(&identity, "someone guessing here").await,
            Err(Error::InvalidCredentials)
        ));
    }
    let locked = sign_in(&identity, PASSWORD).await.unwrap_err();
    assert!(matches!(locked, Error::LoginThrottled { .. }), "{locked:?}");

    request(&identity, "ann@example.com").await;
    let token = mailed_token(&pool, ann.id).await;
    identity.confirm_password_reset(&token, NEW_PASSWORD).await.unwrap();
    sign_in(&identity, NEW_PASSWORD).await.unwrap();
}

/// Many confirmations of one token at once, each with its own password: exactly one sets its password, the others
/// are refused, and one event tells of it.
async fn racing_confirmations_of_one_token_have_one_winner(pool: Pool) {
    let options = Options {
        login_failures_per_account: 1_000,
        ..Options::default()
    };
    let identity = service_with(pool.clone(), options).await;
    let ann = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    request(&identity, "ann@example.com").await;
    let token = mailed_token(&pool, ann.id).await;

    let passwords: Vec<String> = (0..8).map(|i| format!("racer number {i} lights lanterns")).collect();
    let racers: Vec<_> = passwords
        .iter()
        .map(|password| {
            let (identity, token, password) = (identity.clone(), token.clone(), password.clone());
            tokio::spawn(async move { identity.confirm_password_reset(&token, &password).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (racer, password) in racers.into_iter().zip(&passwords) {
        match racer.await.unwrap() {
            Ok(()) => winners.push(password.clone()),
            Err(Error::InvalidResetToken) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(events_of(&pool, PASSWORD_RESET).await.len(), 1);
    sign_in(&identity, &winners[0]).await.unwrap();
    for loser in passwords.iter().filter(|p| **p != winners[0]).take(2) {
        assert!(matches!(
            sign_in(&identity, loser).await,
            Err(Error::InvalidCredentials)
        ));
    }
}

/// Past an address's quota a request is answered as before and mails nothing, whether an account has the address
/// or not.
async fn an_address_over_its_quota_is_answered_the_same_and_mailed_nothing_more(pool: Pool) {
    let options = Options {
        password_resets_per_account: 2,
        ..Options::default()
    };
    let identity = service_with(pool.clone(), options).await;
    let ann = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    for _ in 0..4 {
        request(&identity, "ann@example.com").await;
        request(&identity, "nobody@example.com").await;
    }
    // Every spelling of the address is one address.
    request(&identity, "ANN@example.com").await;
    let requested = events_of(&pool, PASSWORD_RESET_REQUESTED).await;
    assert_eq!(requested.len(), 2, "two mails, then nothing");
    assert!(requested.iter().all(|e| e["user_id"] == ann.id.to_string()));

    // Another address has its own quota.
    identity.register("bob@example.com", PASSWORD, "Bob").await.unwrap();
    request(&identity, "bob@example.com").await;
    assert_eq!(events_of(&pool, PASSWORD_RESET_REQUESTED).await.len(), 3);
}

async fn a_client_over_its_quota_is_refused_with_retry_after(pool: Pool) {
    let options = Options {
        password_resets_per_ip: 3,
        ..Options::default()
    };
    let identity = service_with(pool.clone(), options).await;
    let url = serve_as(
        &identity,
        signed_in(Uuid::now_v7()),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)),
    )
    .await;
    for i in 0..3 {
        let answer = post(
            &url,
            "/api/v1/auth/password-reset",
            json!({ "email": format!("someone{i}@example.com") }),
        )
        .await;
        assert_eq!(answer.status(), 202);
    }
    let throttled = post(
        &url,
        "/api/v1/auth/password-reset",
        json!({ "email": "one.more@example.com" }),
    )
    .await;
    assert_eq!(throttled.status(), 429);
    let retry_after: u64 = throttled.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    let problem: Value = throttled.json().await.unwrap();
    assert_eq!(problem["code"], "password_reset_throttled", "{problem}");

    // Another client is not held up.
    identity
        .request_password_reset("one.more@example.com", Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10))))
        .await
        .unwrap()
        .issued()
        .await
        .unwrap();
}

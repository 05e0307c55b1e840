use std::net::{IpAddr, Ipv4Addr};

use phoenix_db::Pool;
use phoenix_identity::{Error, Login, Options};

use crate::{PASSWORD, login, service, service_with};

phoenix_db::contract_suite!(
    phoenix_identity::migrations(),
    [
        unknown_email_and_wrong_password_answer_the_same,
        refresh_rotates_and_reuse_revokes_the_family,
        racing_refreshes_of_one_token_never_both_win,
        logout_revokes_the_session,
        failures_per_account_lock_even_the_right_password,
        failures_per_ip_lock_every_account_from_that_ip,
        success_clears_account_failures,
    ]
);

async fn unknown_email_and_wrong_password_answer_the_same(pool: Pool) {
    let identity = service(pool).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    for (email, password) in [
        ("nobody@example.com", PASSWORD),
        ("ann@example.com", "wrong password here"),
    ] {
        let error = identity
            .login(Login {
                email,
                password,
                totp_code: None,
                client_ip: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(error, Error::InvalidCredentials), "{error:?}");
    }
    let session = login(&identity, "ANN@example.com").await;
    assert_eq!(session.expires_in_secs, 900);
}

async fn refresh_rotates_and_reuse_revokes_the_family(pool: Pool) {
    let identity = service(pool.clone()).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let first = login(&identity, "ann@example.com").await;
    let second = identity.refresh(&first.refresh_token).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    let third = identity.refresh(&second.refresh_token).await.unwrap();

    // The first token again: stolen and replayed. Every token of the sign-in dies, including the newest.
    let reuse = identity.refresh(&first.refresh_token).await.unwrap_err();
    assert!(matches!(reuse, Error::RefreshTokenReused), "{reuse:?}");
    let after = identity.refresh(&third.refresh_token).await.unwrap_err();
    assert!(matches!(after, Error::InvalidRefreshToken), "{after:?}");

    // Another sign-in is a different family and keeps working.
    let other = login(&identity, "ann@example.com").await;
    identity.refresh(&other.refresh_token).await.unwrap();

    let events = pool.unpublished_events(100).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.event_type == "identity.refresh_token_reuse_detected.v1")
    );
}

async fn racing_refreshes_of_one_token_never_both_win(pool: Pool) {
    let identity = service(pool).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let session = login(&identity, "ann@example.com").await;
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let identity = identity.clone();
            let token = session.refresh_token.clone();
            tokio::spawn(async move { identity.refresh(&token).await })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        if let Ok(new) = racer.await.unwrap() {
            winners.push(new);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one refresh of a token may succeed");
    // Whatever happened, the race looked like theft to the losers: the family is revoked.
    for winner in winners {
        assert!(identity.refresh(&winner.refresh_token).await.is_err());
    }
}

async fn logout_revokes_the_session(pool: Pool) {
    let identity = service(pool).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let session = login(&identity, "ann@example.com").await;
    identity.logout(&session.refresh_token).await.unwrap();
    identity.logout(&session.refresh_token).await.unwrap();
    identity.logout("never-issued").await.unwrap();
    let error = identity.refresh(&session.refresh_token).await.unwrap_err();
    assert!(matches!(error, Error::InvalidRefreshToken));
}

fn attempt<'a>(email: &'a str, password: &'a str, ip: u8) -> Login<'a> {
    Login {
        email,
        password,
        totp_code: None,
        client_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, ip))),
    }
}

async fn failures_per_account_lock_even_the_right_password(pool: Pool) {
    let options = Options {
        login_failures_per_account: 3,
        ..Options::default()
    };
    let identity = service_with(pool, options).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    for ip in 1..=3 {
        let error = identity
            .login(attempt("ann@example.com", "wrong password!!", ip))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::InvalidCredentials));
    }
    let error = identity
        .login(attempt("ann@example.com", PASSWORD, 4))
        .await
        .unwrap_err();
    let Error::LoginThrottled { retry_after_secs } = error else {
        panic!("expected throttling, got {error:?}");
    };
    assert!((1..=15 * 60).contains(&retry_after_secs));
}

async fn failures_per_ip_lock_every_account_from_that_ip(pool: Pool) {
    let options = Options {
        login_failures_per_ip: 4,
        ..Options::default()
    };
    let identity = service_with(pool, options).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    for i in 0..4 {
        let email = format!("probe{i}@example.com");
        assert!(matches!(
            identity.login(attempt(&email, PASSWORD, 9)).await.unwrap_err(),
            Error::InvalidCredentials
        ));
    }
    let blocked = identity
        .login(attempt("ann@example.com", PASSWORD, 9))
        .await
        .unwrap_err();
    assert!(matches!(blocked, Error::LoginThrottled { .. }), "{blocked:?}");
    // The same account from another address is fine.
    identity.login(attempt("ann@example.com", PASSWORD, 10)).await.unwrap();
}

async fn success_clears_account_failures(pool: Pool) {
    let options = Options {
        login_failures_per_account: 3,
        ..Options::default()
    };
    let identity = service_with(pool, options).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    for _ in 0..2 {
        identity
            .login(attempt("ann@example.com", "wrong password!!", 1))
            .await
            .unwrap_err();
    }
    identity.login(attempt("ann@example.com", PASSWORD, 1)).await.unwrap();
    for _ in 0..2 {
        identity
            .login(attempt("ann@example.com", "wrong password!!", 1))
            .await
            .unwrap_err();
    }
    identity.login(attempt("ann@example.com", PASSWORD, 1)).await.unwrap();
}

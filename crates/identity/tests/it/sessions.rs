use std::net::{IpAddr, Ipv4Addr};

use phoenix_db::Pool;
use phoenix_identity::{Error, Login, Options};

use crate::{PASSWORD, events_of, login, principal_of, refreshes, serve_as, service, service_with};

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
        signing_out_everywhere_ends_every_session_of_the_user_only,
        refreshes_racing_sign_out_everywhere_leave_no_live_session,
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

async fn signing_out_everywhere_ends_every_session_of_the_user_only(pool: Pool) {
    let identity = service(pool.clone()).await;
    let ann = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    identity.register("bob@example.com", PASSWORD, "Bob").await.unwrap();
    let here = login(&identity, "ann@example.com").await;
    let refreshed = identity
        .refresh(&login(&identity, "ann@example.com").await.refresh_token)
        .await
        .unwrap();
    let sessions = [login(&identity, "ann@example.com").await, refreshed];
    let bobs = login(&identity, "bob@example.com").await;

    let url = serve_as(&identity, principal_of(&here), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))).await;
    let answer = reqwest::Client::new()
        .delete(format!("{url}/api/v1/auth/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);

    assert!(!refreshes(&identity, &here).await, "everywhere includes here");
    for session in &sessions {
        assert!(!refreshes(&identity, session).await);
    }
    assert!(refreshes(&identity, &bobs).await, "other users keep their sessions");
    // Signing in again opens a session as usual.
    assert!(refreshes(&identity, &login(&identity, "ann@example.com").await).await);

    let revoked = events_of(&pool, "identity.sessions_revoked.v1").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["user_id"], ann.id.to_string());
    assert_eq!(revoked[0]["revoked_by"], ann.id.to_string());
}

/// Sessions refreshing as fast as they can while their user signs out everywhere: once the sign-out has returned
/// and the refreshes have stopped, no refresh token of the user works, whichever order each refresh and the
/// revocation took. (A revocation that missed a token a racing rotation was committing would leave that session
/// alive, and its chain refreshing for good.)
async fn refreshes_racing_sign_out_everywhere_leave_no_live_session(pool: Pool) {
    const N_SESSIONS: usize = 6;
    const MAX_REFRESHES: usize = 500;
    let identity = service(pool).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    for _ in 0..3 {
        let mut sessions = Vec::new();
        for _ in 0..N_SESSIONS {
            sessions.push(login(&identity, "ann@example.com").await);
        }
        let caller = principal_of(&sessions[0]);
        let (started, mut all_started) = tokio::sync::mpsc::channel(N_SESSIONS);
        let racers: Vec<_> = sessions
            .into_iter()
            .map(|mut session| {
                let identity = identity.clone();
                let started = started.clone();
                tokio::spawn(async move {
                    let mut n_refreshes = 0;
                    while let Ok(next) = identity.refresh(&session.refresh_token).await {
                        session = next;
                        n_refreshes += 1;
                        if n_refreshes == 1 {
                            started.send(()).await.unwrap();
                        }
                        if n_refreshes == MAX_REFRESHES {
                            break;
                        }
                    }
                    session
                })
            })
            .collect();
        drop(started);
        for _ in 0..N_SESSIONS {
            all_started.recv().await.unwrap();
        }
        identity.revoke_sessions(&caller).await.unwrap();
        for racer in racers {
            let last = racer.await.unwrap();
            assert!(
                !refreshes(&identity, &last).await,
                "a session outlived signing out everywhere"
            );
        }
    }
}

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use phoenix_api::Role;
use phoenix_db::{Pool, Timestamp, dispatch};
use phoenix_identity::{Error, Login, Options, PasswordChange, RevocationCursor, Service};
use uuid::Uuid;

use crate::{PASSWORD, code_at, events_of, login, now, principal_of, refreshes, serve_as, service, service_with};

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
        sign_ins_racing_a_role_change_leave_no_live_token_with_the_old_roles,
        revocations_name_every_ended_sessions_tokens_once_in_order,
        revocations_leave_out_tokens_expired_by_now,
        ending_a_session_tells_the_gateway_in_this_process,
        refresh_tokens_expired_for_a_day_are_deleted,
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

/// Sign-ins as fast as they can while an admin changes the user's roles: once the change has returned and the
/// sign-ins have stopped, every access token not among the ended sessions' carries the new roles, whichever order
/// each sign-in and the change took. (A sign-in that read the user before the change and opened its session after
/// the change had ended every session would keep the old roles for the token's life.)
async fn sign_ins_racing_a_role_change_leave_no_live_token_with_the_old_roles(pool: Pool) {
    const N_RACERS: usize = 4;
    let identity = service(pool).await;
    let actor = crate::signed_in_admin(&identity).await;
    let ann = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let roles_of = |token: &str| -> Vec<String> {
        use base64::Engine as _;
        let payload = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        serde_json::from_value(claims["roles"].clone()).unwrap()
    };
    let mut signed_in_after = 0;
    for (round, new_roles) in [[Role::Support], [Role::Customer], [Role::Support]]
        .into_iter()
        .enumerate()
    {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (started, mut all_started) = tokio::sync::mpsc::channel(N_RACERS);
        let racers: Vec<_> = (0..N_RACERS)
            .map(|_| {
                let (identity, stop, started) = (identity.clone(), stop.clone(), started.clone());
                tokio::spawn(async move {
                    let mut sessions = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        // A sign-in that met the change half-way is refused (a retry meets the new roles).
                        if let Ok(session) = identity
                            .login(Login {
                                email: "ann@example.com",
                                password: PASSWORD,
                                totp_code: None,
                                client_ip: None,
                            })
                            .await
                        {
                            sessions.push(session);
                        }
                        if sessions.len() == 1 {
                            started.send(()).await.unwrap();
                        }
                    }
                    sessions
                })
            })
            .collect();
        drop(started);
        for _ in 0..N_RACERS {
            all_started.recv().await.unwrap();
        }
        identity.set_roles(&actor, ann.id, &new_roles, None).await.unwrap();
        // Let each racer sign in once more after the change, so the round sees both sides of it.
        let changed = login(&identity, "ann@example.com").await;
        assert_eq!(roles_of(&changed.access_token), [new_roles[0].as_str()]);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (ended, _) = read_revocations(&identity, None, 500).await;
        let ended: HashSet<Uuid> = ended.into_iter().collect();
        for racer in racers {
            for session in racer.await.unwrap() {
                let roles = roles_of(&session.access_token);
                if roles == [new_roles[0].as_str()] {
                    signed_in_after += 1;
                } else {
                    assert!(
                        ended.contains(&session.token_id),
                        "round {round}: a session with the old roles {roles:?} outlived the change"
                    );
                }
            }
        }
    }
    assert!(signed_in_after > 0, "some sign-ins came after the changes");
}

/// Every page of revocations after `after`, `limit` at a time, until one is complete: the token ids in the order
/// given, and where to read on from.
async fn read_revocations(
    identity: &Service,
    mut after: Option<RevocationCursor>,
    limit: u32,
) -> (Vec<Uuid>, RevocationCursor) {
    let mut tokens = Vec::new();
    loop {
        let page = identity.revocations(after, limit).await.unwrap();
        assert!(page.tokens.len() <= limit as usize);
        for token in &page.tokens {
            // Valid for the access tokens' lifetime from when it was issued, a moment ago.
            let left = token.expires_at - time::OffsetDateTime::now_utc().unix_timestamp();
            assert!((890..=900).contains(&left), "{left}");
        }
        tokens.extend(page.tokens.iter().map(|t| t.token_id));
        after = Some(page.next);
        if page.complete {
            return (tokens, page.next);
        }
    }
}

/// What the gateway reads to refuse an ended session's access tokens: each access token (by its `jti`) of every
/// ended session, rotated-from ones included, once, in the order the sessions ended; nothing of a live session or
/// of another user; read on from a cursor, only what ended since.
async fn revocations_name_every_ended_sessions_tokens_once_in_order(pool: Pool) {
    let identity = service(pool).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    identity.register("bob@example.com", PASSWORD, "Bob").await.unwrap();
    let (none, start) = read_revocations(&identity, None, 100).await;
    assert!(none.is_empty(), "{none:?}");

    let signed_out = login(&identity, "ann@example.com").await;
    let rotated = identity.refresh(&signed_out.refresh_token).await.unwrap();
    let here = login(&identity, "ann@example.com").await;
    let elsewhere = [
        login(&identity, "ann@example.com").await,
        login(&identity, "ann@example.com").await,
    ];
    let bobs = login(&identity, "bob@example.com").await;

    identity.logout(&rotated.refresh_token).await.unwrap();
    let (first, cursor) = read_revocations(&identity, Some(start), 100).await;
    assert_eq!(
        first.iter().copied().collect::<HashSet<_>>(),
        HashSet::from([signed_out.token_id, rotated.token_id]),
        "the signed-out session, both its access tokens"
    );
    assert_eq!(first.len(), 2, "once each: {first:?}");

    identity.revoke_sessions(&principal_of(&here)).await.unwrap();
    let (second, _) = read_revocations(&identity, Some(cursor), 100).await;
    let expected: HashSet<Uuid> = elsewhere.iter().map(|s| s.token_id).chain([here.token_id]).collect();
    assert_eq!(
        second.iter().copied().collect::<HashSet<_>>(),
        expected,
        "only what ended since"
    );
    assert_eq!(second.len(), 3);
    assert!(!second.contains(&bobs.token_id));

    // From the start, a page of one at a time: the same tokens, each once, the first session's first.
    let (paged, _) = read_revocations(&identity, None, 1).await;
    assert_eq!(paged.len(), 5, "{paged:?}");
    assert_eq!(paged.iter().copied().collect::<HashSet<_>>().len(), 5);
    assert_eq!(
        paged[..2].iter().copied().collect::<HashSet<_>>(),
        HashSet::from([signed_out.token_id, rotated.token_id])
    );
    // Read again from a little before the cursor (as the gateway does): seen again, still each once.
    let (again, _) = read_revocations(&identity, Some(cursor.rewound(30)), 100).await;
    assert_eq!(again.len(), 5, "{again:?}");
}

/// A session ended after its access tokens expired needs no refusing: the gateway's list stays as small as the
/// access tokens still valid.
async fn revocations_leave_out_tokens_expired_by_now(pool: Pool) {
    let identity = service(pool.clone()).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let old = login(&identity, "ann@example.com").await;
    let recent = login(&identity, "ann@example.com").await;
    // `old` was issued 16 minutes ago: its access token (15 minutes, 30 s of leeway) has expired.
    let long_ago = Timestamp::now() - time::Duration::minutes(16);
    dispatch!(&pool, conn => {
        sqlx::query("UPDATE refresh_tokens SET issued_at = $1 WHERE id = $2")
            .bind(long_ago)
            .bind(old.token_id)
            .execute(conn)
            .await
            .map(|_| ())
    })
    .unwrap();
    identity.revoke_sessions(&principal_of(&recent)).await.unwrap();
    let (tokens, _) = read_revocations(&identity, None, 100).await;
    assert_eq!(tokens, [recent.token_id]);
}

/// Every way a session ends wakes a gateway in the same process, so it refuses the tokens at once rather than at
/// its next poll.
async fn ending_a_session_tells_the_gateway_in_this_process(pool: Pool) {
    let identity = service(pool).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let mut changed = identity.revocations_changed();
    let mut woken = || {
        let woken = changed.has_changed().unwrap();
        changed.mark_unchanged();
        woken
    };

    let session = login(&identity, "ann@example.com").await;
    assert!(!woken(), "signing in ends nothing");
    identity.refresh(&session.refresh_token).await.unwrap();
    assert!(!woken(), "a refresh continues the session");

    identity.logout(&session.refresh_token).await.unwrap();
    assert!(woken(), "signing out");
    let session = login(&identity, "ann@example.com").await;
    identity.refresh(&session.refresh_token).await.unwrap();
    let _ = identity.refresh(&session.refresh_token).await.unwrap_err();
    assert!(woken(), "a refresh token reused");
    let session = login(&identity, "ann@example.com").await;
    identity.revoke_sessions(&principal_of(&session)).await.unwrap();
    assert!(woken(), "signing out everywhere");
    let session = login(&identity, "ann@example.com").await;
    let change = PasswordChange {
        current_password: PASSWORD,
        new_password: "a brand new passphrase to use",
        totp_code: None,
        client_ip: None,
    };
    identity.change_password(&principal_of(&session), change).await.unwrap();
    assert!(woken(), "a password change");
    let setup = identity.setup_totp(&principal_of(&session)).await.unwrap();
    assert!(!woken(), "setting up TOTP ends nothing yet");
    identity
        .enable_totp(&principal_of(&session), &code_at(&setup.secret, now()), None)
        .await
        .unwrap();
    assert!(woken(), "TOTP turned on");
}

/// Every sign-in and refresh writes a row: those expired for more than a day go, the rest stay and keep working.
async fn refresh_tokens_expired_for_a_day_are_deleted(pool: Pool) {
    let identity = service(pool.clone()).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let sessions = [
        login(&identity, "ann@example.com").await,
        login(&identity, "ann@example.com").await,
        login(&identity, "ann@example.com").await,
    ];
    let expire = |session: &phoenix_identity::Session, ago: time::Duration| {
        let pool = pool.clone();
        let id = session.token_id;
        async move {
            dispatch!(&pool, conn => {
                sqlx::query("UPDATE refresh_tokens SET expires_at = $1 WHERE id = $2")
                    .bind(Timestamp::now() - ago)
                    .bind(id)
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
            .unwrap();
        }
    };
    expire(&sessions[0], time::Duration::hours(25)).await;
    expire(&sessions[1], time::Duration::hours(23)).await;

    assert_eq!(identity.prune_refresh_tokens().await.unwrap(), 1);
    assert_eq!(
        identity.prune_refresh_tokens().await.unwrap(),
        0,
        "nothing more to delete"
    );
    let count: i64 = dispatch!(&pool, conn => {
        sqlx::query_scalar("SELECT COUNT(*) FROM refresh_tokens").fetch_one(conn).await
    })
    .unwrap();
    assert_eq!(count, 2, "expired less than a day ago, and live, are kept");
    assert!(refreshes(&identity, &sessions[2]).await);
}

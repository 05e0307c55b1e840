use phoenix_db::{Pool, SealError, Sealer, dispatch};
use phoenix_identity::{Error, Login, Options, Service};
use phoenix_ratelimit::Limiter;
use uuid::Uuid;

use crate::{PASSWORD, code_at, login, now, principal_of, service};

phoenix_db::contract_suite!(
    phoenix_identity::migrations(),
    [
        signing_keys_and_totp_secrets_are_stored_sealed,
        secrets_kept_in_clear_are_sealed_at_start_and_keep_working,
        a_new_key_seals_again_and_an_unknown_key_stops_the_start,
        a_rotation_reseals_every_totp_secret_across_pages,
    ]
);

fn key(byte: u8) -> [u8; 32] {
    [byte; 32]
}

async fn start(pool: Pool, sealer: Sealer) -> Result<Service, Error> {
    Service::new(pool, Options::default(), Limiter::memory(), sealer).await
}

/// A user with TOTP enabled; returns the user's id and TOTP secret.
async fn with_totp(identity: &Service, email: &str) -> (Uuid, String) {
    let user = identity.register(email, PASSWORD, "Ann").await.unwrap();
    let me = principal_of(&login(identity, email).await);
    let setup = identity.setup_totp(&me).await.unwrap();
    identity
        .enable_totp(&me, &code_at(&setup.secret, now()), None)
        .await
        .unwrap();
    (user.id, setup.secret)
}

/// Signs in with a code of the step after the current one (the current step's was spent enabling TOTP).
async fn login_with_totp(identity: &Service, email: &str, secret: &str, step_ahead: u64) -> Result<(), Error> {
    let code = code_at(secret, now() + 30 * step_ahead);
    identity
        .login(Login {
            email,
            password: PASSWORD,
            totp_code: Some(&code),
            client_ip: None,
        })
        .await
        .map(|_| ())
}

async fn stored_totp(pool: &Pool, user_id: Uuid) -> String {
    dispatch!(pool, conn => {
        sqlx::query_scalar("SELECT totp_secret FROM users WHERE id = $1").bind(user_id).fetch_one(conn).await
    })
    .unwrap()
}

async fn stored_keys(pool: &Pool) -> Vec<(String, Vec<u8>)> {
    dispatch!(pool, conn => {
        sqlx::query_as("SELECT kid, private_pkcs8 FROM signing_keys ORDER BY kid").fetch_all(conn).await
    })
    .unwrap()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn signing_keys_and_totp_secrets_are_stored_sealed(pool: Pool) {
    let identity = service(pool.clone()).await;
    let (user_id, secret) = with_totp(&identity, "ann@example.com").await;

    let stored = stored_totp(&pool, user_id).await;
    assert!(stored.starts_with("pxs1."), "{stored}");
    assert!(!stored.contains(&secret));
    for (_, private) in stored_keys(&pool).await {
        // PKCS#8 in clear is a DER SEQUENCE (0x30); sealed, it starts with the seal's marker.
        assert!(private.starts_with(b"PXS1"), "{private:?}");
    }
    // Through the service, everything works as before.
    login_with_totp(&identity, "ann@example.com", &secret, 1).await.unwrap();
}

async fn secrets_kept_in_clear_are_sealed_at_start_and_keep_working(pool: Pool) {
    let identity = service(pool.clone()).await;
    let (user_id, secret) = with_totp(&identity, "ann@example.com").await;
    with_password_only(&identity).await;
    let kid = signing_kid(&identity).await;

    // As an older release left them: both secrets in clear.
    let sealer = phoenix_db::testing::sealer();
    let (stored_kid, sealed_key) = stored_keys(&pool).await.remove(0);
    assert_eq!(stored_kid, kid);
    let clear_key = sealer
        .open(&format!("identity.signing_keys.private_pkcs8:{kid}"), &sealed_key)
        .unwrap()
        .value;
    dispatch!(&pool, conn => {
        sqlx::query("UPDATE signing_keys SET private_pkcs8 = $1 WHERE kid = $2")
            .bind(&clear_key)
            .bind(&kid)
            .execute(conn)
            .await
            .map(|_| ())
    })
    .unwrap();
    dispatch!(&pool, conn => {
        sqlx::query("UPDATE users SET totp_secret = $1 WHERE id = $2")
            .bind(&secret)
            .bind(user_id)
            .execute(conn)
            .await
            .map(|_| ())
    })
    .unwrap();

    let restarted = service(pool.clone()).await;
    assert!(
        stored_totp(&pool, user_id)
            .await
            .starts_with(&sealer.current_text_prefix())
    );
    let (_, resealed) = stored_keys(&pool).await.remove(0);
    assert!(resealed.starts_with(b"PXS1"));
    assert_ne!(resealed, clear_key);
    // The same key still signs, and the same authenticator still signs in.
    assert_eq!(signing_kid(&restarted).await, kid);
    login_with_totp(&restarted, "ann@example.com", &secret, 1)
        .await
        .unwrap();
}

async fn a_new_key_seals_again_and_an_unknown_key_stops_the_start(pool: Pool) {
    let first = Sealer::new(&key(1), &[]).unwrap();
    let identity = start(pool.clone(), first.clone()).await.unwrap();
    let (user_id, secret) = with_totp(&identity, "ann@example.com").await;
    with_password_only(&identity).await;
    let kid = signing_kid(&identity).await;
    assert!(
        stored_totp(&pool, user_id)
            .await
            .starts_with(&first.current_text_prefix())
    );

    // Rotation: the new key seals, the old one only opens.
    let second = Sealer::new(&key(2), &[&key(1)]).unwrap();
    let rotated = start(pool.clone(), second.clone()).await.unwrap();
    assert!(
        stored_totp(&pool, user_id)
            .await
            .starts_with(&second.current_text_prefix())
    );
    for (stored_kid, private) in stored_keys(&pool).await {
        let opened = second
            .open(&format!("identity.signing_keys.private_pkcs8:{stored_kid}"), &private)
            .unwrap();
        assert!(opened.current, "still sealed with the old key");
    }
    assert_eq!(signing_kid(&rotated).await, kid);
    login_with_totp(&rotated, "ann@example.com", &secret, 1).await.unwrap();

    // Once everything is under the new key, the old one is no longer needed...
    start(pool.clone(), Sealer::new(&key(2), &[]).unwrap()).await.unwrap();
    // ...but a process with the wrong key refuses to start, naming the key it lacks, and changes nothing.
    let before = stored_totp(&pool, user_id).await;
    let wrong = start(pool.clone(), Sealer::new(&key(3), &[&key(1)]).unwrap())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&wrong, Error::Sealed(SealError::UnknownKey(id)) if *id == second.key_id()),
        "{wrong:?}"
    );
    assert_eq!(stored_totp(&pool, user_id).await, before);
}

/// Registers a user without TOTP, whose sign-ins show which key signs.
async fn with_password_only(identity: &Service) {
    identity.register("bob@example.com", PASSWORD, "Bob").await.unwrap();
}

/// The `kid` that signs an access token now.
async fn signing_kid(identity: &Service) -> String {
    kid_of(&login(identity, "bob@example.com").await.access_token)
}

/// More users with MFA than a start re-seals per statement: after a rotation, every one of their secrets is under
/// the new key, none skipped at a page's edge.
async fn a_rotation_reseals_every_totp_secret_across_pages(pool: Pool) {
    const USERS: usize = 1_201;
    let first = Sealer::new(&key(1), &[]).unwrap();
    start(pool.clone(), first.clone()).await.unwrap();
    let now = phoenix_db::Timestamp::now();
    let users: Vec<(Uuid, String)> = (0..USERS)
        .map(|_| {
            let id = Uuid::now_v7();
            let sealed = first.seal_text(&format!("identity.users.totp_secret:{id}"), "JBSWY3DPEHPK3PXP");
            (id, sealed)
        })
        .collect();
    for chunk in users.chunks(400) {
        dispatch!(&pool, conn => {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO users (id, email, name, password_hash, roles, totp_secret, totp_enabled, created_at, updated_at) ",
            );
            insert.push_values(chunk, |mut row, (id, sealed)| {
                row.push_bind(*id)
                    .push_bind(format!("{id}@example.com"))
                    .push_bind("Ann")
                    .push_bind("not-a-hash")
                    .push_bind("customer")
                    .push_bind(sealed)
                    .push_bind(true)
                    .push_bind(now)
                    .push_bind(now);
            });
            insert.build().execute(conn).await.map(|_| ())
        })
        .unwrap();
    }

    let second = Sealer::new(&key(2), &[&key(1)]).unwrap();
    start(pool.clone(), second.clone()).await.unwrap();
    let stored: Vec<(Uuid, String)> = dispatch!(&pool, conn => {
        sqlx::query_as("SELECT id, totp_secret FROM users WHERE totp_secret IS NOT NULL").fetch_all(conn).await
    })
    .unwrap();
    assert_eq!(stored.len(), USERS);
    for (id, secret) in stored {
        assert!(
            secret.starts_with(&second.current_text_prefix()),
            "{id} kept its old seal"
        );
        let opened = second
            .open_text(&format!("identity.users.totp_secret:{id}"), &secret)
            .unwrap();
        assert_eq!(opened.value, "JBSWY3DPEHPK3PXP");
    }
}

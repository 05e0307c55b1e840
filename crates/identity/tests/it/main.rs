//! Identity's contract suite: every test runs against SQLite and against PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod api_keys;
mod client;
mod mfa;
mod password_reset;
mod passwords;
mod sealing;
mod sessions;
mod signing_keys;

use std::net::IpAddr;

use phoenix_api::{ClientIp, Credential, Principal, Role};
use phoenix_db::Pool;
use phoenix_identity::{Login, Options, Service, Session};
use phoenix_ratelimit::Limiter;
use totp_rs::{Algorithm, Builder, Secret};
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";

pub async fn service(pool: Pool) -> Service {
    service_with(pool, Options::default()).await
}

pub async fn service_with(pool: Pool, options: Options) -> Service {
    Service::new(pool, options, Limiter::memory(), phoenix_db::testing::sealer())
        .await
        .unwrap()
}

pub async fn login(service: &Service, email: &str) -> Session {
    service
        .login(Login {
            email,
            password: PASSWORD,
            totp_code: None,
            client_ip: None,
        })
        .await
        .unwrap()
}

/// An admin, `admin@example.com`, signed in: the principal their session's access token stands for.
pub async fn signed_in_admin(identity: &Service) -> Principal {
    let admin = identity
        .create_user(phoenix_identity::NewUser {
            email: "admin@example.com",
            password: PASSWORD,
            name: "Admin",
            roles: &[Role::Admin],
            organization_id: None,
        })
        .await
        .unwrap();
    Principal {
        user_id: admin.id,
        roles: [Role::Admin].into(),
        organization_id: None,
        credential: Credential::AccessToken {
            token_id: login(identity, "admin@example.com").await.token_id,
        },
    }
}

/// Signs `ann@example.com` in with `password` (no second factor).
pub async fn sign_in(identity: &Service, password: &str) -> Result<(), phoenix_identity::Error> {
    sign_in_as_ann(identity, password, None).await
}

/// Signs `ann@example.com` in with `password` and a TOTP or recovery `code`.
pub async fn sign_in_with_code(identity: &Service, password: &str, code: &str) -> Result<(), phoenix_identity::Error> {
    sign_in_as_ann(identity, password, Some(code)).await
}

async fn sign_in_as_ann(
    identity: &Service,
    password: &str,
    totp_code: Option<&str>,
) -> Result<(), phoenix_identity::Error> {
    identity
        .login(Login {
            email: "ann@example.com",
            password,
            totp_code,
            client_ip: None,
        })
        .await
        .map(drop)
}

/// The access tokens of sessions ended after `since` (a page of identity's revocations).
pub async fn ended_since(identity: &Service, since: phoenix_identity::RevocationCursor) -> Vec<Uuid> {
    let page = identity.revocations(Some(since), 100).await.unwrap();
    page.tokens.iter().map(|t| t.token_id).collect()
}

/// The TOTP code an authenticator app shows for `secret` at `unix_secs`.
pub fn code_at(secret: &str, unix_secs: u64) -> String {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
        .generate(unix_secs)
        .to_string()
}

pub fn now() -> u64 {
    time::OffsetDateTime::now_utc().unix_timestamp() as u64
}

/// Serves identity's API on a free loopback port to requests made as `principal` from `client_ip` (what the
/// gateway would attach); returns the base URL.
pub async fn serve_as(service: &Service, principal: Principal, client_ip: IpAddr) -> String {
    let router = phoenix_identity::api()
        .with_state(service.clone())
        .split_for_parts()
        .0
        .layer(axum::Extension(principal))
        .layer(axum::Extension(ClientIp(Some(client_ip))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

/// What the gateway attaches to a request made with `session`'s access token (a customer's).
pub fn principal_of(session: &Session) -> Principal {
    Principal {
        user_id: session.user_id,
        roles: [Role::Customer].into(),
        organization_id: None,
        credential: Credential::AccessToken {
            token_id: session.token_id,
        },
    }
}

/// A customer signed in with an access token that names no session of theirs (as one issued before sessions were
/// named would).
pub fn signed_in(user_id: Uuid) -> Principal {
    Principal {
        user_id,
        roles: [Role::Customer].into(),
        organization_id: None,
        credential: Credential::AccessToken {
            token_id: Uuid::now_v7(),
        },
    }
}

/// The outbox's events of `event_type`, oldest first.
pub async fn events_of(pool: &Pool, event_type: &str) -> Vec<serde_json::Value> {
    pool.unpublished_events(1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == event_type)
        .map(|e| {
            assert_eq!(
                e.subject,
                e.data.0["user_id"].as_str().unwrap(),
                "identity events are about their user"
            );
            e.data.0
        })
        .collect()
}

/// True when the refresh token still trades for a new pair (which spends it).
pub async fn refreshes(service: &Service, session: &Session) -> bool {
    match service.refresh(&session.refresh_token).await {
        Ok(_) => true,
        Err(phoenix_identity::Error::InvalidRefreshToken) => false,
        Err(other) => panic!("unexpected {other:?}"),
    }
}

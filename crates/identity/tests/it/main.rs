//! Identity's contract suite: every test runs against SQLite and against PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod api_keys;
mod client;
mod mfa;
mod sealing;
mod sessions;
mod signing_keys;

use std::net::IpAddr;

use phoenix_api::{ClientIp, Principal};
use phoenix_db::Pool;
use phoenix_identity::{Login, Options, Service, Session};
use phoenix_ratelimit::Limiter;
use totp_rs::{Algorithm, Builder, Secret};

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

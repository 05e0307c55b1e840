//! Identity's contract suite: every test runs against SQLite and against PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod api_keys;
mod client;
mod mfa;
mod sealing;
mod sessions;
mod signing_keys;

use phoenix_db::Pool;
use phoenix_identity::{Login, Options, Service, Session};
use phoenix_ratelimit::Limiter;

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

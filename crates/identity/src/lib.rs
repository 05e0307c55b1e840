//! Phoenix identity: who people are and what they may do.
//!
//! Owns users and their argon2id password hashes, the single-use tokens that reset a forgotten password (mailed by
//! notification, see `password_reset.rs`), sessions (EdDSA access tokens and rotating refresh tokens with reuse
//! detection), TOTP two-factor authentication with recovery codes, API keys, organizations and role assignments,
//! and the signing keys published as JWKS. The secrets it must read back (signing keys' private halves, TOTP
//! secrets) are stored sealed under the configured secrets key ([`phoenix_db::seal`]).
//!
//! Identity issues credentials; it never checks them on incoming requests: the gateway does, using the keys and
//! the API-key lookup identity offers through [`Client`]. Identity knows nothing about bookings.

mod api_key;
mod client;
mod email;
mod error;
mod http;
mod mfa;
mod org;
mod password;
mod password_reset;
mod secret;
mod service;
mod session;
mod store;
mod token;
mod user;

use phoenix_db::Migrations;

pub use api_key::looks_like_api_key;
pub use client::{Client, Membership, internal_router};
pub use email::Email;
pub use error::Error;
pub use http::{PATH_PREFIXES, api};
pub use mfa::TotpSetup;
pub use org::{Organization, OrganizationKind};
pub use password::PasswordChange;
pub use password_reset::{PASSWORD_RESET, PASSWORD_RESET_REQUESTED, ResetRequested, reset_token_context};
pub use service::{NewUser, Options, Service};
pub use session::{Login, MAX_REVOCATIONS_PAGE, RevocationCursor, Revocations, RevokedToken, Session};
pub use token::{AccessClaims, TOKEN_TYPE};
pub use user::User;

/// The `source` of identity's events.
pub const SOURCE: &str = "phoenix.identity";

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/sqlite"),
    postgres: sqlx::migrate!("migrations/postgres"),
};

/// Identity's schema, for `Pool::migrate`.
pub fn migrations() -> &'static Migrations {
    &MIGRATIONS
}

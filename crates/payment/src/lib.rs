//! Phoenix payment: money taken for bookings, through a card provider, never twice.
//!
//! Owns payments and their history: authorizations (money reserved on a card), captures (taken, once per payment,
//! the rest released), refunds (returned, in parts if need be) and voids (released uncaptured), the calls to the
//! card provider behind [`provider::Provider`] (the [`provider::simulated`] one or Stripe) through a resilience
//! layer ([`provider::resilient`]: timeouts, retries of keyed calls, a circuit breaker), the idempotency of every
//! operation, and [`reconcile`], which compares our books with the provider's.
//!
//! Never touches card numbers: clients send the provider's payment token, which is passed on and never stored or
//! logged, and anything that looks like a card number is refused at the edge. Payment never calls booking or
//! inventory: the booking saga calls payment (through [`Client`]) and listens to its events.
//!
//! Architecture invariants:
//! - An operation is written `pending` before the provider is called, and its outcome, the payment's change and the
//!   event are written in one transaction after; a crash in between leaves a row that the next retry (or
//!   [`reconcile`]) finishes with the same provider idempotency key, so the provider moves the money once.
//! - `refunded_minor <= captured_minor <= amount_minor`, checked by the rules, by the provider and by the database.

mod client;
mod error;
mod http;
pub mod operation;
pub mod payment;
pub mod provider;
pub mod reconcile;
mod service;
mod store;

use phoenix_db::Migrations;

pub use client::{Client, internal_router};
pub use error::Error;
pub use http::{CaptureRequest, PATH_PREFIXES, PaymentView, RefundRequest, SETTLER_ROLES, api};
pub use payment::{Payment, Status};
pub use provider::resilient::{Circuit, Resilient};
pub use provider::simulated::{Simulator, simulator_migrations};
pub use provider::{Authorization, ListPage, Listed, Provider, ProviderError, ProviderPayment, ProviderStatus};
pub use reconcile::{Report, reconcile};
pub use service::{AuthorizeRequest, Options, Service};

/// The `source` of payment's events.
pub const SOURCE: &str = "phoenix.payment";

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/sqlite"),
    postgres: sqlx::migrate!("migrations/postgres"),
};

/// Payment's schema, for `Pool::migrate`.
pub fn migrations() -> &'static Migrations {
    &MIGRATIONS
}

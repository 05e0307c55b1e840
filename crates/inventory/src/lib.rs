//! Phoenix inventory: capacity that never oversells.
//!
//! Owns capacity buckets (one per bookable unit: a room type on one night, a cabin or fare class on one departure)
//! and holds against them: pending reservations with an expiry that are confirmed (sold), released, or expire. A
//! hold has several lines and is all or nothing. Per bucket, at every moment, `held + sold <= capacity +
//! overbooking_limit`; the database's own CHECK constraint refuses anything else.
//!
//! Every change goes through the batching [`engine`]: a single writer per shard applies many requests to a
//! [`ledger`] in memory and commits them in one transaction. Inventory knows nothing of hotels or flights.

pub mod baseline;
mod client;
pub mod clock;
pub mod engine;
mod error;
pub mod hold;
mod http;
pub mod item;
pub mod ledger;
mod service;
mod store;

use phoenix_db::Migrations;

pub use client::{Change, Changes, Client, MAX_CHANGES, internal_router};
pub use clock::Clock;
pub use error::Error;
pub use hold::{Hold, Status};
pub use http::{
    AvailabilityRequest, AvailabilityResponse, HOLDER_ROLES, HoldResponse, ItemResponse, PATH_PREFIXES, api,
};
pub use item::{Bucket, ItemId};
pub use service::{HoldRequest, MAX_CREATE_ITEMS, NewItem, Options, Service};

/// The `source` of inventory's events.
pub const SOURCE: &str = "phoenix.inventory";

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/sqlite"),
    postgres: sqlx::migrate!("migrations/postgres"),
};

/// Inventory's schema, for `Pool::migrate`.
pub fn migrations() -> &'static Migrations {
    &MIGRATIONS
}

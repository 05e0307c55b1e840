//! Phoenix catalog: what can be sold, and for how much.
//!
//! Owns hotels, room types and rate plans; airports, airlines, flight schedules and the departures materialized from
//! them with their cabins and fare classes; prices, taxes and fees, dynamic pricing and display currencies; search
//! over all of it; and quotes, which price exactly what a customer books (as search prices it, or at the price of a
//! signed offer), in one currency, with the inventory buckets a booking must hold and the cancellation terms it
//! must apply. Availability always comes from inventory buckets (one per room type per night, one per departure per
//! cabin and per fare class), which the catalog creates and sizes but never decides alone. The catalog never holds
//! or sells anything: the booking service does, from a quotation, through its own [`Client`].

mod availability;
mod client;
pub mod demo;
mod error;
pub mod flight;
pub mod geo;
pub mod hotel;
mod http;
pub mod model;
pub mod money;
pub mod offer;
pub mod pricing;
pub mod quote;
pub mod search;
mod service;
mod snapshot;
mod store;

pub use client::{Client, QUOTE_PATH, internal_router};
pub use error::Error;
pub use http::{PATH_PREFIXES, api};
pub use service::{Catalog, Options, SEARCHES_COUNTED, SOURCE};
pub use snapshot::{FxEntry, HotelEntry, Snapshot};
pub use store::Airline;

static MIGRATIONS: phoenix_db::Migrations = phoenix_db::Migrations {
    sqlite: sqlx::migrate!("migrations/sqlite"),
    postgres: sqlx::migrate!("migrations/postgres"),
};

/// The catalog's database migrations, per engine.
pub fn migrations() -> &'static phoenix_db::Migrations {
    &MIGRATIONS
}

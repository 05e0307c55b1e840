//! Phoenix bookings: what a customer bought, for whom, and what cancelling it gives back.
//!
//! Owns bookings and their record locators, travellers and contact, the status history (pending -> confirmed ->
//! completed, pending -> failed, confirmed -> cancelling -> cancelled), and the cancellation policy that decides a
//! refund from each item's quoted terms. Prices come from the catalog's quote at the moment of booking and are
//! stored with the booking.
//!
//! Booking never calls payment or inventory: the saga does. A new booking (or a cancellation) is written together
//! with a saga request in one transaction; the saga service takes the requests ([`orchestration`]), holds, pays,
//! refunds and releases, and reports the [`Outcome`](orchestration::Outcome) back. Booking keeps the customer's
//! payment token only until the saga has taken it, and never logs it or puts it in an event.
//!
//! Code map: [`policy`] (statuses, refunds, ages: pure), `booking.rs` (the model, also the API's view),
//! `request.rs` (a booking request and its checks), `service/` (create, cancel, the saga's calls, reads),
//! `store/` (SQL), `events.rs` (outbox events), `refunds.rs` (the consumer that follows refunds made on a
//! booking's payment outside a cancellation), `http.rs` (the public API), `client.rs` (the saga's handle and
//! the internal routes behind it).

mod booking;
mod client;
mod error;
mod events;
mod http;
mod locator;
mod names;
pub mod orchestration;
pub mod policy;
mod refunds;
mod request;
mod service;
mod store;
mod waiters;

use phoenix_db::Migrations;

pub use booking::{BookedItem, Booking, Cancellation, Contact, Failure, HistoryEntry, Traveller};
pub use client::{Client, internal_router};
pub use error::{Error, failed_problem};
pub use events::{CANCELLATION_REQUESTED, CANCELLED, COMPLETED, CONFIRMED, CREATED, FAILED};
pub use http::{CancelRequest, PATH_PREFIXES, api};
pub use locator::Locator;
pub use policy::{Status, Terms, TravellerType};
pub use refunds::RefundFollower;
pub use request::{BOOKER_ROLES, BookingRequest};
pub use service::{Created, ListFilter, Options, Service};

/// The `source` of booking's events.
pub const SOURCE: &str = "phoenix.booking";

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/sqlite"),
    postgres: sqlx::migrate!("migrations/postgres"),
};

/// Booking's schema, for `Pool::migrate`.
pub fn migrations() -> &'static Migrations {
    &MIGRATIONS
}

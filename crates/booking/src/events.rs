//! Booking's events (source `phoenix.booking`), one per status change, written in the change's transaction.
//!
//! Every event carries the booking's summary, so a consumer (notifications, analytics) needs no call back. Never in
//! an event: the payment token, or anything about the card.

use phoenix_db::Event;
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::booking::Booking;
use crate::policy::Status;
use crate::{Error, SOURCE};

pub const CREATED: &str = "booking.created.v1";
pub const CONFIRMED: &str = "booking.confirmed.v1";
pub const FAILED: &str = "booking.failed.v1";
pub const CANCELLATION_REQUESTED: &str = "booking.cancellation_requested.v1";
pub const CANCELLED: &str = "booking.cancelled.v1";
pub const COMPLETED: &str = "booking.completed.v1";

#[derive(Serialize)]
struct Summary<'a> {
    booking_id: Uuid,
    locator: &'a str,
    status: Status,
    customer_id: Uuid,
    organization_id: Option<Uuid>,
    created_by: Uuid,
    contact_email: &'a str,
    contact_phone: Option<&'a str>,
    currency: &'a str,
    total_minor: i64,
    refunded_minor: i64,
    #[serde(with = "time::serde::rfc3339")]
    starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    ends_at: OffsetDateTime,
    /// What the event adds to the summary.
    #[serde(flatten)]
    detail: serde_json::Value,
}

/// The event of type `event_type` about `booking` as it is now, with `detail` (a JSON object) added; its
/// correlation id is the booking id.
pub fn event(event_type: &'static str, booking: &Booking, detail: serde_json::Value) -> Result<Event, Error> {
    let starts_at = booking
        .items
        .iter()
        .map(|item| item.starts_at)
        .min()
        .unwrap_or(booking.created_at);
    let summary = Summary {
        booking_id: booking.id,
        locator: booking.locator.as_str(),
        status: booking.status,
        customer_id: booking.customer_id,
        organization_id: booking.organization_id,
        created_by: booking.created_by,
        contact_email: &booking.contact.email,
        contact_phone: booking.contact.phone.as_deref(),
        currency: &booking.currency,
        total_minor: booking.total_minor,
        refunded_minor: booking.refunded_minor,
        starts_at,
        ends_at: booking.ends_at(),
        detail,
    };
    // The booking id is the booking flow's correlation id: payment and inventory carry it too (their `reference`).
    let event = Event::new(SOURCE, event_type, booking.id.to_string(), &summary)?;
    Ok(event.with_correlation_id(Some(booking.id.to_string())))
}

#[derive(Serialize)]
struct ItemSummary<'a> {
    kind: phoenix_catalog::quote::ItemKind,
    description: &'a str,
    price_minor: i64,
    organization_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    ends_at: OffsetDateTime,
}

/// What `booking.created.v1` adds: the items (without their inventory lines) and how many travel.
pub fn created(booking: &Booking) -> Result<Event, Error> {
    let items: Vec<ItemSummary<'_>> = booking
        .items
        .iter()
        .map(|item| ItemSummary {
            kind: item.kind,
            description: &item.description,
            price_minor: item.price_minor,
            organization_id: item.organization_id,
            starts_at: item.starts_at,
            ends_at: item.ends_at,
        })
        .collect();
    let items = serde_json::to_value(items).map_err(phoenix_db::Error::EncodeEvent)?;
    let detail = json!({ "items": items, "n_travellers": booking.travellers.len() });
    event(CREATED, booking, detail)
}

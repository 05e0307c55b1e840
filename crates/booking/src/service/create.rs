//! Creating a booking: check, price through the catalog, write it pending with its saga request, wait for the saga.
//!
//! Idempotency follows Stripe: the booking row itself records the (actor, key) it was made under and the hash of
//! the request, behind a unique index. A retry with the same body gets that booking as it is now (which is the
//! first answer once the booking is final, and a fresher one while it was pending); a different body is 422; a
//! retry while the first request is still pricing and writing is 409 (an in-process set, and the unique index
//! for races between replicas).

use aws_lc_rs::digest;
use phoenix_api::{Credential, Principal, Role};
use phoenix_catalog::quote::{Quotation, QuoteItem, QuoteRequest, QuotedItem};
use phoenix_db::Timestamp;
use uuid::Uuid;

use super::{Inner, Service, entry};
use crate::booking::{BookedItem, Booking};
use crate::locator::Locator;
use crate::orchestration::HoldLine;
use crate::policy::{Status, Terms};
use crate::request::{self, BOOKER_ROLES, BookingRequest, Checked};
use crate::store::{Inserted, KeyUse, NewBooking};
use crate::{Error, events};

/// A booking made (or found again for a retry), as it stood when the wait ended.
#[derive(Debug, Clone)]
pub struct Created {
    pub booking: Booking,
    /// True when an earlier request with the same idempotency key made it.
    pub replayed: bool,
}

impl Service {
    /// Books `request` for `actor` under `idempotency_key`, then waits up to `confirm_wait_ms` for the saga.
    pub async fn create(
        &self,
        actor: &Principal,
        request: BookingRequest,
        idempotency_key: &str,
    ) -> Result<Created, Error> {
        if !actor.has_any(BOOKER_ROLES) {
            return Err(Error::Forbidden("your roles do not allow booking"));
        }
        let scope = format!("booking.create:{}", actor.user_id);
        let hash = request_hash(&request)?;
        // Claimed before the look: a first request still pricing and writing in this process makes this one 409;
        // one that has written its booking has let go of the key, and the look finds what it made.
        let claim = self.claim(&scope, idempotency_key)?;
        let key_expired = match self.store().by_idempotency_key(&scope, idempotency_key).await? {
            KeyUse::Live(booking, stored_hash) => {
                drop(claim);
                return self.replayed(*booking, &stored_hash, &hash).await;
            }
            KeyUse::Expired => true,
            KeyUse::Unused => false,
        };
        let checked = request::check(&request, actor, &self.inner.options)?;
        if checked.customer_id != actor.user_id {
            self.check_customer(actor, checked.customer_id).await?;
        }
        let quotation = self
            .inner
            .catalog
            .quote(
                actor,
                &QuoteRequest {
                    items: request.items.clone(),
                    currency: request.currency.clone(),
                },
            )
            .await
            .map_err(Error::Catalog)?;
        let booking = pending_booking(actor, &request.items, checked, &quotation)?;
        payable(&booking, self.inner.options.max_total_minor)?;
        // Watching before the write: the saga may finish before this request looks again.
        let watch = self.inner.waiters.watch(booking.id);
        let new = NewBooking {
            actor: on_behalf(actor, booking.id),
            booking,
            payment_token: request.payment_token,
            idempotency_scope: scope.clone(),
            idempotency_key: idempotency_key.to_owned(),
            request_hash: hash.clone(),
            key_expired,
        };
        match self.store().insert(new, events::created).await? {
            Inserted::Created(booking) => {
                drop(claim);
                self.inner.waiters.written(&booking);
                tracing::info!(booking_id = %booking.id, locator = %booking.locator, "booking created");
                self.inner.saga_wake.notify_one();
                let booking = self.wait(&watch, Some(*booking)).await?;
                Ok(Created {
                    booking,
                    replayed: false,
                })
            }
            Inserted::KeyTaken => {
                drop(claim);
                self.replay(&scope, idempotency_key, &hash)
                    .await?
                    .ok_or(Error::IdempotencyKeyInUse)
            }
        }
    }

    /// Someone else `actor` books for must be a user, and, unless `actor` is an admin, one without an organization
    /// (a member of the public) or of `actor`'s own: an agent cannot book for, and so show a booking to, a rival
    /// agency's staff or a user that does not exist. A user they may not book for is answered like one that does not
    /// exist.
    async fn check_customer(&self, actor: &Principal, customer_id: Uuid) -> Result<(), Error> {
        let membership = self
            .inner
            .identity
            .membership(customer_id)
            .await
            .map_err(Error::Identity)?;
        let allowed = membership.is_some_and(|m| {
            actor.has_any(&[Role::Admin]) || m.organization_id.is_none() || m.organization_id == actor.organization_id
        });
        if allowed {
            Ok(())
        } else {
            Err(Error::invalid("customer_id", "no such customer"))
        }
    }

    /// The booking an earlier request with this key made, waited for like the first; `None` when there is none.
    async fn replay(&self, scope: &str, key: &str, hash: &[u8]) -> Result<Option<Created>, Error> {
        match self.store().by_idempotency_key(scope, key).await? {
            KeyUse::Live(booking, stored_hash) => self.replayed(*booking, &stored_hash, hash).await.map(Some),
            KeyUse::Expired | KeyUse::Unused => Ok(None),
        }
    }

    /// The answer to a retry that found `booking`, made under the same key from a request hashed `stored_hash`.
    async fn replayed(&self, booking: Booking, stored_hash: &[u8], hash: &[u8]) -> Result<Created, Error> {
        if stored_hash != hash {
            return Err(Error::IdempotencyKeyReused);
        }
        let booking = self.settle(booking).await?;
        Ok(Created {
            booking,
            replayed: true,
        })
    }

    /// Marks an idempotency key as in flight in this process until the guard drops.
    fn claim(&self, scope: &str, key: &str) -> Result<InFlight, Error> {
        let entry = (scope.to_owned(), key.to_owned());
        let mut in_flight = self.inner.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if !in_flight.insert(entry.clone()) {
            return Err(Error::IdempotencyKeyInUse);
        }
        Ok(InFlight {
            inner: self.inner.clone(),
            entry,
        })
    }
}

/// SHA-256 of the request's JSON: the same body always serializes the same way (fields in declaration order).
fn request_hash(request: &BookingRequest) -> Result<Vec<u8>, Error> {
    let json = serde_json::to_vec(request).map_err(|_| Error::invalid("body", "does not encode"))?;
    Ok(digest::digest(&digest::SHA256, &json).as_ref().to_vec())
}

/// The principal the sagas act for: the booker, marked as a service acting later on their behalf.
fn on_behalf(actor: &Principal, booking_id: Uuid) -> Principal {
    Principal {
        credential: Credential::OnBehalf { of: booking_id },
        ..*actor
    }
}

/// Refuses, before anything is written, a total the payment could not take: nothing (a price that rounds to zero
/// in the charge currency) or more than one authorization may be.
fn payable(booking: &Booking, max_total_minor: i64) -> Result<(), Error> {
    let total = booking.total_minor;
    if (1..=max_total_minor).contains(&total) {
        return Ok(());
    }
    let currency = &booking.currency;
    Err(Error::invalid(
        "items",
        if total < 1 {
            format!("the total comes to nothing in {currency}: book in another currency")
        } else {
            format!(
                "the total, {total} minor units of {currency}, is above the {max_total_minor} one payment may be: \
                 book fewer items, nights or travellers at once"
            )
        },
    ))
}

/// The pending booking for a checked request and its quotation.
fn pending_booking(
    actor: &Principal,
    requested: &[QuoteItem],
    checked: Checked,
    quotation: &Quotation,
) -> Result<Booking, Error> {
    if quotation.items.len() != requested.len() {
        return Err(Error::corrupt("catalog quotation (one quoted item per requested item)"));
    }
    let items: Vec<BookedItem> = requested
        .iter()
        .zip(&quotation.items)
        .map(|(r, q)| booked_item(r, q))
        .collect();
    for day in travel_days(&items) {
        request::check_ages(&checked.travellers, day)?;
    }
    request::accompanied(requested, &checked.travellers)?;
    let now = Timestamp::now();
    Ok(Booking {
        id: Uuid::now_v7(),
        locator: Locator::generate(),
        status: Status::Pending,
        customer_id: checked.customer_id,
        organization_id: actor.organization_id,
        created_by: actor.user_id,
        currency: quotation.currency.clone(),
        total_minor: quotation.total_minor,
        refunded_minor: 0,
        items,
        travellers: checked.travellers,
        contact: checked.contact,
        hold_id: None,
        payment_id: None,
        failure: None,
        cancellation: None,
        history: vec![entry(Status::Pending, Some(actor.user_id), None, now)],
        created_at: now.datetime(),
        updated_at: now.datetime(),
    })
}

/// The days the travellers travel on: each stay's check-in and each flight leg's local departure date (the date a
/// departure id ends with, `PX123-2026-12-24`). A traveller's type must hold on every one of them: an infant who
/// turns two before the flight home flies it in a seat, as a child.
fn travel_days(items: &[BookedItem]) -> std::collections::BTreeSet<time::Date> {
    let departure_day = |id: &str| {
        let day = id.get(id.len().checked_sub(10)?..)?;
        phoenix_api::date::parse_day(day)
    };
    items
        .iter()
        .flat_map(|item| match &item.item {
            QuoteItem::Hotel(stay) => vec![stay.check_in.0],
            QuoteItem::Flight(flight) => flight
                .departure_ids
                .iter()
                .map(|id| departure_day(id).unwrap_or(item.starts_at.date()))
                .collect(),
        })
        .collect()
}

fn booked_item(requested: &QuoteItem, quoted: &QuotedItem) -> BookedItem {
    BookedItem {
        kind: quoted.kind,
        description: quoted.description.clone(),
        price_minor: quoted.price_minor,
        breakdown: quoted.breakdown.clone(),
        original_price: quoted.original_price.clone(),
        starts_at: quoted.starts_at,
        ends_at: quoted.ends_at,
        organization_id: quoted.organization_id,
        cancellation: Terms {
            refundable: quoted.cancellation.refundable,
            free_until: quoted.cancellation.free_until,
            fee_minor: quoted.cancellation.fee_minor,
        },
        inventory_lines: quoted
            .inventory_lines
            .iter()
            .map(|line| HoldLine {
                item_id: line.item_id.clone(),
                quantity: line.quantity,
            })
            .collect(),
        item: requested.clone(),
    }
}

struct InFlight {
    inner: std::sync::Arc<Inner>,
    entry: (String, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.entry);
    }
}

//! Cancelling a confirmed booking: the refund is decided by policy when the customer asks (or waived to everything
//! paid by support or an admin), stored with the request, and the cancellation saga refunds that, or what is left
//! of the payment when it was partly refunded before; the cancellation then records what it did refund.

use phoenix_api::card::looks_like_card_number;
use phoenix_api::{Principal, Role};
use phoenix_db::Timestamp;
use serde_json::json;
use uuid::Uuid;

use super::{Service, entry};
use crate::booking::{Booking, Cancellation};
use crate::orchestration::SagaKind;
use crate::policy::{self, Status};
use crate::store::{SagaUpdate, Transition};
use crate::{Error, events};

/// Who may waive a cancellation's fees.
const WAIVER_ROLES: &[Role] = &[Role::Support, Role::Admin];

/// Longest reason a cancellation may give.
pub const MAX_REASON_CHARS: usize = 500;

/// Attempts at a status change lost to another writer before giving up. Statuses only move forward, through at most
/// five steps, so a sixth loss cannot happen.
pub(super) const MAX_RACES: usize = 6;

impl Service {
    /// Asks for `id` to be cancelled, as `actor` (who must see it), then waits up to `confirm_wait_ms` for the
    /// refund. Asking again for a booking being cancelled or cancelled returns it as it is.
    ///
    /// With `waive_fees` (support and admin only, and only with a reason) everything paid is refunded whatever the
    /// items' terms: for when the supplier, not the traveller, is why the trip is off.
    pub async fn request_cancellation(
        &self,
        actor: &Principal,
        id: Uuid,
        reason: Option<String>,
        waive_fees: bool,
    ) -> Result<Booking, Error> {
        if waive_fees && !actor.has_any(WAIVER_ROLES) {
            return Err(Error::Forbidden("only support and admins may waive cancellation fees"));
        }
        let reason = reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
        if let Some(reason) = &reason
            && (reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control))
        {
            return Err(Error::invalid(
                "reason",
                format!("must have at most {MAX_REASON_CHARS} characters and no control characters"),
            ));
        }
        // The reason goes into the booking's history, its events and the audit log, which keeps it for good.
        if reason.as_deref().is_some_and(looks_like_card_number) {
            return Err(Error::invalid("reason", "must not contain a card number"));
        }
        if waive_fees && reason.is_none() {
            return Err(Error::invalid("reason", "waiving the fees needs a reason"));
        }
        for _ in 0..MAX_RACES {
            let booking = self.get(actor, id).await?;
            match booking.status {
                Status::Pending => return Err(Error::BookingPending),
                Status::Failed | Status::Completed => return Err(Error::NotCancellable { status: booking.status }),
                // Asking again is harmless; asking again to waive fees the first request kept is another request,
                // and it says so rather than answer as if it had been done.
                Status::Cancelling | Status::Cancelled
                    if waive_fees && !booking.cancellation.as_ref().is_some_and(|c| c.fees_waived) =>
                {
                    return Err(Error::AlreadyCancelled { status: booking.status });
                }
                Status::Cancelling | Status::Cancelled => return self.settle(booking).await,
                Status::Confirmed => {}
            }
            let cancelling = cancelling(booking, actor, reason.clone(), waive_fees);
            let event = events::event(
                events::CANCELLATION_REQUESTED,
                &cancelling,
                json!({
                    "requested_by": actor.user_id,
                    "reason": reason,
                    "refund_minor": cancelling.cancellation.as_ref().map(|c| c.refund_minor),
                    "policy_refund_minor": cancelling.cancellation.as_ref().map(|c| c.policy_refund_minor),
                    "fee_minor": cancelling.cancellation.as_ref().map(|c| c.fee_minor),
                    "fees_waived": waive_fees,
                }),
            )?;
            let change = Transition {
                from: Status::Confirmed,
                booking: &cancelling,
                saga: SagaUpdate::Request(SagaKind::Cancellation),
                event,
            };
            if self.store().transition(change).await? {
                tracing::info!(booking_id = %id, "booking cancellation requested");
                self.inner.saga_wake.notify_one();
                return self.settle(cancelling).await;
            }
        }
        Err(Error::corrupt(
            "booking status (changed more often than its lifecycle allows)",
        ))
    }
}

/// `booking` with its cancellation requested now and the refund the policy gives now (everything paid when the
/// fees are waived).
fn cancelling(mut booking: Booking, actor: &Principal, reason: Option<String>, waive_fees: bool) -> Booking {
    let now = Timestamp::now();
    let refund = if waive_fees {
        policy::Refund {
            refund_minor: booking.total_minor.max(0),
            fee_minor: 0,
        }
    } else {
        policy::refund(&booking.priced_items(), booking.total_minor, now.datetime())
    };
    booking.status = Status::Cancelling;
    booking.cancellation = Some(Cancellation {
        requested_at: now.datetime(),
        requested_by: actor.user_id,
        reason: reason.clone(),
        // Until the saga reports what its refund returned, this cancellation is to refund what the policy gives.
        refund_minor: refund.refund_minor,
        policy_refund_minor: refund.refund_minor,
        fee_minor: refund.fee_minor,
        refunded_before_minor: None,
        fees_waived: waive_fees,
    });
    booking.updated_at = now.datetime();
    booking
        .history
        .push(entry(Status::Cancelling, Some(actor.user_id), reason, now));
    booking
}

//! Money given back outside a cancellation: a booking follows its payment's refunds.
//!
//! Support may refund part of a booking's payment directly (goodwill, a missing service), and reconciliation may
//! find a refund the provider made. Either way payment writes `payment.refunded.v1` with the payment's running
//! `refunded_minor`; this consumer (name `booking`) raises the booking's `refunded_minor` to it. Only the payment
//! the saga recorded on the booking counts (`payment_id`, never the payment's free-text `reference`), and the
//! amount only grows, so events applied late, twice or out of order leave the largest, which is the latest.

use async_trait::async_trait;
use phoenix_db::{Timestamp, Tx};
use phoenix_events::{CloudEvent, Handler, HandlerError};
use serde::Deserialize;
use uuid::Uuid;

/// The event type this consumer reads; every other payment event is acknowledged without effect.
pub const PAYMENT_REFUNDED: &str = "payment.refunded.v1";

/// The part of `payment.refunded.v1` a booking needs.
#[derive(Debug, Deserialize)]
struct Refunded {
    payment_id: Uuid,
    refunded_minor: i64,
}

/// The consumer side of booking: follows refunds made on bookings' payments.
pub struct RefundFollower;

#[async_trait]
impl Handler for RefundFollower {
    fn name(&self) -> &'static str {
        "booking"
    }

    fn domains(&self) -> &'static [&'static str] {
        &["payment"]
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == PAYMENT_REFUNDED
    }

    async fn apply(&self, tx: &mut Tx, event: &CloudEvent) -> Result<(), HandlerError> {
        let refunded: Refunded = serde_json::from_value(event.data.clone())?;
        if refunded.refunded_minor < 0 {
            return Err(HandlerError::rejected("refunded_minor is negative"));
        }
        // A payment's refunds never exceed its capture, nor its capture the booking's total; the bound keeps the
        // row's check from failing the batch should a payment ever say otherwise.
        phoenix_db::dispatch!(&mut *tx, conn => {
            sqlx::query(
                "UPDATE bookings SET refunded_minor = $2, updated_at = $3
                 WHERE payment_id = $1 AND refunded_minor < $2 AND $2 <= total_minor",
            )
            .bind(refunded.payment_id)
            .bind(refunded.refunded_minor)
            .bind(Timestamp::now())
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }
}

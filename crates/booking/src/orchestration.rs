//! What the saga orchestrator and the booking service say to each other.
//!
//! Booking never calls payment or inventory itself. When a booking is created (or a cancellation requested) the
//! booking row is marked with a pending saga request in the same transaction; the saga service takes pending
//! requests ([`SagaRequest`]), creates its durable saga for each (idempotently, keyed by booking and kind), then
//! acknowledges them. This is a work queue in booking's own database, so no request is lost between the two
//! services whatever crashes, and no commit-order subtlety of an event feed can skip one. When a saga finishes it
//! reports an [`Outcome`]; recording an outcome is idempotent.

use phoenix_api::Principal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which saga a booking needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaKind {
    /// Hold, authorize, confirm the hold, capture, confirm the booking (or undo all of it).
    Booking,
    /// Refund what the policy allows (what is left, if less), release the units, mark the booking cancelled.
    Cancellation,
}

impl SagaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SagaKind::Booking => "booking",
            SagaKind::Cancellation => "cancellation",
        }
    }
}

/// One inventory line to hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HoldLine {
    pub item_id: String,
    pub quantity: i64,
}

/// Everything a saga needs to run, handed over once. Its `Debug` hides the payment token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaRequest {
    pub booking_id: Uuid,
    pub kind: SagaKind,
    /// Who the saga acts for: the principal that made the booking (holds and payments belong to them).
    pub actor: Principal,
    /// Booking sagas: the units to hold, all or nothing.
    pub lines: Vec<HoldLine>,
    /// Booking sagas: how long the hold lives.
    pub hold_ttl_secs: u64,
    pub currency: String,
    /// Booking sagas: the amount to authorize and capture.
    pub amount_minor: i64,
    /// Booking sagas: the provider's payment token (never a card number). Booking forgets it once acknowledged.
    pub payment_token: Option<String>,
    /// Cancellation sagas: what the policy refunds (0 for non-refundable), the most the saga refunds.
    pub refund_minor: i64,
    /// Cancellation sagas: the confirmed booking's hold and payment.
    pub hold_id: Option<Uuid>,
    pub payment_id: Option<Uuid>,
    /// The W3C trace context of the request that asked for the saga: its steps run in that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl std::fmt::Debug for SagaRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaRequest")
            .field("booking_id", &self.booking_id)
            .field("kind", &self.kind)
            .field("actor", &self.actor.user_id)
            .field("lines", &self.lines)
            .field("amount_minor", &self.amount_minor)
            .field("currency", &self.currency)
            .field("payment_token", &self.payment_token.as_ref().map(|_| "<hidden>"))
            .field("refund_minor", &self.refund_minor)
            .field("hold_id", &self.hold_id)
            .field("payment_id", &self.payment_id)
            .field("traceparent", &self.traceparent)
            .finish()
    }
}

/// How a saga ended, reported to booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Held, paid and sold: the booking is confirmed.
    Confirmed {
        hold_id: Uuid,
        payment_id: Uuid,
        captured_minor: i64,
    },
    /// Undone: nothing held, nothing captured. `code` is stable (`payment_declined`, `insufficient_inventory`,
    /// `hold_expired`, `provider_unavailable`, ...).
    Failed { code: String, detail: String },
    /// Refunded and released. `refunded_minor` is what the booking's payment has had refunded in all (possibly 0:
    /// a saga that refunds nothing does not ask payment); `refund_minor` is what the cancellation's own refund
    /// returned, at most the policy's refund and less when the payment had been partly refunded before (support's
    /// goodwill, say). A saga from before `refund_minor` existed sends none: the cancellation then keeps the policy's
    /// figure.
    Cancelled {
        refunded_minor: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refund_minor: Option<i64>,
    },
}

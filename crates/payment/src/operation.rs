//! An operation on a payment (authorize, capture, refund, void): one row of the payment's history and, under the
//! caller's idempotency key, the record that makes a retry safe.
//!
//! An operation is written `pending` before the provider is called, with a claim (who is working on it, until when).
//! Its final answer is stored with it and replayed to every retry with the same key. A pending operation nobody
//! works on any more (its process died between the provider's answer and ours) is taken over by the next retry,
//! which calls the provider again with the same provider key: the provider answers what it did the first time.

use phoenix_db::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Error;
use crate::http::PaymentView;
use crate::payment::Payment;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Authorize,
    Capture,
    Refund,
    Void,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Authorize => "authorize",
            Kind::Capture => "capture",
            Kind::Refund => "refund",
            Kind::Void => "void",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Authorize, Kind::Capture, Kind::Refund, Kind::Void]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pending,
    Succeeded,
    Declined,
    Rejected,
    /// The provider did not answer an authorization: the payment failed.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Succeeded => "succeeded",
            Outcome::Declined => "declined",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Pending,
            Outcome::Succeeded,
            Outcome::Declined,
            Outcome::Rejected,
            Outcome::Failed,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub kind: Kind,
    /// Authorized, captured, refunded, or (for a void) released.
    pub amount_minor: i64,
    pub reason: Option<String>,
    /// The principal whose idempotency key this is.
    pub actor_id: Uuid,
    pub idempotency_key: String,
    pub request_hash: Vec<u8>,
    pub outcome: Outcome,
    /// The decline or failure code of an operation that did not succeed.
    pub code: Option<String>,
    /// The first final answer, replayed to retries.
    pub answer: Option<Answer>,
    pub claimed_by: Option<Uuid>,
    pub claimed_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

impl Operation {
    /// The key the provider deduplicates this operation on: the same for every attempt, in every process.
    pub fn provider_key(&self) -> String {
        format!("phoenix-{}", self.id)
    }

    /// The key of the void that undoes an authorization whose outcome was unknown.
    pub fn undo_key(&self) -> String {
        format!("phoenix-{}-void", self.id)
    }
}

/// A final answer, stored as the operation's first response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    Payment {
        payment: Box<PaymentView>,
    },
    Declined {
        payment_id: Uuid,
        decline_code: String,
    },
    Rejected {
        payment_id: Uuid,
        message: String,
    },
    /// An authorization the provider did not answer: the payment failed.
    Unavailable {
        payment_id: Uuid,
    },
}

impl Answer {
    /// The answer as the operation first gave it.
    pub fn replay(self) -> Result<Payment, Error> {
        match self {
            Answer::Payment { payment } => Ok(Payment::from(*payment)),
            Answer::Declined {
                payment_id,
                decline_code,
            } => Err(Error::Declined {
                payment_id,
                decline_code,
            }),
            Answer::Rejected { payment_id, message } => Err(Error::ProviderRejected { payment_id, message }),
            Answer::Unavailable { payment_id } => Err(Error::AuthorizationUnknown { payment_id }),
        }
    }
}

//! What the saga service calls: take pending saga requests, acknowledge them, report outcomes. And the completion
//! sweep, the one status change no saga makes.

use phoenix_db::Timestamp;
use serde_json::json;
use uuid::Uuid;

use super::cancel::MAX_RACES;
use super::{Service, entry};
use crate::booking::{Booking, Failure};
use crate::orchestration::{Outcome, SagaKind, SagaRequest};
use crate::policy::Status;
use crate::store::{PendingRequest, SagaUpdate, Transition};
use crate::{Error, events};

/// Most requests one acknowledgement may name.
pub const MAX_ACKNOWLEDGE: usize = 1_000;
/// Confirmed bookings one sweep completes; the next sweep takes the rest.
const SWEEP_BATCH: u32 = 200;
const MAX_FAILURE_CODE_CHARS: usize = 64;
const MAX_FAILURE_DETAIL_CHARS: usize = 1_000;

/// What recording an outcome does.
enum Decision {
    /// The booking already shows this outcome: nothing to write.
    Done,
    Apply {
        next: Box<Booking>,
        saga: SagaUpdate,
        event: phoenix_db::Event,
    },
}

impl Service {
    /// Saga requests not acknowledged yet, oldest first, at most `limit` (and at most `max_saga_requests`).
    pub async fn saga_requests(&self, limit: u32) -> Result<Vec<SagaRequest>, Error> {
        let limit = limit.clamp(1, self.inner.options.max_saga_requests);
        let pending = self.store().saga_requests(limit).await?;
        Ok(pending.into_iter().map(|p| self.saga_request(p)).collect())
    }

    fn saga_request(&self, pending: PendingRequest) -> SagaRequest {
        let PendingRequest {
            booking,
            kind,
            actor,
            payment_token,
            traceparent,
        } = pending;
        SagaRequest {
            booking_id: booking.id,
            kind,
            actor,
            lines: booking.hold_lines(),
            hold_ttl_secs: self.inner.options.hold_ttl_secs,
            amount_minor: booking.total_minor,
            payment_token,
            refund_minor: booking.cancellation.as_ref().map_or(0, |c| c.policy_refund_minor),
            hold_id: booking.hold_id,
            payment_id: booking.payment_id,
            currency: booking.currency,
            traceparent,
        }
    }

    /// Marks requests as taken by the saga service (forgetting a booking request's payment token). Requests already
    /// taken are skipped, so acknowledging twice is fine. Returns how many were still pending.
    pub async fn acknowledge(&self, taken: &[(Uuid, SagaKind)]) -> Result<u64, Error> {
        if taken.len() > MAX_ACKNOWLEDGE {
            return Err(Error::invalid("requests", format!("at most {MAX_ACKNOWLEDGE} at once")));
        }
        self.store().acknowledge(taken).await
    }

    /// Records how a saga ended. Recording the outcome a booking already shows is fine; an outcome that does not
    /// follow from its status is 409 `invalid_transition`.
    pub async fn record_outcome(&self, booking_id: Uuid, outcome: &Outcome) -> Result<Booking, Error> {
        check_outcome(outcome)?;
        // The booking as this process wrote it, if a request waits for it: a read saved when it is current. Only
        // a change is decided on it (the transition's guard on the status fails if it is stale); anything else is
        // decided on the booking as stored.
        let mut written = self.inner.waiters.last_written(booking_id);
        for _ in 0..MAX_RACES {
            let (booking, decision) = match written.take() {
                Some(booking) => match decide(&booking, outcome) {
                    Ok(decision @ Decision::Apply { .. }) => (booking, decision),
                    _ => self.decide_stored(booking_id, outcome).await?,
                },
                None => self.decide_stored(booking_id, outcome).await?,
            };
            let (next, saga, event) = match decision {
                Decision::Done => return Ok(booking),
                Decision::Apply { next, saga, event } => (next, saga, event),
            };
            let change = Transition {
                from: booking.status,
                booking: &next,
                saga,
                event,
            };
            if self.store().transition(change).await? {
                tracing::info!(booking_id = %booking_id, status = %next.status, "booking outcome recorded");
                self.inner.waiters.wake(&next);
                return Ok(*next);
            }
        }
        Err(Error::corrupt(
            "booking status (changed more often than its lifecycle allows)",
        ))
    }

    /// `outcome` decided on the booking as stored.
    async fn decide_stored(&self, booking_id: Uuid, outcome: &Outcome) -> Result<(Booking, Decision), Error> {
        let booking = self.store().booking(booking_id).await?.ok_or(Error::NotFound)?;
        let decision = decide(&booking, outcome)?;
        Ok((booking, decision))
    }

    /// Marks confirmed bookings whose items have all ended by `now` as completed (the sweeper calls this with the
    /// current time); returns how many.
    pub async fn complete_ended(&self, now: Timestamp) -> Result<usize, Error> {
        let mut n = 0;
        for id in self.store().ended(now, SWEEP_BATCH).await? {
            let Some(booking) = self.store().booking(id).await? else {
                continue;
            };
            if booking.status != Status::Confirmed {
                continue;
            }
            let next = moved(booking, Status::Completed, Some("every item has ended".to_owned()));
            let event = events::event(events::COMPLETED, &next, json!({}))?;
            let change = Transition {
                from: Status::Confirmed,
                booking: &next,
                saga: SagaUpdate::Keep,
                event,
            };
            // Lost to a cancellation in the meantime: that booking is not completed.
            if self.store().transition(change).await? {
                n += 1;
            }
        }
        Ok(n)
    }
}

fn check_outcome(outcome: &Outcome) -> Result<(), Error> {
    match outcome {
        Outcome::Confirmed { captured_minor, .. } if *captured_minor < 0 => {
            Err(Error::invalid("captured_minor", "must not be negative"))
        }
        Outcome::Cancelled { refunded_minor, .. } if *refunded_minor < 0 => {
            Err(Error::invalid("refunded_minor", "must not be negative"))
        }
        Outcome::Cancelled {
            refunded_minor,
            refund_minor: Some(refund_minor),
        } if !(0..=*refunded_minor).contains(refund_minor) => Err(Error::invalid(
            "refund_minor",
            "must not be negative nor exceed refunded_minor",
        )),
        Outcome::Failed { code, detail } => {
            let code_ok = (1..=MAX_FAILURE_CODE_CHARS).contains(&code.len())
                && code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !code_ok {
                return Err(Error::invalid("code", "must be 1 to 64 characters of a-z, 0-9 and _"));
            }
            if detail.chars().count() > MAX_FAILURE_DETAIL_CHARS {
                return Err(Error::invalid("detail", "must have at most 1000 characters"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// What `outcome` does to `booking`.
fn decide(booking: &Booking, outcome: &Outcome) -> Result<Decision, Error> {
    let from = booking.status;
    match outcome {
        Outcome::Confirmed {
            hold_id,
            payment_id,
            captured_minor,
        } => {
            let same = booking.hold_id == Some(*hold_id) && booking.payment_id == Some(*payment_id);
            if from != Status::Pending {
                return if same {
                    Ok(Decision::Done)
                } else {
                    Err(illegal(from, Status::Confirmed))
                };
            }
            let mut next = moved(booking.clone(), Status::Confirmed, None);
            next.hold_id = Some(*hold_id);
            next.payment_id = Some(*payment_id);
            let detail = json!({ "hold_id": hold_id, "payment_id": payment_id, "captured_minor": captured_minor });
            let event = events::event(events::CONFIRMED, &next, detail)?;
            Ok(apply(next, SagaUpdate::Done(SagaKind::Booking), event))
        }
        Outcome::Failed { code, detail } => {
            if from == Status::Failed {
                return Ok(Decision::Done);
            }
            if from != Status::Pending {
                return Err(illegal(from, Status::Failed));
            }
            let mut next = moved(booking.clone(), Status::Failed, Some(code.clone()));
            next.failure = Some(Failure {
                code: code.clone(),
                detail: detail.clone(),
            });
            let event = events::event(events::FAILED, &next, json!({ "code": code, "detail": detail }))?;
            Ok(apply(next, SagaUpdate::Done(SagaKind::Booking), event))
        }
        Outcome::Cancelled {
            refunded_minor,
            refund_minor,
        } => {
            if from == Status::Cancelled {
                return Ok(Decision::Done);
            }
            if from != Status::Cancelling {
                return Err(illegal(from, Status::Cancelled));
            }
            if *refunded_minor > booking.total_minor {
                return Err(Error::invalid("refunded_minor", "must not exceed the booking's total"));
            }
            let policy_refund_minor = booking.cancellation.as_ref().map_or(0, |c| c.policy_refund_minor);
            if refund_minor.is_some_and(|refund| refund > policy_refund_minor) {
                return Err(Error::invalid("refund_minor", "must not exceed the policy's refund"));
            }
            // What the card got back in all: the saga reports the payment's total after its refund, or nothing when
            // there was nothing to refund; a goodwill refund followed before (`RefundFollower`) still counts.
            let refunded_minor = (*refunded_minor).max(booking.refunded_minor);
            let mut next = moved(booking.clone(), Status::Cancelled, None);
            next.refunded_minor = refunded_minor;
            // What this cancellation returned: the saga's own refund, and what had come back otherwise before. A
            // saga too old to say leaves the policy's figure.
            if let (Some(cancellation), Some(refund_minor)) = (next.cancellation.as_mut(), refund_minor) {
                cancellation.refund_minor = *refund_minor;
                cancellation.refunded_before_minor = Some(refunded_minor - refund_minor);
            }
            let cancellation = next.cancellation.as_ref();
            let detail = json!({
                "refunded_minor": refunded_minor,
                "refund_minor": cancellation.map(|c| c.refund_minor),
                "policy_refund_minor": cancellation.map(|c| c.policy_refund_minor),
                "fee_minor": cancellation.map(|c| c.fee_minor),
                "refunded_before_minor": cancellation.and_then(|c| c.refunded_before_minor),
            });
            let event = events::event(events::CANCELLED, &next, detail)?;
            Ok(apply(next, SagaUpdate::Done(SagaKind::Cancellation), event))
        }
    }
}

fn apply(next: Booking, saga: SagaUpdate, event: phoenix_db::Event) -> Decision {
    Decision::Apply {
        next: Box::new(next),
        saga,
        event,
    }
}

fn illegal(from: Status, to: Status) -> Error {
    Error::InvalidTransition { from, to }
}

/// `booking` moved to `status` now by the platform itself (a saga or a sweep), with the history entry.
fn moved(mut booking: Booking, status: Status, reason: Option<String>) -> Booking {
    debug_assert!(booking.status.may_become(status), "{} -> {status}", booking.status);
    let now = Timestamp::now();
    booking.status = status;
    booking.updated_at = now.datetime();
    booking.history.push(entry(status, None, reason, now));
    booking
}

//! The sagas' steps, each beside its undo, reading top to bottom like the business process.
//!
//! Booking: hold the units -> authorize the payment -> confirm the hold (sold) -> capture -> confirm the booking.
//! A failure before the capture (the pivot) undoes what was done, newest first: void the authorization, release the
//! hold, then mark the booking failed. After the capture the saga only goes forward: confirming the booking is
//! retried until it succeeds, so a customer who paid always gets a confirmed booking.
//!
//! The booking is marked confirmed last, not right after the authorization as a naive reading of the flow would
//! have it: a booking that says "confirmed" must never turn into "failed" because a later step (the hold's
//! confirmation racing its expiry, the capture) did not work out.
//!
//! Cancellation: refund what the policy allows (at most: what is left when the payment was refunded directly
//! before) -> release the units -> mark the booking cancelled, with what the refund itself returned. Forward only.
//!
//! Every call carries a key derived from the saga id and the step, so replaying a step whose answer was lost (a
//! crash, a timeout) returns the first answer instead of holding or charging twice.

use std::time::Duration;

use phoenix_api::Problem;
use phoenix_booking::orchestration::{Outcome, SagaKind};
use phoenix_inventory::HoldRequest;
use phoenix_payment::AuthorizeRequest;
use serde::{Deserialize, Serialize};

use crate::saga::{Data, Failure, Saga};
use crate::{Clients, Options};

/// Every step of every saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    HoldInventory,
    AuthorizePayment,
    ConfirmHold,
    CapturePayment,
    ConfirmBooking,
    VoidPayment,
    ReleaseHold,
    FailBooking,
    RefundPayment,
    CancelBooking,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::HoldInventory => "hold_inventory",
            Step::AuthorizePayment => "authorize_payment",
            Step::ConfirmHold => "confirm_hold",
            Step::CapturePayment => "capture_payment",
            Step::ConfirmBooking => "confirm_booking",
            Step::VoidPayment => "void_payment",
            Step::ReleaseHold => "release_hold",
            Step::FailBooking => "fail_booking",
            Step::RefundPayment => "refund_payment",
            Step::CancelBooking => "cancel_booking",
        }
    }

    /// What undoes this step once it is done (`None`: nothing to undo, or another step's undo covers it).
    fn undo(self) -> Option<Step> {
        match self {
            Step::HoldInventory | Step::ConfirmHold => Some(Step::ReleaseHold),
            Step::AuthorizePayment => Some(Step::VoidPayment),
            _ => None,
        }
    }
}

/// Do a step, or undo one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Do(Step),
    Undo(Step),
}

impl Action {
    pub fn step(self) -> Step {
        match self {
            Action::Do(step) | Action::Undo(step) => step,
        }
    }

    pub fn direction(self) -> &'static str {
        match self {
            Action::Do(_) => "do",
            Action::Undo(_) => "undo",
        }
    }
}

/// A saga's steps and its pivot: the index of the first step after which nothing is undone.
#[derive(Debug)]
pub struct Definition {
    pub forward: &'static [Step],
    pub pivot: usize,
    /// The last undo: tell booking how it ended.
    pub finally_undo: Option<Step>,
}

static BOOKING: Definition = Definition {
    forward: &[
        Step::HoldInventory,
        Step::AuthorizePayment,
        Step::ConfirmHold,
        Step::CapturePayment,
        Step::ConfirmBooking,
    ],
    pivot: 4,
    finally_undo: Some(Step::FailBooking),
};

static CANCELLATION: Definition = Definition {
    forward: &[Step::RefundPayment, Step::ReleaseHold, Step::CancelBooking],
    pivot: 0,
    finally_undo: None,
};

impl Definition {
    pub fn of(kind: SagaKind) -> &'static Definition {
        match kind {
            SagaKind::Booking => &BOOKING,
            SagaKind::Cancellation => &CANCELLATION,
        }
    }

    /// The undo steps after `done` forward steps, newest first, each once, then the final report.
    pub fn undo_plan(&self, done: usize) -> Vec<Step> {
        let mut plan: Vec<Step> = Vec::new();
        for step in self.forward[..done.min(self.forward.len())].iter().rev() {
            if let Some(undo) = step.undo()
                && !plan.contains(&undo)
            {
                plan.push(undo);
            }
        }
        plan.extend(self.finally_undo);
        plan
    }
}

/// Why a step did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    /// Worth trying again later (the other side was busy, unreachable or timed out).
    pub retryable: bool,
    pub code: String,
    pub detail: String,
    /// The other side is still processing this very call: an earlier attempt with the step's idempotency key (this
    /// saga's, perhaps made by a process that died since) holds the key until its claim lapses, and the answer asks
    /// for this wait (its `Retry-After`) before the same key is tried again. Not a failed attempt: the engine runs
    /// the step again no earlier than that, without counting it against `max_attempts`.
    pub in_progress: Option<Duration>,
}

impl StepError {
    /// The failure the `fail_at` fault injection produces.
    pub fn injected() -> StepError {
        StepError::fatal("injected_failure", "failure injected by the saga's fail_at setting")
    }

    fn fatal(code: &str, detail: impl Into<String>) -> StepError {
        StepError {
            retryable: false,
            code: code.to_owned(),
            detail: detail.into(),
            in_progress: None,
        }
    }
}

impl From<Problem> for StepError {
    fn from(problem: Problem) -> StepError {
        // 409 `idempotency_key_in_use`: an earlier call with the same key is still being processed (payment's claim
        // on a pending operation outlives a process that died in the middle of it, until it lapses).
        let in_progress = (problem.code == "idempotency_key_in_use")
            .then(|| Duration::from_secs(problem.retry_after_secs.unwrap_or(1).max(1)));
        let retryable = problem.status.is_server_error() || problem.status.as_u16() == 429 || in_progress.is_some();
        StepError {
            retryable,
            code: problem.code.to_string(),
            detail: problem.detail.clone().unwrap_or_else(|| problem.title.clone()),
            in_progress,
        }
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

/// The idempotency key of one step of one saga.
fn key(saga: &Saga, step: Step) -> String {
    format!("saga-{}-{}", saga.id, step.name())
}

/// Runs one action against the services, recording what it learned in `saga`.
pub async fn run(action: Action, saga: &mut Saga, clients: &Clients, options: &Options) -> Result<(), StepError> {
    match action.step() {
        Step::HoldInventory => hold_inventory(saga, clients, options).await,
        Step::AuthorizePayment => authorize_payment(saga, clients).await,
        Step::ConfirmHold => confirm_hold(saga, clients).await,
        Step::CapturePayment => capture_payment(saga, clients).await,
        Step::ConfirmBooking => confirm_booking(saga, clients).await,
        Step::VoidPayment => void_payment(saga, clients).await,
        Step::ReleaseHold => release_hold(saga, clients).await,
        Step::FailBooking => fail_booking(saga, clients).await,
        Step::RefundPayment => refund_payment(saga, clients).await,
        Step::CancelBooking => cancel_booking(saga, clients).await,
    }
}

async fn hold_inventory(saga: &mut Saga, clients: &Clients, options: &Options) -> Result<(), StepError> {
    let request = &saga.data.request;
    let hold = HoldRequest {
        lines: request.lines.iter().map(|l| (l.item_id.clone(), l.quantity)).collect(),
        ttl_secs: Some(request.hold_ttl_secs),
        reference: Some(saga.booking_id.to_string()),
    };
    let key = key(saga, Step::HoldInventory);
    let hold = clients.inventory.create_hold(&request.actor, &hold, &key).await?;
    saga.data.hold_id = Some(hold.id);
    // The rest of the way to the pivot must finish before the units go back on sale.
    saga.deadline_at = Some(hold.expires_at - time::Duration::seconds(options.deadline_margin_secs as i64));
    Ok(())
}

/// A 503 that names a payment is an authorization the provider never answered: payment failed it for good (and
/// voids it should the card network have taken it), so the same key would only replay that answer. Without a
/// payment (the circuit open, payment unreachable) nothing was decided and a later attempt may succeed.
fn authorization_error(problem: Problem) -> StepError {
    if problem.status.as_u16() == 503 && problem.extensions.contains_key("payment_id") {
        return StepError::fatal(
            &problem.code,
            "the card provider did not answer in time, so nothing was charged",
        );
    }
    problem.into()
}

// The undo of an authorization is `void_payment`.
async fn authorize_payment(saga: &mut Saga, clients: &Clients) -> Result<(), StepError> {
    let request = &saga.data.request;
    let token = request
        .payment_token
        .clone()
        .ok_or_else(|| StepError::fatal("payment_token_missing", "the booking carried no payment token"))?;
    let authorize = AuthorizeRequest {
        amount_minor: request.amount_minor,
        currency: request.currency.clone(),
        payment_token: token,
        reference: Some(saga.booking_id.to_string()),
    };
    let key = key(saga, Step::AuthorizePayment);
    let payment = clients
        .payment
        .authorize(&request.actor, &authorize, &key)
        .await
        .map_err(authorization_error)?;
    saga.data.payment_id = Some(payment.id);
    // Needed no more: the saga's record keeps no token once the authorization is done.
    saga.data.request.payment_token = None;
    Ok(())
}

async fn void_payment(saga: &mut Saga, clients: &Clients) -> Result<(), StepError> {
    let Some(payment_id) = saga.data.payment_id else {
        return Ok(());
    };
    let key = key(saga, Step::VoidPayment);
    clients.payment.void(&saga.data.request.actor, payment_id, &key).await?;
    Ok(())
}

// The undo of holding and of confirming a hold is `release_hold`.
async fn confirm_hold(saga: &mut Saga, clients: &Clients) -> Result<(), StepError> {
    let hold_id = saga
        .data
        .hold_id
        .ok_or_else(|| StepError::fatal("hold_missing", "no hold to confirm"))?;
    clients.inventory.confirm(&saga.data.request.actor, hold_id).await?;
    Ok(())
}

async fn release_hold(saga: &mut Saga, clients: &Clients) -> Result<(), StepError> {
    let Some(hold_id) = saga.data.hold_id else {
        return Ok(());
    };
    clients.inventory.release(&saga.data.request.actor, hold_id).await?;
    Ok(())
}

// The pivot: once captured, the saga never compensates.
async fn capture_payment(saga: &mut Saga, clients: &Clients) -> Result<(), StepError> {
    let payment_id = saga
        .data
        .payment_id
        .ok_or_else(|| StepError::fatal("payment_missing", "no payment to capture"))?;
    let key = key(saga, Step::CapturePayment);
    let payment = clients
        .payment
        .capture(&saga.data.request.actor, payment_id, None, &key)
        .await?;
    saga.data.captured_minor = payment.captured_minor;
    Ok(())
}

async fn confirm_booking(saga: &mut Saga, clients: &Clients) -> Result<(), StepError> {
    let (Some(hold_id), Some(payment_id)) = (saga.data.hold_id, saga.data.payment_id) else {
        return Err(StepError::fatal(
            "saga_corrupt",
            "confirming a booking without its hold and payment",
        ));
    };
    let outcome = Outcome::Confirmed {
        hold_id,
        payment_id,
        captured_minor: saga.data.captured_minor,
    };
    clients.booking.record_outcome(saga.booking_id, &outcome).await?;
    Ok(())
}

async fn fail_booking(saga: &mut Saga, clients: &Clients) -> Result<(), StepError> {
    let failure = saga.data.failure.clone().unwrap_or(Failure {
        code: "saga_failed".to_owned(),
        detail: "the booking could not be completed".to_owned(),
    });
    let outcome = Outcome::Failed {
        code: failure.code,
        detail: failure.detail,
    };
    clients.booking.record_outcome(saga.booking_id, &outcome).await?;
    Ok(())
}

async fn refund_payment(saga: &mut Saga, clients: &Clients) -> Result<(), StepError> {
    let request = &saga.data.request;
    let (Some(payment_id), amount @ 1..) = (saga.data.payment_id, request.refund_minor) else {
        // Nothing to refund (or nothing paid): the saga returns nothing, and does not ask payment what others did.
        saga.data.refunded_minor = 0;
        saga.data.refund_made_minor = Some(0);
        return Ok(());
    };
    // At most: the payment may have been refunded directly since the refund was decided (support's goodwill, say),
    // and a cancellation never returns more than was paid. Both figures come from the refund's own answer, which a
    // retry with the same key gets again unchanged: what the card got back in all, and what this refund returned.
    let key = key(saga, Step::RefundPayment);
    let (payment, refund_minor) = clients
        .payment
        .refund(
            &request.actor,
            payment_id,
            (Some(amount), true),
            "booking cancelled",
            &key,
        )
        .await?;
    saga.data.refunded_minor = payment.refunded_minor;
    saga.data.refund_made_minor = refund_minor;
    Ok(())
}

async fn cancel_booking(saga: &mut Saga, clients: &Clients) -> Result<(), StepError> {
    clients
        .booking
        .record_outcome(saga.booking_id, &cancelled(&saga.data))
        .await?;
    Ok(())
}

/// What a finished cancellation saga reports: the payment's refunds in all, and what its own refund returned
/// (unknown in a saga saved before that was recorded, or when payment did not say: booking then keeps the policy's
/// figure).
pub fn cancelled(data: &Data) -> Outcome {
    Outcome::Cancelled {
        refunded_minor: data.refunded_minor,
        refund_minor: data.refund_made_minor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booking_undo_plan_undoes_newest_first_and_reports_last() {
        let booking = Definition::of(SagaKind::Booking);
        assert_eq!(booking.undo_plan(0), vec![Step::FailBooking]);
        assert_eq!(booking.undo_plan(1), vec![Step::ReleaseHold, Step::FailBooking]);
        assert_eq!(
            booking.undo_plan(2),
            vec![Step::VoidPayment, Step::ReleaseHold, Step::FailBooking]
        );
        // Confirming the hold is undone by the same release as holding it: once.
        assert_eq!(
            booking.undo_plan(3),
            vec![Step::ReleaseHold, Step::VoidPayment, Step::FailBooking]
        );
    }

    /// A saga saved by an older version has no `refund_made_minor`; one whose payment did not say has none either.
    /// Both report no `refund_minor`, exactly as an older saga did, and booking keeps the policy's figure.
    #[test]
    fn a_saga_that_does_not_know_its_own_refund_reports_as_older_sagas_did() {
        let actor = phoenix_api::Principal {
            user_id: uuid::Uuid::now_v7(),
            roles: phoenix_api::Roles::from([phoenix_api::Role::Customer]),
            organization_id: None,
            credential: phoenix_api::Credential::AccessToken {
                token_id: uuid::Uuid::now_v7(),
            },
        };
        let request = phoenix_booking::orchestration::SagaRequest {
            booking_id: uuid::Uuid::now_v7(),
            kind: SagaKind::Cancellation,
            actor,
            lines: Vec::new(),
            hold_ttl_secs: 0,
            currency: "EUR".to_owned(),
            amount_minor: 0,
            payment_token: None,
            refund_minor: 9_000,
            hold_id: None,
            payment_id: Some(uuid::Uuid::now_v7()),
            traceparent: None,
        };
        let mut saga = Saga::start(request, phoenix_db::Timestamp::now());
        saga.data.refunded_minor = 9_000;
        let mut older = serde_json::to_value(&saga.data).unwrap();
        older.as_object_mut().unwrap().remove("refund_made_minor");
        let older: Data = serde_json::from_value(older).unwrap();
        assert_eq!(older, saga.data);
        assert_eq!(
            serde_json::to_value(cancelled(&older)).unwrap(),
            serde_json::json!({"outcome": "cancelled", "refunded_minor": 9_000})
        );
        // Once known, it is saved with the saga and reported.
        saga.data.refund_made_minor = Some(4_000);
        let saved: Data = serde_json::from_value(serde_json::to_value(&saga.data).unwrap()).unwrap();
        assert_eq!(
            cancelled(&saved),
            Outcome::Cancelled {
                refunded_minor: 9_000,
                refund_minor: Some(4_000)
            }
        );
    }

    /// "Still being processed" carries its retry-after as a wait; other problems, retryable or not, wait for none.
    #[test]
    fn a_key_still_in_use_is_a_wait_of_its_retry_after() {
        use axum::http::StatusCode;
        let in_use = |retry_after: Option<u64>| {
            let problem = Problem::new(StatusCode::CONFLICT, "idempotency_key_in_use", "still being processed");
            StepError::from(match retry_after {
                Some(secs) => problem.with_retry_after(secs),
                None => problem,
            })
        };
        let error = in_use(Some(53));
        assert!(error.retryable);
        assert_eq!(error.code, "idempotency_key_in_use");
        assert_eq!(error.in_progress, Some(Duration::from_secs(53)));
        assert_eq!(in_use(None).in_progress, Some(Duration::from_secs(1)));
        let unavailable =
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "provider_unavailable", "later").with_retry_after(2);
        let error = StepError::from(unavailable);
        assert!(error.retryable);
        assert_eq!(error.in_progress, None);
        let declined = StepError::from(Problem::new(
            StatusCode::PAYMENT_REQUIRED,
            "payment_declined",
            "declined",
        ));
        assert!(!declined.retryable);
        assert_eq!(declined.in_progress, None);
    }

    #[test]
    fn cancellation_never_compensates() {
        assert_eq!(Definition::of(SagaKind::Cancellation).pivot, 0);
        assert!(Definition::of(SagaKind::Cancellation).undo_plan(2).is_empty());
    }
}

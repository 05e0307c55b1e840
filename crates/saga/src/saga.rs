//! A saga as stored: where it is in its step list, what it has learned so far, and its timers.

use phoenix_booking::orchestration::{SagaKind, SagaRequest};
use phoenix_db::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::steps::{Action, Definition};

/// Where a saga is in its life. `completed` and `compensated` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Running its steps forward.
    Running,
    /// A step failed before the pivot: undoing what was done, newest first.
    Compensating,
    /// Every step done.
    Completed,
    /// Every undo done: nothing of the saga's effect remains but the record of it.
    Compensated,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Compensating => "compensating",
            State::Completed => "completed",
            State::Compensated => "compensated",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        match s {
            "running" => Some(State::Running),
            "compensating" => Some(State::Compensating),
            "completed" => Some(State::Completed),
            "compensated" => Some(State::Compensated),
            _ => None,
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, State::Completed | State::Compensated)
    }
}

/// Why a saga compensates, reported to booking as the failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub detail: String,
}

/// What a saga carries: its request, and what its steps learned (each step reads what the earlier ones wrote).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    pub request: SagaRequest,
    #[serde(default)]
    pub hold_id: Option<Uuid>,
    #[serde(default)]
    pub payment_id: Option<Uuid>,
    #[serde(default)]
    pub captured_minor: i64,
    /// Cancellation sagas: what the booking's payment has had refunded in all, after the saga's refund.
    #[serde(default)]
    pub refunded_minor: i64,
    /// Cancellation sagas: what the saga's own refund returned (less than the policy's refund when the payment had
    /// been partly refunded before; 0 when nothing was to be, or nothing was left). `None` before the refund step,
    /// in sagas saved before it was recorded, and from a payment service too old to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_made_minor: Option<i64>,
    #[serde(default)]
    pub failure: Option<Failure>,
}

/// A saga and its bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saga {
    pub id: Uuid,
    pub kind: SagaKind,
    pub booking_id: Uuid,
    pub state: State,
    /// Forward steps done.
    pub step: usize,
    /// Undo steps done (while compensating).
    pub undo_step: usize,
    /// Attempts of the step about to run.
    pub attempts: u32,
    pub data: Data,
    pub last_error: Option<String>,
    pub deadline_at: Option<Timestamp>,
    pub next_run_at: Timestamp,
    pub lease_owner: Option<Uuid>,
    pub lease_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Saga {
    /// A new saga for a request booking handed over.
    pub fn start(request: SagaRequest, now: Timestamp) -> Saga {
        Saga {
            id: Uuid::now_v7(),
            kind: request.kind,
            booking_id: request.booking_id,
            state: State::Running,
            step: 0,
            undo_step: 0,
            attempts: 0,
            data: Data {
                // A cancellation starts from the confirmed booking's hold and payment; a booking learns its own.
                hold_id: request.hold_id,
                payment_id: request.payment_id,
                request,
                captured_minor: 0,
                refunded_minor: 0,
                refund_made_minor: None,
                failure: None,
            },
            last_error: None,
            deadline_at: None,
            next_run_at: now,
            lease_owner: None,
            lease_until: None,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn definition(&self) -> &'static Definition {
        Definition::of(self.kind)
    }

    /// The action to run next, or `None` when the saga is finished.
    pub fn next_action(&self) -> Option<Action> {
        let definition = self.definition();
        match self.state {
            State::Running => definition.forward.get(self.step).map(|step| Action::Do(*step)),
            State::Compensating => definition
                .undo_plan(self.step)
                .get(self.undo_step)
                .map(|step| Action::Undo(*step)),
            State::Completed | State::Compensated => None,
        }
    }

    /// Whether a failure now would still be compensated (the pivot not yet passed).
    pub fn before_pivot(&self) -> bool {
        self.state == State::Running && self.step < self.definition().pivot
    }
}

/// One attempt of one step, as support sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    pub seq: u32,
    pub step: String,
    pub direction: String,
    pub attempt: u32,
    pub outcome: String,
    pub error: Option<String>,
    pub at: Timestamp,
}

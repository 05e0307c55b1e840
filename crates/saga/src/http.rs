//! The saga service's HTTP API: what support sees of a saga (its steps, attempts and errors).

use axum::extract::State;
use phoenix_api::{Json, Path, Problem, Query, RequireRoles, Role};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::saga::{Saga, StepRecord};
use crate::{Error, Orchestrator};

type Result<T> = std::result::Result<T, Problem>;

const TAG: &str = "sagas";

/// The path prefixes the saga service answers, for the gateway's routing table when it runs elsewhere.
pub const PATH_PREFIXES: &[&str] = &["/api/v1/sagas"];

/// Support and admin only: sagas show every step of a booking's money and units.
pub fn api() -> OpenApiRouter<Orchestrator> {
    OpenApiRouter::new()
        .routes(routes!(get_saga))
        .routes(routes!(list_sagas))
        .route_layer(RequireRoles::any_of(&[Role::Support, Role::Admin]))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StepView {
    pub seq: u32,
    pub step: String,
    /// `do` or `undo`.
    pub direction: String,
    pub attempt: u32,
    /// `ok`, `retry` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SagaView {
    pub id: Uuid,
    /// `booking` or `cancellation`.
    pub kind: String,
    pub booking_id: Uuid,
    pub state: crate::State,
    /// Forward steps done, and undo steps done.
    pub steps_done: usize,
    pub undo_steps_done: usize,
    /// The step that runs next, if any.
    pub next_step: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub hold_id: Option<Uuid>,
    pub payment_id: Option<Uuid>,
    /// Why it compensated.
    pub failure_code: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deadline_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub next_run_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub history: Vec<StepView>,
}

impl SagaView {
    pub fn new(saga: &Saga, history: Vec<StepRecord>) -> SagaView {
        SagaView {
            id: saga.id,
            kind: saga.kind.as_str().to_owned(),
            booking_id: saga.booking_id,
            state: saga.state,
            steps_done: saga.step,
            undo_steps_done: saga.undo_step,
            next_step: saga.next_action().map(|a| a.step().name().to_owned()),
            attempts: saga.attempts,
            last_error: saga.last_error.clone(),
            hold_id: saga.data.hold_id,
            payment_id: saga.data.payment_id,
            failure_code: saga.data.failure.as_ref().map(|f| f.code.clone()),
            deadline_at: saga.deadline_at.map(|t| t.datetime()),
            next_run_at: saga.next_run_at.datetime(),
            created_at: saga.created_at.datetime(),
            updated_at: saga.updated_at.datetime(),
            history: history
                .into_iter()
                .map(|r| StepView {
                    seq: r.seq,
                    step: r.step,
                    direction: r.direction,
                    attempt: r.attempt,
                    outcome: r.outcome,
                    error: r.error,
                    at: r.at.datetime(),
                })
                .collect(),
        }
    }
}

/// A saga with every attempt of every step.
#[utoipa::path(get, path = "/api/v1/sagas/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = SagaView), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_saga(State(orchestrator): State<Orchestrator>, Path(id): Path<Uuid>) -> Result<Json<SagaView>> {
    let saga = orchestrator.saga(id).await?.ok_or(Error::NotFound)?;
    let history = orchestrator.steps(id).await?;
    Ok(Json(SagaView::new(&saga, history)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SagaQuery {
    /// The booking whose sagas to list (its booking saga, and its cancellation saga if any).
    booking_id: Uuid,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SagaList {
    pub items: Vec<SagaView>,
}

/// The sagas of one booking.
#[utoipa::path(get, path = "/api/v1/sagas", tag = TAG, security(("bearer" = [])), params(SagaQuery),
    responses((status = 200, body = SagaList), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn list_sagas(
    State(orchestrator): State<Orchestrator>,
    Query(query): Query<SagaQuery>,
) -> Result<Json<SagaList>> {
    let sagas = orchestrator.sagas_of_booking(query.booking_id).await?;
    let mut items = Vec::with_capacity(sagas.len());
    for saga in &sagas {
        items.push(SagaView::new(saga, orchestrator.steps(saga.id).await?));
    }
    Ok(Json(SagaList { items }))
}

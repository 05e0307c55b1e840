//! How the saga service reaches booking: the same handle whether booking runs in this process or elsewhere.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{get, post};
use phoenix_api::{Json, Path, Problem, Query, remote};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::Service;
use crate::orchestration::{Outcome, SagaKind, SagaRequest};

/// Booking as the saga service sees it. `Local` calls the service directly; `Remote` calls its internal HTTP API.
#[derive(Clone)]
pub enum Client {
    Local(Service),
    Remote(remote::Client),
}

#[derive(Debug, Serialize, Deserialize)]
struct Limit {
    limit: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Taken {
    booking_id: Uuid,
    kind: SagaKind,
}

#[derive(Debug, Serialize, Deserialize)]
struct Acknowledge {
    requests: Vec<Taken>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Acknowledged {
    acknowledged: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Requests {
    requests: Vec<SagaRequest>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Recorded {
    status: crate::Status,
}

impl Client {
    /// Saga requests not acknowledged yet, oldest first, at most `limit` (booking caps it further).
    pub async fn saga_requests(&self, limit: u32) -> Result<Vec<SagaRequest>, Problem> {
        match self {
            Client::Local(service) => Ok(service.saga_requests(limit).await?),
            Client::Remote(client) => {
                let path = format!("/internal/v1/bookings/saga-requests?limit={limit}");
                let found: Requests = client.call::<(), _>(Method::GET, &path, None, None).await?;
                Ok(found.requests)
            }
        }
    }

    /// Marks requests as taken: they are not handed out again, and a booking request's payment token is forgotten.
    pub async fn acknowledge(&self, taken: &[(Uuid, SagaKind)]) -> Result<(), Problem> {
        match self {
            Client::Local(service) => {
                service.acknowledge(taken).await?;
                Ok(())
            }
            Client::Remote(client) => {
                let body = Acknowledge {
                    requests: taken
                        .iter()
                        .map(|(booking_id, kind)| Taken {
                            booking_id: *booking_id,
                            kind: *kind,
                        })
                        .collect(),
                };
                let path = "/internal/v1/bookings/saga-requests/acknowledge";
                let _: Acknowledged = client.call(Method::POST, path, Some(&body), None).await?;
                Ok(())
            }
        }
    }

    /// Records how a saga ended. Idempotent; an outcome that does not follow from the booking's status is 409
    /// `invalid_transition`.
    pub async fn record_outcome(&self, booking_id: Uuid, outcome: &Outcome) -> Result<(), Problem> {
        match self {
            Client::Local(service) => {
                service.record_outcome(booking_id, outcome).await?;
                Ok(())
            }
            Client::Remote(client) => {
                let path = format!("/internal/v1/bookings/{booking_id}/outcome");
                let _: Recorded = client.call(Method::POST, &path, Some(outcome), None).await?;
                Ok(())
            }
        }
    }

    /// Notified whenever booking writes a new saga request, when booking runs in this process; a remote booking
    /// cannot signal, so its follower polls.
    pub fn wake_signal(&self) -> Option<Arc<Notify>> {
        match self {
            Client::Local(service) => Some(service.saga_wake()),
            Client::Remote(_) => None,
        }
    }
}

/// The routes [`Client::Remote`] calls, for a booking that runs as its own process. Mount behind the internal-token
/// layer: they take no principal.
pub fn internal_router(service: Service) -> Router {
    Router::new()
        .route("/internal/v1/bookings/saga-requests", get(internal_saga_requests))
        .route(
            "/internal/v1/bookings/saga-requests/acknowledge",
            post(internal_acknowledge),
        )
        .route("/internal/v1/bookings/{booking_id}/outcome", post(internal_outcome))
        .with_state(service)
}

async fn internal_saga_requests(
    State(service): State<Service>,
    Query(query): Query<Limit>,
) -> Result<Json<Requests>, Problem> {
    let requests = service.saga_requests(query.limit).await?;
    Ok(Json(Requests { requests }))
}

async fn internal_acknowledge(
    State(service): State<Service>,
    Json(body): Json<Acknowledge>,
) -> Result<Json<Acknowledged>, Problem> {
    let taken: Vec<(Uuid, SagaKind)> = body.requests.iter().map(|t| (t.booking_id, t.kind)).collect();
    let acknowledged = service.acknowledge(&taken).await?;
    Ok(Json(Acknowledged { acknowledged }))
}

async fn internal_outcome(
    State(service): State<Service>,
    Path(booking_id): Path<Uuid>,
    Json(outcome): Json<Outcome>,
) -> Result<Json<Recorded>, Problem> {
    let booking = service.record_outcome(booking_id, &outcome).await?;
    Ok(Json(Recorded { status: booking.status }))
}

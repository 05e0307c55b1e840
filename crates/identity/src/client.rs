//! How other services reach identity: the same handle whether identity runs in this process or elsewhere.

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{get, post};
use jsonwebtoken::jwk::JwkSet;
use phoenix_api::{Json, Principal, Problem, remote};
use serde::{Deserialize, Serialize};

use crate::{OrganizationKind, RevocationCursor, Revocations, Service};

/// Identity as another service sees it. `Local` calls the service directly; `Remote` calls its internal HTTP API.
#[derive(Clone)]
pub enum Client {
    Local(Service),
    Remote(remote::Client),
}

#[derive(Debug, Serialize, Deserialize)]
struct AuthenticateKey {
    key: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct OrganizationKindBody {
    kind: OrganizationKind,
}

/// What another service may learn about a user: that it exists, and the organization it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub user_id: uuid::Uuid,
    pub organization_id: Option<uuid::Uuid>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RevocationsQuery {
    after: Option<RevocationCursor>,
    limit: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct JwksQuery {
    fresh: bool,
}

impl Client {
    /// The keys that verify access tokens; `fresh` asks identity to re-read them (after an unknown `kid`).
    pub async fn jwks(&self, fresh: bool) -> Result<JwkSet, Problem> {
        match self {
            Client::Local(service) => Ok(service.jwks(fresh).await?),
            Client::Remote(client) => Ok(client
                .call(
                    Method::POST,
                    "/internal/v1/identity/jwks",
                    Some(&JwksQuery { fresh }),
                    None,
                )
                .await?),
        }
    }

    /// The principal an API key stands for, or 401 `invalid_api_key`.
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Principal, Problem> {
        match self {
            Client::Local(service) => Ok(service.authenticate_api_key(key).await?),
            Client::Remote(client) => Ok(client
                .call(
                    Method::POST,
                    "/internal/v1/identity/api-keys/authenticate",
                    Some(&AuthenticateKey { key: key.to_owned() }),
                    None,
                )
                .await?),
        }
    }

    /// The kind of an organization, or `None` when there is no such organization.
    pub async fn organization_kind(&self, id: uuid::Uuid) -> Result<Option<OrganizationKind>, Problem> {
        let found = match self {
            Client::Local(service) => service
                .organization(id)
                .await
                .map(|org| org.kind)
                .map_err(Problem::from),
            Client::Remote(client) => client
                .call::<(), OrganizationKindBody>(
                    Method::GET,
                    &format!("/internal/v1/identity/organizations/{id}"),
                    None,
                    None,
                )
                .await
                .map(|body| body.kind)
                .map_err(Problem::from),
        };
        match found {
            Ok(kind) => Ok(Some(kind)),
            Err(problem) if problem.status == axum::http::StatusCode::NOT_FOUND => Ok(None),
            Err(problem) => Err(problem),
        }
    }

    /// A user's organization, or `None` when there is no such user (booking checks whom an agent books for).
    pub async fn membership(&self, user_id: uuid::Uuid) -> Result<Option<Membership>, Problem> {
        let found = match self {
            Client::Local(service) => service.membership(user_id).await.map_err(Problem::from),
            Client::Remote(client) => client
                .call::<(), Membership>(
                    Method::GET,
                    &format!("/internal/v1/identity/users/{user_id}/membership"),
                    None,
                    None,
                )
                .await
                .map_err(Problem::from),
        };
        match found {
            Ok(membership) => Ok(Some(membership)),
            Err(problem) if problem.status == axum::http::StatusCode::NOT_FOUND => Ok(None),
            Err(problem) => Err(problem),
        }
    }

    /// Access tokens whose sessions ended after `after` ([`Service::revocations`]).
    pub async fn revocations(&self, after: Option<RevocationCursor>, limit: u32) -> Result<Revocations, Problem> {
        match self {
            Client::Local(service) => Ok(service.revocations(after, limit).await?),
            Client::Remote(client) => Ok(client
                .call(
                    Method::POST,
                    "/internal/v1/identity/revocations",
                    Some(&RevocationsQuery { after, limit }),
                    None,
                )
                .await?),
        }
    }

    /// Changes whenever identity, running in this process, ends a session; `None` when identity runs elsewhere
    /// (its revocations are then only polled).
    pub fn revocations_changed(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        match self {
            Client::Local(service) => Some(service.revocations_changed()),
            Client::Remote(_) => None,
        }
    }

    pub async fn ready(&self) -> bool {
        match self {
            Client::Local(service) => service.ready().await,
            Client::Remote(client) => client.healthy().await,
        }
    }
}

/// Routes only other Phoenix services call (never routed by the gateway; guarded by the internal token).
pub fn internal_router(service: Service) -> Router {
    Router::new()
        .route("/internal/v1/identity/jwks", post(internal_jwks))
        .route(
            "/internal/v1/identity/api-keys/authenticate",
            post(internal_authenticate_key),
        )
        .route("/internal/v1/identity/revocations", post(internal_revocations))
        .route("/internal/v1/identity/organizations/{id}", get(internal_organization))
        .route("/internal/v1/identity/users/{id}/membership", get(internal_membership))
        .with_state(service)
}

async fn internal_organization(
    State(service): State<Service>,
    phoenix_api::Path(id): phoenix_api::Path<uuid::Uuid>,
) -> Result<Json<OrganizationKindBody>, Problem> {
    Ok(Json(OrganizationKindBody {
        kind: service.organization(id).await?.kind,
    }))
}

async fn internal_membership(
    State(service): State<Service>,
    phoenix_api::Path(id): phoenix_api::Path<uuid::Uuid>,
) -> Result<Json<Membership>, Problem> {
    Ok(Json(service.membership(id).await?))
}

async fn internal_revocations(
    State(service): State<Service>,
    Json(query): Json<RevocationsQuery>,
) -> Result<Json<Revocations>, Problem> {
    Ok(Json(service.revocations(query.after, query.limit).await?))
}

async fn internal_jwks(State(service): State<Service>, Json(query): Json<JwksQuery>) -> Result<Json<JwkSet>, Problem> {
    Ok(Json(service.jwks(query.fresh).await?))
}

async fn internal_authenticate_key(
    State(service): State<Service>,
    Json(body): Json<AuthenticateKey>,
) -> Result<Json<Principal>, Problem> {
    Ok(Json(service.authenticate_api_key(&body.key).await?))
}

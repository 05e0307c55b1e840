//! How other services reach identity: the same handle whether identity runs in this process or elsewhere.

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::routing::post;
use jsonwebtoken::jwk::JwkSet;
use phoenix_api::{Json, Principal, Problem, remote};
use serde::{Deserialize, Serialize};

use crate::Service;

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
        .with_state(service)
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

//! How other services reach the catalog: the same handle whether the catalog runs in this process or elsewhere.

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::routing::post;
use phoenix_api::{Json, Principal, Problem, remote};

use crate::Catalog;
use crate::quote::{Quotation, QuoteRequest};

/// Where [`internal_router`] answers quotes.
pub const QUOTE_PATH: &str = "/internal/v1/catalog/quote";

/// The catalog as another service sees it. `Local` calls the catalog directly; `Remote` calls its internal routes.
#[derive(Clone)]
pub enum Client {
    Local(Catalog),
    Remote(remote::Client),
}

impl Client {
    /// Prices `request` for `actor` (see [`Catalog::quote`]); the catalog's problems come back unchanged.
    pub async fn quote(&self, actor: &Principal, request: &QuoteRequest) -> Result<Quotation, Problem> {
        match self {
            Client::Local(catalog) => Ok(catalog.quote(actor, request).await?),
            Client::Remote(client) => Ok(client
                .call(Method::POST, QUOTE_PATH, Some(request), Some(actor))
                .await?),
        }
    }
}

/// Routes only other Phoenix services call (never routed by the gateway; guarded by the internal token).
pub fn internal_router(catalog: Catalog) -> Router {
    Router::new()
        .route(QUOTE_PATH, post(internal_quote))
        .with_state(catalog)
}

/// A quote for the principal the calling service acts for (the booking service, for its customer).
async fn internal_quote(
    State(catalog): State<Catalog>,
    principal: Principal,
    Json(body): Json<QuoteRequest>,
) -> Result<Json<Quotation>, Problem> {
    Ok(Json(catalog.quote(&principal, &body).await?))
}

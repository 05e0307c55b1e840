//! How other services reach inventory: the same handle whether inventory runs in this process or elsewhere.

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{get, post};
use phoenix_api::{Json, Principal, Problem, Query, remote};
use serde::{Deserialize, Serialize};

use crate::http::{AvailabilityRequest, AvailabilityResponse, ItemResponse};
use crate::item::{Bucket, ItemId};
use crate::{Error, Service};

/// Inventory as another service sees it. `Local` calls the service directly; `Remote` calls its HTTP API.
#[derive(Clone)]
pub enum Client {
    Local(Service),
    Remote(remote::Client),
}

/// Changes to buckets after a position of inventory's change feed, and where to continue from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    pub events: Vec<Change>,
    /// Pass as `after` next time.
    pub last_seq: i64,
}

/// One event of the feed: its position and the buckets it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub seq: i64,
    pub item_ids: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChangesQuery {
    after: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct CreateItems {
    items: Vec<crate::NewItem>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Created {
    created: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct PutItemBody {
    capacity: i64,
    overbooking_limit: i64,
    organization_id: Option<uuid::Uuid>,
}

/// Most feed entries one call returns.
pub const MAX_CHANGES: u32 = 5_000;

impl Client {
    /// Creates or resizes a bucket, as `actor`.
    pub async fn put_item(
        &self,
        actor: &Principal,
        item_id: &str,
        capacity: i64,
        overbooking_limit: i64,
        organization_id: Option<uuid::Uuid>,
    ) -> Result<Bucket, Problem> {
        match self {
            Client::Local(service) => Ok(service
                .put_item(actor, item_id, capacity, overbooking_limit, organization_id)
                .await?
                .0),
            Client::Remote(client) => {
                let body = PutItemBody {
                    capacity,
                    overbooking_limit,
                    organization_id,
                };
                let path = format!("/api/v1/inventory/items/{item_id}");
                let item: ItemResponse = client.call(Method::PUT, &path, Some(&body), Some(actor)).await?;
                Ok(bucket(item)?)
            }
        }
    }

    /// Creates the buckets that do not exist yet among `items`, empty; returns how many it created.
    pub async fn create_items(&self, actor: &Principal, items: &[crate::NewItem]) -> Result<u64, Problem> {
        match self {
            Client::Local(service) => Ok(service.create_items(actor, items).await?),
            Client::Remote(client) => {
                let body = CreateItems { items: items.to_vec() };
                let created: Created = client
                    .call(Method::POST, "/internal/v1/inventory/items", Some(&body), Some(actor))
                    .await?;
                Ok(created.created)
            }
        }
    }

    /// Counters of the buckets that exist among `item_ids` (at most the service's `max_availability_items`).
    pub async fn availability(&self, actor: &Principal, item_ids: &[String]) -> Result<Vec<Bucket>, Problem> {
        match self {
            Client::Local(service) => Ok(service.availability(item_ids).await?),
            Client::Remote(client) => {
                let body = AvailabilityRequest {
                    item_ids: item_ids.to_vec(),
                };
                let found: AvailabilityResponse = client
                    .call(Method::POST, "/api/v1/inventory/availability", Some(&body), Some(actor))
                    .await?;
                found
                    .items
                    .into_iter()
                    .map(|i| bucket(i).map_err(Problem::from))
                    .collect()
            }
        }
    }

    /// Items changed since `after` (a position in inventory's change feed; 0 for the start).
    pub async fn changes(&self, after: i64) -> Result<Changes, Problem> {
        match self {
            Client::Local(service) => Ok(service.changes(after, MAX_CHANGES).await?),
            Client::Remote(client) => Ok(client
                .call::<(), Changes>(
                    Method::GET,
                    &format!("/internal/v1/inventory/changes?after={after}"),
                    None,
                    None,
                )
                .await?),
        }
    }
}

fn bucket(item: ItemResponse) -> Result<Bucket, Error> {
    let item_id = ItemId::parse(&item.item_id).map_err(|_| Error::ItemNotFound)?;
    Ok(Bucket {
        item_id,
        organization_id: item.organization_id,
        capacity: item.capacity,
        overbooking_limit: item.overbooking_limit,
        held: item.held,
        sold: item.sold,
    })
}

/// Routes only other Phoenix services call (never routed by the gateway; guarded by the internal token).
pub fn internal_router(service: Service) -> Router {
    Router::new()
        .route("/internal/v1/inventory/changes", get(internal_changes))
        .route("/internal/v1/inventory/items", post(internal_create_items))
        .with_state(service)
}

async fn internal_changes(
    State(service): State<Service>,
    Query(query): Query<ChangesQuery>,
) -> Result<Json<Changes>, Problem> {
    Ok(Json(service.changes(query.after, MAX_CHANGES).await?))
}

/// Bulk creation, for the catalog loading its buckets. Internal because a principal still has to be named: the
/// calling service passes the operator or admin it acts for, checked as on the public API.
async fn internal_create_items(
    State(service): State<Service>,
    principal: Principal,
    Json(body): Json<CreateItems>,
) -> Result<Json<Created>, Problem> {
    Ok(Json(Created {
        created: service.create_items(&principal, &body.items).await?,
    }))
}

//! How other services reach inventory: the same handle whether inventory runs in this process or elsewhere.

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use phoenix_api::{IdempotencyKey, Json, Path, Principal, Problem, Query, remote};
use serde::{Deserialize, Serialize};

use crate::hold::Hold;
use crate::http::{AvailabilityRequest, AvailabilityResponse, HoldResponse, ItemResponse, LineBody};
use crate::item::{Bucket, ItemId};
use crate::{Error, HoldRequest, Service};

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
struct HoldBody {
    lines: Vec<LineBody>,
    ttl_secs: Option<u64>,
    reference: Option<String>,
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
    keep_committed: bool,
}

/// Most feed entries one call returns.
pub const MAX_CHANGES: u32 = 5_000;

impl Client {
    /// Creates or resizes a bucket, as `actor`; below what is held and sold is refused.
    pub async fn put_item(
        &self,
        actor: &Principal,
        item_id: &str,
        capacity: i64,
        overbooking_limit: i64,
        organization_id: Option<uuid::Uuid>,
    ) -> Result<Bucket, Problem> {
        let size = (capacity, overbooking_limit, false);
        self.resize_item(actor, item_id, size, organization_id).await
    }

    /// [`Client::put_item`], never below what is held and sold: the capacity becomes that instead
    /// ([`Service::put_item_keeping_committed`]).
    pub async fn put_item_keeping_committed(
        &self,
        actor: &Principal,
        item_id: &str,
        capacity: i64,
        overbooking_limit: i64,
        organization_id: Option<uuid::Uuid>,
    ) -> Result<Bucket, Problem> {
        let size = (capacity, overbooking_limit, true);
        self.resize_item(actor, item_id, size, organization_id).await
    }

    async fn resize_item(
        &self,
        actor: &Principal,
        item_id: &str,
        (capacity, overbooking_limit, keep_committed): (i64, i64, bool),
        organization_id: Option<uuid::Uuid>,
    ) -> Result<Bucket, Problem> {
        match self {
            Client::Local(service) if keep_committed => Ok(service
                .put_item_keeping_committed(actor, item_id, capacity, overbooking_limit, organization_id)
                .await?
                .0),
            Client::Local(service) => Ok(service
                .put_item(actor, item_id, capacity, overbooking_limit, organization_id)
                .await?
                .0),
            Client::Remote(client) => {
                let body = PutItemBody {
                    capacity,
                    overbooking_limit,
                    organization_id,
                    keep_committed,
                };
                let path = format!("/internal/v1/inventory/items/{item_id}");
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

    /// Holds every line or none for `holder` (who will own the hold), [managed](crate::Hold::managed) by the calling
    /// service: only it confirms or releases the hold. The idempotency key makes a retry after a lost answer return
    /// the first hold instead of holding twice.
    pub async fn create_hold(
        &self,
        holder: &Principal,
        request: &HoldRequest,
        idempotency_key: &str,
    ) -> Result<Hold, Problem> {
        match self {
            Client::Local(service) => Ok(service
                .create_managed_hold(holder, request.clone(), idempotency_key)
                .await?),
            Client::Remote(client) => {
                let body = HoldBody {
                    lines: request
                        .lines
                        .iter()
                        .map(|(item_id, quantity)| LineBody {
                            item_id: item_id.clone(),
                            quantity: *quantity,
                        })
                        .collect(),
                    ttl_secs: request.ttl_secs,
                    reference: request.reference.clone(),
                };
                let hold: HoldResponse = client
                    .call_keyed(
                        Method::POST,
                        "/internal/v1/inventory/holds",
                        Some(&body),
                        Some(holder),
                        Some(idempotency_key),
                    )
                    .await?;
                Ok(from_wire(hold)?)
            }
        }
    }

    /// A hold as `viewer` may see it.
    pub async fn hold(&self, viewer: &Principal, hold_id: uuid::Uuid) -> Result<Hold, Problem> {
        match self {
            Client::Local(service) => Ok(service.hold(viewer, hold_id).await?),
            Client::Remote(client) => {
                let path = format!("/internal/v1/inventory/holds/{hold_id}");
                let hold: HoldResponse = client.call::<(), _>(Method::GET, &path, None, Some(viewer)).await?;
                Ok(from_wire(hold)?)
            }
        }
    }

    /// Sells a hold's units. Idempotent; refused once the hold expired or was released.
    pub async fn confirm(&self, actor: &Principal, hold_id: uuid::Uuid) -> Result<Hold, Problem> {
        match self {
            Client::Local(service) => Ok(service.confirm(actor, hold_id).await?),
            Client::Remote(client) => self.hold_action(client, actor, hold_id, "confirm").await,
        }
    }

    /// Returns a hold's units to stock, held or sold. Idempotent.
    pub async fn release(&self, actor: &Principal, hold_id: uuid::Uuid) -> Result<Hold, Problem> {
        match self {
            Client::Local(service) => Ok(service.release(actor, hold_id).await?),
            Client::Remote(client) => self.hold_action(client, actor, hold_id, "release").await,
        }
    }

    async fn hold_action(
        &self,
        client: &remote::Client,
        actor: &Principal,
        hold_id: uuid::Uuid,
        action: &str,
    ) -> Result<Hold, Problem> {
        let path = format!("/internal/v1/inventory/holds/{hold_id}/{action}");
        let hold: HoldResponse = client.call::<(), _>(Method::POST, &path, None, Some(actor)).await?;
        Ok(from_wire(hold)?)
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

fn from_wire(hold: HoldResponse) -> Result<Hold, Error> {
    crate::http::hold_from_json(serde_json::to_value(hold).map_err(|_| Error::HoldNotFound)?)
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
        asked_capacity: item.asked_capacity,
    })
}

/// Routes only other Phoenix services call (never routed by the gateway; guarded by the internal token).
pub fn internal_router(service: Service) -> Router {
    Router::new()
        .route("/internal/v1/inventory/changes", get(internal_changes))
        .route("/internal/v1/inventory/items", post(internal_create_items))
        .route("/internal/v1/inventory/items/{item_id}", put(internal_put_item))
        .route("/internal/v1/inventory/holds", post(internal_create_hold))
        .route("/internal/v1/inventory/holds/{hold_id}", get(internal_hold))
        .route("/internal/v1/inventory/holds/{hold_id}/confirm", post(internal_confirm))
        .route("/internal/v1/inventory/holds/{hold_id}/release", post(internal_release))
        .with_state(service)
}

/// Holds for the principal a service acts for (the saga, for a booking's customer, who may not hold directly).
async fn internal_create_hold(
    State(service): State<Service>,
    principal: Principal,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<HoldBody>,
) -> Result<(StatusCode, Json<HoldResponse>), Problem> {
    let request = HoldRequest {
        lines: body.lines.into_iter().map(|l| (l.item_id, l.quantity)).collect(),
        ttl_secs: body.ttl_secs,
        reference: body.reference,
    };
    let hold = service.create_managed_hold(&principal, request, &key).await?;
    Ok((StatusCode::CREATED, Json(HoldResponse::from(&hold))))
}

async fn internal_hold(
    State(service): State<Service>,
    principal: Principal,
    Path(hold_id): Path<uuid::Uuid>,
) -> Result<Json<HoldResponse>, Problem> {
    Ok(Json(HoldResponse::from(&service.hold(&principal, hold_id).await?)))
}

async fn internal_confirm(
    State(service): State<Service>,
    principal: Principal,
    Path(hold_id): Path<uuid::Uuid>,
) -> Result<Json<HoldResponse>, Problem> {
    Ok(Json(HoldResponse::from(&service.confirm(&principal, hold_id).await?)))
}

async fn internal_release(
    State(service): State<Service>,
    principal: Principal,
    Path(hold_id): Path<uuid::Uuid>,
) -> Result<Json<HoldResponse>, Problem> {
    Ok(Json(HoldResponse::from(&service.release(&principal, hold_id).await?)))
}

async fn internal_changes(
    State(service): State<Service>,
    Query(query): Query<ChangesQuery>,
) -> Result<Json<Changes>, Problem> {
    Ok(Json(service.changes(query.after, MAX_CHANGES).await?))
}

/// Sizing, for the catalog following a hotel's rooms and a flight's schedule: the catalog's own buckets, which the
/// public route refuses to operators ([`Service::refuse_catalogs`]). The principal is the operator or admin it acts
/// for, checked as on the public API.
async fn internal_put_item(
    State(service): State<Service>,
    principal: Principal,
    Path(item_id): Path<String>,
    Json(body): Json<crate::http::PutItemRequest>,
) -> Result<impl axum::response::IntoResponse, Problem> {
    crate::http::resize(&service, &principal, &item_id, body).await
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

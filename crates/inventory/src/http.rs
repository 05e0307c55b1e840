//! Inventory's HTTP API: wire types, handlers and their OpenAPI description. Who may call each route is declared in
//! [`api`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use phoenix_api::{IdempotencyKey, Json, Path, Principal, Problem, RequireRoles, Role};
use phoenix_db::Timestamp;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::hold::{Hold, Line, Status};
use crate::item::{Bucket, ItemId};
use crate::service::HoldRequest;
use crate::{Error, Service};

type Result<T> = std::result::Result<T, Problem>;

const TAG: &str = "inventory";

/// Roles that make, confirm and release holds over HTTP (services do it through the inventory client).
pub const HOLDER_ROLES: &[Role] = &[Role::Agent, Role::Partner, Role::Admin];

pub fn api() -> OpenApiRouter<Service> {
    let managers = OpenApiRouter::new()
        .routes(routes!(put_item))
        .route_layer(RequireRoles::any_of(&[Role::Operator, Role::Admin]));
    let readers = OpenApiRouter::new()
        .routes(routes!(get_item))
        .routes(routes!(availability))
        .routes(routes!(get_hold))
        .route_layer(RequireRoles::authenticated());
    let holders = OpenApiRouter::new()
        .routes(routes!(create_hold))
        .routes(routes!(confirm_hold))
        .routes(routes!(release_hold))
        .route_layer(RequireRoles::any_of(HOLDER_ROLES));
    managers.merge(readers).merge(holders)
}

/// The path prefixes inventory answers, for the gateway's routing table when inventory runs elsewhere.
pub const PATH_PREFIXES: &[&str] = &["/api/v1/inventory/"];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutItemRequest {
    pub capacity: i64,
    #[serde(default)]
    pub overbooking_limit: i64,
    /// For admins creating a bucket on behalf of an organization; operators' buckets belong to their own.
    #[serde(default)]
    pub organization_id: Option<Uuid>,
    /// Never below what is held and sold: the capacity becomes that instead of a 409 (closing out a night or a
    /// flight that already sold some). The answer says what it became.
    #[serde(default)]
    pub keep_committed: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ItemResponse {
    pub item_id: String,
    pub organization_id: Option<Uuid>,
    pub capacity: i64,
    pub overbooking_limit: i64,
    pub held: i64,
    pub sold: i64,
    /// Units a new hold could take now.
    pub available: i64,
    /// What was last asked for when more was already held and sold (`keep_committed`): the capacity keeps those
    /// units, sells no more, and comes down to this as they are released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_capacity: Option<i64>,
}

impl From<Bucket> for ItemResponse {
    fn from(bucket: Bucket) -> ItemResponse {
        ItemResponse {
            available: bucket.available(),
            asked_capacity: bucket.asked_capacity,
            item_id: bucket.item_id.to_string(),
            organization_id: bucket.organization_id,
            capacity: bucket.capacity,
            overbooking_limit: bucket.overbooking_limit,
            held: bucket.held,
            sold: bucket.sold,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityRequest {
    /// At most 500 (configurable) item ids; unknown ones are left out of the answer.
    pub item_ids: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AvailabilityResponse {
    pub items: Vec<ItemResponse>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineBody {
    pub item_id: String,
    /// At least 1 (at most `inventory.holds.max_quantity`, 1,000 unless configured).
    #[schema(minimum = 1)]
    pub quantity: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHoldRequest {
    /// Every line is held, or none; each item once (at most `inventory.holds.max_lines`, 20 unless configured).
    #[schema(min_items = 1)]
    pub lines: Vec<LineBody>,
    /// Seconds until the hold expires and its units return (`inventory.holds`: default 900, 10 to 3600 unless
    /// configured).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86_400)]
    pub ttl_secs: Option<u64>,
    /// Free text to find the hold by later, such as a booking id: 1 to 128 characters, no control characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HoldResponse {
    pub hold_id: Uuid,
    pub status: Status,
    pub lines: Vec<LineBody>,
    pub holder_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub reference: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When it was confirmed, released or expired.
    #[serde(with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
    /// Made by a booking: confirmed and released only through the booking (409 `hold_managed` here).
    #[serde(default)]
    pub managed: bool,
}

impl PartialEq for LineBody {
    fn eq(&self, other: &LineBody) -> bool {
        self.item_id == other.item_id && self.quantity == other.quantity
    }
}

impl Eq for LineBody {}

impl From<&Hold> for HoldResponse {
    fn from(hold: &Hold) -> HoldResponse {
        HoldResponse {
            hold_id: hold.id,
            status: hold.status,
            lines: hold
                .lines
                .iter()
                .map(|l| LineBody {
                    item_id: l.item_id.to_string(),
                    quantity: l.quantity,
                })
                .collect(),
            holder_id: hold.holder_id,
            organization_id: hold.organization_id,
            reference: hold.reference.clone(),
            created_at: hold.created_at.datetime(),
            expires_at: hold.expires_at.datetime(),
            closed_at: hold.closed_at.map(Timestamp::datetime),
            managed: hold.managed,
        }
    }
}

/// The stored body of a created hold, replayed for retries with the same idempotency key.
pub fn hold_json(hold: &Hold) -> serde_json::Value {
    serde_json::to_value(HoldResponse::from(hold)).unwrap_or_default()
}

/// A hold back from its stored body.
pub fn hold_from_json(body: serde_json::Value) -> std::result::Result<Hold, Error> {
    let broken = || {
        Error::Broken(crate::ledger::Broken {
            item_id: String::new(),
            what: "a stored hold response does not parse",
        })
    };
    let response: HoldResponse = serde_json::from_value(body).map_err(|_| broken())?;
    let lines = response
        .lines
        .into_iter()
        .map(|l| {
            Ok(Line {
                item_id: ItemId::parse(&l.item_id).map_err(|_| broken())?,
                quantity: l.quantity,
            })
        })
        .collect::<std::result::Result<Vec<_>, Error>>()?;
    Ok(Hold {
        id: response.hold_id,
        holder_id: response.holder_id,
        organization_id: response.organization_id,
        reference: response.reference,
        status: response.status,
        lines,
        created_at: response.created_at.into(),
        expires_at: response.expires_at.into(),
        closed_at: response.closed_at.map(Timestamp::from),
        managed: response.managed,
    })
}

/// Create or resize a bucket (operators of the owning organization, admins). Lowering capacity below what is held
/// and sold is refused (409), unless `keep_committed` asks for that instead. The catalog's buckets (`room:`,
/// `seat:` and `fare:` ids) follow the hotel's rooms and the flight's schedule: only admins size them here (403
/// `catalog_item`).
#[utoipa::path(put, path = "/api/v1/inventory/items/{item_id}", tag = TAG, security(("bearer" = [])),
    params(("item_id" = String, Path)), request_body = PutItemRequest,
    responses((status = 200, body = ItemResponse), (status = 201, body = ItemResponse),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn put_item(
    State(service): State<Service>,
    principal: Principal,
    Path(item_id): Path<String>,
    Json(body): Json<PutItemRequest>,
) -> Result<impl IntoResponse> {
    service.refuse_catalogs(&principal, &item_id)?;
    resize(&service, &principal, &item_id, body).await
}

/// Creates or resizes a bucket as `principal`: the public route, and the internal one the catalog sizes its own
/// buckets through.
pub(crate) async fn resize(
    service: &Service,
    principal: &Principal,
    item_id: &str,
    body: PutItemRequest,
) -> Result<(StatusCode, Json<ItemResponse>)> {
    let size = (body.capacity, body.overbooking_limit, body.organization_id);
    let (bucket, created) = if body.keep_committed {
        service
            .put_item_keeping_committed(principal, item_id, size.0, size.1, size.2)
            .await?
    } else {
        service.put_item(principal, item_id, size.0, size.1, size.2).await?
    };
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(ItemResponse::from(bucket))))
}

/// A bucket's counters; expired holds never count, even before they are swept.
#[utoipa::path(get, path = "/api/v1/inventory/items/{item_id}", tag = TAG, security(("bearer" = [])),
    params(("item_id" = String, Path)),
    responses((status = 200, body = ItemResponse), (status = 404, body = Problem)))]
async fn get_item(State(service): State<Service>, Path(item_id): Path<String>) -> Result<Json<ItemResponse>> {
    Ok(Json(service.item(&item_id).await?.into()))
}

/// Counters of many buckets at once.
#[utoipa::path(post, path = "/api/v1/inventory/availability", tag = TAG, security(("bearer" = [])),
    request_body = AvailabilityRequest,
    responses((status = 200, body = AvailabilityResponse), (status = 422, body = Problem)))]
async fn availability(
    State(service): State<Service>,
    Json(body): Json<AvailabilityRequest>,
) -> Result<Json<AvailabilityResponse>> {
    let buckets = service.availability(&body.item_ids).await?;
    Ok(Json(AvailabilityResponse {
        items: buckets.into_iter().map(ItemResponse::from).collect(),
    }))
}

/// Hold units of one or more items until `ttl_secs` pass: all lines or none. Requires `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/inventory/holds", tag = TAG, security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "retries with the same key get the same answer")),
    request_body = CreateHoldRequest,
    responses((status = 201, body = HoldResponse), (status = 409, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)))]
async fn create_hold(
    State(service): State<Service>,
    principal: Principal,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<CreateHoldRequest>,
) -> Result<impl IntoResponse> {
    let request = HoldRequest {
        lines: body.lines.into_iter().map(|l| (l.item_id, l.quantity)).collect(),
        ttl_secs: body.ttl_secs,
        reference: body.reference,
    };
    let hold = service.create_hold(&principal, request, Some(&key)).await?;
    Ok((StatusCode::CREATED, Json(HoldResponse::from(&hold))))
}

/// A hold: yours, your organization's, or any for support and admin.
#[utoipa::path(get, path = "/api/v1/inventory/holds/{hold_id}", tag = TAG, security(("bearer" = [])),
    params(("hold_id" = Uuid, Path)),
    responses((status = 200, body = HoldResponse), (status = 404, body = Problem)))]
async fn get_hold(
    State(service): State<Service>,
    principal: Principal,
    Path(hold_id): Path<Uuid>,
) -> Result<Json<HoldResponse>> {
    Ok(Json(HoldResponse::from(&service.hold(&principal, hold_id).await?)))
}

/// Confirm a hold: its units become sold. Confirming twice is fine; after expiry or release it is refused, and so
/// is a hold a booking made (409 `hold_managed`: the booking confirms it).
#[utoipa::path(post, path = "/api/v1/inventory/holds/{hold_id}/confirm", tag = TAG, security(("bearer" = [])),
    params(("hold_id" = Uuid, Path)),
    responses((status = 200, body = HoldResponse), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn confirm_hold(
    State(service): State<Service>,
    principal: Principal,
    Path(hold_id): Path<Uuid>,
) -> Result<Json<HoldResponse>> {
    service.refuse_managed(&principal, hold_id).await?;
    Ok(Json(HoldResponse::from(&service.confirm(&principal, hold_id).await?)))
}

/// Release a hold: held units return at once; a confirmed hold's sold units return too (a cancellation).
/// Releasing twice, or an expired hold, is fine. A hold a booking made is refused (409 `hold_managed`): cancelling
/// the booking releases it, with the refund.
#[utoipa::path(post, path = "/api/v1/inventory/holds/{hold_id}/release", tag = TAG, security(("bearer" = [])),
    params(("hold_id" = Uuid, Path)),
    responses((status = 200, body = HoldResponse), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn release_hold(
    State(service): State<Service>,
    principal: Principal,
    Path(hold_id): Path<Uuid>,
) -> Result<Json<HoldResponse>> {
    service.refuse_managed(&principal, hold_id).await?;
    Ok(Json(HoldResponse::from(&service.release(&principal, hold_id).await?)))
}

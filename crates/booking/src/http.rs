//! Booking's HTTP API: handlers and their OpenAPI description. Who may call each route is declared in [`api`]; the
//! views are the domain types themselves ([`Booking`] and its parts).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use phoenix_api::{IdempotencyKey, Json, Page, PageParams, Path, Principal, Problem, Query, RequireRoles};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::Service;
use crate::booking::Booking;
use crate::error::failed_problem;
use crate::policy::Status;
use crate::request::{BOOKER_ROLES, BookingRequest};
use crate::service::ListFilter;

type Result<T> = std::result::Result<T, Problem>;

const TAG: &str = "bookings";

/// The path prefixes booking answers, for the gateway's routing table when booking runs elsewhere.
pub const PATH_PREFIXES: &[&str] = &["/api/v1/bookings"];

pub fn api() -> OpenApiRouter<Service> {
    // "Manage my booking" needs no account: the locator and a traveller's last name are the credential.
    let public = OpenApiRouter::new().routes(routes!(lookup));
    let bookers = OpenApiRouter::new()
        .routes(routes!(create))
        .route_layer(RequireRoles::any_of(BOOKER_ROLES));
    let readers = OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_booking))
        .routes(routes!(cancel))
        .route_layer(RequireRoles::authenticated());
    public.merge(bookers).merge(readers)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only bookings in this status.
    pub status: Option<Status>,
    /// Only bookings for this customer.
    pub customer_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupParams {
    /// The six-character record locator, any case.
    pub locator: String,
    /// Any traveller's last name, any case.
    pub last_name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why, in the customer's words (at most 500 characters).
    #[serde(default)]
    pub reason: Option<String>,
    /// Refund everything paid, whatever the items' terms: for support and admin only (403 `forbidden` for anyone
    /// else), with a reason (the supplier cancelled or moved the trip, say).
    #[serde(default)]
    pub waive_fees: bool,
}

/// The answer to a create or cancel: done, still with the saga (202 and where to look), or failed (the failure as
/// a problem naming the booking).
fn answer(booking: Booking, done: StatusCode) -> Response {
    match booking.status {
        Status::Failed => failed_problem(&booking).into_response(),
        status if status.is_in_flight() => {
            let location = format!("/api/v1/bookings/{}", booking.id);
            (StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(booking)).into_response()
        }
        _ => (done, Json(booking)).into_response(),
    }
}

/// Book one or more items. Requires `Idempotency-Key`. Answers 201 once confirmed, 202 (with `Location`) while
/// the payment is still being taken, or a problem with the failure's code (`payment_declined` 402,
/// `insufficient_inventory` 409, ...) and the `booking_id`.
#[utoipa::path(post, path = "/api/v1/bookings", tag = TAG, security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "retries with the same key get the same booking")),
    request_body = BookingRequest,
    responses((status = 201, body = Booking), (status = 202, body = Booking), (status = 402, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)))]
async fn create(
    State(service): State<Service>,
    principal: Principal,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<BookingRequest>,
) -> Result<Response> {
    let created = service.create(&principal, body, &key).await?;
    Ok(answer(created.booking, StatusCode::CREATED))
}

/// Your bookings, your organization's (agents, partners), or all (support, admin); newest first. Pages hold 20
/// unless `limit` says (`booking.default_page_size`; at most `booking.max_page_size`, 100).
#[utoipa::path(get, path = "/api/v1/bookings", tag = TAG, security(("bearer" = [])),
    params(PageParams, ListParams),
    responses((status = 200, body = Page<Booking>), (status = 422, body = Problem)))]
async fn list(
    State(service): State<Service>,
    principal: Principal,
    Query(page): Query<PageParams>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Booking>>> {
    let filter = ListFilter {
        status: params.status,
        customer_id: params.customer_id,
    };
    Ok(Json(service.list(&principal, filter, &page).await?))
}

/// A booking by its locator and any traveller's last name ("manage my booking"); no account needed.
#[utoipa::path(get, path = "/api/v1/bookings/lookup", tag = TAG, params(LookupParams),
    responses((status = 200, body = Booking), (status = 404, body = Problem)))]
async fn lookup(State(service): State<Service>, Query(params): Query<LookupParams>) -> Result<Json<Booking>> {
    Ok(Json(service.lookup(&params.locator, &params.last_name).await?))
}

/// A booking you may see.
#[utoipa::path(get, path = "/api/v1/bookings/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Booking), (status = 404, body = Problem)))]
async fn get_booking(
    State(service): State<Service>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Booking>> {
    Ok(Json(service.get(&principal, id).await?))
}

/// Cancel a confirmed booking. The refund follows each item's terms at the moment of asking, unless support or an
/// admin waives the fees (`waive_fees`, with a reason): then everything paid is refunded, or what is left of it when
/// part was refunded before (`cancellation`: `policy_refund_minor` what the terms give, `refund_minor` what this
/// cancellation returned once cancelled, `refunded_before_minor` what had come back before). Answers 200 once
/// refunded, 202 while the refund is under way; asking again is harmless, but waiving the fees of a booking already
/// cancelled under its terms is refused (409 `already_cancelled`: refund the rest through its payment).
#[utoipa::path(put, path = "/api/v1/bookings/{id}/cancel", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CancelRequest,
    responses((status = 200, body = Booking), (status = 202, body = Booking), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn cancel(
    State(service): State<Service>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<CancelRequest>,
) -> Result<Response> {
    let booking = service
        .request_cancellation(&principal, id, body.reason, body.waive_fees)
        .await?;
    Ok(answer(booking, StatusCode::OK))
}

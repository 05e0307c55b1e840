//! The catalog's HTTP API: public search and browse (anyone, signed in or not), quotes (anyone signed in), and
//! management under `/api/v1/catalog/` (operators of the owning organization, and admins; its list of exchange rates
//! is public reference data, as the airports are). Who may call each route is declared in [`api`]; which object a
//! caller may touch is checked by the service.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use phoenix_api::{Json, Path, Principal, Problem, Query, RequireRoles, Role};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::Catalog;
use crate::model::{
    AirlineInput, AirportInput, AirportView, CalendarChange, CapacityInput, FxRateInput, FxRateView, HotelDetails,
    HotelInput, HotelView, PricesInput, RatePlanInput, RatePlanView, RoomTypeInput, RoomTypeView, ScheduleInput,
    ScheduleView,
};
use crate::offer::Offer;
use crate::quote::{Quotation, QuoteRequest};
use crate::search::{
    AirportQuery, DepartureDetails, FlightSearch, FlightSearchResponse, HotelSearch, HotelSearchResponse,
    Recommendation, Recommendations,
};

type Result<T> = std::result::Result<T, Problem>;

const TAG: &str = "catalog";
const SEARCH: &str = "search";

pub fn api() -> OpenApiRouter<Catalog> {
    let public = OpenApiRouter::new()
        .routes(routes!(search_hotels))
        .routes(routes!(search_flights))
        .routes(routes!(recommend_hotels))
        .routes(routes!(airports))
        .routes(routes!(hotel_details))
        .routes(routes!(flight_details))
        .routes(routes!(offer))
        .routes(routes!(fx_rates));
    let signed_in = OpenApiRouter::new()
        .routes(routes!(quote))
        .route_layer(RequireRoles::authenticated());
    let managers = OpenApiRouter::new()
        .routes(routes!(create_hotel))
        .routes(routes!(manage_hotel, update_hotel, deactivate_hotel))
        .routes(routes!(create_room_type))
        .routes(routes!(update_room_type, deactivate_room_type))
        .routes(routes!(set_capacity))
        .routes(routes!(create_rate_plan))
        .routes(routes!(update_rate_plan, deactivate_rate_plan))
        .routes(routes!(set_prices))
        .routes(routes!(create_schedule))
        .routes(routes!(manage_schedule, update_schedule, deactivate_schedule))
        .route_layer(RequireRoles::any_of(&[Role::Operator, Role::Admin]));
    let admins = OpenApiRouter::new()
        .routes(routes!(put_airport))
        .routes(routes!(create_airline))
        .routes(routes!(set_fx_rate, delete_fx_rate))
        .route_layer(RequireRoles::any_of(&[Role::Admin]));
    public.merge(signed_in).merge(managers).merge(admins)
}

/// The path prefixes the catalog answers, for the gateway's routing table when the catalog runs elsewhere.
pub const PATH_PREFIXES: &[&str] = &[
    "/api/v1/catalog/",
    "/api/v1/search/",
    "/api/v1/recommendations/",
    "/api/v1/airports",
    "/api/v1/hotels/",
    "/api/v1/flights/",
    "/api/v1/offers/",
    "/api/v1/quotes",
];

/// A search answer, already serialized (and possibly cached).
struct Raw(axum::body::Bytes);

impl IntoResponse for Raw {
    fn into_response(self) -> axum::response::Response {
        ([(axum::http::header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

// Search and browse

/// Hotels with every night of the stay available for the rooms asked, with their cheapest options and stay totals.
#[utoipa::path(get, path = "/api/v1/search/hotels", tag = SEARCH, params(HotelSearch),
    responses((status = 200, body = HotelSearchResponse), (status = 422, body = Problem)))]
async fn search_hotels(State(catalog): State<Catalog>, Query(query): Query<HotelSearch>) -> Result<impl IntoResponse> {
    Ok(Raw(catalog.search_hotels(&query).await?))
}

/// Direct and one-stop itineraries (45 minutes to 6 hours to connect), with fares and totals; both ways for a
/// round trip.
#[utoipa::path(get, path = "/api/v1/search/flights", tag = SEARCH, params(FlightSearch),
    responses((status = 200, body = FlightSearchResponse), (status = 422, body = Problem)))]
async fn search_flights(
    State(catalog): State<Catalog>,
    Query(query): Query<FlightSearch>,
) -> Result<impl IntoResponse> {
    Ok(Raw(catalog.search_flights(&query).await?))
}

/// Hotels near a point by distance, rating or price.
#[utoipa::path(get, path = "/api/v1/recommendations/hotels", tag = SEARCH, params(Recommendations),
    responses((status = 200, body = Vec<Recommendation>), (status = 422, body = Problem)))]
async fn recommend_hotels(
    State(catalog): State<Catalog>,
    Query(query): Query<Recommendations>,
) -> Result<Json<Vec<Recommendation>>> {
    Ok(Json(catalog.recommend_hotels(&query)?))
}

/// Airport autocomplete by code, city or name.
#[utoipa::path(get, path = "/api/v1/airports", tag = SEARCH, params(AirportQuery),
    responses((status = 200, body = Vec<AirportView>), (status = 422, body = Problem)))]
async fn airports(State(catalog): State<Catalog>, Query(query): Query<AirportQuery>) -> Result<Json<Vec<AirportView>>> {
    Ok(Json(catalog.airports(&query)?))
}

/// A hotel on sale with its room types and rate plans.
#[utoipa::path(get, path = "/api/v1/hotels/{hotel_id}", tag = SEARCH, params(("hotel_id" = Uuid, Path)),
    responses((status = 200, body = HotelDetails), (status = 404, body = Problem)))]
async fn hotel_details(State(catalog): State<Catalog>, Path(id): Path<Uuid>) -> Result<Json<HotelDetails>> {
    Ok(Json(catalog.hotel_details(id)?))
}

/// A departure with every cabin's seats and fares.
#[utoipa::path(get, path = "/api/v1/flights/{departure_id}", tag = SEARCH, params(("departure_id" = String, Path)),
    responses((status = 200, body = DepartureDetails), (status = 404, body = Problem)))]
async fn flight_details(State(catalog): State<Catalog>, Path(id): Path<String>) -> Result<Json<DepartureDetails>> {
    Ok(Json(catalog.departure_details(&id).await?))
}

#[derive(Debug, Serialize, ToSchema)]
struct OfferView {
    id: Uuid,
    expires_at_unix: i64,
    amount_minor: i64,
    currency: String,
    #[schema(value_type = Object)]
    details: serde_json::Value,
}

impl From<Offer> for OfferView {
    fn from(o: Offer) -> OfferView {
        OfferView {
            id: o.id,
            expires_at_unix: o.expires_at_unix,
            amount_minor: o.total.amount_minor,
            currency: o.total.currency,
            details: o.details,
        }
    }
}

/// What a quoted offer id says, if this catalog signed it (422 `invalid_offer` otherwise) and it has not expired (422
/// `offer_expired`).
#[utoipa::path(get, path = "/api/v1/offers/{offer_id}", tag = SEARCH, params(("offer_id" = String, Path)),
    responses((status = 200, body = OfferView), (status = 422, body = Problem)))]
async fn offer(State(catalog): State<Catalog>, Path(id): Path<String>) -> Result<Json<OfferView>> {
    Ok(Json(catalog.verify_offer(&id)?.into()))
}

/// Price a basket before booking it: each item as search prices it (or at the price of the offer presented with
/// it), in one currency, with the inventory a booking holds and the cancellation terms.
#[utoipa::path(post, path = "/api/v1/quotes", tag = SEARCH, security(("bearer" = [])), request_body = QuoteRequest,
    responses((status = 200, body = Quotation), (status = 401, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn quote(
    State(catalog): State<Catalog>,
    principal: Principal,
    Json(body): Json<QuoteRequest>,
) -> Result<Json<Quotation>> {
    Ok(Json(catalog.quote(&principal, &body).await?))
}

// Hotels

/// Create a hotel (operators: in their organization; admins: name it).
#[utoipa::path(post, path = "/api/v1/catalog/hotels", tag = TAG, security(("bearer" = [])),
    request_body = HotelInput,
    responses((status = 201, body = HotelView), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create_hotel(
    State(catalog): State<Catalog>,
    principal: Principal,
    Json(body): Json<HotelInput>,
) -> Result<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(catalog.create_hotel(&principal, body).await?)))
}

/// A hotel as its managers see it (404 for anyone else).
#[utoipa::path(get, path = "/api/v1/catalog/hotels/{hotel_id}", tag = TAG, security(("bearer" = [])),
    params(("hotel_id" = Uuid, Path)), responses((status = 200, body = HotelDetails), (status = 404, body = Problem)))]
async fn manage_hotel(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<HotelDetails>> {
    Ok(Json(catalog.hotel_for_manager(&principal, id)?))
}

#[utoipa::path(put, path = "/api/v1/catalog/hotels/{hotel_id}", tag = TAG, security(("bearer" = [])),
    params(("hotel_id" = Uuid, Path)), request_body = HotelInput,
    responses((status = 200, body = HotelView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn update_hotel(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<HotelInput>,
) -> Result<Json<HotelView>> {
    Ok(Json(catalog.update_hotel(&principal, id, body).await?))
}

/// Take a hotel off sale.
#[utoipa::path(delete, path = "/api/v1/catalog/hotels/{hotel_id}", tag = TAG, security(("bearer" = [])),
    params(("hotel_id" = Uuid, Path)),
    responses((status = 200, body = HotelView), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn deactivate_hotel(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<HotelView>> {
    Ok(Json(catalog.deactivate_hotel(&principal, id).await?))
}

#[utoipa::path(post, path = "/api/v1/catalog/hotels/{hotel_id}/room-types", tag = TAG, security(("bearer" = [])),
    params(("hotel_id" = Uuid, Path)), request_body = RoomTypeInput,
    responses((status = 201, body = RoomTypeView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn create_room_type(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path(hotel_id): Path<Uuid>,
    Json(body): Json<RoomTypeInput>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(catalog.create_room_type(&principal, hotel_id, body).await?),
    ))
}

/// Change a room type; a new number of rooms resizes every priced night from today that had the old number on
/// sale (nights with their own allotment, or closed out, keep it).
#[utoipa::path(put, path = "/api/v1/catalog/hotels/{hotel_id}/room-types/{room_type_id}", tag = TAG,
    security(("bearer" = [])), params(("hotel_id" = Uuid, Path), ("room_type_id" = Uuid, Path)),
    request_body = RoomTypeInput,
    responses((status = 200, body = RoomTypeView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn update_room_type(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
    Json(body): Json<RoomTypeInput>,
) -> Result<Json<RoomTypeView>> {
    Ok(Json(catalog.update_room_type(&principal, hotel_id, id, body).await?))
}

#[utoipa::path(delete, path = "/api/v1/catalog/hotels/{hotel_id}/room-types/{room_type_id}", tag = TAG,
    security(("bearer" = [])), params(("hotel_id" = Uuid, Path), ("room_type_id" = Uuid, Path)),
    responses((status = 200, body = RoomTypeView), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn deactivate_room_type(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<RoomTypeView>> {
    Ok(Json(catalog.deactivate_room_type(&principal, hotel_id, id).await?))
}

/// Rooms on sale for a range of nights: an allotment, or 0 to close out. A night never goes below the rooms held and
/// sold on it: it keeps those, sells no more, and is listed in `kept`.
#[utoipa::path(put, path = "/api/v1/catalog/hotels/{hotel_id}/room-types/{room_type_id}/capacity", tag = TAG,
    security(("bearer" = [])), params(("hotel_id" = Uuid, Path), ("room_type_id" = Uuid, Path)),
    request_body = CapacityInput,
    responses((status = 200, body = CalendarChange), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn set_capacity(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
    Json(body): Json<CapacityInput>,
) -> Result<Json<CalendarChange>> {
    Ok(Json(catalog.set_capacity(&principal, hotel_id, id, body).await?))
}

#[utoipa::path(post, path = "/api/v1/catalog/hotels/{hotel_id}/rate-plans", tag = TAG, security(("bearer" = [])),
    params(("hotel_id" = Uuid, Path)), request_body = RatePlanInput,
    responses((status = 201, body = RatePlanView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn create_rate_plan(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path(hotel_id): Path<Uuid>,
    Json(body): Json<RatePlanInput>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(catalog.create_rate_plan(&principal, hotel_id, body).await?),
    ))
}

#[utoipa::path(put, path = "/api/v1/catalog/hotels/{hotel_id}/rate-plans/{rate_plan_id}", tag = TAG,
    security(("bearer" = [])), params(("hotel_id" = Uuid, Path), ("rate_plan_id" = Uuid, Path)),
    request_body = RatePlanInput,
    responses((status = 200, body = RatePlanView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn update_rate_plan(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
    Json(body): Json<RatePlanInput>,
) -> Result<Json<RatePlanView>> {
    Ok(Json(catalog.update_rate_plan(&principal, hotel_id, id, body).await?))
}

#[utoipa::path(delete, path = "/api/v1/catalog/hotels/{hotel_id}/rate-plans/{rate_plan_id}", tag = TAG,
    security(("bearer" = [])), params(("hotel_id" = Uuid, Path), ("rate_plan_id" = Uuid, Path)),
    responses((status = 200, body = RatePlanView), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn deactivate_rate_plan(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<RatePlanView>> {
    Ok(Json(catalog.deactivate_rate_plan(&principal, hotel_id, id).await?))
}

/// Price every night of a range (and open those nights for sale).
#[utoipa::path(put, path = "/api/v1/catalog/hotels/{hotel_id}/rate-plans/{rate_plan_id}/prices", tag = TAG,
    security(("bearer" = [])), params(("hotel_id" = Uuid, Path), ("rate_plan_id" = Uuid, Path)),
    request_body = PricesInput,
    responses((status = 200, body = CalendarChange), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn set_prices(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path((hotel_id, id)): Path<(Uuid, Uuid)>,
    Json(body): Json<PricesInput>,
) -> Result<Json<CalendarChange>> {
    Ok(Json(catalog.set_prices(&principal, hotel_id, id, body).await?))
}

// Flights

/// Create a schedule for one of the organization's airlines; its departures and their buckets follow.
#[utoipa::path(post, path = "/api/v1/catalog/schedules", tag = TAG, security(("bearer" = [])),
    request_body = ScheduleInput,
    responses((status = 201, body = ScheduleView), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn create_schedule(
    State(catalog): State<Catalog>,
    principal: Principal,
    Json(body): Json<ScheduleInput>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(catalog.create_schedule(&principal, body).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/catalog/schedules/{schedule_id}", tag = TAG, security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)),
    responses((status = 200, body = ScheduleView), (status = 404, body = Problem)))]
async fn manage_schedule(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<ScheduleView>> {
    Ok(Json(catalog.schedule_for_manager(&principal, id)?))
}

/// Replace a schedule. Departures still to fly that it no longer has (or cabins it drops) are closed in inventory;
/// refused (409 `departure_booked`) while travellers hold seats on any of them or on a departure whose time it moves.
#[utoipa::path(put, path = "/api/v1/catalog/schedules/{schedule_id}", tag = TAG, security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)), request_body = ScheduleInput,
    responses((status = 200, body = ScheduleView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn update_schedule(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<ScheduleInput>,
) -> Result<Json<ScheduleView>> {
    Ok(Json(catalog.update_schedule(&principal, id, body).await?))
}

/// Stop selling a schedule's departures. Its departures still to fly are closed in inventory; refused (409
/// `departure_booked`) while travellers hold seats on any of them.
#[utoipa::path(delete, path = "/api/v1/catalog/schedules/{schedule_id}", tag = TAG, security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)),
    responses((status = 200, body = ScheduleView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
async fn deactivate_schedule(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<ScheduleView>> {
    Ok(Json(catalog.deactivate_schedule(&principal, id).await?))
}

// Reference data (admins)

/// Create or change an airport.
#[utoipa::path(put, path = "/api/v1/catalog/airports/{code}", tag = TAG, security(("bearer" = [])),
    params(("code" = String, Path, pattern = "^[A-Z]{3}$", description = "IATA code, `CDG`")), request_body = AirportInput,
    responses((status = 204), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn put_airport(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path(code): Path<String>,
    Json(body): Json<AirportInput>,
) -> Result<StatusCode> {
    catalog.put_airport(&principal, &code, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Register an airline and the organization that runs it.
#[utoipa::path(post, path = "/api/v1/catalog/airlines", tag = TAG, security(("bearer" = [])),
    request_body = AirlineInput,
    responses((status = 201, body = AirlineInput), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_airline(
    State(catalog): State<Catalog>,
    principal: Principal,
    Json(body): Json<AirlineInput>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(catalog.create_airline(&principal, body).await?),
    ))
}

/// Every exchange rate the catalog converts with, by base then quote: units of `quote` per unit of `base` (its
/// inverse serving the other way), when it was last set, and, for admins, by whom.
///
/// Anyone may read it, signed in or not, as anyone may read the airports: like them the rates are reference data
/// that only admins change, and search already shows anyone prices converted into a display currency with them (and
/// quotes convert with them), so customers and agents are better told the rates than left to infer them. Who set a
/// rate is staff information: `updated_by` is shown to admins only. Answered from memory, like search.
#[utoipa::path(get, path = "/api/v1/catalog/fx-rates", tag = TAG, security((), ("bearer" = [])),
    responses((status = 200, body = Vec<FxRateView>)))]
async fn fx_rates(State(catalog): State<Catalog>, principal: Option<Extension<Principal>>) -> Json<Vec<FxRateView>> {
    Json(catalog.fx_rates(principal.as_ref().map(|p| &p.0)))
}

/// Set an exchange rate: units of `quote` per unit of `base` (its inverse serves the other way). Display and
/// quotation currencies convert with it, and so do fixed fees charged on products priced in another currency.
///
/// A pair of currencies has one rate: setting it removes the opposite pair's (`quote`/`base`), whose rate the answer
/// gives as `replaced_opposite`. A rate whose inverse would be above the maximum (below 0.000000001) is refused
/// (422 on `rate`), as is one out of a rate's own bounds.
#[utoipa::path(put, path = "/api/v1/catalog/fx-rates/{base}/{quote}", tag = TAG, security(("bearer" = [])),
    params(("base" = String, Path, pattern = "^[A-Z]{3}$", description = "ISO 4217"),
        ("quote" = String, Path, pattern = "^[A-Z]{3}$", description = "ISO 4217")), request_body = FxRateInput,
    responses((status = 200, body = FxRateView), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn set_fx_rate(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path((base, quote)): Path<(String, String)>,
    Json(body): Json<FxRateInput>,
) -> Result<Json<FxRateView>> {
    Ok(Json(catalog.set_fx_rate(&principal, &base, &quote, &body.rate).await?))
}

/// Delete an exchange rate, named as it is listed: a pair without a rate is 404 `not_found`, even when the opposite
/// pair has one. Search and quotes stop converting with it at once: prices are no longer shown in a display currency
/// that needed it, and a product with a fixed fee it converted is no longer found and quoting it is 422
/// `currency_mismatch`, until a rate for the pair is set again.
#[utoipa::path(delete, path = "/api/v1/catalog/fx-rates/{base}/{quote}", tag = TAG, security(("bearer" = [])),
    params(("base" = String, Path, pattern = "^[A-Z]{3}$", description = "ISO 4217"),
        ("quote" = String, Path, pattern = "^[A-Z]{3}$", description = "ISO 4217")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn delete_fx_rate(
    State(catalog): State<Catalog>,
    principal: Principal,
    Path((base, quote)): Path<(String, String)>,
) -> Result<StatusCode> {
    catalog.delete_fx_rate(&principal, &base, &quote).await?;
    Ok(StatusCode::NO_CONTENT)
}

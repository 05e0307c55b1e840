//! Payment's HTTP API: wire types, handlers and their OpenAPI description. Who may call each route is declared in
//! [`api`]; the same handlers serve the internal routes ([`crate::internal_router`]) without role checks.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use phoenix_api::{IdempotencyKey, Json, Path, Principal, Problem, RequireRoles, Role};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::Service;
use crate::payment::{Payment, Status};
use crate::service::AuthorizeRequest;

type Result<T> = std::result::Result<T, Problem>;

const TAG: &str = "payments";

/// Roles that authorize, capture and void over HTTP, within their organization (services do it through the
/// payment client, for the principal they act for: a customer pays through a booking). A customer could otherwise
/// test stolen cards against the provider with authorizations nobody settles.
pub const SETTLER_ROLES: &[Role] = &[Role::Agent, Role::Partner, Role::Admin];

/// Roles that refund over HTTP: the settlers, and support, who give money back (a goodwill refund, the rest of a
/// booking cancelled under its terms) but neither capture nor void.
pub const REFUNDER_ROLES: &[Role] = &[Role::Agent, Role::Partner, Role::Support, Role::Admin];

pub fn api() -> OpenApiRouter<Service> {
    let readers = OpenApiRouter::new()
        .routes(routes!(get_payment))
        .route_layer(RequireRoles::authenticated());
    let settlers = OpenApiRouter::new()
        .routes(routes!(authorize))
        .routes(routes!(capture))
        .routes(routes!(void))
        .route_layer(RequireRoles::any_of(SETTLER_ROLES));
    let refunders = OpenApiRouter::new()
        .routes(routes!(refund))
        .route_layer(RequireRoles::any_of(REFUNDER_ROLES));
    readers.merge(settlers).merge(refunders)
}

/// The path prefixes payment answers, for the gateway's routing table when payment runs elsewhere.
pub const PATH_PREFIXES: &[&str] = &["/api/v1/payments"];

/// A payment as the API shows it. No card data: the provider holds the card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    pub status: Status,
    /// Authorized, in minor units of `currency`.
    pub amount_minor: i64,
    pub currency: String,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    /// `simulated` or `stripe`.
    pub provider: String,
    /// The provider's id for the payment, once authorized.
    #[serde(default)]
    pub provider_reference: Option<String>,
    #[serde(default)]
    pub reference: Option<String>,
    /// Why a failed payment failed: `payment_declined`, `provider_rejected` or `provider_unavailable`.
    #[serde(default)]
    pub failure_code: Option<String>,
    /// The provider's decline code (`card_declined`, `insufficient_funds`, ...) of a declined payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
    pub owner_id: Uuid,
    #[serde(default)]
    pub organization_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&Payment> for PaymentView {
    fn from(payment: &Payment) -> PaymentView {
        PaymentView {
            id: payment.id,
            status: payment.status,
            amount_minor: payment.amount_minor,
            currency: payment.currency.clone(),
            captured_minor: payment.captured_minor,
            refunded_minor: payment.refunded_minor,
            provider: payment.provider.clone(),
            provider_reference: payment.provider_reference.clone(),
            reference: payment.reference.clone(),
            failure_code: payment.failure_code.clone(),
            decline_code: payment.decline_code.clone(),
            owner_id: payment.owner_id,
            organization_id: payment.organization_id,
            created_at: payment.created_at.datetime(),
            updated_at: payment.updated_at.datetime(),
        }
    }
}

impl From<PaymentView> for Payment {
    fn from(view: PaymentView) -> Payment {
        Payment {
            id: view.id,
            owner_id: view.owner_id,
            organization_id: view.organization_id,
            amount_minor: view.amount_minor,
            currency: view.currency,
            status: view.status,
            captured_minor: view.captured_minor,
            refunded_minor: view.refunded_minor,
            provider: view.provider,
            provider_reference: view.provider_reference,
            reference: view.reference,
            failure_code: view.failure_code,
            decline_code: view.decline_code,
            created_at: view.created_at.into(),
            updated_at: view.updated_at.into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// Default: the whole authorization. One capture per payment; the rest is released.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub amount_minor: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Default: all that is captured and not yet refunded.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub amount_minor: Option<i64>,
    /// Why, for the payment's history (1 to 500 characters; never a card number).
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
    /// `amount_minor` is the most to refund: what is left is refunded when it is less, and nothing (200, the payment
    /// as it is) when nothing is. For refunds decided elsewhere (a booking's cancellation) while the payment may have
    /// been refunded directly since.
    #[serde(default)]
    pub at_most: bool,
}

/// Authorize a payment: the amount is reserved on the card behind `payment_token`, for the caller (agents, partners,
/// admins; customers pay through their bookings). Requires `Idempotency-Key`: a retry gets the first answer. A
/// declined card is 402 `payment_declined` with the provider's `decline_code`.
#[utoipa::path(post, path = "/api/v1/payments", tag = TAG, security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "retries with the same key get the same answer")),
    request_body = AuthorizeRequest,
    responses((status = 201, body = PaymentView), (status = 402, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub(crate) async fn authorize(
    State(service): State<Service>,
    principal: Principal,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<AuthorizeRequest>,
) -> Result<impl IntoResponse> {
    let payment = service.authorize(&principal, body, &key).await?;
    Ok((StatusCode::CREATED, Json(PaymentView::from(&payment))))
}

/// A payment: yours, your organization's (agents, partners), or any for support and admin.
#[utoipa::path(get, path = "/api/v1/payments/{payment_id}", tag = TAG, security(("bearer" = [])),
    params(("payment_id" = Uuid, Path)),
    responses((status = 200, body = PaymentView), (status = 404, body = Problem)))]
pub(crate) async fn get_payment(
    State(service): State<Service>,
    principal: Principal,
    Path(payment_id): Path<Uuid>,
) -> Result<Json<PaymentView>> {
    Ok(Json(PaymentView::from(&service.payment(&principal, payment_id).await?)))
}

/// Capture an authorized payment, all of it or `amount_minor`. Requires `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/payments/{payment_id}/capture", tag = TAG, security(("bearer" = [])),
    params(("payment_id" = Uuid, Path),
        ("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "retries with the same key get the same answer")),
    request_body = CaptureRequest,
    responses((status = 200, body = PaymentView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub(crate) async fn capture(
    State(service): State<Service>,
    principal: Principal,
    Path(payment_id): Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<CaptureRequest>,
) -> Result<Json<PaymentView>> {
    let payment = service.capture(&principal, payment_id, body.amount_minor, &key).await?;
    Ok(Json(PaymentView::from(&payment)))
}

/// Refund captured money, all that is left or `amount_minor` (or at most that, with `at_most`); several partial
/// refunds may follow each other. Requires `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/payments/{payment_id}/refund", tag = TAG, security(("bearer" = [])),
    params(("payment_id" = Uuid, Path),
        ("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "retries with the same key get the same answer")),
    request_body = RefundRequest,
    responses((status = 200, body = PaymentView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub(crate) async fn refund(
    State(service): State<Service>,
    principal: Principal,
    Path(payment_id): Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<RefundRequest>,
) -> Result<Json<PaymentView>> {
    let payment = if body.at_most {
        service
            .refund_at_most(&principal, payment_id, body.amount_minor, &body.reason, &key)
            .await?
    } else {
        service
            .refund(&principal, payment_id, body.amount_minor, &body.reason, &key)
            .await?
    };
    Ok(Json(PaymentView::from(&payment)))
}

/// Void an authorization that was never captured. Requires `Idempotency-Key`; takes no body.
#[utoipa::path(post, path = "/api/v1/payments/{payment_id}/void", tag = TAG, security(("bearer" = [])),
    params(("payment_id" = Uuid, Path),
        ("Idempotency-Key" = String, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "retries with the same key get the same answer")),
    responses((status = 200, body = PaymentView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 503, body = Problem)))]
pub(crate) async fn void(
    State(service): State<Service>,
    principal: Principal,
    Path(payment_id): Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Json<PaymentView>> {
    Ok(Json(PaymentView::from(
        &service.void(&principal, payment_id, &key).await?,
    )))
}

//! The notification service's HTTP API: the delivery log and replays, preferences, templates and webhook
//! endpoints. Who may call each route is declared in [`api`]; which objects they may see is checked in the
//! service (another's booking or endpoint answers 404).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use phoenix_api::{Json, Path, Principal, Problem, Query, RequireRoles, Role, page_limit};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::handler::Kind;
use crate::service::WEBHOOK_ROLES;
use crate::store::{Attempt, Channel, Delivery, Endpoint, Status, StoredPreferences};
use crate::template::Template;
use crate::{Service, webhook};

type Result<T> = std::result::Result<T, Problem>;

const TAG: &str = "notifications";

/// The path prefixes the service answers, for the gateway's routing table when it runs elsewhere.
pub const PATH_PREFIXES: &[&str] = &["/api/v1/notifications", "/api/v1/webhooks"];

pub fn api() -> OpenApiRouter<Service> {
    let anyone = OpenApiRouter::new()
        .routes(routes!(list_deliveries))
        .routes(routes!(get_preferences, put_preferences))
        .route_layer(RequireRoles::authenticated());
    let support = OpenApiRouter::new()
        .routes(routes!(replay))
        .routes(routes!(dead_deliveries))
        .route_layer(RequireRoles::any_of(&[Role::Support, Role::Admin]));
    let admins = OpenApiRouter::new()
        .routes(routes!(list_templates))
        .routes(routes!(put_template))
        .routes(routes!(dead_letters))
        .route_layer(RequireRoles::any_of(&[Role::Admin]));
    let webhooks = OpenApiRouter::new()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(delete_endpoint))
        .route_layer(RequireRoles::any_of(WEBHOOK_ROLES));
    anyone.merge(support).merge(admins).merge(webhooks)
}

/// Events the notification consumer gave up on after its retries (an event it could not read, say), oldest
/// first: not deliveries that failed, which are in the delivery log. Replay them, once the cause is fixed, with
/// `phoenix events dead-letters replay --consumer notification`.
#[utoipa::path(get, path = "/api/v1/notifications/dead-letters", tag = TAG, security(("bearer" = [])),
    params(phoenix_events::admin::DeadLetterQuery),
    responses((status = 200, body = phoenix_events::admin::DeadLetterList), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
async fn dead_letters(
    State(service): State<Service>,
    Query(query): Query<phoenix_events::admin::DeadLetterQuery>,
) -> Result<Json<phoenix_events::admin::DeadLetterList>> {
    Ok(Json(
        phoenix_events::admin::list(service.pool(), &["notification"], query).await?,
    ))
}

/// One delivery in the log. Email addresses and phone numbers are masked.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    pub event_type: String,
    /// `confirmed`, `cancelled`, `failed`, `refunded`, `reminder`, `password_reset` or `webhook`.
    pub kind: String,
    pub channel: Channel,
    /// `j***@example.com`, `+49******89`, or the webhook URL.
    pub recipient: String,
    pub status: Status,
    pub attempts: u32,
    pub replays: u32,
    pub last_error: Option<String>,
    pub response_code: Option<u16>,
    /// The `webhook-id` header the endpoint receives (webhooks only).
    pub webhook_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    /// Every attempt, oldest first: when, what came of it, the response code and the error.
    pub history: Vec<Attempt>,
}

impl DeliveryView {
    /// The view of `d` with those of `attempts` that are its own.
    fn new(d: &Delivery, attempts: &[Attempt]) -> DeliveryView {
        DeliveryView {
            id: d.id,
            event_type: d.event_type.clone(),
            kind: d.kind.clone(),
            channel: d.channel,
            recipient: match d.channel {
                Channel::Email => mask_email(&d.recipient),
                Channel::Sms => mask_phone(&d.recipient),
                Channel::Webhook => d.recipient.clone(),
            },
            status: d.status,
            attempts: d.attempts,
            replays: d.replays,
            last_error: d.last_error.clone(),
            response_code: d.response_code,
            webhook_id: (d.channel == Channel::Webhook).then(|| webhook::message_id(d.id)),
            created_at: d.created_at.datetime(),
            next_attempt_at: d.next_attempt_at.datetime(),
            last_attempt_at: d.last_attempt_at.map(|t| t.datetime()),
            delivered_at: d.delivered_at.map(|t| t.datetime()),
            history: attempts.iter().filter(|a| a.delivery_id == d.id).cloned().collect(),
        }
    }
}

/// `jane.doe@example.com` -> `j***@example.com`.
pub fn mask_email(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// `+491701234589` -> `+49*******89`: the country code and the last two digits.
pub fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 5 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 5))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    booking_id: Uuid,
}

/// A booking's notifications: its customer, its organization's agents, partners and operators, support and admins.
/// Webhook calls are shown to the organization whose endpoint they went to, and to staff; never to the customer.
#[utoipa::path(get, path = "/api/v1/notifications", tag = TAG, security(("bearer" = [])), params(LogQuery),
    responses((status = 200, body = DeliveryList), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_deliveries(
    State(service): State<Service>,
    principal: Principal,
    Query(query): Query<LogQuery>,
) -> Result<Json<DeliveryList>> {
    let (deliveries, attempts) = service.delivery_log(&principal, query.booking_id).await?;
    Ok(Json(DeliveryList {
        items: deliveries.iter().map(|d| DeliveryView::new(d, &attempts)).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeadQuery {
    /// Only this channel's.
    channel: Option<Channel>,
    /// Deliveries per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<Uuid>,
}

/// A page of dead deliveries, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadPage {
    pub items: Vec<DeliveryView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

/// Deliveries that gave up (every booking's and organization's), newest first, each with its attempts: the queue
/// support works through, replaying those that can go again.
#[utoipa::path(get, path = "/api/v1/notifications/dead-deliveries", tag = TAG, security(("bearer" = [])),
    params(DeadQuery),
    responses((status = 200, body = DeadPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn dead_deliveries(State(service): State<Service>, Query(query): Query<DeadQuery>) -> Result<Json<DeadPage>> {
    let limit = page_limit(query.limit, 50, 200).map_err(|e| crate::Error::invalid(&e.field, e.message))?;
    let (deliveries, attempts) = service.dead_deliveries(query.channel, query.cursor, limit).await?;
    let next_cursor = (deliveries.len() == limit as usize)
        .then(|| deliveries.last().map(|d| d.id))
        .flatten();
    Ok(Json(DeadPage {
        items: deliveries.iter().map(|d| DeliveryView::new(d, &attempts)).collect(),
        next_cursor,
    }))
}

/// Sends a delivery again (a dead webhook, a lost email): a fresh round of attempts, the same `webhook-id`. A pending
/// or cancelled delivery is 409 `not_replayable`; a webhook whose endpoint was deleted or disabled (after answering
/// 410 Gone) is 409 `endpoint_unavailable`.
#[utoipa::path(post, path = "/api/v1/notifications/{id}/replay", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 202, body = DeliveryView), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn replay(State(service): State<Service>, Path(id): Path<Uuid>) -> Result<impl IntoResponse> {
    let delivery = service.replay(id).await?;
    let attempts = service.attempts(delivery.id).await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::new(&delivery, &attempts))))
}

/// A message kind a user does not want on a channel. Only `reminder` may be opted out of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptOut {
    pub kind: Kind,
    pub channel: Channel,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// `en` or `de`.
    #[schema(pattern = "^(en|de)$")]
    pub locale: String,
    #[serde(default)]
    pub opt_out: Vec<OptOut>,
}

impl From<StoredPreferences> for Preferences {
    fn from(p: StoredPreferences) -> Preferences {
        Preferences {
            locale: p.locale,
            opt_out: p
                .opt_outs
                .into_iter()
                .filter_map(|(kind, channel)| Kind::parse(&kind).map(|kind| OptOut { kind, channel }))
                .collect(),
        }
    }
}

/// The signed-in user's notification preferences.
#[utoipa::path(get, path = "/api/v1/notifications/preferences", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = Preferences), (status = 401, body = Problem)))]
async fn get_preferences(State(service): State<Service>, principal: Principal) -> Result<Json<Preferences>> {
    Ok(Json(service.preferences(principal.user_id).await?.into()))
}

/// Sets the signed-in user's locale and opt-outs. Opting out of a transactional kind is 422.
#[utoipa::path(put, path = "/api/v1/notifications/preferences", tag = TAG, security(("bearer" = [])),
    request_body = Preferences,
    responses((status = 200, body = Preferences), (status = 422, body = Problem)))]
async fn put_preferences(
    State(service): State<Service>,
    principal: Principal,
    Json(body): Json<Preferences>,
) -> Result<Json<Preferences>> {
    if body.opt_out.len() > 20 {
        return Err(crate::Error::invalid("opt_out", "at most 20 entries").into());
    }
    let stored = StoredPreferences {
        locale: body.locale,
        opt_outs: body
            .opt_out
            .into_iter()
            .map(|o| (o.kind.as_str().to_owned(), o.channel))
            .collect(),
    };
    service.set_preferences(principal.user_id, stored).await?;
    Ok(Json(service.preferences(principal.user_id).await?.into()))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TemplateView {
    pub kind: Kind,
    pub channel: Channel,
    pub locale: String,
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
    /// Replaced by an admin (else the built-in default).
    pub customized: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TemplateList {
    pub items: Vec<TemplateView>,
}

/// Every template in effect, per kind, channel and locale.
#[utoipa::path(get, path = "/api/v1/notifications/templates", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = TemplateList), (status = 403, body = Problem)))]
async fn list_templates(State(service): State<Service>) -> Result<Json<TemplateList>> {
    let items = service
        .templates()
        .await?
        .into_iter()
        .map(|(kind, channel, locale, template, custom)| TemplateView {
            kind,
            channel,
            locale: locale.to_owned(),
            subject: template.subject,
            text: template.text,
            html: template.html,
            customized: custom.is_some(),
            updated_at: custom.map(|c| c.updated_at.datetime()),
        })
        .collect();
    Ok(Json(TemplateList { items }))
}

/// A template's parts: email needs `subject`, `text` and `html`; SMS only `text`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    #[serde(default)]
    pub subject: Option<String>,
    pub text: String,
    #[serde(default)]
    pub html: Option<String>,
}

/// Replaces a template; it must render with a sample booking (else 422 `template_invalid`).
#[utoipa::path(put, path = "/api/v1/notifications/templates/{kind}/{channel}/{locale}", tag = TAG,
    security(("bearer" = [])), request_body = TemplateBody,
    params(("kind" = String, Path), ("channel" = String, Path), ("locale" = String, Path)),
    responses((status = 200, body = TemplateView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn put_template(
    State(service): State<Service>,
    principal: Principal,
    Path((kind, channel, locale)): Path<(String, String, String)>,
    Json(body): Json<TemplateBody>,
) -> Result<Json<TemplateView>> {
    let template = Template {
        subject: body.subject,
        text: body.text,
        html: body.html,
    };
    service
        .put_template(&principal, &kind, &channel, &locale, template.clone())
        .await?;
    Ok(Json(TemplateView {
        kind: Kind::parse(&kind).ok_or_else(|| Problem::not_found("template"))?,
        channel: Channel::parse(&channel).ok_or_else(|| Problem::not_found("template"))?,
        locale,
        subject: template.subject,
        text: template.text,
        html: template.html,
        customized: true,
        updated_at: Some(OffsetDateTime::now_utc()),
    }))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where to POST events: http or https.
    pub url: String,
    /// `booking.confirmed.v1`, `payment.refunded.v1`, ...
    pub event_types: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EndpointView {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> EndpointView {
        EndpointView {
            id: e.id,
            organization_id: e.organization_id,
            url: e.url.clone(),
            event_types: e.event_types.0.clone(),
            description: e.description.clone(),
            created_at: e.created_at.datetime(),
        }
    }
}

/// A new endpoint and its signing secret, shown this once.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct EndpointCreated {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// `whsec_...`: verify each call's `webhook-signature` with it. Not shown again.
    pub secret: String,
}

impl std::fmt::Debug for EndpointCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointCreated")
            .field("endpoint", &self.endpoint)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Registers a webhook endpoint for the caller's organization.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = TAG, security(("bearer" = [])), request_body = NewEndpoint,
    responses((status = 201, body = EndpointCreated), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create_endpoint(
    State(service): State<Service>,
    principal: Principal,
    Json(body): Json<NewEndpoint>,
) -> Result<impl IntoResponse> {
    let endpoint = service
        .create_endpoint(&principal, &body.url, body.event_types, body.description)
        .await?;
    let created = EndpointCreated {
        endpoint: EndpointView::from(&endpoint),
        secret: endpoint.secret.clone(),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndpointList {
    pub items: Vec<EndpointView>,
}

/// The caller's organization's endpoints (without secrets).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = EndpointList), (status = 403, body = Problem)))]
async fn list_endpoints(State(service): State<Service>, principal: Principal) -> Result<Json<EndpointList>> {
    let endpoints = service.endpoints(&principal).await?;
    Ok(Json(EndpointList {
        items: endpoints.iter().map(EndpointView::from).collect(),
    }))
}

/// Deletes an endpoint: nothing more is sent to it, pending calls are skipped.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_endpoint(
    State(service): State<Service>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    service.delete_endpoint(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_masked() {
        assert_eq!(mask_email("jane.doe@example.com"), "j***@example.com");
        assert_eq!(mask_email("nonsense"), "***");
        assert_eq!(mask_phone("+491701234589"), "+49********89");
        assert_eq!(mask_phone("123"), "***");
    }
}

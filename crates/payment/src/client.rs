//! How other services (the booking saga) reach payment: the same handle whether payment runs in this process or
//! elsewhere, and the same answers, problems included (a decline is 402 `payment_declined` either way).

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{get, post};
use phoenix_api::{IdempotencyKey, Json, Path, Principal, Problem, remote};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::{self, CaptureRequest, PaymentView, RefundRequest};
use crate::operation::{Kind, Outcome};
use crate::service::AuthorizeRequest;
use crate::{Error, Service};

/// Payment as another service sees it. `Local` calls the service directly; `Remote` calls its internal HTTP routes.
#[derive(Clone)]
pub enum Client {
    Local(Service),
    Remote(remote::Client),
}

impl Client {
    /// Authorizes `request` on the payer's card, as `payer`. Retries with the same key get the first answer.
    pub async fn authorize(
        &self,
        payer: &Principal,
        request: &AuthorizeRequest,
        idempotency_key: &str,
    ) -> Result<PaymentView, Problem> {
        match self {
            Client::Local(service) => view(service.authorize(payer, request.clone(), idempotency_key).await),
            Client::Remote(client) => {
                check_key(idempotency_key)?;
                let path = "/internal/v1/payments";
                Ok(client
                    .call_keyed(Method::POST, path, Some(request), Some(payer), Some(idempotency_key))
                    .await?)
            }
        }
    }

    /// Captures `amount_minor` (default: all) of an authorized payment, as `actor`.
    pub async fn capture(
        &self,
        actor: &Principal,
        payment_id: Uuid,
        amount_minor: Option<i64>,
        idempotency_key: &str,
    ) -> Result<PaymentView, Problem> {
        match self {
            Client::Local(service) => view(service.capture(actor, payment_id, amount_minor, idempotency_key).await),
            Client::Remote(client) => {
                check_key(idempotency_key)?;
                let path = format!("/internal/v1/payments/{payment_id}/capture");
                let body = CaptureRequest { amount_minor };
                Ok(client
                    .call_keyed(Method::POST, &path, Some(&body), Some(actor), Some(idempotency_key))
                    .await?)
            }
        }
    }

    /// Refunds `amount_minor` (default: all that is left) of a captured payment, as `actor`; with `at_most`, what
    /// is left when that is less, and nothing when nothing is ([`Service::refund_at_most`]). Answers the payment and
    /// what this refund (this idempotency key) itself returned to the card: the amount refunded, less than asked
    /// when an `at_most` refund found less left, 0 when it found nothing left. A retry with the same key gets the
    /// same two answers, however the payment has moved since. The amount is `None` only from a payment service too
    /// old to say (it answers the payment alone).
    pub async fn refund(
        &self,
        actor: &Principal,
        payment_id: Uuid,
        (amount_minor, at_most): (Option<i64>, bool),
        reason: &str,
        idempotency_key: &str,
    ) -> Result<(PaymentView, Option<i64>), Problem> {
        match self {
            Client::Local(service) => {
                let refund = (amount_minor, at_most);
                let answer = refund_answer(service, actor, payment_id, refund, reason, idempotency_key).await?;
                Ok((answer.payment, answer.refund_minor))
            }
            Client::Remote(client) => {
                check_key(idempotency_key)?;
                let path = format!("/internal/v1/payments/{payment_id}/refund");
                let body = RefundRequest {
                    amount_minor,
                    reason: reason.to_owned(),
                    at_most,
                };
                let answer: RefundAnswer = client
                    .call_keyed(Method::POST, &path, Some(&body), Some(actor), Some(idempotency_key))
                    .await?;
                Ok((answer.payment, answer.refund_minor))
            }
        }
    }

    /// Voids an uncaptured authorization, as `actor`.
    pub async fn void(
        &self,
        actor: &Principal,
        payment_id: Uuid,
        idempotency_key: &str,
    ) -> Result<PaymentView, Problem> {
        match self {
            Client::Local(service) => view(service.void(actor, payment_id, idempotency_key).await),
            Client::Remote(client) => {
                check_key(idempotency_key)?;
                let path = format!("/internal/v1/payments/{payment_id}/void");
                Ok(client
                    .call_keyed::<(), _>(Method::POST, &path, None, Some(actor), Some(idempotency_key))
                    .await?)
            }
        }
    }

    /// A payment, as `viewer` may see it.
    pub async fn payment(&self, viewer: &Principal, payment_id: Uuid) -> Result<PaymentView, Problem> {
        match self {
            Client::Local(service) => view(service.payment(viewer, payment_id).await),
            Client::Remote(client) => {
                let path = format!("/internal/v1/payments/{payment_id}");
                Ok(client.call::<(), _>(Method::GET, &path, None, Some(viewer)).await?)
            }
        }
    }
}

/// The internal refund route's answer: the payment as the public route shows it, and what this refund returned.
/// A client from before `refund_minor` reads only the payment and ignores the rest.
#[derive(Debug, Serialize, Deserialize)]
struct RefundAnswer {
    #[serde(flatten)]
    payment: PaymentView,
    /// What the refund under the request's idempotency key returned to the card (0: nothing was left to refund).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refund_minor: Option<i64>,
}

/// Refunds as asked, then looks up what the refund under `idempotency_key` returned: its operation's amount, which
/// never changes, so a replayed refund reports the same. An `at_most` refund that found nothing left made no
/// operation: 0.
async fn refund_answer(
    service: &Service,
    actor: &Principal,
    payment_id: Uuid,
    (amount_minor, at_most): (Option<i64>, bool),
    reason: &str,
    idempotency_key: &str,
) -> Result<RefundAnswer, Error> {
    let payment = match at_most {
        true => {
            service
                .refund_at_most(actor, payment_id, amount_minor, reason, idempotency_key)
                .await?
        }
        false => {
            service
                .refund(actor, payment_id, amount_minor, reason, idempotency_key)
                .await?
        }
    };
    let refund_minor = service
        .operations(actor, payment_id)
        .await?
        .iter()
        .find(|o| {
            o.kind == Kind::Refund
                && o.outcome == Outcome::Succeeded
                && o.actor_id == actor.user_id
                && o.idempotency_key == idempotency_key
        })
        .map_or(0, |o| o.amount_minor);
    Ok(RefundAnswer {
        payment: PaymentView::from(&payment),
        refund_minor: Some(refund_minor),
    })
}

/// The internal refund route: the public route's refund, answering what it returned as well.
async fn internal_refund(
    State(service): State<Service>,
    principal: Principal,
    Path(payment_id): Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<RefundRequest>,
) -> Result<Json<RefundAnswer>, Problem> {
    let refund = (body.amount_minor, body.at_most);
    let answer = refund_answer(&service, &principal, payment_id, refund, &body.reason, &key).await?;
    Ok(Json(answer))
}

fn view(result: Result<crate::Payment, Error>) -> Result<PaymentView, Problem> {
    Ok(PaymentView::from(&result?))
}

/// A key the header cannot carry would be dropped on the way; refuse it here as the local service would.
fn check_key(key: &str) -> Result<(), Problem> {
    if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(Error::InvalidIdempotencyKey.into())
    }
}

/// Routes only other Phoenix services call (never routed by the gateway; guarded by the internal token). No role
/// checks: the principal in the request is the payer or actor the calling service acts for, and visibility rules
/// still apply to it.
pub fn internal_router(service: Service) -> Router {
    Router::new()
        .route("/internal/v1/payments", post(http::authorize))
        .route("/internal/v1/payments/{payment_id}", get(http::get_payment))
        .route("/internal/v1/payments/{payment_id}/capture", post(http::capture))
        .route("/internal/v1/payments/{payment_id}/refund", post(internal_refund))
        .route("/internal/v1/payments/{payment_id}/void", post(http::void))
        .with_state(service)
}

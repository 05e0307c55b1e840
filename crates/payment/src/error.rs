use axum::http::StatusCode;
use phoenix_api::{FieldError, Problem};
use uuid::Uuid;

use crate::payment::Status;

/// What can go wrong in payment. Client mistakes and expected outcomes (a decline, an amount above what is left)
/// are variants with stable codes; the rest are 5xx whose causes are logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("{field} looks like a card number: send the provider's payment token, never a card number")]
    CardNumberNotAllowed { field: &'static str },
    #[error("no such payment")]
    NotFound,
    #[error("a payment that is {status} cannot be captured")]
    NotCapturable { status: Status },
    #[error("a payment that is {status} cannot be refunded")]
    NotRefundable { status: Status },
    #[error("a payment that is {status} cannot be voided")]
    NotVoidable { status: Status },
    #[error("at most {available_minor} can be captured")]
    AmountAboveAuthorized { available_minor: i64 },
    #[error("at most {available_minor} can be refunded")]
    AmountAboveCaptured { available_minor: i64 },
    #[error("another capture or void of this payment is in progress")]
    OperationInProgress,
    #[error("Idempotency-Key must be 1 to 255 printable characters")]
    InvalidIdempotencyKey,
    #[error("this idempotency key was used for a different request")]
    IdempotencyKeyReused,
    #[error("a request with this idempotency key is still being processed")]
    IdempotencyKeyInUse { retry_after_secs: u64 },
    #[error("the card was declined ({decline_code})")]
    Declined { payment_id: Uuid, decline_code: String },
    #[error("the payment provider refused the request: {message}")]
    ProviderRejected { payment_id: Uuid, message: String },
    /// Capture, refund or void: nothing changed on our side; a retry with the same key tries again.
    #[error("the payment provider is unavailable: retry with the same idempotency key")]
    ProviderUnavailable { retry_after_secs: u64 },
    /// The provider did not answer an authorization: the payment failed (and is voided should it have happened).
    #[error("the payment provider did not answer and the payment failed: authorize again with a new idempotency key")]
    AuthorizationUnknown { payment_id: Uuid },
    #[error("the request's task ended before it finished")]
    Interrupted,
    #[error("stored payment data is corrupt: {0}")]
    Corrupt(&'static str),
    #[error(transparent)]
    Db(#[from] phoenix_db::Error),
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Error {
        Error::Db(phoenix_db::Error::Sql(error))
    }
}

/// Seconds a client is asked to wait after the provider failed an operation.
const PROVIDER_RETRY_AFTER_SECS: u64 = 2;

/// The one mapping from payment's errors to HTTP.
impl From<Error> for Problem {
    fn from(error: Error) -> Problem {
        use StatusCode as S;
        let detail = error.to_string();
        match error {
            Error::Invalid(errors) => Problem::from_status(S::UNPROCESSABLE_ENTITY).with_errors(errors),
            Error::CardNumberNotAllowed { field } => {
                Problem::new(S::UNPROCESSABLE_ENTITY, "card_number_not_allowed", detail).with_errors(vec![FieldError {
                    field: field.to_owned(),
                    message: "looks like a card number".to_owned(),
                }])
            }
            Error::NotFound => Problem::new(S::NOT_FOUND, "not_found", detail),
            Error::NotCapturable { status } => Problem::new(S::CONFLICT, "payment_not_capturable", detail)
                .with_extension("payment_status", status.as_str().into()),
            Error::NotRefundable { status } => Problem::new(S::CONFLICT, "payment_not_refundable", detail)
                .with_extension("payment_status", status.as_str().into()),
            Error::NotVoidable { status } => Problem::new(S::CONFLICT, "payment_not_voidable", detail)
                .with_extension("payment_status", status.as_str().into()),
            Error::AmountAboveAuthorized { available_minor } => {
                Problem::new(S::UNPROCESSABLE_ENTITY, "amount_exceeds_authorized", detail)
                    .with_extension("available_minor", available_minor.into())
            }
            Error::AmountAboveCaptured { available_minor } => {
                Problem::new(S::UNPROCESSABLE_ENTITY, "amount_exceeds_captured", detail)
                    .with_extension("available_minor", available_minor.into())
            }
            Error::OperationInProgress => {
                Problem::new(S::CONFLICT, "operation_in_progress", detail).with_retry_after(PROVIDER_RETRY_AFTER_SECS)
            }
            Error::InvalidIdempotencyKey => Problem::new(S::BAD_REQUEST, "invalid_idempotency_key", detail),
            Error::IdempotencyKeyReused => Problem::new(S::UNPROCESSABLE_ENTITY, "idempotency_key_reused", detail),
            Error::IdempotencyKeyInUse { retry_after_secs } => {
                Problem::new(S::CONFLICT, "idempotency_key_in_use", detail).with_retry_after(retry_after_secs)
            }
            Error::Declined {
                payment_id,
                decline_code,
            } => Problem::new(S::PAYMENT_REQUIRED, "payment_declined", detail)
                .with_extension("decline_code", decline_code.into())
                .with_extension("payment_id", payment_id.to_string().into()),
            Error::ProviderRejected { payment_id, .. } => Problem::new(S::CONFLICT, "provider_rejected", detail)
                .with_extension("payment_id", payment_id.to_string().into()),
            Error::ProviderUnavailable { retry_after_secs } => {
                Problem::new(S::SERVICE_UNAVAILABLE, "provider_unavailable", detail).with_retry_after(retry_after_secs)
            }
            Error::AuthorizationUnknown { payment_id } => {
                Problem::new(S::SERVICE_UNAVAILABLE, "provider_unavailable", detail)
                    .with_retry_after(PROVIDER_RETRY_AFTER_SECS)
                    .with_extension("payment_id", payment_id.to_string().into())
            }
            Error::Db(phoenix_db::Error::Sql(sqlx::Error::PoolTimedOut)) => Problem::unavailable(&error, 1),
            Error::Interrupted | Error::Corrupt(_) | Error::Db(_) => Problem::internal(&error),
        }
    }
}

impl Error {
    /// 503 for a provider failure, asking the client back after `retry_after_secs` (at least the default).
    pub(crate) fn unavailable(retry_after_secs: Option<u64>) -> Error {
        Error::ProviderUnavailable {
            retry_after_secs: retry_after_secs.unwrap_or(PROVIDER_RETRY_AFTER_SECS).max(1),
        }
    }
}

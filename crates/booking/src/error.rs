use axum::http::StatusCode;
use phoenix_api::{FieldError, Problem};

use crate::booking::Booking;
use crate::policy::Status;

/// What can go wrong in booking. Client mistakes and expected refusals are variants with stable codes; the rest are
/// 5xx whose causes are logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("send a payment token from the payment provider, never a card number")]
    CardNumberNotAllowed,
    #[error("{detail}")]
    TravellerMismatch { detail: String },
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("no such booking")]
    NotFound,
    #[error("this idempotency key was used for a different request")]
    IdempotencyKeyReused,
    #[error("a request with this idempotency key is still being processed")]
    IdempotencyKeyInUse,
    #[error("the booking is still being confirmed: cancel it once it is confirmed")]
    BookingPending,
    #[error("a {status} booking cannot be cancelled")]
    NotCancellable { status: Status },
    #[error("the booking is already {status} under its terms, fees not waived: refund the rest through its payment")]
    AlreadyCancelled { status: Status },
    #[error("a {from} booking cannot become {to}")]
    InvalidTransition { from: Status, to: Status },
    /// What the catalog answered (a refusal passes through unchanged; an outage is 503).
    #[error("{0}")]
    Catalog(Problem),
    /// Identity could not say who the customer is (503).
    #[error("{0}")]
    Identity(Problem),
    #[error("no free record locator after {attempts} attempts")]
    LocatorsExhausted { attempts: u32 },
    #[error("stored {what} is not valid")]
    Corrupt {
        what: &'static str,
        #[source]
        source: Option<serde_json::Error>,
    },
    #[error(transparent)]
    Db(#[from] phoenix_db::Error),
}

impl Error {
    pub(crate) fn corrupt(what: &'static str) -> Error {
        Error::Corrupt { what, source: None }
    }

    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Error {
        Error::Invalid(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Error {
        Error::Db(phoenix_db::Error::Sql(error))
    }
}

/// The one mapping from booking's errors to HTTP.
impl From<Error> for Problem {
    fn from(error: Error) -> Problem {
        use StatusCode as S;
        let detail = error.to_string();
        match error {
            Error::Invalid(errors) => Problem::from_status(S::UNPROCESSABLE_ENTITY).with_errors(errors),
            Error::CardNumberNotAllowed => Problem::new(S::UNPROCESSABLE_ENTITY, "card_number_not_allowed", detail)
                .with_errors(vec![FieldError {
                    field: "payment_token".to_owned(),
                    message: "looks like a card number".to_owned(),
                }]),
            Error::TravellerMismatch { .. } => {
                Problem::new(S::UNPROCESSABLE_ENTITY, "traveller_count_mismatch", detail)
            }
            Error::Forbidden(_) => Problem::new(S::FORBIDDEN, "forbidden", detail),
            Error::NotFound => Problem::new(S::NOT_FOUND, "not_found", detail),
            Error::IdempotencyKeyReused => Problem::new(S::UNPROCESSABLE_ENTITY, "idempotency_key_reused", detail),
            Error::IdempotencyKeyInUse => {
                Problem::new(S::CONFLICT, "idempotency_key_in_use", detail).with_retry_after(1)
            }
            Error::BookingPending => Problem::new(S::CONFLICT, "booking_pending", detail).with_retry_after(1),
            Error::NotCancellable { .. } => Problem::new(S::CONFLICT, "not_cancellable", detail),
            Error::AlreadyCancelled { .. } => Problem::new(S::CONFLICT, "already_cancelled", detail),
            Error::InvalidTransition { .. } => Problem::new(S::CONFLICT, "invalid_transition", detail),
            Error::Catalog(problem) => problem,
            // Identity answers booking only "who is this user"; anything but an answer is its outage.
            Error::Identity(_) => Problem::unavailable(&error, 1),
            Error::Db(phoenix_db::Error::Sql(sqlx::Error::PoolTimedOut)) => Problem::unavailable(&error, 1),
            Error::LocatorsExhausted { .. } | Error::Corrupt { .. } | Error::Db(_) => Problem::internal(&error),
        }
    }
}

/// The answer to a booking that failed: the saga's failure code with a status that fits it, naming the booking so
/// the client can look at it.
pub fn failed_problem(booking: &Booking) -> Problem {
    let (code, detail) = match &booking.failure {
        Some(failure) => (failure.code.clone(), failure.detail.clone()),
        None => ("booking_failed".to_owned(), "the booking failed".to_owned()),
    };
    let status = match code.as_str() {
        "payment_declined" => StatusCode::PAYMENT_REQUIRED,
        "insufficient_inventory" | "hold_expired" => StatusCode::CONFLICT,
        "provider_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    // Payment's own words speak to payment's clients ("authorize again"); a booking's client books.
    let detail = match code.as_str() {
        "provider_unavailable" => "the card provider did not answer, so nothing was charged and nothing is held: \
                                   book again, with a new Idempotency-Key"
            .to_owned(),
        _ => detail,
    };
    Problem::new(status, code, detail)
        .with_extension("booking_id", serde_json::Value::String(booking.id.to_string()))
        .with_extension("locator", serde_json::Value::String(booking.locator.to_string()))
}

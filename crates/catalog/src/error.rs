use axum::http::StatusCode;
use phoenix_api::{FieldError, Problem};

use crate::offer::OfferError;

/// What can go wrong in the catalog. Client mistakes are variants with stable codes; the rest are 5xx whose
/// causes are logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("only the owning organization's operators and admins may change this")]
    Forbidden,
    /// A stable code and what to tell the client.
    #[error("{1}")]
    Conflict(&'static str, String),
    #[error("offer {0}")]
    Offer(#[from] OfferError),
    /// The offer presented with a quoted item cannot be honoured; `field` is the item's `offer_id`.
    #[error("{field}: offer {source}")]
    ItemOffer {
        field: String,
        #[source]
        source: OfferError,
    },
    /// A genuine offer, but for something other than the item it came with.
    #[error("{field}: the offer describes something else")]
    OfferMismatch { field: String },
    /// Quoted items that cannot be sold now (a night closed or sold out, a fare full), each named with why.
    #[error("not available: {}", fields(.0))]
    Unavailable(Vec<FieldError>),
    /// Quoted items whose price has no exchange rate to the quotation's currency, or with a fixed fee that has none
    /// into the item's own currency (so no correct price): 422 `currency_mismatch`, each item named.
    #[error("no exchange rate for {}", fields(.0))]
    CurrencyMismatch(Vec<FieldError>),
    /// What inventory or identity answered (a refusal passes through; an outage is 503).
    #[error("{0}")]
    Upstream(Problem),
    #[error("stored {what} is not valid")]
    Corrupt { what: &'static str },
    #[error(transparent)]
    Db(#[from] phoenix_db::Error),
}

fn fields(errors: &[FieldError]) -> String {
    errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>().join(", ")
}

/// An expired offer is told apart from a bad one: the client can search again for a fresh price.
fn offer_code(error: OfferError) -> &'static str {
    match error {
        OfferError::Expired => "offer_expired",
        OfferError::Malformed | OfferError::BadSignature => "invalid_offer",
    }
}

impl Error {
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

/// The one mapping from the catalog's errors to HTTP.
impl From<Error> for Problem {
    fn from(error: Error) -> Problem {
        let detail = error.to_string();
        match error {
            Error::Invalid(errors) => Problem::from_status(StatusCode::UNPROCESSABLE_ENTITY).with_errors(errors),
            Error::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, "not_found", detail),
            Error::Forbidden => Problem::new(StatusCode::FORBIDDEN, "forbidden", detail),
            Error::Conflict(code, _) => Problem::new(StatusCode::CONFLICT, code, detail),
            Error::Offer(source) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, offer_code(source), detail),
            Error::ItemOffer { field, source } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, offer_code(source), detail).with_errors(vec![
                    FieldError {
                        field,
                        message: format!("offer {source}"),
                    },
                ])
            }
            Error::OfferMismatch { field } => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "offer_mismatch", detail)
                .with_errors(vec![FieldError {
                    field,
                    message: "the offer describes something else".into(),
                }]),
            Error::Unavailable(errors) => Problem::new(StatusCode::CONFLICT, "unavailable", detail).with_errors(errors),
            Error::CurrencyMismatch(errors) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "currency_mismatch", detail).with_errors(errors)
            }
            Error::Upstream(problem) => problem,
            Error::Db(phoenix_db::Error::Sql(sqlx::Error::PoolTimedOut)) => Problem::unavailable(&error, 1),
            Error::Corrupt { .. } | Error::Db(_) => Problem::internal(&error),
        }
    }
}

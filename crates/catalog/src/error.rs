use axum::http::StatusCode;
use phoenix_api::{FieldError, Problem};

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
    #[error("{0}")]
    Conflict(&'static str, String),
    #[error("offer {0}")]
    Offer(#[from] crate::offer::OfferError),
    /// What inventory or identity answered (a refusal passes through; an outage is 503).
    #[error("{0}")]
    Upstream(Problem),
    #[error("stored {what} is not valid")]
    Corrupt { what: &'static str },
    #[error(transparent)]
    Db(#[from] phoenix_db::Error),
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
            Error::Offer(_) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_offer", detail),
            Error::Upstream(problem) => problem,
            Error::Db(phoenix_db::Error::Sql(sqlx::Error::PoolTimedOut)) => Problem::unavailable(&error, 1),
            Error::Corrupt { .. } | Error::Db(_) => Problem::internal(&error),
        }
    }
}

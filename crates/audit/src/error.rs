//! The service's `Error` and its one mapping to HTTP.

use phoenix_api::{FieldError, Problem};

/// What can go wrong in the audit service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filter or parameter that does not parse or is out of bounds.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// A stored row that does not decode (a payload that is not JSON).
    #[error("stored {what} is not valid")]
    Corrupt { what: &'static str },
    #[error(transparent)]
    Db(#[from] phoenix_db::Error),
}

impl Error {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Error {
        Error::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Error {
        Error::Db(phoenix_db::Error::Sql(error))
    }
}

/// The one mapping from the service's errors to HTTP.
impl From<Error> for Problem {
    fn from(error: Error) -> Problem {
        match error {
            Error::Invalid { field, message } => {
                Problem::unprocessable("invalid_fields", format!("{field}: {message}")).with_errors(vec![FieldError {
                    field: field.to_owned(),
                    message,
                }])
            }
            Error::Db(phoenix_db::Error::Sql(sqlx::Error::PoolTimedOut)) => Problem::unavailable(&error, 1),
            Error::Corrupt { .. } | Error::Db(_) => Problem::internal(&error),
        }
    }
}

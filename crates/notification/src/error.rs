//! The notification service's errors and their one mapping to HTTP problems.

use phoenix_api::{FieldError, Problem};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such {what}")]
    NotFound { what: &'static str },
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("the template does not render: {detail}")]
    TemplateInvalid { detail: String },
    #[error("{kind} messages are transactional and cannot be opted out of")]
    Transactional { kind: String },
    #[error("a {status} delivery cannot be replayed")]
    NotReplayable { status: &'static str },
    #[error("{reason}: its webhooks cannot be replayed")]
    EndpointUnavailable { reason: &'static str },
    #[error("webhooks belong to an organization and this principal has none")]
    NoOrganization,
    #[error("notification options are not valid: {reason}")]
    Config { reason: String },
    #[error("stored {what} is not valid")]
    Corrupt { what: &'static str },
    #[error(transparent)]
    Db(#[from] phoenix_db::Error),
    /// A stored webhook secret did not open: sealed with a key not configured here, or altered.
    #[error("stored secret: {0}")]
    Sealed(#[from] phoenix_db::SealError),
}

impl Error {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.to_owned(),
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
            Error::NotFound { what } => Problem::not_found(what),
            Error::Invalid { field, message } => Problem::unprocessable("invalid_fields", "some fields are not valid")
                .with_errors(vec![FieldError { field, message }]),
            Error::TemplateInvalid { detail } => {
                Problem::unprocessable("template_invalid", format!("the template does not render: {detail}"))
            }
            Error::Transactional { .. } => Problem::unprocessable("transactional_message", error.to_string()),
            Error::NotReplayable { .. } => Problem::conflict("not_replayable", error.to_string()),
            Error::EndpointUnavailable { .. } => Problem::conflict("endpoint_unavailable", error.to_string()),
            Error::NoOrganization => Problem::unprocessable("organization_required", error.to_string()),
            Error::Db(phoenix_db::Error::Sql(sqlx::Error::PoolTimedOut)) => Problem::unavailable(&error, 1),
            Error::Config { .. } | Error::Corrupt { .. } | Error::Db(_) | Error::Sealed(_) => Problem::internal(&error),
        }
    }
}

use axum::http::StatusCode;

use crate::Problem;
use crate::problem::FieldError;

/// Collects every validation failure of a request so the client learns about all of them at once (422).
///
/// ```
/// # use phoenix_api::FieldErrors;
/// let mut errors = FieldErrors::default();
/// let name = errors.check("name", if "".is_empty() { Err("must not be empty") } else { Ok("x") });
/// assert!(name.is_none());
/// assert_eq!(errors.finish().unwrap_err().errors[0].field, "name");
/// ```
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Keeps the value of a successful parse; records the failure of a failed one.
    pub fn check<T, E: std::fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error.to_string());
                None
            }
        }
    }

    /// The failures collected, for a service error that carries them.
    pub fn into_errors(self) -> Vec<FieldError> {
        self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when nothing failed, else the 422 problem listing every failure.
    pub fn finish(self) -> Result<(), Problem> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Problem::from_status(StatusCode::UNPROCESSABLE_ENTITY).with_errors(self.0))
        }
    }
}

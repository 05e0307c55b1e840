use phoenix_api::Problem;

/// What can go wrong in the orchestrator itself (the steps' failures are values, see [`crate::steps::StepError`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such saga")]
    NotFound,
    #[error("stored {what} is not valid")]
    Corrupt { what: &'static str },
    #[error("the task saving sagas' progress has stopped")]
    SaverStopped,
    #[error("calling another service failed: {0}")]
    Upstream(Problem),
    #[error(transparent)]
    Db(#[from] phoenix_db::Error),
}

impl From<Problem> for Error {
    fn from(problem: Problem) -> Error {
        Error::Upstream(problem)
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Error {
        Error::Db(phoenix_db::Error::Sql(error))
    }
}

/// The one mapping from the orchestrator's errors to HTTP.
impl From<Error> for Problem {
    fn from(error: Error) -> Problem {
        match error {
            Error::NotFound => Problem::not_found("saga"),
            Error::Upstream(problem) => problem,
            Error::Db(phoenix_db::Error::Sql(sqlx::Error::PoolTimedOut)) => Problem::unavailable(&error, 1),
            Error::Corrupt { .. } | Error::SaverStopped | Error::Db(_) => Problem::internal(&error),
        }
    }
}

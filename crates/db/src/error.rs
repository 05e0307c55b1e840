/// A storage failure. Expected outcomes (a missing row, a taken email) are values in the services, not errors here;
/// `is_unique_violation` lets a service turn a constraint race into its own domain answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database url is not valid: {reason}")]
    InvalidUrl { reason: String },
    #[error("cannot connect to the {backend} database")]
    Connect {
        backend: crate::Backend,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create database {name}")]
    CreateDatabase {
        name: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrations failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("cannot create data directory {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode event payload")]
    EncodeEvent(#[source] serde_json::Error),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

impl Error {
    /// True when the failure is a unique-constraint violation (on either engine).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Error::Sql(sqlx::Error::Database(db)) => db.is_unique_violation(),
            _ => false,
        }
    }
}

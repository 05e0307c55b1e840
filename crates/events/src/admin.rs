//! Dead letters for admins over HTTP: the query, the answer and the listing that each consuming service's API
//! mounts under its own prefix (audit: `/api/v1/audit/dead-letters`; notification:
//! `/api/v1/notifications/dead-letters`). Replaying stays a command (`phoenix events dead-letters replay`): it is
//! run once the cause is fixed, by whoever fixed it.

use phoenix_api::{FieldError, Problem};
use phoenix_db::Pool;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{DeadLetter, Error, dead_letters};

/// Dead letters a page holds when the client does not say, and at most.
pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// The consumer whose dead letters to list; may be left out where the service has one consumer.
    pub consumer: Option<String>,
    /// Include dead letters already replayed (default: open ones only).
    pub all: Option<bool>,
    /// At most this many, 1 to 500 (default 100), oldest first.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// A consumer's dead letters, oldest first: each the whole CloudEvent as it arrived (personal data included),
/// the last error and the attempts made.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterList {
    pub consumer: String,
    pub items: Vec<DeadLetter>,
}

/// Lists the dead letters of one of `consumers` (the service's consumer names) in its database `pool`. A consumer
/// not among them, or a limit out of bounds, is a 422 naming the field.
pub async fn list(pool: &Pool, consumers: &[&str], query: DeadLetterQuery) -> Result<DeadLetterList, Problem> {
    let consumer = match (query.consumer, consumers) {
        (None, [only]) => (*only).to_owned(),
        (Some(name), _) if consumers.contains(&name.as_str()) => name,
        _ => return Err(invalid("consumer", format!("must be one of: {}", consumers.join(", ")))),
    };
    let limit =
        phoenix_api::page_limit(query.limit, DEFAULT_PAGE, MAX_PAGE).map_err(|e| invalid(&e.field, e.message))?;
    let items = dead_letters(pool, &consumer, query.all.unwrap_or(false), limit)
        .await
        .map_err(|e| match &e {
            Error::Db(phoenix_db::Error::Sql(sqlx::Error::PoolTimedOut)) => Problem::unavailable(&e, 1),
            _ => Problem::internal(&e),
        })?;
    Ok(DeadLetterList { consumer, items })
}

fn invalid(field: &str, message: String) -> Problem {
    Problem::unprocessable("invalid_fields", format!("{field}: {message}")).with_errors(vec![FieldError {
        field: field.to_owned(),
        message,
    }])
}

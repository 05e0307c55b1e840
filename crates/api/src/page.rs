use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::FieldError;

/// Paging parameters for list endpoints: at most [`PageParams::MAX_LIMIT`] items a page, continued by the opaque
/// `cursor` of the previous page.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 100 (default 50, unless the list says otherwise).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

impl PageParams {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 100;

    /// The page size: [`PageParams::DEFAULT_LIMIT`] when absent; outside 1 to [`PageParams::MAX_LIMIT`] refused.
    pub fn limit(&self) -> Result<u32, FieldError> {
        self.limit_within(Self::DEFAULT_LIMIT, Self::MAX_LIMIT)
    }

    /// The page size: `default` when absent, refused outside 1 to `max` ([`page_limit`]).
    pub fn limit_within(&self, default: u32, max: u32) -> Result<u32, FieldError> {
        page_limit(self.limit, default, max)
    }
}

/// Every list's page size: `default` when the client asks none; a value outside 1 to `max` is refused (on the
/// field `limit`) rather than bent into range, so a client asking for more than a page holds learns it instead of
/// silently getting fewer.
pub fn page_limit(asked: Option<u32>, default: u32, max: u32) -> Result<u32, FieldError> {
    match asked {
        None => Ok(default),
        Some(limit) if (1..=max).contains(&limit) => Ok(limit),
        Some(_) => Err(FieldError {
            field: "limit".to_owned(),
            message: format!("must be 1 to {max}"),
        }),
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

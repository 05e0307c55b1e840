use axum::http::StatusCode;
use phoenix_api::{FieldError, Problem};

use crate::item::ItemId;
use crate::ledger::{Broken, Shortage};

/// What can go wrong in inventory. Client mistakes and expected outcomes (sold out, expired) are variants with
/// stable codes; the rest are 5xx whose causes are logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("no bucket for {}", list(.0))]
    UnknownItems(Vec<ItemId>),
    #[error("not enough units of {}", list(&.0.iter().map(|s| s.item_id.clone()).collect::<Vec<_>>()))]
    Insufficient(Vec<Shortage>),
    #[error("no such item")]
    ItemNotFound,
    #[error("no such hold")]
    HoldNotFound,
    #[error("the hold expired")]
    HoldExpired,
    #[error("the hold was released")]
    HoldReleased,
    #[error("this hold belongs to a booking: cancel the booking instead")]
    HoldManaged,
    #[error("capacity plus overbooking limit would be below the {committed} units held and sold")]
    BelowCommitted { item_id: ItemId, committed: i64 },
    #[error("this bucket belongs to another organization")]
    NotOwner,
    #[error("the catalog sizes this bucket: change the hotel's rooms or the flight's schedule instead")]
    CatalogItem,
    #[error("at most {limit} open holds per holder")]
    TooManyHolds { limit: i64 },
    #[error("this idempotency key was used for a different request")]
    IdempotencyKeyReused,
    #[error("a request with this idempotency key is still being processed")]
    IdempotencyKeyInUse,
    #[error("inventory is busy: retry shortly")]
    Busy,
    #[error("inventory is shutting down")]
    Stopped,
    #[error("inventory storage is unavailable")]
    Unavailable,
    #[error(transparent)]
    Broken(#[from] Broken),
    #[error(transparent)]
    Db(#[from] phoenix_db::Error),
}

fn list(items: &[ItemId]) -> String {
    items.iter().map(ItemId::as_str).collect::<Vec<_>>().join(", ")
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Error {
        Error::Db(phoenix_db::Error::Sql(error))
    }
}

/// The one mapping from inventory's errors to HTTP.
impl From<Error> for Problem {
    fn from(error: Error) -> Problem {
        use StatusCode as S;
        let detail = error.to_string();
        match error {
            Error::Invalid(errors) => Problem::from_status(S::UNPROCESSABLE_ENTITY).with_errors(errors),
            Error::UnknownItems(items) => Problem::new(S::UNPROCESSABLE_ENTITY, "unknown_item", detail).with_errors(
                items
                    .iter()
                    .map(|item| FieldError {
                        field: "lines".to_owned(),
                        message: format!("no bucket for {item}"),
                    })
                    .collect(),
            ),
            Error::Insufficient(short) => {
                let items: Vec<serde_json::Value> = short
                    .iter()
                    .map(|s| serde_json::json!({"item_id": s.item_id, "requested": s.requested, "available": s.available}))
                    .collect();
                Problem::new(S::CONFLICT, "insufficient_inventory", detail)
                    .with_extension("short_items", serde_json::Value::Array(items))
            }
            Error::ItemNotFound | Error::HoldNotFound => Problem::new(S::NOT_FOUND, "not_found", detail),
            Error::HoldExpired => Problem::new(S::CONFLICT, "hold_expired", detail),
            Error::HoldReleased => Problem::new(S::CONFLICT, "hold_released", detail),
            Error::HoldManaged => Problem::new(S::CONFLICT, "hold_managed", detail),
            Error::BelowCommitted { committed, .. } => Problem::new(S::CONFLICT, "capacity_below_committed", detail)
                .with_extension("committed", committed.into()),
            Error::NotOwner => Problem::new(S::FORBIDDEN, "forbidden", detail),
            Error::CatalogItem => Problem::new(S::FORBIDDEN, "catalog_item", detail),
            Error::TooManyHolds { .. } => Problem::new(S::CONFLICT, "too_many_holds", detail),
            Error::IdempotencyKeyReused => Problem::new(S::UNPROCESSABLE_ENTITY, "idempotency_key_reused", detail),
            Error::IdempotencyKeyInUse => {
                Problem::new(S::CONFLICT, "idempotency_key_in_use", detail).with_retry_after(1)
            }
            Error::Busy | Error::Stopped | Error::Unavailable => {
                Problem::new(S::SERVICE_UNAVAILABLE, "inventory_busy", detail).with_retry_after(1)
            }
            Error::Db(phoenix_db::Error::Sql(sqlx::Error::PoolTimedOut)) => Problem::unavailable(&error, 1),
            Error::Broken(_) | Error::Db(_) => Problem::internal(&error),
        }
    }
}

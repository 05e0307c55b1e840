use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::Problem;

/// The `Idempotency-Key` header of an unsafe request: 1 to 255 printable ASCII characters. Required: a request that
/// creates or moves money or capacity without one is 400 `idempotency_key_required`, so no client can forget it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub String);

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY) else {
            return Err(Problem::bad_request(
                "idempotency_key_required",
                "send an Idempotency-Key header: retries with the same key get the same answer",
            ));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                Problem::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1 to 255 printable characters",
                )
            })?;
        Ok(IdempotencyKey(key.to_owned()))
    }
}

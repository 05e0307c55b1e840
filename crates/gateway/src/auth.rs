//! Credential checks: the only place in Phoenix that verifies a bearer token or an API key.
//!
//! Access tokens are EdDSA JWTs. The algorithm is pinned (the token's `alg` header cannot choose it), `typ` must
//! be `at+jwt`, and `iss`, `aud`, `exp`, `nbf`, `iat`, `sub` and `jti` are all required. Keys come from identity's
//! JWKS by `kid`; an unknown `kid` triggers at most one re-fetch a second, so a flood of forged kids cannot flood
//! identity. Verified tokens are cached until they expire: a client re-sends the same token on every request, and
//! an Ed25519 verification costs far more than the rest of the request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use phoenix_api::{Credential, Principal, Problem};
use phoenix_identity::{AccessClaims, TOKEN_TYPE};
use tokio::sync::{Mutex, RwLock};

/// Why a credential was refused. Every variant is a 401 to the client; the distinction is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the Authorization header is not a bearer credential")]
    MalformedHeader,
    #[error("the token is not a valid access token")]
    InvalidToken,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
}

impl From<Rejection> for Problem {
    fn from(rejection: Rejection) -> Problem {
        let code = match rejection {
            Rejection::Expired => "token_expired",
            _ => "invalid_token",
        };
        Problem::new(axum::http::StatusCode::UNAUTHORIZED, code, rejection.to_string())
    }
}

struct CachedToken {
    principal: Principal,
    exp: i64,
}

/// Verifies credentials. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    identity: phoenix_identity::Client,
    validation: Arc<Validation>,
    keys: Arc<RwLock<HashMap<String, DecodingKey>>>,
    last_fetch: Arc<Mutex<Option<Instant>>>,
    verified: Arc<quick_cache::sync::Cache<String, Arc<CachedToken>>>,
}

const REFETCH_INTERVAL: Duration = Duration::from_secs(1);
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 30;

impl Authenticator {
    pub fn new(
        identity: phoenix_identity::Client,
        issuer: &str,
        audience: &str,
        cache_capacity: usize,
    ) -> Authenticator {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Authenticator {
            identity,
            validation: Arc::new(validation),
            keys: Arc::new(RwLock::new(HashMap::new())),
            last_fetch: Arc::new(Mutex::new(None)),
            verified: Arc::new(quick_cache::sync::Cache::new(cache_capacity.max(1))),
        }
    }

    /// Turns an `Authorization` header value into a principal.
    pub async fn authenticate(&self, header: &str) -> Result<Principal, Problem> {
        let credential = bearer(header).ok_or(Rejection::MalformedHeader)?;
        if phoenix_identity::looks_like_api_key(credential) {
            return self.identity.authenticate_api_key(credential).await;
        }
        Ok(self.verify_token(credential).await?)
    }

    pub async fn verify_token(&self, token: &str) -> Result<Principal, Rejection> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Some(cached) = self.verified.get(token) {
            if cached.exp + LEEWAY_SECS as i64 > now {
                return Ok(cached.principal);
            }
            return Err(Rejection::Expired);
        }
        let (principal, exp) = self.verify_signed(token, now).await?;
        self.verified
            .insert(token.to_owned(), Arc::new(CachedToken { principal, exp }));
        Ok(principal)
    }

    /// Verifies a token without consulting or filling the cache (for the benchmark of what the cache saves).
    pub async fn verify_uncached(&self, token: &str) -> Result<Principal, Rejection> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Ok(self.verify_signed(token, now).await?.0)
    }

    async fn verify_signed(&self, token: &str, now: i64) -> Result<(Principal, i64), Rejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::InvalidToken)?;
        if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(Rejection::InvalidToken);
        }
        let kid = header.kid.ok_or(Rejection::InvalidToken)?;
        let key = self.key(&kid).await?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &self.validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => Rejection::Expired,
            _ => Rejection::InvalidToken,
        })?;
        let claims = data.claims;
        if claims.iat > now + LEEWAY_SECS as i64 {
            return Err(Rejection::InvalidToken);
        }
        let principal = Principal {
            user_id: claims.sub,
            roles: claims.roles.into_iter().collect(),
            organization_id: claims.org,
            credential: Credential::AccessToken { token_id: claims.jti },
        };
        Ok((principal, claims.exp))
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, Rejection> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(key.clone());
        }
        self.refetch().await;
        self.keys.read().await.get(kid).cloned().ok_or(Rejection::UnknownKey)
    }

    /// Re-reads identity's JWKS, at most once per [`REFETCH_INTERVAL`].
    async fn refetch(&self) {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFETCH_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        match self.identity.jwks(true).await {
            Ok(set) => {
                let keys = set
                    .keys
                    .iter()
                    .filter_map(|jwk| {
                        let kid = jwk.common.key_id.clone()?;
                        DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
                    })
                    .collect();
                *self.keys.write().await = keys;
            }
            Err(problem) => tracing::warn!(%problem, "cannot fetch signing keys from identity"),
        }
    }
}

/// The credential of `Bearer <credential>` (scheme case-insensitive, as RFC 7235 says).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, credential) = header.trim().split_once(' ')?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty() && !credential.contains(' ')).then_some(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer a b"), None);
    }
}
